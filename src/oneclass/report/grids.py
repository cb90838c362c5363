"""Image grids (the report's figures 4-7) written as PNG files."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from ..data.arrays import check_images
from ..fileio import atomic_path


def image_grid(images: np.ndarray, columns: int = 8, pad: int = 2, scale: int = 3) -> Image.Image:
    """Tile ``images`` ``(n, H, W)`` or ``(n, C, H, W)`` row-major into one picture.

    The first image is top-left, the last bottom-right, as in the report's figures.
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
