"""Small image operations shared by the maps (``heads/ocnn/patch.py``) and the synthetic defects
(``data/synthetic_defects.py``)."""

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
    small matrix products instead of a wide convolution.

    Built in NumPy on purpose: the ONNX exporter records every torch operation that runs inside
    ``forward``, and a matrix built there with torch (float64) became a float64 convolution in the
    graph, which ONNX Runtime cannot run. A NumPy result enters the graph as a constant."""
    # where each target sample falls among the source samples (PyTorch's rule for align_corners=False)
    position = np.maximum((np.arange(target) + 0.5) * (source / target) - 0.5, 0.0)
    left = np.minimum(np.floor(position).astype(np.int64), source - 1)
    right = np.minimum(left + 1, source - 1)
    share = position - left
    resize = np.zeros((target, source))
    np.add.at(resize, (np.arange(target), left), 1.0 - share)
    np.add.at(resize, (np.arange(target), right), share)
    radius = int(math.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    taps = np.exp(-(offsets**2) / (2 * sigma**2))
    taps /= taps.sum()
    blur = np.zeros((target, target))
    rows = np.repeat(np.arange(target), len(offsets))
    np.add.at(blur, (rows, np.clip(rows + np.tile(offsets, target), 0, target - 1)), np.tile(taps, target))
    return torch.from_numpy((blur @ resize).astype(np.float32))
