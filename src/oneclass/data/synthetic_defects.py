"""Synthetic local defects painted on normal images, with their masks: what the local detector's
discriminator and defect branch learn from (``heads/defects.py``, ``training/defect_tuning.py``), in
the way of DRAEM and CutPaste.

Each image gets one defect of one of five generic kinds, set by what goes wrong on a surface, not
by any benchmark. Four fill an irregular blob (smoothed random noise cut at a level, soft edge)
covering 1-12% of the image:

- ``foreign``: the blob shows another image of the batch, turned and brightened or darkened
  (material that does not belong: a misplaced or foreign piece of texture);
- ``gain``: the blob's grey levels multiplied by 1.3-2.5 or divided by as much (the surface's
  reflectance changed: light falling on a stain, a burn or a wet spot is scaled, so its texture
  dims or brightens with it);
- ``smooth``: the blob's texture is blurred away (wear, a filled hole, missing structure);
- ``noise``: grain added in the blob (a rough or contaminated spot);

and one is thin:

- ``line``: a thin curved stroke (a scratch, a crack, a hair or a fibre; the thin defect of
  CutPaste's "scar"), 1.5-5% of the image's larger side wide and 15-60% of it long, brighter or
  darker by 30-90 grey levels. Trained on blobs alone, the defect branch learned that a defect is a
  blob and dulled thin ones (benchmarks/defaults/patch-line.md).

One more kind can be asked for by name:

- ``offset``: the blob brighter or darker by 30-90 grey levels, its texture shifted, not scaled
  (the stain kind before ``gain``, which gained 0.65 image AUROC in its place on the validation
  folds and 0.24 on photographs no setting was chosen on: benchmarks/defaults/patch-gain-for-offset*.md).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..imaging import gaussian_blur

DEFECT_KINDS = ("foreign", "gain", "smooth", "noise", "line")
KNOWN_KINDS = (*DEFECT_KINDS, "offset")
# share of the image a defect covers: benchmarks/defaults/patch-training*.md (1-6% before)
AREA = (0.01, 0.12)
EDGE = 1 / 64  # sigma of the blob's soft edge, a share of the image's larger side
BLUR = 1 / 16  # sigma of the ``smooth`` kind's blur, a share of the image's larger side
LINE_WIDTH = (0.015, 0.05)  # the ``line`` kind's width, a share of the image's larger side
LINE_LENGTH = (0.15, 0.6)  # its length (along the curve's chord), likewise


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


def stroke_mask(rng: np.random.Generator, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A thin curved stroke (a quadratic Bezier curve, anti-aliased), mostly inside the image: (its
    pixels, bool ``(H, W)``, never empty; its painting weights, ``(H, W)`` in [0, 1])."""
    h, w = size
    side = max(h, w)
    while True:
        length, width = (float(rng.uniform(*share)) * side for share in (LINE_LENGTH, LINE_WIDTH))
        width = max(width, 1.0)
        start = rng.uniform((0, 0), (h, w))
        angle = rng.uniform(0, 2 * np.pi)
        chord = length * np.array([np.cos(angle), np.sin(angle)])
        control = start + chord / 2 + rng.normal(0, 0.2) * np.array([-chord[1], chord[0]])
        t = np.linspace(0, 1, 33)[:, None]
        curve = (1 - t) ** 2 * start + 2 * t * (1 - t) * control + t**2 * (start + chord)
        if ((curve >= 0) & (curve <= (h - 1, w - 1))).all(1).mean() < 0.5:
            continue  # most of the stroke would leave the image
        weights = torch.zeros(h, w)
        # only the pixels of the curve's bounding box (and its width) can be near it
        top, left = np.floor(curve.min(0) - width).astype(int).clip(0)
        bottom, right = np.ceil(curve.max(0) + width).astype(int) + 1
        rows, cols = torch.meshgrid(
            torch.arange(top, min(bottom, h)).float(),
            torch.arange(left, min(right, w)).float(),
            indexing="ij",
        )
        pixels = torch.stack([rows.flatten(), cols.flatten()], 1)[:, None]
        a, b = (torch.from_numpy(points).float() for points in (curve[:-1], curve[1:]))
        along = ((pixels - a) * (b - a)).sum(-1) / ((b - a) ** 2).sum(-1).clamp(min=1e-9)
        nearest = a + along.clamp(0, 1)[..., None] * (b - a)
        distance = (pixels - nearest).norm(dim=-1).min(1).values.view(rows.shape)
        weights[top : top + rows.shape[0], left : left + rows.shape[1]] = (width / 2 + 0.5 - distance).clamp(
            0, 1
        )
        mask = weights >= 0.5
        if mask.any():
            return mask, weights


def _shifted(image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """``image`` 30-90 grey levels brighter or darker (``offset``'s and ``line``'s paint)."""
    return image + float(rng.choice([-1, 1]) * rng.uniform(30, 90))


def synthetic_defects(
    images: np.ndarray, rng: np.random.Generator, kinds: tuple[str, ...] = DEFECT_KINDS
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, C, H, W)``, uint8 or float in [0, 1] -> (copies with one synthetic defect each,
    of the same dtype and scale; defect masks, bool ``(n, H, W)``: the blobs' (or lines') pixels,
    whose soft edges reach a few pixels beyond). Painted on the 0..255 scale either way (the
    kinds' strengths are grey levels); float images are not rounded."""
    n, _, h, w = images.shape
    levels = 1.0 if images.dtype == np.uint8 else 255.0  # float images are in [0, 1]
    clean = torch.from_numpy(np.ascontiguousarray(images)).float() * levels
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
            new = _shifted(image, rng)
        elif kind == "line":  # the blob drawn above is dropped: the draws stay the blob kinds' own
            mask, blob = stroke_mask(rng, (h, w))
            new = _shifted(image, rng)
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
    if images.dtype != np.uint8:
        return (painted.clamp(0, 255) / levels).numpy().astype(images.dtype, copy=False), masks
    return painted.round().clamp(0, 255).to(torch.uint8).numpy(), masks


def painted_copies(
    images: np.ndarray, seed: list[int], copies: int, kinds: tuple[str, ...] = DEFECT_KINDS
) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` copies of images ``(n, C, H, W)`` (uint8, or float in [0, 1]), each image of each
    copy with its own synthetic defect: (painted, ``(copies * n, C, H, W)`` of the images' dtype,
    copy by copy; masks, bool ``(copies * n, H, W)``). Copy ``k`` is painted by the generator
    seeded ``[*seed, k]``, so the first copy is what ``default_rng(seed)`` alone paints."""
    found = [synthetic_defects(images, np.random.default_rng([*seed, copy]), kinds) for copy in range(copies)]
    painted, masks = (np.concatenate(part) for part in zip(*found, strict=True))
    return painted, masks
