"""The run report: one self-contained HTML file (figures embedded as PNG data URIs).

``write_report(run_dir)`` reads the run folder (config.json, metrics.json, the model), scores the
run's evaluation data again through the detector, and writes ``run_dir/report.html`` with: the
most abnormal and most normal images with their scores, score histograms with the threshold, ROC
and precision-recall curves, training curves, a 2-D PCA map of the latent space and the
configuration.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from .. import calibration  # noqa: E402
from ..data.datasets import dataset_info  # noqa: E402
from ..detector import OneClassDetector  # noqa: E402
from ..errors import OneClassError  # noqa: E402
from ..evaluation.metrics import detection_metrics  # noqa: E402
from ..figures import map_overlay  # noqa: E402
from ..fileio import atomic_open, read_json  # noqa: E402
from ..services.calibrate import CALIBRATION_FILE  # noqa: E402
from ..services.fit import rebuild_run_data  # noqa: E402
from ..services.runfolder import read_metrics  # noqa: E402

GRID = 32  # images per grid
MAP_POINTS = 3000  # points in the latent map


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _thumb(image: np.ndarray) -> str:
    picture = Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))
    picture = picture.resize((picture.width * 2, picture.height * 2), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def evaluation_data(metrics: dict[str, Any], data_dir: str | os.PathLike | None):
    """The images a run was evaluated on (array or ImageFolder) and whether each is normal."""
    if "data" not in metrics:
        raise OneClassError("metrics.json does not describe the run's data: cannot rebuild the evaluation")
    data = rebuild_run_data(metrics["data"], data_dir)
    if data.test is None:
        return data.train, None  # a folder run without test images: show the training images
    images = data.test
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = images[:, None]
    return images, data.test_is_normal


def _grid_html(
    title: str, images: np.ndarray, scores: np.ndarray, order: np.ndarray, is_normal: np.ndarray | None
) -> str:
    cells = []
    for i in order[:GRID]:
        tag = "" if is_normal is None else ("normal" if is_normal[i] else "abnormal")
        cells.append(
            f'<figure class="{tag}"><img src="{_thumb(images[i])}" alt="image {i}">'
            f"<figcaption>{scores[i]:.3g}</figcaption></figure>"
        )
    return f"<h3>{html.escape(title)}</h3><div class='grid'>{''.join(cells)}</div>"


def _histogram(scores, is_normal, threshold) -> str:
    fig, axis = plt.subplots(figsize=(6, 3.2))
    bins = np.histogram_bin_edges(scores, bins=60)
    if is_normal is None:
        axis.hist(scores, bins=bins, alpha=0.7, label="test images")
    else:
        axis.hist(scores[is_normal], bins=bins, alpha=0.6, label=f"normal (n={int(is_normal.sum())})")
        axis.hist(scores[~is_normal], bins=bins, alpha=0.6, label=f"abnormal (n={int((~is_normal).sum())})")
    axis.axvline(threshold, color="black", linestyle="--", label=f"threshold = {threshold:.3g}")
    axis.set_xlabel("score (higher = more normal)")
    axis.legend(fontsize=8)
    return _png(fig)


def _curves(scores, is_normal) -> str:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    fpr, tpr, _ = roc_curve(is_normal, scores)
    left.plot(fpr, tpr)
    left.plot([0, 1], [0, 1], color="grey", linestyle=":")
    left.set_xlabel("false positive rate")
    left.set_ylabel("true positive rate")
    left.set_title("ROC (normal = positive)")
    precision, recall, _ = precision_recall_curve(is_normal, scores)
    right.plot(recall, precision)
    right.set_xlabel("recall")
    right.set_ylabel("precision")
    right.set_title("precision-recall")
    return _png(fig)


def _training(history: dict[str, list[dict]]) -> str:
    """The training curves; no encoder panel for an encoder that was not trained (pretrained
    features), rather than an empty one."""
    encoder, head = history.get("encoder", []), history.get("head", [])
    fig, axes = plt.subplots(1, 3 if encoder else 2, figsize=(12 if encoder else 8, 3.2))
    if encoder:
        axes[0].plot([h["epoch"] for h in encoder], [h["loss"] for h in encoder], marker="o")
        axes[0].set_title("encoder loss per image")
    loss_axis, spread_axis = axes[-2:]
    if head:
        epochs = [h["epoch"] for h in head]
        loss_axis.plot(epochs, [h["loss"] for h in head])
        if "threshold" in head[0]:
            spread_axis.plot(epochs, [h["threshold"] for h in head], label="threshold")
            spread_axis.plot(epochs, [h["score_mean"] for h in head], label="mean score")
            spread_axis.fill_between(
                epochs,
                [h["score_mean"] - h["score_std"] for h in head],
                [h["score_mean"] + h["score_std"] for h in head],
                alpha=0.2,
                label="mean +- std",
            )
            spread_axis.legend(fontsize=8)
    loss_axis.set_title("head loss (OC-NN objective)")
    spread_axis.set_title("threshold and score spread (training data)")
    for axis in axes:
        axis.set_xlabel("epoch")
    return _png(fig)


def _latent_map(latents: np.ndarray, is_normal: np.ndarray | None, seed: int) -> str:
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(latents), min(MAP_POINTS, len(latents)), replace=False)
    points = PCA(n_components=2, random_state=seed).fit_transform(latents[pick])
    fig, axis = plt.subplots(figsize=(5, 4))
    if is_normal is None:
        axis.scatter(points[:, 0], points[:, 1], s=4)
    else:
        chosen = is_normal[pick]
        axis.scatter(points[~chosen, 0], points[~chosen, 1], s=4, alpha=0.5, label="abnormal", c="tab:orange")
        axis.scatter(points[chosen, 0], points[chosen, 1], s=4, alpha=0.5, label="normal", c="tab:blue")
        axis.legend(fontsize=8, markerscale=3)
    axis.set_title("latent space, first two principal components")
    return _png(fig)


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d232b}
header{background:#1d3557;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85}main{padding:16px 32px;max-width:1200px}
section{background:#fff;border-radius:8px;padding:14px 20px;margin:14px 0;box-shadow:0 1px 3px #0002}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#eef2f7;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:20px}.card span{font-size:12px;color:#4a5565}
.grid{display:grid;grid-template-columns:repeat(8,64px);gap:6px}
figure{margin:0;text-align:center;font-size:11px}figure img{width:56px;height:56px;image-rendering:pixelated;
border:3px solid #ccc;border-radius:3px}
figure.normal img{border-color:#2a9d8f}figure.abnormal img{border-color:#e76f51}
img.plot{max-width:100%}pre{background:#f0f2f5;padding:10px;overflow:auto;font-size:12px}
.two{display:flex;flex-wrap:wrap;gap:24px}.legend{font-size:12px;color:#4a5565}
.maps{display:grid;grid-template-columns:repeat(4,136px);gap:10px}.maps figure img{width:64px;height:64px}
.warn{background:#fff3cd;border-left:4px solid #e9a100;padding:8px 12px;margin:12px 0 0;font-size:14px}
"""

