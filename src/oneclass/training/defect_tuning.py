"""Fine-tuning the patch features on synthetic defects: the local detector's third member.

The patch OC-NN and the discriminator of synthetic defects (``heads/defects.py``) read fixed
ImageNet descriptors. Here copies of the backbone's blocks after the first tap learn, together
with a small 1x1 classifier, to tell synthetic defects from normal texture, end to end on whole
images (``networks/patches.DefectBranch``). The images are some of the normal training images
clean and ``PAINTED_COPIES`` painted copies of them, every region labelled as
``heads.defects.region_labels`` labels it; each class weighs half of the loss.

On the validation folds of the inspection benchmark this member, added to the other two maps,
gained 0.4-1.8 image AUROC in each of 12 fold-seed pairs (BENCHMARKS.md, "Fine-tuning the
backbone with the discriminator"; ``benchmarks/patch_folds.py --candidates finetune-more``).

The first tap's maps of the images (the frozen part of the pass) are computed once and kept, so
the number of images is bounded (``TUNING_IMAGES``, ``CACHE_BYTES``). Under torchrun every rank
prepares the same images and trains on its shard of each epoch's batches, gradients averaged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.arrays import to_tensor
from ..data.synthetic_defects import painted_copies
from ..heads.defects import region_labels
from ..networks.patches import DefectBranch, PatchFeatures, images_per_pass
from . import distributed

EPOCHS = 4  # 8 gained 0.0-0.2 more on the validation folds, at twice the time
BATCH = 8  # 64x64 images per step (fewer larger ones: about as many regions, ``step_images``)
BLOCKS_LR = 3e-4  # 1e-4 gained 0.3-0.4 less (benchmarks/defaults/patch-finetune-*.md)
HEAD_LR = 1e-3
HEAD_WEIGHT_DECAY = 1e-4
TUNING_IMAGES = 320  # clean images tuned on at most (each with its painted copies)
# the kept first-tap maps of the clean and painted images stay below this: 320 64x64 images (200 MB)
# fit; of larger images fewer are tuned on, about as many regions, so the time stays bounded too
CACHE_BYTES = 256 << 20


def tuning_bytes(first_tap_size: int, image_shape: tuple[int, ...], copies: int) -> int:
    """A generous estimate of the tuning's memory for images of ``image_shape``: the kept first-tap
    maps (``first_tap_size`` numbers an image, ``PatchFeatures.first_tap_size``) of the clean
    images and their ``copies`` painted copies, and a step's activations and gradients (a few
    times its images' maps)."""
    kept = min(CACHE_BYTES, 4 * first_tap_size * (copies + 1) * TUNING_IMAGES)
    return kept + 4 * first_tap_size * step_images(image_shape) * 16


def step_images(image_shape: tuple[int, ...]) -> int:
    """Images per training step: ``BATCH`` of 64x64, fewer larger ones (as many pixels), one at least."""
    return max(1, BATCH * 64 * 64 // (image_shape[-2] * image_shape[-1]))


def tuning_images(images: np.ndarray, first_tap_size: int, copies: int, seed: int) -> np.ndarray:
    """The (sorted) indices into ``images`` tuned on: at most ``TUNING_IMAGES``, fewer when the
    first tap's maps of them (``first_tap_size`` numbers an image, ``PatchFeatures.first_tap_size``)
    and of their ``copies`` painted copies would pass ``CACHE_BYTES``."""
    per_image = 4 * first_tap_size
    most = max(1, min(TUNING_IMAGES, CACHE_BYTES // (per_image * (copies + 1))))
    if len(images) <= most:
        return np.arange(len(images))
    return np.sort(np.random.default_rng([seed, 4409]).choice(len(images), most, replace=False))


def tune_defect_branch(
    features: PatchFeatures,
    images: np.ndarray,
    seed: int,
    device: torch.device,
    copies: int,
    epochs: int = EPOCHS,
) -> DefectBranch | None:
    """Give ``features`` a ``DefectBranch`` trained on ``images`` ``(n, C, H, W)`` (clean; uint8, or
    float in [0, 1]) and ``copies`` painted copies of them; None (and no branch) when no region came
    out as a defect."""
    features.defect_branch = None
    features.to(device).eval()
    painted, masks = painted_copies(images, [seed, 8191], copies)
    with torch.no_grad():
        low = _first_tap(features, np.concatenate([images, painted]), device)
        grid = tuple(features(to_tensor(images[:1], device)).shape[-2:])
    labels = torch.cat([torch.zeros(len(images), *grid), region_labels(torch.as_tensor(masks), grid)]).to(
        device
    )
    defects, normal = int((labels == 1).sum()), int((labels == 0).sum())
    if defects == 0 or normal == 0:
        return None
    step = step_images(images.shape[1:])
    branch = _standardised_branch(features, low[: len(images)], step)
    weight_of = torch.tensor(  # by label + 1: left out, normal, defect
        [0.0, (defects + normal) / (2.0 * normal), (defects + normal) / (2.0 * defects)], device=device
    )
    with torch.enable_grad():  # gradients averaged over the ranks: every rank ends alike
        _train(branch, features, low, labels, weight_of, seed, epochs, step, device)
    features.defect_branch = branch.eval()
    return branch


def _first_tap(
    features: PatchFeatures, images: np.ndarray, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The backbone's first tapped maps ``(n, c, H', W')`` of uint8 images, as ``PatchFeatures``
    computes them (enlarged, reflected margin)."""
    per_pass = images_per_pass(images.shape[1:], device)
    parts = [
        features.backbone_maps(to_tensor(images[i : i + per_pass], device))[0]
        for i in range(0, len(images), per_pass)
    ]
    return torch.cat(parts).contiguous(memory_format=torch.channels_last)


def _standardised_branch(features: PatchFeatures, clean_low: torch.Tensor, per_pass: int) -> DefectBranch:
    """A new branch (on ``clean_low``'s device) whose descriptors are standardised by their mean and
    spread over the clean images (with the blocks as they are before tuning), ``per_pass`` at a time."""
    branch = features.add_defect_branch().to(clean_low.device)
    with torch.no_grad():
        sample = torch.cat(
            [
                branch.descriptors(clean_low[i : i + per_pass], features.descriptors)
                for i in range(0, len(clean_low), per_pass)
            ]
        )
        branch.mean.copy_(sample.mean((0, 2, 3)).view_as(branch.mean))
        branch.scale.copy_(sample.std((0, 2, 3)).clamp(min=1e-6).view_as(branch.scale))
    return branch


def _train(branch, features, low, labels, weight_of, seed, epochs, batch, device) -> None:
    torch.manual_seed(seed)
    for layer in branch.head:
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    optimiser = torch.optim.Adam(
        [
            {"params": branch.head.parameters(), "lr": HEAD_LR, "weight_decay": HEAD_WEIGHT_DECAY},
            {"params": branch.blocks.parameters(), "lr": BLOCKS_LR, "weight_decay": 0.0},
        ]
    )
    model = distributed.wrap(branch, device)
    generator = torch.Generator().manual_seed(seed)
    branch.train()
    for epoch in range(epochs):
        for rows in distributed.epoch_batches(len(low), batch, generator, seed, epoch):
            rows = rows.to(device)
            target = labels[rows]
            logits = model(low[rows], features.descriptors)
            loss = F.binary_cross_entropy_with_logits(
                logits, target.clamp(min=0), weight=weight_of[(target + 1).long()], reduction="sum"
            ) / max(1.0, float((target >= 0).sum()))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
