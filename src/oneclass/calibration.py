"""Thresholds and calibration, in one place: every part of oneclass that turns scores into
decisions (the heads, the detector, the fit run, scoring, export, the benchmark) calls these.

Scores are oriented higher = more normal. An image is flagged abnormal when its score is
**below** a threshold, strictly:

- the **threshold** of a head (``r`` in the OC-NN paper) is the nu-quantile of its training
  scores: a share nu of the training data lies below it;
- the **conformal threshold at alpha** comes from the scores of held-out normal images (the
  calibration set). An image's conformal p-value is ``(1 + #{calibration scores <= score}) /
  (n + 1)``; flagging ``p <= alpha`` flags exactly the images whose score is below the k-th
  smallest calibration score, k = floor(alpha (n + 1)). For a new normal image exchangeable with
  the calibration images the false-alarm rate is then at most alpha (split-conformal
  prediction). alpha can only be reached with n >= 1/alpha - 1 calibration images.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import OneClassError
from .params import Interval

NU = Interval(float, 0.0, 1.0, closed="right")
ALPHA = Interval(float, 0.0, 1.0, closed="neither")
_EPS = 1e-9  # absorbs the rounding of alpha * (n + 1) when it is an integer in exact arithmetic


def check_nu(nu: float) -> float:
    NU.check("nu", nu)
    return float(nu)


def check_alpha(alpha: float) -> float:
    ALPHA.check("alpha", alpha)
    return float(alpha)


def nu_quantile(scores, nu: float) -> float:
    """The threshold below which a share ``nu`` of ``scores`` lie (linear interpolation);
    ``scores`` a NumPy array or a torch tensor."""
    if hasattr(scores, "detach"):
        scores = scores.detach().double().cpu().numpy()
    values = np.asarray(scores, dtype=np.float64)
    return float(np.quantile(values, nu))


def flagged(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Which scores are flagged abnormal at ``threshold``: those strictly below it."""
    return np.asarray(scores) < threshold


def conformal_rank(alpha: float, n_calibration: int) -> int:
    """k = floor(alpha (n + 1)): flag scores below the k-th smallest calibration score (0: none)."""
    return int(math.floor(alpha * (n_calibration + 1) + _EPS))


def smallest_alpha(n_calibration: int) -> float:
    """The smallest alpha that can flag anything with ``n_calibration`` calibration scores."""
    return 1.0 / (n_calibration + 1)


def calibration_needed(alpha: float) -> int:
    """The fewest calibration images with which ``alpha`` can be reached."""
    n = max(0, math.ceil(1.0 / alpha) - 1)
    while conformal_rank(alpha, n) < 1:
        n += 1
    while n > 0 and conformal_rank(alpha, n - 1) >= 1:
        n -= 1
    return n


def unreachable_alpha(alpha: float, n_calibration: int) -> str | None:
    """A one-line explanation when ``alpha`` cannot be reached with ``n_calibration`` images."""
    if conformal_rank(alpha, n_calibration) >= 1:
        return None
    return (
        f"alpha={alpha:g} cannot be reached with {n_calibration} calibration images: the smallest "
        f"reachable alpha is 1/{n_calibration + 1} = {smallest_alpha(n_calibration):.4g}; "
        f"alpha={alpha:g} needs at least {calibration_needed(alpha)} calibration images "
        "(more normal training images or a larger --calibration-share)"
    )


# a false-alarm count this unlikely under nu says the normal test images are not drawn like the
# training ones (one run in a thousand would warn by chance)
SHIFT_LEVEL = 1e-3


def binomial_tail(flagged_count: int, n: int, rate: float) -> float:
    """P(X >= flagged_count) for X ~ Binomial(n, rate), summed in log space (n in the thousands)."""
    if flagged_count <= 0:
        return 1.0
    if rate <= 0.0:
        return 0.0
    if rate >= 1.0:
        return 1.0
    log_rate, log_rest = math.log(rate), math.log1p(-rate)
    terms = [
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_rate + (n - k) * log_rest
        for k in range(flagged_count, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def excess_false_alarms(
    normal_flags: np.ndarray, rate: float, rule: str = "the threshold", promised: str = "nu"
) -> str | None:
    """A one-line warning when ``rule`` flags (bool ``normal_flags``, one per labelled-normal
    image) far more than the share ``rate`` it promises (binomial tail below ``SHIFT_LEVEL``):
    those images differ from the training images, and the promise does not hold for them."""
    n_normal, flagged_count = len(normal_flags), int(np.count_nonzero(normal_flags))
    if n_normal == 0 or binomial_tail(flagged_count, n_normal, rate) >= SHIFT_LEVEL:
        return None
    return (
        f"{rule} flags {flagged_count / n_normal:.0%} of the {n_normal} normal images, far above "
        f"{promised} = {rate:g}: they differ from the training images (another batch, lighting, "
        "part); `oneclass calibrate RUN_DIR GOOD_IMAGES` sets the threshold from good images like "
        "them (not the ones you evaluate on)"
    )


def p_values(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Conformal p-values of ``scores`` against the sorted ``calibration`` scores: small =
    unusually abnormal among normal images."""
    count = np.searchsorted(calibration, np.asarray(scores, dtype=np.float64), side="right")
    return (1.0 + count) / (len(calibration) + 1.0)


def flagged_by_p_value(p: np.ndarray, alpha: float) -> np.ndarray:
    """Which p-values are flagged at level alpha: ``p <= alpha``."""
    return np.asarray(p) <= alpha * (1 + _EPS)


def conformal_threshold(calibration: np.ndarray, alpha: float) -> float:
    """The score below which images are flagged at false-alarm level ``alpha``: the same images
    as ``p_values(...) <= alpha``. Raises a one-line error when alpha cannot be reached."""
    check_alpha(alpha)
    problem = unreachable_alpha(alpha, len(calibration))
    if problem:
        raise OneClassError(problem)
    return float(calibration[conformal_rank(alpha, len(calibration)) - 1])
