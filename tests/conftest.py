"""Shared fixtures: real MNIST and Fashion-MNIST (small subsets where speed matters)."""

from __future__ import annotations

import numpy as np
import pytest

from oneclass.data import load_dataset


@pytest.fixture(scope="session")
def mnist_train():
    return load_dataset("mnist", "train")


@pytest.fixture(scope="session")
def mnist_test():
    return load_dataset("mnist", "test")


@pytest.fixture(scope="session")
def digits_small(mnist_train, mnist_test):
    """A few thousand real digits: (train_x, train_y, test_x, test_y)."""
    (x, y), (xt, yt) = mnist_train, mnist_test
    return x[:3000], y[:3000], xt[:1000], yt[:1000]


@pytest.fixture(scope="session")
def fashion():
    """All real Fashion-MNIST training images and the first 1,000 test images: (x, y, xt, yt)."""
    (x, y), (xt, yt) = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    return x, y, xt[:1000], yt[:1000]


@pytest.fixture(scope="session")
def fitted_detector(digits_small):
    """A small real detector: AE encoder (1 epoch) + the default (kernel) OC-NN on digit 0."""
    from oneclass import OneClassDetector

    x, y, _, _ = digits_small
    detector = OneClassDetector(encoder="ae", encoder_epochs=1, head_epochs=3, device="cpu", quiet=True)
    return detector.fit(x[y == 0])


def is_constant(scores: np.ndarray) -> bool:
    return float(np.std(scores)) <= 1e-6 * float(np.abs(scores).mean() + 1e-12)