CHECK_SCRIPT = """
window.addEventListener('load', function () {
  var broken = Array.prototype.filter.call(document.images, function (img) {
    return !img.complete || img.naturalWidth === 0; });
  document.body.setAttribute('data-broken-images', String(broken.length));
  document.body.setAttribute('data-images', String(document.images.length));
});
"""


def write_report(run_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """Write ``run_dir/report.html`` for a run made by ``fit`` or ``reproduce``."""
    run_dir = Path(run_dir)
    detector = OneClassDetector.load(run_dir, device="cpu")
    metrics = read_metrics(run_dir)
    config = read_json(run_dir / "config.json")
    images, is_normal = evaluation_data(metrics, data_dir)
    threshold = detector.threshold_
    if detector.local:
        maps_section, scores = _maps_section(detector, images, is_normal, metrics)
        latent_section = ""
    else:
        latents = detector.transform(images)
        scores = detector.head_.score_samples(latents)
        maps_section = ""
        latent_map = _latent_map(latents, is_normal, detector.seed)
        latent_section = (
            f"<section><h2>Latent space</h2><img class='plot' src='{latent_map}' alt='latent map'></section>"
        )
    order = np.argsort(scores, kind="stable")

    cards = {
        "threshold": f"{threshold:.4g}",
        "nu": str(detector.nu),
        "encoder": detector.encoder,
        "head": detector.head,
    }
    calibrated = (run_dir / CALIBRATION_FILE).is_file()
    if calibrated:  # the threshold was set anew by `oneclass calibrate`
        record = read_json(run_dir / CALIBRATION_FILE)
        before = record["threshold_before"]
        cards["threshold set by"] = f"calibrate on {record['images']} good images (was {before:.4g})"
    warning = ""
    if is_normal is not None and is_normal.any():
        shifted = calibration.excess_false_alarms(
            calibration.flagged(scores[is_normal], threshold), detector.nu
        )
        warning = f"<p class='warn'>Warning: {html.escape(shifted)}.</p>" if shifted else ""
    cards.update(_one_sided_cards(scores, is_normal, threshold, metrics, fitted_threshold=not calibrated))
    if is_normal is not None and is_normal.any() and not is_normal.all():
        found = detection_metrics(scores, is_normal, threshold)
        cards.update(
            {
                "AUROC": f"{found['auroc']:.4f}",
                "average precision": f"{found['average_precision']:.4f}",
                "false alarms at the threshold": f"{found['false_alarm_rate']:.3f}",
                "detection at the threshold": f"{found['detection_rate']:.3f}",
            }
        )
        curves = (
            f"<section><h2>ROC and precision-recall</h2><img class='plot' src='{_curves(scores, is_normal)}' "
            "alt='ROC and PR curves'></section>"
        )
    else:
        curves = ""
    title = run_title(metrics)
    card_html = "".join(
        f"<div class='card'><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>"
        for k, v in cards.items()
    )
    body = f"""
<header><h1>oneclass run report: {html.escape(str(title))}</h1>
<p>{html.escape(str(run_dir))} &middot; {len(scores)} evaluation images &middot; scores: higher = more normal,
below the threshold = abnormal</p></header>
<main>
<section><h2>Summary</h2><div class="cards">{card_html}</div>{warning}</section>
<section><h2>Most abnormal and most normal evaluation images</h2>
<p class="legend">Frame colour: green = labelled normal, orange = labelled abnormal; number = score.</p>
<div class="two">{_grid_html("Most abnormal (lowest scores)", images, scores, order, is_normal)}
{_grid_html("Most normal (highest scores)", images, scores, order[::-1], is_normal)}</div></section>
<section><h2>Score distribution</h2><img class="plot" src="{_histogram(scores, is_normal, threshold)}"
alt="score histogram"></section>
{maps_section}
{curves}
<section><h2>Training</h2>
<img class="plot" src="{_training(config.get("history", {}))}" alt="training curves">
</section>
{latent_section}
<section><h2>Configuration</h2><pre>{html.escape(json.dumps(config.get("params", {}), indent=2))}</pre>
<h3>Metrics</h3><pre>{html.escape(json.dumps(_short(metrics), indent=2))}</pre></section>
</main>"""
    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>oneclass report</title>"
        f"<style>{STYLE}</style><script>{CHECK_SCRIPT}</script></head><body>{body}</body></html>"
    )
    target = run_dir / "report.html"
    with atomic_open(target, "w") as handle:
        handle.write(page)
    return target


