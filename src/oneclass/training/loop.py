"""Pieces every training loop shares: seeding, batching, progress, memory settings, sanity checks."""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import TrainingError


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS.

    A training step allocates and frees activation buffers of a few MB each; by default glibc
    serves those with fresh mmap'd pages (and trims the heap), so every step page-faults them in
    again. Raising the mmap threshold to its 32 MB maximum and the trim threshold to 1 GB made an
    epoch of the MNIST autoencoder 3-17% faster (7.0-7.9 s -> 6.6-6.8 s, BENCHMARKS.md). The cost: the
    process keeps its peak memory until it exits. A no-op (False) where libc is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


def seeded_generator(seed: int) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator


STEPS_PER_EPOCH = 25  # an epoch of a class of MNIST (about 5,400 images) at batch 200 has 27
MIN_BATCH = 16


def training_schedule(n: int, batch_size: int, epochs: int) -> tuple[int, int]:
    """``(batch size, epochs)`` for training on ``n`` images: an epoch has at least
    ``STEPS_PER_EPOCH`` optimiser steps, so that ``epochs`` means about the same amount of
    training on 400 images as on 6,000. The batch shrinks from ``batch_size`` (down to
    ``MIN_BATCH``) to give those steps; below ``MIN_BATCH * STEPS_PER_EPOCH`` images the epochs
    grow instead. A class of MNIST keeps the schedule as asked; 360 images at batch 200 would
    train for 2 steps an epoch (20 in all) and now train for 11 epochs of 23 steps of 16."""
    batch = max(1, min(batch_size, max(MIN_BATCH, n // STEPS_PER_EPOCH)))
    steps_per_epoch = math.ceil(n / batch)
    return batch, max(epochs, math.ceil(epochs * STEPS_PER_EPOCH / steps_per_epoch))


def minibatches(n: int, batch_size: int, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``: shuffled when a generator is given, in order otherwise."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    yield from order.split(batch_size)


def epoch_bar(total: int, description: str, quiet: bool):
    return tqdm(total=total, desc=description, unit="batch", leave=False, disable=quiet, dynamic_ncols=True)


def check_finite(value: float, what: str, epoch: int) -> None:
    if not np.isfinite(value):
        raise TrainingError(
            f"{what} became {value} in epoch {epoch}; lower the learning rate or check the input data"
        )


def check_not_collapsed(scores: np.ndarray, what: str = "scores") -> None:
    """Raise when scores have gone (nearly) constant: such a detector cannot rank anything."""
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise TrainingError(f"{what} contain NaN or infinite values after training")
    spread = float(scores.std())
    scale = float(np.abs(scores).mean())
    if spread == 0.0 or spread < 1e-6 * scale:
        raise TrainingError(
            f"{what} collapsed to a constant (std {spread:.3g}, mean |score| {scale:.3g}); "
            "the model cannot rank inputs: try fewer epochs, a larger nu or another head"
        )
