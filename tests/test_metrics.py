import numpy as np
import pytest

from oneclass.errors import OneClassError
from oneclass.evaluation.metrics import auroc, average_precision, threshold_rates


def test_auroc_hand_computed():
    # normal scores 3, 1; abnormal 2, 0: pairs (3>2, 3>0, 1<2, 1>0) -> 3 of 4
    scores = np.array([3.0, 1.0, 2.0, 0.0])
    is_normal = np.array([True, True, False, False])
    assert auroc(scores, is_normal) == pytest.approx(0.75)
    assert auroc(-scores, is_normal) == pytest.approx(0.25)  # orientation matters
    assert auroc(np.array([1.0, 1.0, 1.0, 1.0]), is_normal) == pytest.approx(0.5)  # ties count half


def test_average_precision_hand_computed():
    # ranking: N(3) A(2) N(1) A(0): precision at the normal hits 1/1 and 2/3 -> mean 5/6
    assert average_precision(np.array([3.0, 1.0, 2.0, 0.0]), np.array([1, 1, 0, 0], bool)) == pytest.approx(
        5 / 6
    )


def test_threshold_rates():
    scores = np.array([0.0, 1.0, 2.0, 3.0, -1.0, 0.5])
    is_normal = np.array([True, True, True, True, False, False])
    rates = threshold_rates(scores, is_normal, threshold=0.75)
    assert rates == {"false_alarm_rate": 0.25, "detection_rate": 1.0}


def test_single_class_is_an_error():
    with pytest.raises(OneClassError, match="both normal and abnormal"):
        auroc(np.arange(3.0), np.ones(3, bool))
