"""Detection metrics. Scores are oriented higher = more normal; normal is the positive class."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from ..calibration import flagged as flagged_below
from ..errors import OneClassError


def _check(scores: np.ndarray, is_normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    is_normal = np.asarray(is_normal, dtype=bool)
    if scores.shape != is_normal.shape or scores.ndim != 1:
        raise OneClassError(f"scores {scores.shape} and labels {is_normal.shape} must be equal 1-D shapes")
    if is_normal.all() or not is_normal.any():
        raise OneClassError("AUROC needs both normal and abnormal examples")
    if not np.isfinite(scores).all():
        raise OneClassError("scores contain NaN or infinite values")
    return scores, is_normal


def auroc(scores: np.ndarray, is_normal: np.ndarray) -> float:
    """Area under the ROC curve of the scores (not of thresholded decisions)."""
    scores, is_normal = _check(scores, is_normal)
    return float(roc_auc_score(is_normal, scores))


def average_precision(scores: np.ndarray, is_normal: np.ndarray) -> float:
    """Average precision with normal as the positive class."""
    scores, is_normal = _check(scores, is_normal)
    return float(average_precision_score(is_normal, scores))


def threshold_rates(scores: np.ndarray, is_normal: np.ndarray, threshold: float) -> dict[str, float]:
    """At ``threshold`` (score < threshold = abnormal): the share of normal images flagged
    (false-alarm rate) and of abnormal images flagged (detection rate)."""
    scores, is_normal = _check(scores, is_normal)
    flagged = flagged_below(scores, threshold)
    return {
        "false_alarm_rate": float(flagged[is_normal].mean()),
        "detection_rate": float(flagged[~is_normal].mean()),
    }


def detection_metrics(scores: np.ndarray, is_normal: np.ndarray, threshold: float) -> dict[str, float]:
    return {
        "auroc": auroc(scores, is_normal),
        "average_precision": average_precision(scores, is_normal),
        **threshold_rates(scores, is_normal, threshold),
    }
