"""Inspection benchmark methods: local defects in MVTec-AD-layout folders.

Each method turns an :class:`InspectionTask` (the good training images of one category, its test
images, the defect masks) into test image scores (higher = more normal), its own threshold,
anomaly maps ``(n, H, W)`` (higher = more abnormal; None for whole-image methods) and the memory
its model holds. The patch methods share one feature extractor (``networks/patches.py``), so the
comparison is about the head, not the features:

- ``patch-ocnn``: the product's local detector (``OneClassDetector(encoder="lite0")``);
- ``patchcore``: nearest-neighbour distance to a greedy coreset of 1% of the training patches
  (PatchCore, Roth et al. 2022), image score the worst region;
- ``padim``: a Gaussian per position (mean, covariance), Mahalanobis distance (Defard et al.);
- ``random-knn``: fixed random convolution features, nearest training patch (training-free);
- ``ocnn-image``: the whole-image detector (VAE latent + kernel OC-NN);
- ``pyod-*``: PyOD's IForest, OCSVM, KNN and AutoEncoder on the pixels (``pip install
  'oneclass[bench]'``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..calibration import nu_quantile
from ..detector import OneClassDetector
from ..errors import OneClassError
from ..heads.ocnn.patch import greedy_coreset, smooth_maps
from ..networks.patches import PatchFeatures, build_patch_features, patch_descriptors

CHUNK = 64


@dataclass
class InspectionTask:
    """One category under one seed: images in memory, defect masks where the folder has them."""

    category: str
    seed: int
    train: np.ndarray  # uint8 (n, C, H, W), good images only
    test: np.ndarray  # uint8 (m, C, H, W)
    test_is_normal: np.ndarray  # bool (m,)
    masks: np.ndarray | None  # bool (m, H, W), all False for good images
    nu: float = 0.1
    test_kinds: np.ndarray | None = None  # str (m,): "good" or the defect kind (its folder name)
    _features: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train.shape[-2:])

    def features(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch descriptors ``(n, D, h, w)`` of the train and test images, computed once."""
        if name not in self._features:
            if name == "random":
                extractor = PatchFeatures(self.train.shape[1:], "random", scale=1.0, seed=self.seed).eval()
            else:
                extractor = build_patch_features(name, self.train.shape[1:], pretrained=True)
            self._features[name] = (
                patch_descriptors(extractor, self.train, CHUNK),
                patch_descriptors(extractor, self.test, CHUNK),
            )
        return self._features[name]


@dataclass
class InspectionOutput:
    test_scores: np.ndarray  # (m,) higher = more normal
    threshold: float  # test images scoring below it are flagged
    maps: np.ndarray | None  # (m, H, W) higher = more abnormal
    memory_bytes: int  # what the fitted model holds (memory bank, centres, statistics)
    extra: dict[str, Any] = field(default_factory=dict)


class InspectionMethod:
    name: str
    description: str

    def run(self, task: InspectionTask) -> InspectionOutput:
        raise NotImplementedError


def _bytes(*tensors: torch.Tensor) -> int:
    return int(sum(t.numel() * t.element_size() for t in tensors))


def _patches(features: torch.Tensor) -> torch.Tensor:
    return features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])


