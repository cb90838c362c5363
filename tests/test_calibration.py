"""Thresholds and conformal calibration (calibration.py), by hand-computed cases."""

import math

import numpy as np
import pytest

from oneclass import calibration
from oneclass.errors import OneClassError


def test_p_values_count_the_new_image_itself():
    """(1 + #{calibration <= score}) / (n + 1), hand-computed."""
    cal = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(calibration.p_values(cal, [0.0, 2.5, 4.0, 10.0]), [1 / 5, 3 / 5, 5 / 5, 5 / 5])


def test_threshold_and_p_value_rule_agree_at_ties():
    """Ten calibration scores with ties: 1 2 2 3 5 5 5 8 9 10.
    alpha 0.3: k = floor(0.3 * 11) = 3, the threshold is the 3rd smallest score, 2. A score of 2
    has p = (1 + 3) / 11 = 0.364 > 0.3 (not flagged), 1.99 has p = 2/11 (flagged): flagged means
    below the threshold, strictly. alpha 0.4: k = 4, threshold 3; p(3) = 5/11 = 0.455 > 0.4."""
    cal = np.sort(np.array([5, 2, 10, 1, 5, 8, 2, 3, 9, 5], dtype=np.float64))
    assert calibration.conformal_threshold(cal, 0.3) == 2.0
    assert calibration.conformal_threshold(cal, 0.4) == 3.0
    scores = np.array([0.0, 1.0, 1.99, 2.0, 2.5, 3.0, 5.0, 11.0])
    p = calibration.p_values(cal, scores)
    np.testing.assert_allclose(p, np.array([1, 2, 2, 4, 4, 5, 8, 11]) / 11)
    for alpha, expected in ((0.3, [1, 1, 1, 0, 0, 0, 0, 0]), (0.4, [1, 1, 1, 1, 1, 0, 0, 0])):
        by_threshold = calibration.flagged(scores, calibration.conformal_threshold(cal, alpha))
        by_p_value = calibration.flagged_by_p_value(p, alpha)
        assert by_threshold.tolist() == by_p_value.tolist() == [bool(e) for e in expected]
    # the case: 99 calibration scores 1..99 and alpha 0.05 give threshold 5, p(5) = 0.06
    ranks = np.arange(1.0, 100.0)
    assert calibration.conformal_threshold(ranks, 0.05) == 5.0
    assert calibration.p_values(ranks, [5.0])[0] == pytest.approx(0.06)
    assert not calibration.flagged_by_p_value(calibration.p_values(ranks, [5.0]), 0.05)[0]
    assert calibration.flagged_by_p_value(calibration.p_values(ranks, [4.5]), 0.05)[0]


def test_the_false_alarm_rate_is_alpha_rounded_down_to_the_calibration_grid():
    """Exchangeable normal scores (uniform), 10 calibration scores, alpha 0.1: exactly a share
    floor(0.1 * 11) / 11 = 1/11 of new normal images is flagged, in expectation over draws.
    Without the '+1' (p = count / n) it would be 2/11. 20,000 draws: sd 0.002."""
    rng = np.random.default_rng(0)
    draws = rng.uniform(size=(20000, 11))
    flagged = [
        calibration.flagged_by_p_value(calibration.p_values(np.sort(row[:10]), row[10:]), 0.1)[0]
        for row in draws
    ]
    assert abs(np.mean(flagged) - 1 / 11) < 0.008


def test_unreachable_alpha_names_the_smallest_alpha_and_the_images_needed():
    assert calibration.calibration_needed(0.01) == 99
    assert calibration.calibration_needed(0.05) == 19
    assert calibration.calibration_needed(0.3) == 3
    assert calibration.unreachable_alpha(0.05, 19) is None
    message = calibration.unreachable_alpha(0.01, 40)
    assert "smallest reachable alpha is 1/41 = 0.02439" in message
    assert "needs at least 99 calibration images" in message
    with pytest.raises(OneClassError, match="cannot be reached with 40 calibration images"):
        calibration.conformal_threshold(np.arange(40.0), 0.01)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, float("nan"), "0.1"])
def test_alpha_is_validated_in_one_place(bad):
    with pytest.raises(OneClassError, match="alpha must be a number in \\(0, 1\\)"):
        calibration.check_alpha(bad)


def test_binomial_tail_is_the_sum_of_the_binomial_terms():
    def direct(k, n, rate):
        return sum(math.comb(n, i) * rate**i * (1 - rate) ** (n - i) for i in range(k, n + 1))

    for k, n, rate in ((8, 20, 0.1), (3, 30, 0.1), (0, 5, 0.3), (12, 12, 0.5), (150, 1000, 0.1)):
        assert calibration.binomial_tail(k, n, rate) == pytest.approx(direct(k, n, rate), rel=1e-9)


def test_false_alarms_far_above_nu_are_said_and_chance_ones_are_not():
    def flags(count, n):  # which of n labelled-normal images the rule flagged
        return np.arange(n) < count

    assert calibration.excess_false_alarms(flags(2, 20), 0.1) is None  # what nu promises
    assert calibration.excess_false_alarms(flags(5, 20), 0.1) is None  # P = 0.043: chance happens
    assert calibration.excess_false_alarms(flags(120, 1000), 0.1) is None  # P = 0.02
    message = calibration.excess_false_alarms(flags(18, 30), 0.1)  # P ~ 1e-11
    assert message.startswith("the threshold flags 60% of the 30 normal images, far above nu = 0.1")
    assert "oneclass calibrate" in message and "\n" not in message
    alpha = calibration.excess_false_alarms(flags(40, 200), 0.05, "p <= 0.05", "alpha")
    assert alpha.startswith("p <= 0.05 flags 20% of the 200 normal images, far above alpha = 0.05")
    assert calibration.excess_false_alarms(flags(0, 0), 0.1) is None
