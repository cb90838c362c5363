"""The local detector's second member: a discriminator of synthetic defects.

The patch OC-NN learns what normal regions look like; it cannot learn which of the ways a new
region differs matter. A small network on the same patch descriptors learns that from normal
images with synthetic defects painted on them (``data/synthetic_defects.py``, as DRAEM and
CutPaste do): a region is a defect where the painted blob covers most of it, normal where no
blob is near. Its logit per region is a second anomaly map, standardised per pixel as the
OC-NN's is and added to it (``heads/ocnn/patch.py``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WIDTH = 64  # hidden units of each of the two layers (benchmarks/defaults/patch-discriminator.md)
EPOCHS = 8
BATCH = 512
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
DEFECT_COVER = 0.3  # a region is a defect when the blob covers more than this share of it
CLEAR_REGIONS = 2  # ... and normal when no defect pixel lies within this many regions
NORMAL_ROWS = 100_000  # most regions of clean images kept for training
CLEAR_ROWS = 50_000  # most normal regions of the painted images kept
DEFECT_ROWS = 100_000  # most defect regions kept (binds for large images only)


class DefectDiscriminator(nn.Module):
    """Patch descriptors ``(N, D)`` -> logits ``(N,)`` that a region shows a defect (higher =
    more abnormal): two ReLU layers on standardised descriptors."""

    def __init__(self, mean: torch.Tensor, scale: torch.Tensor, width: int = WIDTH):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("scale", scale.float())
        dim = len(mean)
        self.layers = nn.Sequential(
            nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1)
        )

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.layers((rows - self.mean) / self.scale)[:, 0]


def region_labels(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Defect masks ``(n, H, W)`` -> region labels ``(n, h, w)``: 1 where the defect covers more
    than ``DEFECT_COVER`` of the region, 0 where no defect lies within ``CLEAR_REGIONS``
    regions, -1 (left out of training) in between."""
    cover = F.adaptive_avg_pool2d(masks.float()[:, None], grid)
    near = F.max_pool2d(cover, 2 * CLEAR_REGIONS + 1, stride=1, padding=CLEAR_REGIONS)
    labels = torch.full_like(cover, -1.0)
    labels[near == 0] = 0.0
    labels[cover > DEFECT_COVER] = 1.0
    return labels[:, 0]


def labelled_rows(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The descriptors ``(k, D)`` of regions labelled 1 and of regions labelled 0 in feature maps
    ``(n, D, h, w)`` with ``region_labels`` ``(n, h, w)``: (defect rows, clear rows)."""
    rows = features.permute(0, 2, 3, 1)
    return rows[labels == 1], rows[labels == 0]


def train_discriminator(
    normal: torch.Tensor,
    defects: torch.Tensor,
    clear: torch.Tensor,
    seed: int,
    device: torch.device,
    width: int = WIDTH,
) -> DefectDiscriminator:
    """Fit on descriptors of clean regions ``normal`` ``(N, D)``, defect regions ``defects``
    ``(M, D)`` and normal regions of painted images ``clear`` ``(K, D)``, each class weighted to
    half of the loss (cross-entropy, Adam). Returns the network in eval mode on ``device``."""
    with torch.enable_grad():  # the patch head fits under no_grad
        return _train(normal, defects, clear, seed, device, width)


def _train(normal, defects, clear, seed, device, width) -> DefectDiscriminator:
    generator = torch.Generator().manual_seed(seed)
    normal = normal[torch.randperm(len(normal), generator=generator)[:NORMAL_ROWS]]
    clear = clear[torch.randperm(len(clear), generator=generator)[:CLEAR_ROWS]]
    rows = torch.cat([normal, clear, defects]).float()
    targets = torch.cat([torch.zeros(len(normal) + len(clear)), torch.ones(len(defects))])
    weights = torch.where(
        targets > 0, len(rows) / (2.0 * len(defects)), len(rows) / (2.0 * (len(rows) - len(defects)))
    )
    torch.manual_seed(seed)
    net = DefectDiscriminator(rows.mean(0), rows.std(0).clamp(min=1e-6), width).to(device)
    rows, targets, weights = rows.to(device), targets.to(device), weights.to(device)
    optimiser = torch.optim.Adam(net.parameters(), LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    for _ in range(EPOCHS):
        order = torch.randperm(len(rows), generator=generator).to(device)
        for start in range(0, len(rows), BATCH):
            batch = order[start : start + BATCH]
            loss = F.binary_cross_entropy_with_logits(net(rows[batch]), targets[batch], weight=weights[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net.eval()


def defect_rows_of(
    features_of_painted,
    images: np.ndarray,
    batch: int,
    device: torch.device,
    generator: torch.Generator,
    dim: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(defect rows, clear rows) ``(k, dim)`` of painted copies of ``images``, ``batch`` at a time:
    ``features_of_painted(index)`` gives their feature maps ``(k, dim, h, w)`` and masks ``(k, H, W)``."""
    found, clear = [], []
    for start in range(0, len(images), batch):
        features, masks = features_of_painted(images[start : start + batch])
        features = features.to(device=device, dtype=torch.float32)
        labels = region_labels(torch.as_tensor(masks, device=device), tuple(features.shape[-2:]))
        defect_part, clear_part = labelled_rows(features, labels)
        limit = max(1, DEFECT_ROWS * batch // len(images))
        if len(defect_part) > limit:  # large images only
            defect_part = defect_part[
                torch.randperm(len(defect_part), generator=generator)[:limit].to(device)
            ]
        found.append(defect_part)
        keep = torch.randperm(len(clear_part), generator=generator)[
            : max(1, CLEAR_ROWS * batch // len(images))
        ]
        clear.append(clear_part[keep.to(clear_part.device)])
    empty = torch.zeros(0, dim, device=device)
    return torch.cat(found) if found else empty, torch.cat(clear) if clear else empty
