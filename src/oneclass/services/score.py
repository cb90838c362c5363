"""Scoring, the service behind ``oneclass score``: named inputs scored with a saved run, in one
call: ``score_inputs(run_dir, ["scans/"])``. The CLI's verb is this function plus printing."""

from __future__ import annotations

import contextlib
import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import calibration
from ..data.folders import run_folders
from ..data.sources import load_inputs
from ..detector import OneClassDetector
from ..errors import OneClassError
from ..evaluation.metrics import auroc
from ..figures import save_overlay
from ..fileio import atomic_open
from .runfolder import read_metrics

COLUMNS = ["source", "id", "label", "score", "decision", "prediction", "p_value"]
# with --maps: the overlay's path and the share of the image's pixels past the pixel threshold
MAP_COLUMNS = ["map", "flagged_area"]


@dataclass
class SourceSummary:
    source: str
    count: int
    flagged: float  # share predicted abnormal
    auroc: float | None = None  # when the labels say which images are normal
    false_alarm_rate: float | None = None  # share of the normal images flagged
    detection_rate: float | None = None  # share of the abnormal images flagged
    n_normal: int = 0
    n_abnormal: int = 0
    n_training: int = 0  # of the normal images, those the run may have been fitted on (in-sample)
    warning: str | None = None  # the normal images are flagged far more often than promised


def score_inputs(
    run_dir: str | os.PathLike,
    inputs: list[str],
    out_csv: str | os.PathLike | None = None,
    *,
    alpha: float | None = None,
    data_dir: str | os.PathLike | None = None,
    skip_bad: bool = False,
    device: str = "cpu",
    progress: bool = False,
    keep_rows: bool = True,
    maps_dir: str | os.PathLike | None = None,
) -> tuple[list[dict], list[SourceSummary]]:
    """Score dataset splits, IDX files, image files, folders or globs with the run's detector.

    With ``maps_dir`` (a local detector), each image's anomaly map is written there as a PNG
    overlay (red where the map passes the pixel threshold), named by its row and file name, and
    the row's ``map`` column gives its path.

    Returns one row per image (the CSV's columns; an empty list with ``keep_rows=False``, which
    keeps memory flat however many images are scored: rows go to the CSV source by source) and a
    summary per source. The prediction is -1 (abnormal) when the score is below the threshold,
    or, with ``alpha``, when the conformal p-value is at most alpha (false-alarm rate at most
    alpha on normal images; needs a calibrated run).
    """
    if alpha is not None:
        calibration.check_alpha(alpha)
    detector = OneClassDetector.load(run_dir, device=device)
    calibrated = detector.calibrated
    if alpha is not None and not calibrated:
        raise OneClassError(f"{run_dir}: the run has no calibration scores, so --alpha cannot be used")
    if alpha is not None:
        problem = calibration.unreachable_alpha(alpha, len(detector.calibration_scores_))
        if problem:
            raise OneClassError(f"{run_dir}: {problem}")
    if maps_dir is not None and not detector.local:
        raise OneClassError(
            f"{run_dir}: a whole-image detector (encoder {detector.encoder!r}) has no anomaly maps; "
            "fit a local one (--encoder lite0) for --maps"
        )
    trained_on = read_metrics(run_dir)
    threshold = detector.threshold_
    columns = [*COLUMNS, *MAP_COLUMNS] if maps_dir is not None else COLUMNS
    rows: list[dict] = []
    summaries: list[SourceSummary] = []
    written = 0
    with contextlib.ExitStack() as stack:
        writer = None
        if out_csv is not None:
            writer = csv.DictWriter(stack.enter_context(atomic_open(out_csv, "w")), fieldnames=columns)
            writer.writeheader()
        for batch in load_inputs(
            list(inputs), detector.image_shape_, data_dir, skip_bad, trained_on.get("data")
        ):
            labels = batch.labels if batch.labels is not None else [""] * len(batch.ids)
            all_scores, all_flags = [], []
            chunks = detector.scored_chunks(batch.images, maps=maps_dir is not None, progress=progress)
            for start, images, scores, maps in chunks:
                p_values = detector.p_values_of_scores(scores) if calibrated else np.full(len(scores), np.nan)
                if alpha is not None:
                    abnormal = calibration.flagged_by_p_value(p_values, alpha)
                else:
                    abnormal = calibration.flagged(scores, threshold)
                for i, (value, p, flag) in enumerate(zip(scores, p_values, abnormal, strict=True)):
                    row = {
                        "source": batch.source,
                        "id": batch.ids[start + i],
                        "label": labels[start + i],
                        "score": float(value),
                        "decision": float(value - threshold),
                        "prediction": -1 if flag else 1,
                        "p_value": "" if np.isnan(p) else float(p),
                    }
                    if maps is not None:
                        path = Path(maps_dir) / f"{written:06d}_{Path(str(row['id'])).stem}.png"
                        save_overlay(path, images[i], maps[i], detector.pixel_threshold_)
                        row["map"] = str(path)
                        row["flagged_area"] = float((maps[i] > detector.pixel_threshold_).mean())
                    written += 1
                    if writer is not None:
                        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
                    if keep_rows:
                        rows.append(row)
                all_scores.append(scores)
                all_flags.append(abnormal)
            promise = (
                (detector.nu, "the threshold", "nu") if alpha is None else (alpha, f"p <= {alpha:g}", "alpha")
            )
            summaries.append(
                _summary(batch, np.concatenate(all_scores), np.concatenate(all_flags), trained_on, promise)
            )
    return rows, summaries


