"""The inspection benchmark runner, behind ``oneclass bench --dataset folder:ROOT``: for every
category (an MVTec-AD-layout folder under ROOT, or ROOT itself) and seed, every method of
``evaluation/inspection.py`` trains on ``train/good`` and scores ``test/``; image AUROC, the
false-alarm and detection rates at the method's threshold, and, where ``ground_truth`` masks
exist, pixel AUROC and PRO. Results: results.json, results.csv, results.md in OUT."""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data.folders import GOOD, defect_masks, folder_splits
from ..errors import OneClassError
from ..evaluation.inspection import INSPECTION_METHODS, InspectionMethod, InspectionTask
from ..evaluation.metrics import auroc, detection_metrics, pixel_auroc, pro_score
from ..fileio import atomic_open, write_json
from ..timing import Stopwatch
from .bench import machine_description, select_methods


def categories(root: str | os.PathLike) -> list[Path]:
    """ROOT itself when it holds ``train/good``, else its sub-folders that do."""
    root = Path(root)
    if (root / "train" / GOOD).is_dir():
        return [root]
    found = sorted(p for p in root.iterdir() if (p / "train" / GOOD).is_dir()) if root.is_dir() else []
    if not found:
        raise OneClassError(f"{root}: no MVTec-layout folder (train/good/) in it or under it")
    return found


def select_inspection_methods(names: list[str] | None) -> list[InspectionMethod]:
    return select_methods(names, INSPECTION_METHODS)


def load_task(category: Path, seed: int, nu: float, image_size: int | None = None) -> InspectionTask:
    """One category's images at ``image_size``, else at the size ``fit`` gives the local
    detector (``default_image_size`` with ``keep_detail``): every method sees those images."""
    train, test = folder_splits(category, size=image_size, keep_detail=True)
    if test is None or test.is_normal.all() or not test.is_normal.any():
        raise OneClassError(f"{category}/test: needs good and defective images to be scored")
    kinds = np.array([Path(path).parent.name for path in test.paths])
    kinds[test.is_normal] = GOOD
    return InspectionTask(
        category.name, seed, train[:], test[:], test.is_normal, defect_masks(test, category), nu, kinds
    )


def kind_aurocs(scores: np.ndarray, is_normal: np.ndarray, kinds: np.ndarray) -> dict[str, float]:
    """Image AUROC of the good test images against each defect kind alone: which kind is missed."""
    pairs = {str(kind): is_normal | (kinds == kind) for kind in sorted(set(kinds[~is_normal].tolist()))}
    return {kind: auroc(scores[rows], is_normal[rows]) for kind, rows in pairs.items()}