def _one_sided_cards(scores, is_normal, threshold, metrics, fitted_threshold: bool) -> dict[str, str]:
    """What the threshold does where no AUROC can say it: on evaluation images of one kind only
    (a folder of defects, or of good images), and on the good images held out of the fit (only
    while the threshold is the fit's: ``calibrate`` sets it from those images' successors)."""
    cards = {}
    if is_normal is not None and len(scores) and (is_normal.all() or not is_normal.any()):
        flagged = calibration.flagged(scores, threshold)
        name = "false alarms at the threshold" if is_normal.all() else "abnormal images detected"
        cards[name] = f"{int(flagged.sum())} of {len(scores)} ({flagged.mean():.3f})"
    held_out = metrics.get("n_calibration", 0)
    if fitted_threshold and held_out and "calibration_share_below_threshold" in metrics:
        share = metrics["calibration_share_below_threshold"]
        cards["held-out good images flagged"] = f"{round(share * held_out)} of {held_out} ({share:.3f})"
    return cards


MAPS_SHOWN = 16  # the most abnormal evaluation images shown with their anomaly maps


def _maps_section(detector, images, is_normal, metrics) -> tuple[str, np.ndarray]:
    """A local detector's section: the most abnormal images beside their anomaly maps (red where
    the pixel threshold is passed), the pixel metrics where masks exist; and every score."""
    scores = np.empty(len(images))
    worst: list[tuple[float, int, np.ndarray, np.ndarray]] = []
    for start, chunk, chunk_scores, maps in detector.scored_chunks(images, maps=True):
        scores[start : start + len(chunk)] = chunk_scores
        for i in np.argsort(chunk_scores)[:MAPS_SHOWN]:
            worst.append((float(chunk_scores[i]), start + int(i), chunk[i], maps[i]))
    worst = sorted(worst, key=lambda item: item[0])[:MAPS_SHOWN]
    cells = []
    for value, index, image, anomaly in worst:
        tag = "" if is_normal is None else ("normal" if is_normal[index] else "abnormal")
        overlay = _png_image(map_overlay(image, anomaly, detector.pixel_threshold_, longest=128, most=2))
        cells.append(
            f'<figure class="{tag}"><img src="{_thumb(image)}" alt="image {index}">'
            f'<img src="{overlay}" alt="map {index}"><figcaption>{value:.3g}</figcaption></figure>'
        )
    pixel = ""
    if "test_pixel_auroc" in metrics:
        pixel = (
            f"<p>Against the defect masks of the test split: pixel AUROC "
            f"{metrics['test_pixel_auroc']:.4f}, PRO (per-region overlap up to 30% false-positive rate) "
            f"{metrics['test_pro']:.4f}.</p>"
        )
    section = f"""<section><h2>Where the defects are: anomaly maps of the most abnormal images</h2>
<p class="legend">Each image and its map: red where the map passes the pixel threshold
({detector.pixel_threshold_:.3g}); number = image score (higher = more normal).</p>{pixel}
<div class="maps">{"".join(cells)}</div></section>"""
    return section, scores