def known_normal(batch, trained_on: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """``(labelled, is_normal)`` bool ``(n,)`` where the labels say which images are normal: the
    run's own labelled dataset (``trained_on``: its metrics.json), or a folder in the MVTec layout
    (good / defect kinds); None where they do not."""
    normal_classes = trained_on.get("normal_classes")
    if batch.is_normal is not None:
        return batch.labelled, batch.is_normal
    if batch.labels is not None and normal_classes and trained_on.get("dataset") == batch.dataset:
        return np.ones(len(batch.labels), bool), np.isin(batch.labels, normal_classes)
    return None


def trained_on_count(batch, keep: np.ndarray, data: dict) -> int:
    """How many of ``batch``'s images at ``keep`` the run may have been fitted on: all of a split
    named ``<its dataset>:train`` (only its normal classes are kept), and files inside its
    training folder (``data``: the ``data`` entry of its metrics.json)."""
    if batch.dataset is not None:
        return len(keep) if batch.source == f"{data.get('name')}:train" else 0
    training, _ = run_folders(data)
    if training is None:
        return 0
    inside = os.path.join(os.path.realpath(training), "")
    return sum(os.path.realpath(batch.ids[i]).startswith(inside) for i in keep)


def _summary(
    batch, scores: np.ndarray, abnormal: np.ndarray, trained_on: dict, promise: tuple[float, str, str]
) -> SourceSummary:
    """Count and share flagged of one source; where labels say which images are normal (the
    run's own labelled dataset, or a folder in the MVTec layout: good / defect kinds), also the
    AUROC and the false-alarm and detection rates of the rule used, and a warning where it flags
    far more normal images than its ``promise`` (rate, rule, name of the rate) allows."""
    summary = SourceSummary(batch.source, len(scores), float(abnormal.mean()))
    known = known_normal(batch, trained_on)
    if known is None:
        return summary
    labelled, is_normal = known
    normal, other = labelled & is_normal, labelled & ~is_normal
    summary.n_normal, summary.n_abnormal = int(normal.sum()), int(other.sum())
    if summary.n_normal:
        summary.false_alarm_rate = float(abnormal[normal].mean())
        summary.n_training = trained_on_count(batch, np.flatnonzero(normal), trained_on.get("data", {}))
        summary.warning = calibration.excess_false_alarms(abnormal[normal], *promise)
    if summary.n_abnormal:
        summary.detection_rate = float(abnormal[other].mean())
    if summary.n_normal and summary.n_abnormal:
        summary.auroc = auroc(scores[labelled], is_normal[labelled])
    return summary
