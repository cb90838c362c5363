"""The patch OC-NN: the kernel OC-NN over patch descriptors, for local defects.

Every region of an image has a descriptor (``networks/patches.py``: feature maps ``(n, D, h, w)``).
The head is the kernel OC-NN on those descriptors: PCA-whitened, Gaussian units centred on a
coreset of training patches (greedy k-centre: the patches the others lie closest to, rare kinds
included), output weights trained by Frank-Wolfe. A region's score is its log y_hat; its
anomaly -log y_hat. The region anomalies, upsampled to the image and smoothed, are standardised
pixel by pixel: minus the pixel's mean over the training images' maps, divided by their standard
deviation. That is the anomaly map, in units of the training images' own spread at that pixel, so
that a place where every normal image scores high (the border, where the features see padding)
does not pass for a defect. An image's score is minus the mean of its worst ``top_share`` pixels.

nu, the threshold and the conformal p-values keep their meaning on image scores: the threshold
is the nu-quantile of out-of-fold image scores (each training image scored without the units
centred on its own patches, by output weights fitted without it), so about a share nu of new
normal images falls below it. The per-pixel mean and spread come from those out-of-fold maps,
each training image standardised by the other images' statistics (leave one out), so that its
score is again as a new image would get it. The pixel threshold for the maps is the same number
in anomaly units: a pixel brighter than it is flagged.

A second member, the discriminator of synthetic defects (``heads/defects.py``), is trained on
painted copies of four fifths of the training images (one threshold fold held out); its logit map
is standardised per pixel by its maps of the held-out fifth and added to the OC-NN's map. The
image threshold and the reference scores then come from that fifth's summed maps, each map
standardised by the other images' statistics, so nu keeps its meaning.

A third member, the feature extractor's defect branch (``networks/patches.DefectBranch``), is
fine-tuned by the caller on the same four fifths (``tune_features``) before anything else; its
logit comes with the feature maps as their last channel, and its map is standardised on the
held-out fifth and added like the discriminator's.

Fitting reads the training images three times at most (twice for the OC-NN, once more painted or,
for the held-out fifth, for the discriminator's statistics), in batches, and keeps bounded samples
of patches (``PATCH_BUDGET``) and of the discriminator's rows, so memory does not grow with the
number of images (the defect branch's tuning, before, keeps a bounded number of images too).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...calibration import nu_quantile
from ...devices import resolve_device
from ...errors import OneClassError
from ...imaging import upsample_and_blur_operator
from ...params import Boolean, Interval, Param
from ...training import distributed
from ..base import Head
from ..defects import (
    CLEAR_ROWS,
    DEFECT_ROWS,
    NORMAL_ROWS,
    DefectDiscriminator,
    defect_rows_of,
    train_discriminator,
)
from .heads import NU_PARAM, THRESHOLD_FOLDS
from .networks import KernelOCNNNet, median_distance
from .solvers import frank_wolfe, out_of_fold_log_scores

FIT_IMAGES = 2000  # at most this many training images are sampled for the fit
PATCH_BUDGET = 100_000  # patches kept from them (coreset and whitening statistics)
SOLVER_PATCHES = 20_000  # patches Frank-Wolfe runs on
CORESET_POOL = 40_000  # patches the coreset is chosen from
BATCH = 64  # images per feature batch (fewer for large images: ROWS_PER_BATCH, PIXELS_PER_BATCH)
ROWS_PER_BATCH = 64 * 32 * 32  # regions per feature batch: 64 images of 64x64 pixels (32x32 regions)
PIXELS_PER_BATCH = 64 * 64 * 64  # map pixels per batch of maps: 64 images of 64x64
SCORING_ROWS = 1024  # regions per pass of the scorer: its (rows, units) terms stay in the cache
GPU_SCORING_ROWS = 2**18  # on a GPU: 256 images of 32x32 regions (the net takes 2^26 terms at a time)
SAVED_BEFORE_SMOOTHING = 1 / 16  # the smoothing of models saved before it was a parameter
SMOOTHING = 1 / 32  # sigma of the maps' Gaussian smoothing, a share of the image's larger side
SPREAD_FLOOR = 0.01  # a pixel's spread is at least this share of the mean spread over the map
# each training image is standardised by the other images' per-pixel spread: at least two others
MIN_IMAGES = 3
# reference images (one threshold fold, a fifth of the images) the discriminator's map statistics
# and the threshold come from: at least a few besides the one left out
DEFECT_MIN_REFERENCES = 4


class PatchScorer(nn.Module):
    """Feature maps ``(n, D, h, w)`` -> image scores ``(n,)`` (higher = more normal) and anomaly
    maps ``(n, H, W)`` (higher = more abnormal, standardised per pixel) at the image size."""

    def __init__(
        self,
        net: KernelOCNNNet,
        image_size: tuple[int, int],
        top_share: float,
        level: torch.Tensor | None = None,
        spread: torch.Tensor | None = None,
        smoothing: float = SMOOTHING,
        discriminator: DefectDiscriminator | None = None,
        defect_level: torch.Tensor | None = None,
        defect_spread: torch.Tensor | None = None,
        tuned: bool = False,
        tuned_level: torch.Tensor | None = None,
        tuned_spread: torch.Tensor | None = None,
    ):
        super().__init__()
        self.net = net
        self.image_size = tuple(int(s) for s in image_size)
        self.top_share, self.smoothing = float(top_share), float(smoothing)
        self.register_buffer("level", torch.zeros(self.image_size) if level is None else level.float())
        self.register_buffer("spread", torch.ones(self.image_size) if spread is None else spread.float())
        self.discriminator = discriminator
        zeros, ones = torch.zeros(self.image_size), torch.ones(self.image_size)
        self.register_buffer("defect_level", zeros if defect_level is None else defect_level.float())
        self.register_buffer("defect_spread", ones if defect_spread is None else defect_spread.float())
        self.tuned = bool(tuned)  # the features' last channel is the defect branch's logit
        self.register_buffer("tuned_level", zeros if tuned_level is None else tuned_level.float())
        self.register_buffer("tuned_spread", ones if tuned_spread is None else tuned_spread.float())

    def region_scores(self, features: torch.Tensor, in_passes: bool = False) -> torch.Tensor:
        """log y_hat of every region ``(n, h, w)``; ``in_passes``: a few hundred regions per
        pass of the kernel net (eager scoring; the exported graph scores them in one piece)."""
        n, dim, h, w = features.shape
        flat = features.permute(0, 2, 3, 1).reshape(-1, dim)
        scores = self.net.log_scores_in_passes(flat) if in_passes else self.net(flat)
        return scores.view(n, h, w)

    def raw_maps(self, regions: torch.Tensor) -> torch.Tensor:
        """-log y_hat of every region ``(n, h, w)``, as maps ``(n, H, W)`` (``smooth_maps``)."""
        return smooth_maps(-regions, self.image_size, self.smoothing)

    def defect_maps(self, features: torch.Tensor) -> torch.Tensor:
        """The discriminator's logits of every region of ``(n, D, h, w)``, as maps ``(n, H, W)``."""
        return smooth_maps(
            discriminator_logits(self.discriminator, features), self.image_size, self.smoothing
        )

    def image_scores(self, maps: torch.Tensor) -> torch.Tensor:
        """Minus the mean of the worst ``top_share`` pixels of anomaly maps: ``(n, H, W)`` -> ``(n,)``."""
        return worst_share_score(maps, self.top_share)

    def forward(self, features: torch.Tensor, in_passes: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        features, tuned = split_logit(features, self.tuned)
        maps = (self.raw_maps(self.region_scores(features, in_passes)) - self.level) / self.spread
        if self.discriminator is not None:
            maps = maps + (self.defect_maps(features) - self.defect_level) / self.defect_spread
        if tuned is not None:
            tuned_maps = smooth_maps(tuned, self.image_size, self.smoothing)
            maps = maps + (tuned_maps - self.tuned_level) / self.tuned_spread
        return self.image_scores(maps), maps


def split_logit(features: torch.Tensor, tuned: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Feature maps ``(n, D + 1, h, w)`` of an extractor with a defect branch (``tuned``) ->
    (descriptors ``(n, D, h, w)``, the branch's logit ``(n, h, w)``); without one, (the maps, None)."""
    if not tuned:
        return features, None
    return features[:, :-1], features[:, -1]


def worst_share_score(anomaly: torch.Tensor, share: float) -> torch.Tensor:
    """Minus the mean of the largest ``share`` of each row's anomalies: ``(n, ...)`` -> ``(n,)``
    (higher = more normal), at least one value per row."""
    flat = anomaly.flatten(1)
    return -torch.topk(flat, max(1, round(share * flat.shape[1])), dim=1).values.mean(1)


def images_per_batch(per_image: int, budget: int) -> int:
    """Images per batch when each brings ``per_image`` rows (regions or map pixels) and a batch
    holds about ``budget``: ``BATCH`` for the 64x64 images the budgets are set by, one at least."""
    return max(1, min(BATCH, budget // max(1, per_image)))


def fit_bytes(dim: int, regions: int, hidden: int) -> int:
    """A generous estimate of the patch head's fitting memory for descriptors of ``dim`` numbers
    on ``regions`` regions per image and ``hidden`` units: one batch of descriptors (float32 and a
    float64 copy, twice), the patch sample (and its whitened copy), Frank-Wolfe's patch x unit
    kernel terms, the training images' region scores and the discriminator's rows (twice)."""
    batch = images_per_batch(regions, ROWS_PER_BATCH) * regions * dim * (4 + 8) * 2
    sample = PATCH_BUDGET * dim * 4 * 2
    solver = SOLVER_PATCHES * hidden * 4 * 2
    discriminator = (NORMAL_ROWS + CLEAR_ROWS + DEFECT_ROWS) * dim * 4 * 2
    return batch + sample + solver + FIT_IMAGES * regions * 4 * 2 + discriminator


def level_and_spread(
    total: torch.Tensor, square: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel mean and spread (standard deviation, floored at ``SPREAD_FLOOR`` of its mean
    over the map) of ``count`` maps from their sum and sum of squares ``(..., H, W)``."""
    level = total / count
    spread = (square / count - level**2).clamp(min=0).sqrt()
    floor = SPREAD_FLOOR * spread.mean(dim=(-2, -1), keepdim=True)
    return level, spread.clamp(min=floor).clamp(min=torch.finfo(spread.dtype).tiny)


def map_moments(chunks, size: tuple[int, int], device) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-pixel sum and sum of squares ``(H, W)`` (float64) of map chunks ``(k, H, W)``, over
    every rank's chunks."""
    total = torch.zeros(size, dtype=torch.float64, device=device)
    square = torch.zeros(size, dtype=torch.float64, device=device)
    for maps in chunks:
        maps = maps.double()
        total += maps.sum(0)
        square += (maps**2).sum(0)
    return distributed.sum_over_ranks(total), distributed.sum_over_ranks(square)


def standardised_by_the_others(
    maps: torch.Tensor, total: torch.Tensor, square: torch.Tensor, count: int
) -> torch.Tensor:
    """Maps ``(k, H, W)`` of ``count`` whose moments are ``total`` and ``square``, each minus the
    other maps' per-pixel mean and divided by their spread (leave one out)."""
    level, spread = level_and_spread(total - maps, square - maps**2, count - 1)
    return (maps - level) / spread


def smooth_maps(
    anomaly: torch.Tensor, image_size: tuple[int, int], smoothing: float = SMOOTHING
) -> torch.Tensor:
    """Region anomalies ``(n, h, w)`` upsampled (bilinear) to ``image_size`` and smoothed by a
    Gaussian of sigma = ``smoothing`` x the image's larger side, as PatchCore and PaDiM draw them
    (one matrix per axis: ``imaging.upsample_and_blur_operator``)."""
    (h, w), (height, width) = anomaly.shape[-2:], image_size
    sigma = max(image_size) * smoothing
    rows = _operator(h, height, sigma).to(anomaly.device, anomaly.dtype)
    columns = _operator(w, width, sigma).to(anomaly.device, anomaly.dtype)
    return rows @ anomaly @ columns.T


@functools.lru_cache(maxsize=16)
def _operator(source: int, target: int, sigma: float) -> torch.Tensor:
    return upsample_and_blur_operator(source, target, sigma)


def discriminator_logits(discriminator: DefectDiscriminator, features: torch.Tensor) -> torch.Tensor:
    """The discriminator's logit of every region of feature maps ``(n, D, h, w)``: ``(n, h, w)``."""
    n, dim, h, w = features.shape
    return discriminator(features.float().permute(0, 2, 3, 1).reshape(-1, dim)).view(n, h, w)


def greedy_coreset(points: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``count`` points chosen greedily, each the farthest from those chosen so far
    (k-centre): every point ends close to a chosen one, rare kinds of patch included."""
    count = min(count, len(points))
    chosen = torch.empty(count, dtype=torch.long)
    chosen[0] = int(torch.randint(len(points), (1,), generator=generator))
    squared = (points * points).sum(1)
    nearest = squared + squared[chosen[0]] - 2 * points @ points[chosen[0]]
    for i in range(1, count):
        chosen[i] = int(torch.argmax(nearest))
        distance = squared + squared[chosen[i]] - 2 * points @ points[chosen[i]]
        nearest = torch.minimum(nearest, distance)
    return chosen


def _whitening_from_moments(total: torch.Tensor, outer: torch.Tensor, count: int, floor: float = 1e-6):
    """Mean ``(D,)`` and PCA whitening ``(D, D)`` from summed vectors and outer products."""
    mean = total / count
    cov = outer / count - torch.outer(mean, mean)
    values, vectors = torch.linalg.eigh(cov)
    values = values.clamp(min=floor * float(values.max().clamp(min=torch.finfo(torch.float64).tiny)))
    return mean, vectors / values.sqrt()


def _gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Every rank's rows ``(k_r, ...)`` concatenated in rank order (ranks may hold different k_r)."""
    if distributed.world_size() == 1:
        return local
    counts = distributed.gather(torch.tensor([len(local)], device=local.device))
    padded = torch.zeros((int(counts.max()), *local.shape[1:]), dtype=local.dtype, device=local.device)
    padded[: len(local)] = local
    parts = distributed.gather(padded[None]).view(-1, *padded.shape)
    return torch.cat([parts[r, : int(c)] for r, c in enumerate(counts)])


class PatchOCNN(Head):
    """The kernel OC-NN over patch descriptors (module docstring).

    Parameters
    ----------
    nu : share of normal images allowed below the image threshold, in (0, 1].
    hidden : Gaussian units, centred on a coreset of training patches.
    bandwidth : kernel width, a multiple of the median distance between whitened patches.
    epochs, tol : Frank-Wolfe's most passes and its relative duality gap.
    top_share : an image's score is minus the mean anomaly of its worst ``top_share`` regions.
    smoothing : the maps' Gaussian smoothing, sigma as a share of the image's larger side.
    synthetic_defects : also train a discriminator of synthetic defects (``heads/defects.py``) on
        four fifths of the training images and add its map, standardised on the other fifth, to the
        OC-NN's, when ``fit`` is given ``painted_of`` and that fifth holds at least
        ``DEFECT_MIN_REFERENCES`` images; with ``tune_features`` too, the features' fine-tuned
        defect branch is a third member.
    seed : drives the sampling of images, patches and the coreset's first point.
    """

    name = "ocnn"
    saveable = True
    parameters: ClassVar[dict[str, Param]] = {
        "nu": NU_PARAM,
        "hidden": Param(Interval(int, 1), "Gaussian units, centred on a coreset of training patches."),
        "bandwidth": Param(Interval(float, 0, closed="neither"), "Kernel width, a multiple of the median."),
        "epochs": Param(Interval(int, 1), "Most Frank-Wolfe passes."),
        "tol": Param(Interval(float, 0), "Frank-Wolfe stops at this relative duality gap."),
        "top_share": Param(
            Interval(float, 0, 1, closed="right"), "An image's score: the mean of its worst regions' share."
        ),
        "smoothing": Param(
            Interval(float, 0, closed="neither"), "Sigma of the maps' smoothing, a share of the image size."
        ),
        "synthetic_defects": Param(Boolean(), "Also learn from synthetic defects painted on the images."),
        "seed": Param(Interval(int, 0), "Seed of the sampling."),
    }

    def __init__(
        self,
        nu: float = 0.1,
        hidden: int = 2048,
        bandwidth: float = 0.2,
        epochs: int = 100,
        tol: float = 1e-3,
        top_share: float = 0.03,  # chosen on the inspection validation folders (BENCHMARKS.md)
        smoothing: float = SMOOTHING,
        synthetic_defects: bool = True,
        seed: int = 0,
        device: str = "cpu",
        quiet: bool = True,
    ):
        self.nu, self.hidden, self.bandwidth, self.epochs, self.tol = nu, hidden, bandwidth, epochs, tol
        self.top_share, self.smoothing, self.synthetic_defects = top_share, smoothing, synthetic_defects
        self.seed, self.device, self.quiet = seed, device, quiet
        self.validate_params()

    # -- fitting ---------------------------------------------------------------------------------

    @torch.no_grad()
    def fit(
        self,
        features_of: Callable[[np.ndarray], torch.Tensor],
        n_images: int,
        image_size: tuple[int, int],
        on_epoch: Callable[[dict], None] | None = None,
        painted_of: Callable[[np.ndarray], tuple[torch.Tensor, np.ndarray]] | None = None,
        tune_features: Callable[[np.ndarray], bool] | None = None,
    ) -> PatchOCNN:
        """Fit on ``n_images`` normal images whose feature maps ``(k, D, h, w)`` ``features_of(index)``
        returns for an index array (read in batches: memory stays bounded). ``painted_of(index)``:
        the feature maps of those images with a synthetic defect painted on each, and the defects'
        masks ``(k, H, W)`` (``data/synthetic_defects.py``), for the discriminator.
        ``tune_features(index)``: fine-tune the extractor's defect branch on those images (never the
        held-out fifth); True when the feature maps then carry its logit as a last channel."""
        if n_images < MIN_IMAGES:
            raise OneClassError(
                f"the patch detector needs at least {MIN_IMAGES} normal training images (a spread per "
                f"pixel from the others for each), got {n_images}"
            )
        device = distributed.setup(resolve_device(self.device))
        rng = np.random.default_rng(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        images = np.sort(rng.choice(n_images, min(n_images, FIT_IMAGES), replace=False))
        fold = rng.permutation(len(images)) % min(THRESHOLD_FOLDS, len(images))
        references = fold == 0  # held out of the discriminators: their maps' statistics, the threshold
        defects_possible = (
            self.synthetic_defects and painted_of is not None and references.sum() >= DEFECT_MIN_REFERENCES
        )
        self.tuned_ = bool(defects_possible and tune_features and tune_features(images[~references]))
        with_logits = features_of
        features_of = self._descriptors_only(features_of)
        regions = math.prod(features_of(images[:1]).shape[-2:])
        batch = images_per_batch(regions, ROWS_PER_BATCH)
        sample, sample_image, mean, transform, grid = self._sample(features_of, images, batch, rng, device)
        mapped = ((sample - mean) @ transform).float()
        pool = torch.randperm(len(mapped), generator=generator)[:CORESET_POOL]
        centre_rows = pool[greedy_coreset(mapped[pool], self.hidden, generator)]
        gamma = 1.0 / (2.0 * (self.bandwidth * median_distance(mapped.numpy(), rng)) ** 2)
        self.net_ = KernelOCNNNet(mean.float(), transform.float(), mapped[centre_rows], gamma)
        unit_group = sample_image[centre_rows].numpy()
        solver_rows = torch.randperm(len(sample), generator=generator)[:SOLVER_PATCHES].sort().values
        fitted = frank_wolfe(
            self.net_,
            sample[solver_rows].numpy(),
            sample_image[solver_rows].numpy(),
            unit_group,
            fold[sample_image[solver_rows].numpy()],
            nu=self.nu,
            max_passes=self.epochs,
            tol=self.tol,
            device=device,
            on_epoch=on_epoch,
        )
        self.scorer_ = PatchScorer(self.net_, image_size, self.top_share, smoothing=self.smoothing)
        self.grid_ = grid
        regions = self._out_of_fold_regions(features_of, images, batch, fold, unit_group, fitted, device)
        scores, moments = self._standardise_maps(regions, len(images), device)
        self.scorer_.tuned = self.tuned_
        self.defects_used_ = bool(defects_possible)
        if self.defects_used_:
            learners = torch.as_tensor(~references)
            painted_descriptors = self._painted_descriptors_only(painted_of)
            self.defects_used_ = self._fit_discriminator(
                painted_descriptors, images[~references], sample[learners[sample_image]], batch, device
            )
        if self.defects_used_ or self.tuned_:
            scores = self._reference_scores(with_logits, images, references, regions, moments, batch, device)
        self.defect_images_ = (
            (int((~references).sum()), int(references.sum())) if self.defects_used_ else None
        )
        self.net_.w.weight.copy_(fitted.weights[None])
        self.net_.keep_units(fitted.weights > 0)
        self.net_.cpu()
        self.threshold_ = nu_quantile(scores, self.nu)
        self.train_image_scores_ = scores
        self.history_ = fitted.history
        self.n_features_in_ = int(sample.shape[1])
        return self

    def _descriptors_only(self, features_of):
        """``features_of`` without the defect branch's logit channel."""
        return lambda index: split_logit(features_of(index), self.tuned_)[0]

    def _painted_descriptors_only(self, painted_of):
        """``painted_of`` (feature maps, masks) without the defect branch's logit channel."""

        def without_logit(index):
            features, masks = painted_of(index)
            return split_logit(features, self.tuned_)[0], masks

        return without_logit

    def _sample(self, features_of, images, batch, rng, device):
        """One pass over this rank's share of ``images``, ``batch`` at a time: whitening moments
        and a bounded sample of patches (gathered from every rank). Returns (sample, image index
        of each patch into ``images``, mean, whitening, grid)."""
        block = np.arange(len(images))[distributed.shard(len(images))]
        total = outer = None
        count, kept, kept_image, grid = 0, [], [], None
        per_image = None
        for start in range(0, len(block), batch):
            rows = block[start : start + batch]
            maps = features_of(images[rows]).to(device=device, dtype=torch.float32)
            grid = tuple(maps.shape[-2:])
            flat = maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1]).double()
            if total is None:
                total, outer = torch.zeros(flat.shape[1], dtype=torch.float64, device=device), None
                outer = torch.zeros(flat.shape[1], flat.shape[1], dtype=torch.float64, device=device)
                per_image = max(1, min(grid[0] * grid[1], PATCH_BUDGET // len(images)))
            total += flat.sum(0)
            outer += flat.T @ flat
            count += len(flat)
            positions = grid[0] * grid[1]
            for j, row in enumerate(rows):
                pick = (
                    rng.choice(positions, per_image, replace=False)
                    if per_image < positions
                    else np.arange(positions)
                )
                kept.append(flat[j * positions + torch.as_tensor(pick, device=device)].float())
                kept_image.append(torch.full((len(pick),), int(row), dtype=torch.long, device=device))
        dim = maps.shape[1] if total is not None else 0
        total = distributed.sum_over_ranks(total)
        outer = distributed.sum_over_ranks(outer)
        count = int(distributed.sum_over_ranks(torch.tensor([float(count)], device=device)))
        mean, transform = _whitening_from_moments(total, outer, count)
        sample = _gather_rows(torch.cat(kept) if kept else torch.zeros(0, dim, device=device)).cpu()
        sample_image = _gather_rows(
            torch.cat(kept_image) if kept_image else torch.zeros(0, dtype=torch.long)
        ).cpu()
        return sample, sample_image, mean.cpu(), transform.cpu(), grid

    def _out_of_fold_regions(
        self, features_of, images, batch, fold, unit_group, fitted, device
    ) -> torch.Tensor:
        """Region scores ``(k, h, w)`` of this rank's share of the sampled training images, each
        as a new image would get them (second pass over the images)."""
        block = np.arange(len(images))[distributed.shard(len(images))]
        units = torch.as_tensor(unit_group, dtype=torch.long, device=device)
        out = []
        self.net_.to(device)
        for start in range(0, len(block), batch):
            rows = block[start : start + batch]
            maps = features_of(images[rows]).to(device=device, dtype=torch.float32)
            n, dim, h, w = maps.shape
            flat = maps.permute(0, 2, 3, 1).reshape(-1, dim)
            row_group = torch.as_tensor(np.repeat(rows, h * w), dtype=torch.long, device=device)
            row_fold = torch.as_tensor(np.repeat(fold[rows], h * w), dtype=torch.long, device=device)
            regions = out_of_fold_log_scores(self.net_, flat, row_group, units, row_fold, fitted.fold_weights)
            out.append(regions.view(n, h, w))
        return torch.cat(out) if out else torch.zeros(0, *self.grid_, device=device)

    def _standardise_maps(self, regions: torch.Tensor, n_images: int, device):
        """Set the scorer's per-pixel level and spread from the out-of-fold maps of every rank's
        training images; return every image's score ``(n_images,)``, each standardised by the
        statistics of the other images (leave one out), and the maps' (sum, sum of squares)."""
        size = self.scorer_.image_size
        per_batch = images_per_batch(size[0] * size[1], PIXELS_PER_BATCH)
        total, square = map_moments(map(self.scorer_.raw_maps, regions.split(per_batch)), size, device)
        level, spread = level_and_spread(total, square, n_images)
        self.scorer_.level, self.scorer_.spread = level.float().cpu(), spread.float().cpu()
        scores = torch.zeros(len(regions), dtype=torch.float32, device=device)
        for start in range(0, len(regions), per_batch):
            maps = self.scorer_.raw_maps(regions[start : start + per_batch]).double()
            standard = standardised_by_the_others(maps, total, square, n_images)
            scores[start : start + len(maps)] = self.scorer_.image_scores(standard.float())
        gathered = distributed.gather_shards(scores, n_images).cpu().numpy().astype(np.float64)
        return gathered, (total, square, n_images)

    def _fit_discriminator(
        self, painted_of, learners: np.ndarray, normal: torch.Tensor, batch, device
    ) -> bool:
        """Train the discriminator on the painted copies of this rank's share of ``learners`` (every
        rank's rows gathered) and the clean patches ``normal`` ``(N, D)`` sampled from them; False
        (no discriminator) when no region of the painted images came out as a defect."""
        generator = torch.Generator().manual_seed(self.seed + 1)
        mine = learners[distributed.shard(len(learners))]
        defects, clear = defect_rows_of(painted_of, mine, batch, device, generator, normal.shape[1])
        defects, clear = _gather_rows(defects), _gather_rows(clear)
        if len(defects) == 0 or len(clear) == 0:
            return False
        net = train_discriminator(normal.to(device), defects, clear, self.seed, device)
        distributed.broadcast_module(net)
        self.scorer_.discriminator = net.cpu().eval()
        return True

    def _reference_scores(
        self, features_of, images, references, regions, moments, batch, device
    ) -> np.ndarray:
        """Set the per-pixel level and spread of the discriminator's and the defect branch's maps
        from the reference images (held out of their training); return their image scores on the
        summed maps, each map standardised by the other images' statistics (leave one out),
        gathered from every rank. ``features_of`` gives the logit channel when there is one."""
        block = np.arange(len(images))[distributed.shard(len(images))]
        mine = np.flatnonzero(references[block])  # positions in this rank's block
        members = self._reference_logits(features_of, images[block[mine]], batch, device)
        size, count = self.scorer_.image_size, int(references.sum())
        per_batch = images_per_batch(size[0] * size[1], PIXELS_PER_BATCH)
        statistics = {}
        for name, logits in members.items():
            # smoothed twice rather than kept: the logits are a fraction of the maps' size
            chunks = (smooth_maps(chunk, size, self.smoothing) for chunk in logits.split(per_batch))
            total, square = map_moments(chunks, size, device)
            level, spread = level_and_spread(total, square, count)
            setattr(self.scorer_, f"{name}_level", level.float().cpu())
            setattr(self.scorer_, f"{name}_spread", spread.float().cpu())
            statistics[name] = (total, square)
        ocnn_total, ocnn_square, n_images = moments
        scores = []
        for start in range(0, len(mine), per_batch):
            ocnn = self.scorer_.raw_maps(regions[mine[start : start + per_batch]]).double()
            summed = standardised_by_the_others(ocnn, ocnn_total, ocnn_square, n_images)
            for name, logits in members.items():
                member = smooth_maps(logits[start : start + per_batch], size, self.smoothing).double()
                summed = summed + standardised_by_the_others(member, *statistics[name], count)
            scores.append(self.scorer_.image_scores(summed.float()))
        local = torch.cat(scores) if scores else torch.zeros(0, device=device)
        return _gather_rows(local).cpu().numpy().astype(np.float64)

    def _reference_logits(self, features_of, images, batch, device) -> dict[str, torch.Tensor]:
        """``{"defect": the discriminator's logits, "tuned": the defect branch's}`` ``(k, h, w)``
        of ``images`` (those of the members there are)."""
        discriminator = self.scorer_.discriminator if self.defects_used_ else None
        if discriminator is not None:
            discriminator.to(device)
        found: dict[str, list[torch.Tensor]] = {"defect": [], "tuned": []}
        for start in range(0, len(images), batch):
            maps = features_of(images[start : start + batch]).to(device=device, dtype=torch.float32)
            maps, logit = split_logit(maps, self.tuned_)
            if logit is not None:
                found["tuned"].append(logit)
            if discriminator is not None:
                found["defect"].append(discriminator_logits(discriminator, maps))
        if discriminator is not None:
            discriminator.cpu()
        empty = torch.zeros(0, *self.grid_, device=device)
        used = {"defect": discriminator is not None, "tuned": self.tuned_}
        return {name: torch.cat(parts or [empty]) for name, parts in found.items() if used[name]}

    # -- scoring ---------------------------------------------------------------------------------

    @torch.no_grad()
    def score_maps(self, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Image scores ``(n,)`` and anomaly maps ``(n, H, W)`` of feature maps ``(n, D, h, w)``,
        computed where the features are (the scorer moves there)."""
        rows = SCORING_ROWS if features.device.type == "cpu" else GPU_SCORING_ROWS
        per_pass = max(1, rows // (features.shape[-2] * features.shape[-1]))
        scorer = self.scorer_.to(features.device)
        scores = np.empty(len(features), dtype=np.float64)
        maps = np.empty((len(features), *self.scorer_.image_size), dtype=np.float32)
        for start in range(0, len(features), per_pass):
            part_scores, part_maps = scorer(features[start : start + per_pass].float(), in_passes=True)
            scores[start : start + per_pass] = part_scores.cpu().numpy()
            maps[start : start + per_pass] = part_maps.cpu().numpy()
        return scores, maps

    def score_samples(self, features: torch.Tensor) -> np.ndarray:
        return self.score_maps(features)[0]

    def torch_module(self) -> nn.Module:
        return self.scorer_

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "local": True,
            "image_size": list(self.scorer_.image_size),
            "discriminator": self.scorer_.discriminator is not None,
            "tuned": self.scorer_.tuned,
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"head.{k}": v for k, v in self.net_.state_dict().items()}
        tensors.update({"head.map_level": self.scorer_.level, "head.map_spread": self.scorer_.spread})
        if self.scorer_.discriminator is not None:
            tensors.update({f"defects.{k}": v for k, v in self.scorer_.discriminator.state_dict().items()})
            tensors.update(
                {
                    "defects.map_level": self.scorer_.defect_level,
                    "defects.map_spread": self.scorer_.defect_spread,
                }
            )
        if self.scorer_.tuned:
            tensors.update(
                {"tuned.map_level": self.scorer_.tuned_level, "tuned.map_spread": self.scorer_.tuned_spread}
            )
        return tensors

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> PatchOCNN:
        head = cls(**{"smoothing": SAVED_BEFORE_SMOOTHING, **config["params"]})
        weights = {k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")}
        level, spread = weights.pop("map_level"), weights.pop("map_spread")
        head.net_ = KernelOCNNNet(
            weights["mean"], weights["transform"], weights["V.weight"], float(weights["gamma"])
        )
        head.net_.load_state_dict(weights)
        defects = {k.removeprefix("defects."): v for k, v in tensors.items() if k.startswith("defects.")}
        discriminator = defect_level = defect_spread = None
        if defects:
            defect_level, defect_spread = defects.pop("map_level"), defects.pop("map_spread")
            width = defects["layers.0.weight"].shape[0]
            discriminator = DefectDiscriminator(defects["mean"], defects["scale"], width)
            discriminator.load_state_dict(defects)
            discriminator.eval()
        tuned = bool(config.get("tuned", False))
        head.scorer_ = PatchScorer(
            head.net_,
            tuple(config["image_size"]),
            head.top_share,
            level,
            spread,
            head.smoothing,
            discriminator,
            defect_level,
            defect_spread,
            tuned,
            tensors["tuned.map_level"] if tuned else None,
            tensors["tuned.map_spread"] if tuned else None,
        )
        head.defects_used_ = discriminator is not None
        head.tuned_ = tuned
        head.threshold_ = float(config["threshold"])
        head.n_features_in_ = weights["V.weight"].shape[1]
        head.history_ = []
        return head