def _png_image(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def run_title(metrics: dict[str, Any]) -> str:
    """What a run was trained on, in words: the experiment, the data set and its normal classes,
    or the folder and which of its images were normal."""
    if "experiment" in metrics:
        return str(metrics["experiment"])
    data = metrics.get("data", {})
    if data.get("kind") == "folder":
        if data.get("root"):
            return f"folder {data['root']} (normal: train/good)"
        if data.get("abnormal_dir"):
            return f"folders {data.get('normal_dir')} (normal) and {data['abnormal_dir']} (abnormal)"
        return f"folder {data.get('normal_dir')} (all normal)"
    if data.get("kind") == "dataset":
        names = dataset_info(data["name"]).class_names
        normal = ", ".join(names[c] for c in data["normal_classes"])
        return f"{data['name']}, normal classes: {normal}"
    return "run"


def _short(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics without the long per-image lists."""
    return {k: v for k, v in metrics.items() if not (isinstance(v, list) and len(v) > 30)}


def write_bench_report(
    out: str | os.PathLike, records: list[dict[str, Any]], dataset: str, command: str
) -> Path:
    """``out/report.html`` for a benchmark: mean AUROC per method, a class x method heat map and
    the per-record table, self-contained like the run report."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    classes = sorted({r["normal_class"] for r in records})
    table = np.array(
        [
            [
                np.mean([r["auroc"] for r in records if r["method"] == m and r["normal_class"] == c])
                for c in classes
            ]
            for m in methods
        ]
    )
    means = table.mean(1)
    fig, axis = plt.subplots(figsize=(7, 0.35 * len(methods) + 1))
    axis.barh(methods[::-1], 100 * means[::-1], color="tab:blue")
    axis.set_xlim(max(0, 100 * means.min() - 5), 100)
    axis.set_xlabel("mean AUROC (%) over classes and seeds")
    bars = _png(fig)
    fig, axis = plt.subplots(figsize=(0.6 * len(classes) + 3, 0.4 * len(methods) + 1))
    image = axis.imshow(100 * table, cmap="viridis", aspect="auto")
    axis.set_xticks(range(len(classes)), [str(c) for c in classes])
    axis.set_yticks(range(len(methods)), methods)
    axis.set_xlabel("normal class")
    for i in range(len(methods)):
        for j in range(len(classes)):
            bright = table[i, j] > table.min() + 0.6 * (table.max() - table.min())
            axis.text(
                j,
                i,
                f"{100 * table[i, j]:.0f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if bright else "white",
            )
    fig.colorbar(image, ax=axis, label="AUROC (%)")
    heat = _png(fig)
    columns = [
        "method",
        "normal_class",
        "seed",
        "auroc",
        "average_precision",
        "false_alarm_rate",
        "detection_rate",
        "method_s",
    ]
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r[c]))}</td>" for c in columns) + "</tr>" for r in records
    )
    header = "".join(f"<th>{c}</th>" for c in columns)
    body = f"""<header><h1>oneclass benchmark: {html.escape(dataset)}</h1>
<p>{html.escape(command)} &middot; one-class protocol: trained on one class,
AUROC on the whole test split</p></header>
<main><section><h2>Mean AUROC per method</h2><img class="plot" src="{bars}" alt="mean AUROC"></section>
<section><h2>AUROC per normal class</h2><img class="plot" src="{heat}" alt="AUROC heat map"></section>
<section><h2>All records</h2><table><tr>{header}</tr>{rows}</table></section>
</main>"""
    style = (
        STYLE
        + "table{border-collapse:collapse;font-size:12px}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
    )
    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>oneclass benchmark</title>"
        f"<style>{style}</style><script>{CHECK_SCRIPT}</script></head><body>{body}</body></html>"
    )
    target = Path(out) / "report.html"
    with atomic_open(target, "w") as handle:
        handle.write(page)
    return target


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
