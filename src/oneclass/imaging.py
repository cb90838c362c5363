"""Small image operations shared by the maps (``heads/ocnn/patch.py``), the synthetic defects
(``data/synthetic_defects.py``) and the local detector's grey levels (``curved``)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def gaussian_taps(sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """The normalised taps ``(2 r + 1,)`` of a Gaussian of ``sigma`` pixels, r = ceil(3 sigma)."""
    radius = int(math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    taps = torch.exp(-(offsets**2) / (2 * sigma**2))
    return taps / taps.sum()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Images ``(n, H, W)`` smoothed by a Gaussian of ``sigma`` pixels (edges replicated)."""
    taps = gaussian_taps(sigma, images.dtype, images.device)
    radius = len(taps) // 2
    out = F.conv2d(F.pad(images[:, None], (radius, radius, 0, 0), mode="replicate"), taps.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), taps.view(1, 1, -1, 1))
    return out[:, 0]


def upsample_and_blur_operator(source: int, target: int, sigma: float) -> torch.Tensor:
    """The matrix ``(target, source)`` that resizes a signal of ``source`` samples to ``target``
    (linear interpolation, align_corners=False) and smooths it by a Gaussian of ``sigma`` target
    samples (edges replicated). Both steps are linear and act on each axis of an image alone, so
    ``A_h @ X @ A_w.T`` equals bilinear upsampling then ``gaussian_blur`` of ``X (h, w)``, in two
    small matrix products instead of a wide convolution."""
    basis = torch.eye(source, dtype=torch.float64)[:, None]
    resized = F.interpolate(basis, size=target, mode="linear", align_corners=False)
    taps = gaussian_taps(sigma, torch.float64)
    radius = len(taps) // 2
    blurred = F.conv1d(F.pad(resized, (radius, radius), mode="replicate"), taps.view(1, 1, -1))
    return blurred[:, 0].T.float().contiguous()


# the grey levels a local detector works on: "linear", as they are; "sqrt", their square root
GREY_LEVELS = ("linear", "sqrt")


def grey_table(levels: str) -> np.ndarray:
    """uint8 ``(256,)``: each grey level 0..255 on the curve ``levels`` (``GREY_LEVELS``), rounded."""
    x = np.arange(256) / 255.0
    y = np.sqrt(x) if levels == "sqrt" else x
    return np.round(255.0 * y).astype(np.uint8)


def curved(images: np.ndarray, levels: str) -> np.ndarray:
    """Images ``(n, C, H, W)`` (uint8, or float in [0, 1]) with their grey levels on the curve
    ``levels``: the square root gives the dark parts of a surface as many levels as the bright
    ones, so that a change of reflectance (a product: a stain, a wet spot) shows in a shadow as it
    does in the light. uint8 images through ``grey_table`` (what the ONNX graph does)."""
    if levels == "linear":
        return images
    if images.dtype == np.uint8:
        return grey_table(levels)[images]
    return np.sqrt(images).astype(images.dtype, copy=False)
