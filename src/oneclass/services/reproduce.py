"""The reproduction, the service behind ``oneclass reproduce``: the study's two experiments
(section 4.1 all digits, 4.2 digits 0/6/9).

Both use the 60,000 MNIST training images, with the encoder trained on all digits; the OC-NN
is trained on all digits (4.1) or on 0, 6 and 9 only (4.2); then all 60,000 training images are
scored and the 64 closest to and farthest from the origin (lowest / highest y_hat) are drawn as
8x8 grids (figures 4-7).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import calibration
from ..data import load_dataset
from ..detector import OneClassDetector
from ..errors import OneClassError
from ..evaluation.metrics import detection_metrics
from ..figures import plot_head_history, plot_score_histogram, save_grid
from ..timing import Stopwatch
from .runfolder import RunFolder

GRID_SIZE = 64


@dataclass(frozen=True)
class Experiment:
    name: str
    section: str
    normal_digits: tuple[int, ...] | None  # None: the OC-NN sees all digits
    figures: tuple[str, str]  # the study's figure numbers of the closest / farthest grids


EXPERIMENTS = {
    "all-digits": Experiment("all-digits", "4.1", None, ("fig4", "fig5")),
    "digits-069": Experiment("digits-069", "4.2", (0, 6, 9), ("fig6", "fig7")),
}


def reproduce(
    name: str,
    out: str | os.PathLike,
    *,
    detector: OneClassDetector | None = None,
    data_dir: str | os.PathLike | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run one experiment of the study; write figures, metrics.json and the model into ``out``.

    ``train_limit`` / ``test_limit`` take the first images of each split (for quick checks);
    the study's setting is the full 60,000 / 10,000.
    """
    if name not in EXPERIMENTS:
        raise OneClassError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[name]
    detector = detector or OneClassDetector(
        encoder="vae", head="ocnn-paper", hidden=256, head_epochs=25, quiet=quiet
    )
    run = RunFolder(out, overwrite=overwrite, quiet=quiet)
    timings: dict[str, float] = {}

    clock = Stopwatch()
    train_x, train_y = load_dataset("mnist", "train", data_dir)
    test_x, test_y = load_dataset("mnist", "test", data_dir)
    train_x, train_y = train_x[:train_limit], train_y[:train_limit]
    test_x, test_y = test_x[:test_limit], test_y[:test_limit]
    timings["load_data_s"] = clock.seconds()
    run.log(
        f"{name} (study section {experiment.section}): "
        f"{len(train_x)} training images, {len(test_x)} test images"
    )

    clock = Stopwatch()
    encoder_epochs = detector.encoder_schedules(len(train_x))[detector.encoder][1]
    run.log(f"training the {detector.encoder} encoder on all digits for {encoder_epochs} epochs")
    detector.fit_encoder(train_x, on_epoch=run.epoch_logger("encoder"))
    timings["encoder_training_s"] = clock.seconds()
    run.log(f"encoder trained in {timings['encoder_training_s']:.1f}s")

    trained = _normal_mask(train_y, experiment.normal_digits)
    clock = Stopwatch()
    digits = "all digits" if experiment.normal_digits is None else f"digits {experiment.normal_digits}"
    run.log(f"training the {detector.head} head (nu={detector.nu}) on {digits}: {int(trained.sum())} images")
    detector.fit_head(train_x[trained], on_epoch=run.epoch_logger("oc-nn"))
    timings["ocnn_training_s"] = clock.seconds()
    run.log(f"OC-NN trained in {timings['ocnn_training_s']:.1f}s")

    clock = Stopwatch()
    scores = detector.score_samples(train_x)
    test_scores = detector.score_samples(test_x)
    timings["scoring_s"] = clock.seconds()
    threshold = detector.threshold_
    closest = np.argsort(scores, kind="stable")[:GRID_SIZE]
    farthest = np.argsort(-scores, kind="stable")[:GRID_SIZE]
    closest_png = f"{experiment.figures[0]}_closest{GRID_SIZE}.png"
    farthest_png = f"{experiment.figures[1]}_farthest{GRID_SIZE}.png"
    save_grid(run.path / closest_png, train_x[closest])
    save_grid(run.path / farthest_png, train_x[farthest])

    history = detector.history_["head"]
    metrics: dict[str, Any] = {
        "experiment": name,
        "study_section": experiment.section,
        "encoder": detector.encoder,
        "nu": detector.nu,
        "head": detector.head,
        "hidden": detector.head_.get_params().get("hidden"),
        "ocnn_epochs": detector.head_.get_params().get("epochs"),
        "encoder_epochs": encoder_epochs,
        "seed": detector.seed,
        "data": {
            "kind": "dataset",
            "name": "mnist",
            "n_test": int(len(test_x)),
            "normal_classes": list(experiment.normal_digits or range(10)),
        },
        "n_train": int(len(train_x)),
        "n_ocnn_train": int(trained.sum()),
        "threshold": threshold,
        "train_share_below_threshold": float(calibration.flagged(scores[trained], threshold).mean()),
        "all_train_share_below_threshold": float(calibration.flagged(scores, threshold).mean()),
        "score_std_per_epoch": [h["score_std"] for h in history],
        "score_mean_per_epoch": [h["score_mean"] for h in history],
        "score_relative_spread_per_epoch": [h["score_std"] / abs(h["score_mean"]) for h in history],
        "threshold_per_epoch": [h["threshold"] for h in history],
        "loss_per_epoch": [h["loss"] for h in history],
        "encoder_loss_per_epoch": [h["loss"] for h in detector.history_["encoder"]],
        "closest64_indices": closest.tolist(),
        "closest64_labels": train_y[closest].tolist(),
        "farthest64_labels": train_y[farthest].tolist(),
        "closest64_all_below_threshold": bool(calibration.flagged(scores[closest], threshold).all()),
        "mean_ink_closest64": float(train_x[closest].mean() / 255),
        "mean_ink_farthest64": float(train_x[farthest].mean() / 255),
        "mean_ink_all": float(train_x.mean() / 255),
        "figures": {"closest": closest_png, "farthest": farthest_png},
    }
    if experiment.normal_digits is not None:
        untrained = ~trained
        test_trained = _normal_mask(test_y, experiment.normal_digits)
        test_metrics = detection_metrics(test_scores, test_trained, threshold)
        metrics.update(
            {
                "trained_digits": list(experiment.normal_digits),
                "untrained_share_closest64": float(untrained[closest].mean()),
                "untrained_share_farthest64": float(untrained[farthest].mean()),
                "untrained_share_all_train": float(untrained.mean()),
                "test_auroc": test_metrics["auroc"],
                "test_average_precision": test_metrics["average_precision"],
                "test_false_alarm_rate": test_metrics["false_alarm_rate"],
                "test_detection_rate": test_metrics["detection_rate"],
            }
        )
        plot_score_histogram(
            test_scores,
            {"trained digits (test)": test_trained, "untrained digits (test)": ~test_trained},
            threshold,
            run.path / "score_histogram.png",
            f"{name}: test-split scores",
        )
    else:
        plot_score_histogram(
            scores,
            {"all training digits": np.ones(len(scores), bool)},
            threshold,
            run.path / "score_histogram.png",
            f"{name}: training scores",
        )
    plot_head_history(history, run.path / "ocnn_training.png", f"{name}: OC-NN training")
    detector.save(run.path)
    metrics["timings"] = {**timings, "total_s": round(sum(timings.values()), 3)}
    run.write_metrics(metrics)
    run.log(_summary(metrics))
    return metrics


def _normal_mask(labels: np.ndarray, digits: tuple[int, ...] | None) -> np.ndarray:
    if digits is None:
        return np.ones(len(labels), dtype=bool)
    return np.isin(labels, digits)


def _summary(metrics: dict[str, Any]) -> str:
    parts = [
        f"{metrics['experiment']}: threshold={metrics['threshold']:.4g}",
        f"train share below it={metrics['train_share_below_threshold']:.3f} (nu={metrics['nu']})",
        f"score std epoch 1 -> {len(metrics['score_std_per_epoch'])}: "
        f"{metrics['score_std_per_epoch'][0]:.3g} -> {metrics['score_std_per_epoch'][-1]:.3g}",
    ]
    if "test_auroc" in metrics:
        parts.append(f"untrained share of closest 64={metrics['untrained_share_closest64']:.2f}")
        parts.append(f"test AUROC={metrics['test_auroc']:.3f}")
    return "; ".join(parts)