def _nearest_distance(queries: torch.Tensor, bank: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    squared = (bank * bank).sum(1)
    parts = []
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        d2 = (q * q).sum(1, keepdim=True) - 2 * q @ bank.T + squared
        parts.append(d2.min(1).values.clamp(min=0).sqrt())
    return torch.cat(parts)


def _region_output(task, train_regions, test_regions, memory, extra=None) -> InspectionOutput:
    """Image score = minus the worst region's anomaly; threshold from the training images."""
    train_scores = -train_regions.flatten(1).max(1).values.double().numpy()
    test_scores = -test_regions.flatten(1).max(1).values.double().numpy()
    maps = smooth_maps(test_regions.float(), task.image_size).numpy()
    return InspectionOutput(test_scores, nu_quantile(train_scores, task.nu), maps, memory, extra or {})


class PatchOCNNMethod(InspectionMethod):
    name = "patch-ocnn"
    description = "the local detector: kernel OC-NN over lite0 patch features (product default)"

    def __init__(self, name: str | None = None, **params: Any):
        self.params = params
        if name:
            settings = ", ".join(f"{k}={v}" for k, v in params.items())
            self.name, self.description = name, f"the local detector with {settings}"

    def run(self, task: InspectionTask) -> InspectionOutput:
        detector = OneClassDetector(
            **{"encoder": "lite0", **self.params}, seed=task.seed, nu=task.nu, device="cpu", quiet=True
        )
        detector.fit(task.train)
        scores, maps = detector.scores_and_maps(task.test)
        # units, whitening, map statistics, the discriminator and the defect branch (its own blocks)
        branch = detector.encoder_.defect_branch
        memory = _bytes(
            *detector.head_.state_tensors().values(), *(branch.state_dict().values() if branch else ())
        )
        units = detector.head_.net_.units
        return InspectionOutput(scores, detector.threshold_, maps, memory, {"units": units})


class PatchCoreMethod(InspectionMethod):
    """Nearest neighbour in a greedy coreset of ``share`` of the training patches, chosen as
    PatchCore chooses it: greedy k-centre on a random projection (here to 32 dimensions, of a
    random pool of at most 200,000 patches, for speed on a CPU)."""

    def __init__(self, share: float = 0.01, name: str = "patchcore"):
        self.share, self.name = share, name
        self.description = f"PatchCore-style: nearest of a {share:.0%} coreset of lite0 patches, worst region"

    def run(self, task: InspectionTask) -> InspectionOutput:
        train, test = task.features("lite0")
        patches = _patches(train)
        generator = torch.Generator().manual_seed(task.seed)
        pool = torch.randperm(len(patches), generator=generator)[:200_000]
        projection = torch.randn(patches.shape[1], 32, generator=generator) / 32**0.5
        chosen = greedy_coreset(patches[pool] @ projection, max(1, int(self.share * len(patches))), generator)
        bank = patches[pool[chosen]]
        n, _, h, w = train.shape
        train_regions = _nearest_distance(patches, bank).view(n, h, w)  # in-sample, as PatchCore does
        test_regions = _nearest_distance(_patches(test), bank).view(len(test), h, w)
        return _region_output(task, train_regions, test_regions, _bytes(bank), {"bank": len(bank)})


def padim_regions(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A Gaussian per position of feature maps ``train`` ``(n, D, h, w)``: the Mahalanobis
    distance of every position of ``train`` and ``test`` to its position's Gaussian, ``(n, h, w)``
    and ``(m, h, w)``, and the bytes the Gaussians take."""
    n, dim, h, w = train.shape
    mean = train.mean(0)
    centred = (train - mean).permute(2, 3, 0, 1).reshape(h * w, n, dim).double()
    cov = centred.transpose(1, 2) @ centred / max(1, n - 1) + 0.01 * torch.eye(dim, dtype=torch.float64)
    factor = torch.linalg.cholesky(cov)

    def distances(features: torch.Tensor) -> torch.Tensor:
        y = (features - mean).permute(2, 3, 1, 0).reshape(h * w, dim, -1).double()
        z = torch.linalg.solve_triangular(factor, y, upper=False)
        return z.pow(2).sum(1).sqrt().T.reshape(-1, h, w).float()

    return distances(train), distances(test), _bytes(mean, cov.float())


class PaDiMMethod(InspectionMethod):
    name = "padim"
    description = "PaDiM-style: a Gaussian per position of the lite0 patch features, Mahalanobis"

    def run(self, task: InspectionTask) -> InspectionOutput:
        return _region_output(task, *padim_regions(*task.features("lite0")))


class RandomKNNMethod(InspectionMethod):
    name = "random-knn"
    description = "training-free: fixed random convolution features, nearest training patch"

    def run(self, task: InspectionTask) -> InspectionOutput:
        train, test = task.features("random")
        n, dim, h, w = train.shape
        patches = _patches(train)
        scale = patches.std(0) + 1e-6
        keep = (
            torch.randperm(len(patches), generator=torch.Generator().manual_seed(task.seed))[:30_000]
            .sort()
            .values
        )
        bank = patches[keep] / scale
        image_of = torch.arange(n).repeat_interleave(h * w)
        leave_out = _nearest_distance_without_self(patches / scale, image_of, bank, image_of[keep]).view(
            n, h, w
        )
        test_regions = _nearest_distance(_patches(test) / scale, bank).view(len(test), h, w)
        return _region_output(task, leave_out, test_regions, _bytes(bank))


def _nearest_distance_without_self(
    patches: torch.Tensor, patch_image: torch.Tensor, bank: torch.Tensor, bank_image: torch.Tensor
) -> torch.Tensor:
    """Each training patch's distance to the nearest bank patch of another image."""
    squared = (bank * bank).sum(1)
    out = torch.empty(len(patches))
    for start in range(0, len(patches), 2048):
        q = patches[start : start + 2048]
        d2 = (q * q).sum(1, keepdim=True) - 2 * q @ bank.T + squared
        d2[patch_image[start : start + 2048, None] == bank_image[None, :]] = float("inf")
        out[start : start + 2048] = d2.min(1).values.clamp(min=0).sqrt()
    return out


class ImageOCNNMethod(InspectionMethod):
    name = "ocnn-image"
    description = "the whole-image detector: VAE latent + kernel OC-NN (no maps)"

    def run(self, task: InspectionTask) -> InspectionOutput:
        detector = OneClassDetector(encoder="vae", seed=task.seed, nu=task.nu, device="cpu", quiet=True)
        detector.fit(task.train)
        net = detector.head_.net_
        return InspectionOutput(
            detector.score_samples(task.test), detector.threshold_, None, _bytes(net.V.weight, net.w.weight)
        )


class PyODMethod(InspectionMethod):
    """A PyOD detector on the pixels (scaled to [0, 1]); PyOD's scores are negated."""

    MODELS = {"iforest": "IForest", "ocsvm": "OCSVM", "knn": "KNN", "ae": "AutoEncoder"}

    def __init__(self, model: str):
        self.model = model
        self.name = f"pyod-{model}"
        self.description = f"PyOD {self.MODELS[model]} on the pixels"

    def run(self, task: InspectionTask) -> InspectionOutput:
        try:
            from pyod.models import auto_encoder, iforest, knn, ocsvm
        except ImportError as exc:
            raise OneClassError("the PyOD baselines need PyOD: pip install 'oneclass[bench]'") from exc
        build = {
            "iforest": lambda: iforest.IForest(contamination=task.nu, random_state=task.seed),
            "ocsvm": lambda: ocsvm.OCSVM(contamination=task.nu),
            "knn": lambda: knn.KNN(contamination=task.nu),
            "ae": lambda: auto_encoder.AutoEncoder(
                contamination=task.nu, random_state=task.seed, verbose=0, epoch_num=20, device="cpu"
            ),
        }[self.model]
        flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0  # noqa: E731
        torch.manual_seed(task.seed)
        model = build().fit(flat(task.train))
        train_scores = -np.asarray(model.decision_scores_, dtype=np.float64)
        test_scores = -np.asarray(model.decision_function(flat(task.test)), dtype=np.float64)
        return InspectionOutput(test_scores, nu_quantile(train_scores, task.nu), None, 0)


INSPECTION_METHODS: dict[str, InspectionMethod] = {
    m.name: m
    for m in (
        PatchOCNNMethod(),
        PatchOCNNMethod("patch-ocnn-no-synthetic", synthetic_defects=False),
        PatchOCNNMethod("patch-ocnn-no-branch", defect_branch=False),
        PatchOCNNMethod("patch-ocnn-512", hidden=512),
        PatchOCNNMethod("patch-ocnn-512-no-branch", hidden=512, defect_branch=False),
        PatchOCNNMethod("patch-ocnn-fast", encoder="lite0-fast"),
        PatchCoreMethod(),
        PaDiMMethod(),
        RandomKNNMethod(),
        ImageOCNNMethod(),
        *(PyODMethod(model) for model in PyODMethod.MODELS),
    )
}
