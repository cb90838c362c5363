"""The PNG figures of a run: 8x8 image grids (the study's figures 4-7), training curves and score
histograms (matplotlib). Written atomically; used by the fit run, the reproduction and the report."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from .data.arrays import check_images  # noqa: E402
from .fileio import atomic_path  # noqa: E402


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_head_history(history: list[dict], path: str | os.PathLike, title: str = "") -> None:
    """Per-epoch threshold, score mean and score spread (std) of the head's training data."""
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(epochs, [h["score_mean"] for h in history], label="mean y_hat")
    left.plot(epochs, [h["threshold"] for h in history], label="threshold (nu-quantile)")
    left.set_xlabel("epoch")
    left.legend()
    right.plot(epochs, [h["score_std"] for h in history], color="tab:red")
    right.set_xlabel("epoch")
    right.set_ylabel("std of y_hat")
    spread = [h["score_std"] / max(abs(h["score_mean"]), 1e-12) for h in history]
    twin = right.twinx()
    twin.plot(epochs, spread, color="tab:gray", linestyle="--")
    twin.set_ylabel("std / |mean| (dashed)")
    fig.suptitle(title)
    _save(fig, path)


def plot_score_histogram(
    scores: np.ndarray,
    groups: dict[str, np.ndarray],
    threshold: float,
    path: str | os.PathLike,
    title: str = "",
) -> None:
    """Histogram of scores per group (boolean masks), with the threshold as a vertical line."""
    fig, axis = plt.subplots(figsize=(6, 3.2))
    bins = np.histogram_bin_edges(scores, bins=60)
    for label, mask in groups.items():
        axis.hist(scores[mask], bins=bins, alpha=0.55, label=f"{label} (n={int(mask.sum())})")
    axis.axvline(threshold, color="black", linestyle="--", label="threshold")
    axis.set_xlabel("score y_hat (higher = more normal)")
    axis.legend(fontsize=8)
    axis.set_title(title)
    _save(fig, path)


def image_grid(images: np.ndarray, columns: int = 8, pad: int = 2, scale: int = 3) -> Image.Image:
    """Tile ``images`` ``(n, H, W)`` or ``(n, C, H, W)`` row-major into one picture.

    The first image is top-left, the last bottom-right, as in the study's figures.
    """
    batch = check_images(images, "images")
    if batch.dtype != np.uint8:
        batch = np.rint(batch * 255).astype(np.uint8)
    n, channels, height, width = batch.shape
    rows = -(-n // columns)
    canvas = np.full(
        (rows * (height + pad) + pad, columns * (width + pad) + pad, channels), 128, dtype=np.uint8
    )
    for i, image in enumerate(batch):
        top = pad + (i // columns) * (height + pad)
        left = pad + (i % columns) * (width + pad)
        canvas[top : top + height, left : left + width] = image.transpose(1, 2, 0)
    picture = Image.fromarray(canvas[..., 0] if channels == 1 else canvas)
    return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)


def save_grid(path: str | os.PathLike, images: np.ndarray, columns: int = 8) -> None:
    with atomic_path(path) as tmp:
        image_grid(images, columns).save(tmp, format="PNG")


def map_overlay(
    image: np.ndarray, anomaly: np.ndarray, threshold: float, longest: int = 256, most: int = 4
) -> Image.Image:
    """An image ``(C, H, W)`` uint8 with its anomaly map ``(H, W)`` laid over it in red: faint
    below the pixel threshold, strong above it (flagged), a logistic ramp of one anomaly unit
    around it; enlarged a whole number of times, at most ``most``, to about ``longest`` pixels
    a side (a 64x64 image 4 times, 256x256 not at all)."""
    scale = max(1, min(most, longest // max(anomaly.shape)))
    grey = image.mean(0) if image.shape[0] > 1 else image[0].astype(np.float64)
    base = np.repeat(grey[..., None], 3, axis=2) if image.shape[0] == 1 else image.transpose(1, 2, 0)
    strength = 0.5 + 0.5 * np.tanh(2.0 * (anomaly - threshold))  # logistic(4 x), no overflow
    alpha = (0.7 * strength)[..., None]
    red = np.array([255.0, 40.0, 0.0])
    blended = (1 - alpha) * base.astype(np.float64) + alpha * red
    picture = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    return picture.resize((picture.width * scale, picture.height * scale), Image.BILINEAR)


def save_overlay(path: str | os.PathLike, image: np.ndarray, anomaly: np.ndarray, threshold: float) -> None:
    with atomic_path(path) as tmp:
        map_overlay(image, anomaly, threshold).save(tmp, format="PNG")
