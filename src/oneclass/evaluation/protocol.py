"""The one-class protocol on a labelled dataset: train on the normal classes of the training
split only, score the whole test split, normal classes positive."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..data import load_dataset
from ..data.datasets import dataset_info
from ..detector import OneClassDetector
from ..errors import OneClassError
from ..report.grids import save_grid
from ..report.plots import plot_head_history, plot_score_histogram
from ..runfolder import RunFolder
from ..training.common import Stopwatch
from .metrics import detection_metrics


def parse_classes(text: str | list[int] | tuple[int, ...], dataset: str) -> tuple[int, ...]:
    """``"0,6,9"`` -> (0, 6, 9), checked against the dataset's classes."""
    n_classes = len(dataset_info(dataset).class_names)
    if isinstance(text, str):
        try:
            classes = tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError as exc:
            raise OneClassError(f"normal classes must be comma-separated integers, got {text!r}") from exc
    else:
        classes = tuple(int(c) for c in text)
    if not classes:
        raise OneClassError("normal classes: need at least one class")
    bad = [c for c in classes if not 0 <= c < n_classes]
    if bad:
        raise OneClassError(f"normal classes {bad} are not classes of {dataset} (0..{n_classes - 1})")
    return tuple(sorted(set(classes)))


def one_class_split(labels: np.ndarray, normal: tuple[int, ...], limit: int | None = None) -> np.ndarray:
    """Indices of the training images of the normal classes (the first ``limit`` of them)."""
    index = np.flatnonzero(np.isin(labels, normal))
    return index[:limit]


def fit_dataset_run(
    detector: OneClassDetector,
    dataset: str,
    normal: tuple[int, ...],
    out: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Fit ``detector`` on the normal classes of ``dataset``'s training split; evaluate on its
    test split; write the run folder ``out``. Returns the metrics.

    The encoder is checkpointed every epoch; ``resume`` continues an interrupted run (the head
    trains in seconds and is simply retrained, with the same seed)."""
    run = RunFolder(out, overwrite=overwrite, quiet=quiet, resume=resume)
    train_x, train_y = load_dataset(dataset, "train", data_dir)
    test_x, test_y = load_dataset(dataset, "test", data_dir)
    train_index = one_class_split(train_y, normal, train_limit)
    if len(train_index) == 0:
        raise OneClassError(f"no training images of classes {normal} in {dataset}")
    test_x, test_y = test_x[:test_limit], test_y[:test_limit]
    normal_x = train_x[train_index]
    run.log(f"fit on {dataset} classes {list(normal)}: {len(normal_x)} training images")

    clock = Stopwatch()
    if resume:
        run.log("resuming from the last encoder checkpoint")
    detector.fit_encoder(
        normal_x, on_epoch=run.epoch_logger("encoder"), checkpoint=run.checkpointer("encoder")
    )
    detector.fit_head(normal_x, on_epoch=run.epoch_logger("head"))
    fit_seconds = clock.seconds()
    train_scores = detector.score_samples(normal_x)
    test_scores = detector.score_samples(test_x)
    r = detector.offset_
    is_normal = np.isin(test_y, normal)
    metrics: dict[str, Any] = {
        "dataset": dataset,
        "normal_classes": list(normal),
        "n_train": len(normal_x),
        "n_test": len(test_x),
        "nu": detector.nu,
        "r": r,
        "train_share_below_r": float((train_scores < r).mean()),
        "fit_seconds": fit_seconds,
    }
    if is_normal.any() and not is_normal.all():
        metrics.update({f"test_{k}": v for k, v in detection_metrics(test_scores, is_normal, r).items()})
        plot_score_histogram(
            test_scores,
            {"normal (test)": is_normal, "abnormal (test)": ~is_normal},
            r,
            run.path / "score_histogram.png",
            f"{dataset} {list(normal)}: test scores",
        )
    order = np.argsort(test_scores, kind="stable")
    save_grid(run.path / "most_abnormal64.png", test_x[order[:64]])
    save_grid(run.path / "most_normal64.png", test_x[order[::-1][:64]])
    if detector.history_["head"] and "score_std" in detector.history_["head"][0]:
        plot_head_history(detector.history_["head"], run.path / "head_training.png")
    detector.save(run.path)
    run.write_metrics(metrics)
    run.clear_checkpoints()
    summary = f"r={r:.4g}, train share below r={metrics['train_share_below_r']:.3f} (nu={detector.nu})"
    if "test_auroc" in metrics:
        summary += (
            f", test AUROC={metrics['test_auroc']:.4f}, false alarms={metrics['test_false_alarm_rate']:.3f}"
        )
    run.log(f"done in {fit_seconds:.1f}s: {summary}")
    return metrics
