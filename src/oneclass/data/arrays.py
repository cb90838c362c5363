"""Validation and conversion of image arrays handed to the API.

Accepted: uint8 arrays (pixel values 0..255) or float arrays already scaled to [0, 1], of shape
``(n, height, width)`` for grey images or ``(n, channels, height, width)``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import OneClassError


def check_images(images: np.ndarray, name: str = "X") -> np.ndarray:
    """Return ``images`` as a 4-D array ``(n, C, H, W)``, uint8 or float32, after validation.

    An :class:`~oneclass.data.folders.ImageFolder` passes through unchanged: it is read from
    disk batch by batch wherever images are indexed.
    """
    from .folders import ImageFolder

    if isinstance(images, ImageFolder):
        if len(images) == 0:
            raise OneClassError(f"{name} is empty: need at least one image")
        return images
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise OneClassError(
            f"{name} must have shape (n, height, width) or (n, channels, height, width), got {array.shape}"
        )
    if array.shape[0] == 0:
        raise OneClassError(f"{name} is empty: need at least one image")
    if array.shape[1] > 4 and array.shape[3] <= 4:  # (n, H, W, C), as PIL and OpenCV give images
        raise OneClassError(
            f"{name} has shape {array.shape}, which looks like channels last (n, height, width, "
            f"channels); images are (n, channels, height, width): pass {name}.transpose(0, 3, 1, 2)"
        )
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "fiu" or array.dtype.kind == "b":
        raise OneClassError(f"{name} must be uint8 or float in [0, 1], got dtype {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise OneClassError(f"{name} contains NaN or infinite values")
    if array.min() < 0.0 or array.max() > 1.0:
        raise OneClassError(
            f"{name}: float images must be scaled to [0, 1], got values in "
            f"[{array.min():.3g}, {array.max():.3g}] (pass uint8 for 0..255 pixels)"
        )
    return array


def image_shape(images) -> tuple[int, int, int]:
    """``(C, H, W)`` of an image array ``(n, H, W)`` / ``(n, C, H, W)`` or an ImageFolder."""
    shape = tuple(int(s) for s in images.shape[1:])
    return (1, *shape) if len(shape) == 2 else shape


def to_tensor(batch: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """A validated batch ``(n, C, H, W)`` as float32 in [0, 1] on ``device``."""
    tensor = torch.from_numpy(np.ascontiguousarray(batch))
    if tensor.dtype == torch.uint8:
        return tensor.to(device).float().div_(255.0)
    return tensor.to(device, dtype=torch.float32)
