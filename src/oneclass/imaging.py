"""Small image operations shared by the maps (``heads/ocnn/patch.py``) and the synthetic defects
(``data/synthetic_defects.py``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Images ``(n, H, W)`` smoothed by a Gaussian of ``sigma`` pixels (edges replicated)."""
    radius = int(math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    taps = torch.exp(-(offsets**2) / (2 * sigma**2))
    taps = taps / taps.sum()
    out = F.conv2d(F.pad(images[:, None], (radius, radius, 0, 0), mode="replicate"), taps.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), taps.view(1, 1, -1, 1))
    return out[:, 0]
