"""Histograms of oriented gradients (Dalal and Triggs 2005), a part with nothing to train.

The student sees an object's outline and the autoencoder its ink; what tells a shirt from a
T-shirt or a coat is often the run of its edges: a placket, a collar, where a sleeve ends. These
features count the image's edges by orientation in each cell of a 7x7 grid and normalise the
counts over every 2x2 block of cells, the classic descriptor of object shape; the detector's
head sees their first ``COMPONENTS`` principal components among the normal images (a projection
fitted, not trained, while the encoder fits). Chosen on the validation splits
(BENCHMARKS.md, "How the defaults were chosen": the third member that gains on both data sets).

Every step is a fixed linear map or an elementwise function, so the exported graph holds it as
is. The orientation of a pixel's gradient is read from its doubled angle, (gx^2 - gy^2, 2 gx gy)
summed over the channels (the structure tensor: a colour image gives one orientation per pixel,
and a grey one the plain gradient's), so that no angle needs computing.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .distill import principal_projection

KIND = "hog"
GRID = 7  # cells per side, whatever the image size (4x4 pixels each on a 28x28 image)
BINS = 9  # orientations over half a turn: an edge and its opposite count alike
BLOCK = 2  # cells per side of the blocks each histogram is normalised in
CLIP = 0.2  # the largest share one orientation of a block keeps (L2-Hys normalisation)
COMPONENTS = 32  # principal components the head sees
EPS = 1e-6


def cell_pooling(size: int, cells: int) -> np.ndarray:
    """``(cells, size)`` float32: row ``i`` averages the pixels of cell ``i`` along one side, the
    cells as ``adaptive_avg_pool`` draws them (overlapping by a pixel where ``size`` is not a
    multiple of ``cells``). A matrix, so that any image size exports as one MatMul."""
    pooling = np.zeros((cells, size), dtype=np.float32)
    for i in range(cells):
        start, stop = (i * size) // cells, -((-(i + 1) * size) // cells)
        pooling[i, start:stop] = 1.0 / (stop - start)
    return pooling


class GradientHistograms(nn.Module):
    """Images ``(n, C, H, W)`` in [0, 1] -> block-normalised orientation histograms ``(n, F)``,
    ``F = BINS * BLOCK**2 * (GRID - BLOCK + 1)**2`` (1,296)."""

    def __init__(self, image_shape: tuple[int, int, int]):
        super().__init__()
        _, height, width = image_shape
        angles = torch.arange(BINS, dtype=torch.float32) * (2 * np.pi / BINS)  # bin centres, doubled
        self.register_buffer("bin_cos", torch.cos(angles).view(1, BINS, 1, 1), persistent=False)
        self.register_buffer("bin_sin", torch.sin(angles).view(1, BINS, 1, 1), persistent=False)
        self.register_buffer("pool_rows", torch.from_numpy(cell_pooling(height, GRID)), persistent=False)
        self.register_buffer("pool_cols", torch.from_numpy(cell_pooling(width, GRID)), persistent=False)
        self.feature_size = BINS * BLOCK**2 * (GRID - BLOCK + 1) ** 2

    def orientation_maps(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, BINS, H, W)``: each pixel's gradient magnitude shared among the orientation bins
        near its orientation (a weight falling from 1 at the bin's centre to 0 one bin away)."""
        padded_x = F.pad(x, (1, 1, 0, 0), mode="replicate")
        padded_y = F.pad(x, (0, 0, 1, 1), mode="replicate")
        gx = padded_x[..., :, 2:] - padded_x[..., :, :-2]  # central differences
        gy = padded_y[..., 2:, :] - padded_y[..., :-2, :]
        squared = (gx.square() + gy.square()).sum(1, keepdim=True)
        along = (gx.square() - gy.square()).sum(1, keepdim=True)  # the doubled angle's cosine ...
        across = (2 * gx * gy).sum(1, keepdim=True)  # ... and sine, times the squared magnitude
        length = torch.sqrt(along.square() + across.square()) + EPS
        closeness = (along * self.bin_cos + across * self.bin_sin) / length  # cos(angle to bin)
        edge = float(np.cos(2 * np.pi / BINS))
        return torch.sqrt(squared + EPS**2) * torch.relu(closeness - edge) / (1 - edge)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Histograms ``(n, feature_size)``: per cell the mean of each orientation map, per block of
        cells normalised to unit length, clipped at ``CLIP`` and normalised again."""
        cells = self.pool_rows @ self.orientation_maps(x) @ self.pool_cols.T  # (n, BINS, GRID, GRID)
        last = GRID - BLOCK + 1
        blocks = torch.cat(
            [cells[..., i : i + last, j : j + last] for i in range(BLOCK) for j in range(BLOCK)], dim=1
        )  # (n, BINS * BLOCK**2, last, last): each block's histograms along the channels
        blocks = blocks / (blocks.square().sum(1, keepdim=True).sqrt() + EPS)
        blocks = blocks.clamp(max=CLIP)
        blocks = blocks / (blocks.square().sum(1, keepdim=True).sqrt() + EPS)
        return blocks.flatten(1)


class OrientedGradients(nn.Module):
    """The histograms (``GradientHistograms``) and their projection on the normal images' first
    ``components`` principal directions (buffers ``mean`` ``(F,)`` and ``projection`` ``(F,
    components)``, set by ``fit_projection``). ``encode``: ``(n, components)``."""

    kind = KIND
    trainable = False

    def __init__(self, image_shape: tuple[int, int, int], components: int = COMPONENTS):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.histograms = GradientHistograms(self.image_shape)
        self.feature_size = components
        self.register_buffer("mean", torch.zeros(self.histograms.feature_size))
        self.register_buffer("projection", torch.zeros(self.histograms.feature_size, components))

    @torch.no_grad()
    def fit_projection(self, histograms: np.ndarray) -> OrientedGradients:
        """Set the projection from the training images' ``histograms`` ``(n, F)``
        (``self.histograms.encode``'s output)."""
        x = torch.from_numpy(np.asarray(histograms, dtype=np.float64))
        mean, projection = principal_projection(x, self.feature_size)
        self.mean.copy_(mean)
        self.projection.copy_(projection)
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(n, components)``: the histograms' principal components."""
        return (self.histograms.encode(x) - self.mean) @ self.projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training loss per image ``(n,)``: none, nothing here trains (0 for every image)."""
        return x.new_zeros(len(x))