def run_inspection_benchmark(
    root: str | os.PathLike,
    methods: list[InspectionMethod],
    seeds: list[int],
    out: str | os.PathLike,
    *,
    nu: float = 0.1,
    image_size: int | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every method on every (category, seed), images at ``image_size`` (``load_task``);
    results are rewritten after each category."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    found = categories(root)
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    for seed in seeds:
        for category in found:
            task = load_task(category, seed, nu, image_size)
            for method in methods:
                clock = Stopwatch()
                output = method.run(task)
                seconds = clock.seconds()
                record = {
                    "category": task.category,
                    "method": method.name,
                    "seed": seed,
                    **detection_metrics(output.test_scores, task.test_is_normal, output.threshold),
                    "image_size": int(max(task.train.shape[-2:])),
                    "n_train": len(task.train),
                    "n_test": len(task.test),
                    "memory_bytes": output.memory_bytes,
                    "seconds": round(seconds, 2),
                    **output.extra,
                }
                if task.test_kinds is not None:
                    record["kind_auroc"] = kind_aurocs(
                        output.test_scores, task.test_is_normal, task.test_kinds
                    )
                if output.maps is not None and task.masks is not None:
                    record["pixel_auroc"] = pixel_auroc(output.maps, task.masks)
                    record["pro"] = pro_score(output.maps, task.masks)
                records.append(record)
                pixel = (
                    f" pixel AUROC {record['pixel_auroc']:.4f} PRO {record['pro']:.4f}"
                    if "pro" in record
                    else ""
                )
                name = f"{task.category} seed {seed} {method.name:>14}"
                log(
                    f"{name}: image AUROC {record['auroc']:.4f}{pixel} "
                    f"FAR {record['false_alarm_rate']:.3f} ({seconds:.1f}s)"
                )
            write_inspection_results(out, records, command, time.perf_counter() - started)
    return records


COLUMNS = [
    "category", "method", "seed", "auroc", "pixel_auroc", "pro", "average_precision",
    "false_alarm_rate", "detection_rate", "memory_bytes", "seconds",
]  # fmt: skip


def write_inspection_results(out: Path, records: list[dict[str, Any]], command: str, elapsed: float) -> None:
    write_json(
        out / "results.json",
        {
            "command": command,
            "machine": machine_description(),
            "elapsed_s": round(elapsed, 1),
            "records": records,
        },
    )
    with atomic_open(out / "results.csv", "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
    with atomic_open(out / "results.md", "w") as handle:
        handle.write(inspection_markdown(records, command, elapsed))


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return float(np.mean(values)) if values else float("nan")


def _kind_table(records: list[dict[str, Any]], methods: list[str], cats: list[str]) -> list[str]:
    """Image AUROC (%) of the good test images against each defect kind, per category (mean over
    seeds): where a method misses."""
    columns = [
        (c, kind)
        for c in cats
        for kind in sorted({k for r in records if r["category"] == c for k in r.get("kind_auroc", {})})
    ]
    if not columns:
        return []
    lines = ["", "Image AUROC (%) of the good test images against each defect kind, mean over seeds:", ""]
    lines.append("| method | " + " | ".join(f"{c} {kind}" for c, kind in columns) + " |")
    lines.append("|---" * (len(columns) + 1) + "|")
    for method in methods:
        cells = []
        for c, kind in columns:
            values = [
                r["kind_auroc"][kind]
                for r in records
                if r["method"] == method and r["category"] == c and kind in r.get("kind_auroc", {})
            ]
            cells.append(f"{100 * np.mean(values):.1f}" if values else "-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def inspection_markdown(records: list[dict[str, Any]], command: str = "", elapsed: float = 0.0) -> str:
    """Image AUROC (%) per category and method (mean over seeds), then pixel AUROC, PRO, the
    rates at each method's threshold, memory and time, means over categories and seeds."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    cats = list(dict.fromkeys(r["category"] for r in records))
    seeds = sorted({r["seed"] for r in records})
    lines = [f"### Inspection benchmark: image AUROC (%), mean over seeds {seeds}", ""]
    if command:
        lines += [
            f"Command: `{command}`  ",
            f"Machine: {machine_description()}; wall time {elapsed / 60:.1f} min",
            "",
        ]
    lines.append("| method | " + " | ".join(cats) + " | mean | pixel AUROC (%) | PRO (%) |")
    lines.append("|---" * (len(cats) + 4) + "|")
    for method in methods:
        rows = [r for r in records if r["method"] == method]
        cells = [100 * _mean([r for r in rows if r["category"] == c], "auroc") for c in cats]
        pixel, pro = 100 * _mean(rows, "pixel_auroc"), 100 * _mean(rows, "pro")
        lines.append(
            f"| {method} | "
            + " | ".join(f"{v:.1f}" for v in cells)
            + f" | **{np.mean(cells):.1f}** | "
            + ("-" if np.isnan(pixel) else f"{pixel:.1f}")
            + " | "
            + ("-" if np.isnan(pro) else f"{pro:.1f}")
            + " |"
        )
    lines += _kind_table(records, methods, cats)
    lines += ["", "At each method's own threshold (nu-based), means over categories and seeds:", ""]
    lines.append(
        "| method | false-alarm rate (good test images) | detection rate | model memory (MB) "
        "| time per category (s) |"
    )
    lines.append("|---|---|---|---|---|")
    for method in methods:
        rows = [r for r in records if r["method"] == method]
        lines.append(
            f"| {method} | {_mean(rows, 'false_alarm_rate'):.3f} | {_mean(rows, 'detection_rate'):.3f} | "
            f"{_mean(rows, 'memory_bytes') / 2**20:.2f} | {_mean(rows, 'seconds'):.1f} |"
        )
    return "\n".join(lines) + "\n"
