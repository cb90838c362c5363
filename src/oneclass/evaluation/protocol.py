"""The one-class protocol (Deep SVDD / OC-NN papers): one or more classes of a labelled data set
are normal; a detector trains on the training images of those classes only and is scored on
the whole test split, the normal classes positive.

Settings are chosen on a validation split that never touches the test split
(``validation_split``): a held-out share of the normal class's training images, with the other
classes' training images as stand-in anomalies, in the test split's proportions."""

from __future__ import annotations

import numpy as np

from ..data.datasets import dataset_info
from ..errors import OneClassError


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


VALIDATION_SHARE = 0.2  # of the normal class's training images, held out for validation
VALIDATION_ANOMALIES = 9  # stand-in anomalies per held-out normal image (as in the test split)


def validation_split(
    labels: np.ndarray, normal: tuple[int, ...], seed: int, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fit, validation, validation_is_normal)`` indices into the **training** split: a seeded
    ``VALIDATION_SHARE`` of the normal classes' training images is held out and joined by
    ``VALIDATION_ANOMALIES`` times as many training images of the other classes."""
    rng = np.random.default_rng([seed, *normal, 7919])
    normal_index = rng.permutation(one_class_split(labels, normal, limit))
    held = max(1, int(round(VALIDATION_SHARE * len(normal_index))))
    others = np.flatnonzero(~np.isin(labels, normal))
    anomalies = rng.choice(others, min(len(others), VALIDATION_ANOMALIES * held), replace=False)
    validation = np.concatenate([normal_index[:held], anomalies])
    is_normal = np.r_[np.ones(held, bool), np.zeros(len(anomalies), bool)]
    return np.sort(normal_index[held:]), validation, is_normal
