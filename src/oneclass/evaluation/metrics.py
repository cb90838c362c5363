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


def pixel_auroc(maps: np.ndarray, masks: np.ndarray) -> float:
    """AUROC of anomaly maps ``(n, H, W)`` (higher = more abnormal) against defect masks
    ``(n, H, W)`` bool, over every pixel of every image (MVTec AD's pixel AUROC)."""
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks, dtype=bool)
    if maps.shape != masks.shape:
        raise OneClassError(f"maps {maps.shape} and masks {masks.shape} must have the same shape")
    if masks.all() or not masks.any():
        raise OneClassError("pixel AUROC needs both defect and defect-free pixels")
    return float(roc_auc_score(masks.ravel(), maps.ravel()))


def pro_score(maps: np.ndarray, masks: np.ndarray, max_fpr: float = 0.3, steps: int = 200) -> float:
    """Per-region overlap (Bergmann et al., MVTec AD): at a threshold on the maps, each connected
    defect region's share of flagged pixels, averaged over regions, against the false-positive
    rate on defect-free pixels; the area under that curve up to ``max_fpr``, divided by
    ``max_fpr`` (1 = every region fully found before any false positive). Regions of different
    sizes count alike, unlike pixel AUROC."""
    from scipy import ndimage

    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks, dtype=bool)
    if maps.shape != masks.shape:
        raise OneClassError(f"maps {maps.shape} and masks {masks.shape} must have the same shape")
    regions = np.zeros(masks.shape, dtype=np.int64)
    count = 0
    for i, mask in enumerate(masks):
        labelled, found = ndimage.label(mask)
        regions[i] = np.where(labelled > 0, labelled + count, 0)
        count += found
    if count == 0 or masks.all():
        raise OneClassError("PRO needs defect regions and defect-free pixels")
    sizes = np.bincount(regions.ravel(), minlength=count + 1)[1:]
    background = maps[~masks]
    # thresholds spread over the false-positive range of interest, from strict to loose
    thresholds = np.quantile(background, np.linspace(1.0, 1.0 - max_fpr, steps))
    fprs, overlaps = [0.0], [0.0]
    for threshold in thresholds:
        flagged = maps > threshold
        fprs.append(float(flagged[~masks].mean()))
        hits = np.bincount(regions[flagged], minlength=count + 1)[1:]
        overlaps.append(float((hits / sizes).mean()))
    fprs, overlaps = np.asarray(fprs), np.asarray(overlaps)
    keep = fprs <= max_fpr
    curve_x, curve_y = list(fprs[keep]), list(overlaps[keep])
    if curve_x[-1] < max_fpr and (~keep).any():  # interpolate the curve at max_fpr exactly
        j = int(np.argmax(~keep))
        share = (max_fpr - fprs[j - 1]) / max(fprs[j] - fprs[j - 1], 1e-12)
        curve_x.append(max_fpr)
        curve_y.append(overlaps[j - 1] + share * (overlaps[j] - overlaps[j - 1]))
    x, y = np.asarray(curve_x), np.asarray(curve_y)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2) / max_fpr)  # trapezoid rule
