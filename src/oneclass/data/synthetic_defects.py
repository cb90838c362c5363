"""Synthetic local defects painted on normal images, with their masks: what the local detector's
discriminator learns from (``heads/defects.py``), in the way of DRAEM and CutPaste.

Each image gets one defect in an irregular blob (smoothed random noise cut at a level, soft
edge) covering 1-12% of the image, of one of four generic kinds, set by what goes wrong on a
surface, not by any benchmark:

- ``foreign``: the blob shows another image of the batch, turned and brightened or darkened
  (material that does not belong: a misplaced or foreign piece of texture);
- ``offset``: the blob is brighter or darker by 30-90 grey levels (a stain, a burn, a spill);
- ``smooth``: the blob's texture is blurred away (wear, a filled hole, missing structure);
- ``noise``: grain added in the blob (a rough or contaminated spot).

One more kind can be asked for by name:

- ``gain``: the blob's grey levels multiplied by 1.3-2.5 or divided by as much (the surface's
  reflectance changed: light falling on a stain, a burn or a wet spot is scaled, so its texture
  dims or brightens with it, where ``offset`` shifts it).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..imaging import gaussian_blur

DEFECT_KINDS = ("foreign", "offset", "smooth", "noise")
KNOWN_KINDS = (*DEFECT_KINDS, "gain")
# share of the image a defect covers: benchmarks/defaults/patch-training*.md (1-6% before)
AREA = (0.01, 0.12)
EDGE = 1 / 64  # sigma of the blob's soft edge, a share of the image's larger side
BLUR = 1 / 16  # sigma of the ``smooth`` kind's blur, a share of the image's larger side


def blob_mask(
    rng: np.random.Generator, size: tuple[int, int], area: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """A blob covering about ``area`` of the image, the highest values of smoothed random noise
    inside a random window a little larger than it: (its pixels, bool ``(H, W)``; its painting
    weights, ``(H, W)`` in [0, 1], the pixels with a soft edge)."""
    h, w = size
    coarse = torch.from_numpy(rng.standard_normal((1, 1, h // 8 + 2, w // 8 + 2))).float()
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0, 0]
    side = max(2, int(1.6 * np.sqrt(area * h * w)))
    top, left = int(rng.integers(0, max(1, h - side + 1))), int(rng.integers(0, max(1, w - side + 1)))
    window = torch.full((h, w), -torch.inf)
    window[top : top + side, left : left + side] = 0
    inside = (field + window).flatten()
    count = max(1, min(int(area * h * w), side * side))
    level = torch.topk(inside, count).values[-1]
    hard = (field + window >= level).float()
    sigma = max(1e-3, EDGE * max(h, w))
    kept = gaussian_blur(hard[None], sigma)[0] > 0.5  # slivers of the cut go
    return kept, gaussian_blur(kept.float()[None], sigma)[0].clamp(0, 1)


def synthetic_defects(
    images: np.ndarray, rng: np.random.Generator, kinds: tuple[str, ...] = DEFECT_KINDS
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(n, C, H, W)`` -> (copies with one synthetic defect each, uint8 ``(n, C, H,
    W)``; defect masks, bool ``(n, H, W)``: the blobs' pixels, whose soft edges reach a few pixels
    beyond)."""
    n, _, h, w = images.shape
    clean = torch.from_numpy(np.ascontiguousarray(images)).float()
    painted = clean.clone()
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        mask, blob = blob_mask(rng, (h, w), float(rng.uniform(*AREA)))
        kind = kinds[int(rng.integers(len(kinds)))]
        image = clean[i]
        if kind == "foreign":
            other = clean[(i + int(rng.integers(1, n))) % n] if n > 1 else image
            other = torch.rot90(other, int(rng.integers(1, 4)), (1, 2)) if h == w else other.flip(1, 2)
            new = other * float(rng.uniform(0.6, 1.4))
        elif kind == "offset":
            new = image + float(rng.choice([-1, 1]) * rng.uniform(30, 90))
        elif kind == "gain":
            new = image * float(np.exp(rng.choice([-1, 1]) * rng.uniform(np.log(1.3), np.log(2.5))))
        elif kind == "smooth":
            new = gaussian_blur(image, BLUR * max(h, w))
        elif kind == "noise":
            new = image + torch.from_numpy(rng.standard_normal(image.shape)).float() * float(
                rng.uniform(25, 50)
            )
        else:
            raise ValueError(f"unknown defect kind {kind!r}; expected one of {', '.join(KNOWN_KINDS)}")
        painted[i] = image * (1 - blob) + new * blob
        masks[i] = mask.numpy()
    return painted.round().clamp(0, 255).to(torch.uint8).numpy(), masks


def painted_copies(
    images: np.ndarray, seed: list[int], copies: int, kinds: tuple[str, ...] = DEFECT_KINDS
) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` copies of uint8 images ``(n, C, H, W)``, each image of each copy with its own
    synthetic defect: (painted, uint8 ``(copies * n, C, H, W)``, copy by copy; masks, bool
    ``(copies * n, H, W)``). Copy ``k`` is painted by the generator seeded ``[*seed, k]``, so the
    first copy is what ``default_rng(seed)`` alone paints."""
    found = [synthetic_defects(images, np.random.default_rng([*seed, copy]), kinds) for copy in range(copies)]
    painted, masks = (np.concatenate(part) for part in zip(*found, strict=True))
    return painted, masks
