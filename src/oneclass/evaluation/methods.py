"""Benchmark methods. Each one turns a :class:`ClassTask` (the normal training images of one
class, the whole test split, a seed) into training and test scores plus its own threshold.

Adding a method is one small class with ``name`` and ``run(task)``, registered in ``METHODS``;
a new one-class head needs no class at all: ``HeadMethod("myhead", "ae")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ..calibration import nu_quantile
from ..detector import OneClassDetector
from ..devices import resolve_device
from ..heads import head_class
from ..networks import part_kinds
from ..params import construct
from ..timing import Stopwatch
from ..training.autoencoder import reconstruction_scores
from ..training.deep_svdd import deep_svdd_scores, train_deep_svdd


@dataclass
class BenchConfig:
    """Settings shared by every method of a run, so that all see the same data and encoders."""

    encoder_epochs: int = 15  # the reconstruction encoders (ae, vae)
    ssl_epochs: int | None = None  # the ssl encoder (None: the detector's default)
    head_epochs: int | None = None  # None: each head's own default
    svdd_epochs: int = 15
    latent_dim: int = 32
    nu: float = 0.1
    batch_size: int = 200  # ae/vae encoders and the heads
    encoder_lr: float = 1e-3
    svdd_lr: float = 1e-4
    device: str = "cpu"
    train_limit: int | None = None
    test_limit: int | None = None
    split: str = "test"  # "validation": evaluate on held-out training images (protocol.py)


def has_ssl_part(kind: str) -> bool:
    """Whether encoder ``kind`` trains an ssl network (ssl, ssl-fast and the joint encoders):
    such encoders keep their own schedule unless --ssl-epochs is given."""
    return "ssl" in part_kinds(kind)


@dataclass
class ClassTask:
    """One normal class of one dataset under one seed, with encoders and latents cached."""

    dataset: str
    normal_class: int
    seed: int
    train_x: np.ndarray  # uint8 (n, C, H, W), normal class only
    test_x: np.ndarray  # uint8 (m, C, H, W), the whole test split
    test_is_normal: np.ndarray  # bool (m,)
    config: BenchConfig
    shared_seconds: dict[str, float] = field(default_factory=dict)
    _encoders: dict[str, OneClassDetector] = field(default_factory=dict)
    _latents: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def encoder(self, kind: str) -> OneClassDetector:
        """A detector whose ``kind`` encoder is trained on this task's normal images (once)."""
        if kind not in self._encoders:
            clock = Stopwatch()
            # the ssl encoders train with their own defaults unless --ssl-epochs is given
            schedule = (
                {"encoder_epochs": self.config.ssl_epochs}
                if has_ssl_part(kind)
                else {"encoder_epochs": self.config.encoder_epochs, "batch_size": self.config.batch_size}
            )
            detector = OneClassDetector(
                encoder=kind,
                latent_dim=self.config.latent_dim,
                **schedule,
                encoder_lr=self.config.encoder_lr,
                seed=self.seed,
                device=self.config.device,
                quiet=True,
            )
            self._encoders[kind] = detector.fit_encoder(self.train_x)
            self.shared_seconds[f"{kind}_encoder_s"] = clock.seconds()
        return self._encoders[kind]

    def features(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(train, test) feature matrices: an encoder's latents, or raw pixels scaled to [0, 1]."""
        if kind not in self._latents:
            if kind == "pixels":
                flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0  # noqa: E731
                self._latents[kind] = (flat(self.train_x), flat(self.test_x))
            else:
                detector = self.encoder(kind)
                self._latents[kind] = (detector.transform(self.train_x), detector.transform(self.test_x))
        return self._latents[kind]


@dataclass
class MethodOutput:
    train_scores: np.ndarray
    test_scores: np.ndarray
    threshold: float
    extra: dict[str, Any] = field(default_factory=dict)


class Method:
    name: str
    description: str
    uses: tuple[str, ...] = ()  # shared encoders this method needs (their time is reported apart)
    default: bool = True  # run when no --methods are named

    def run(self, task: ClassTask) -> MethodOutput:
        raise NotImplementedError


class HeadMethod(Method):
    """A one-class head on fixed features (an encoder's latents or raw pixels)."""

    def __init__(
        self, head: str, features: str, name: str | None = None, default: bool = True, **head_params: Any
    ):
        self.head, self.feature_kind, self.head_params = head, features, head_params
        self.name = name or f"{head}@{features}"
        self.description = f"{head} head on {features} features"
        self.default = default
        self.uses = () if features == "pixels" else (features,)

    def run(self, task: ClassTask) -> MethodOutput:
        train_z, test_z = task.features(self.feature_kind)
        head = construct(
            head_class(self.head),
            nu=task.config.nu,
            epochs=task.config.head_epochs,
            seed=task.seed,
            batch_size=task.config.batch_size,
            device=task.config.device,
            **self.head_params,
        ).fit(train_z)
        # heads that score their own training points specially (kNN: leave-one-out) expose them
        train_scores = getattr(head, "train_scores_", None)
        if train_scores is None:
            train_scores = head.score_samples(train_z)
        return MethodOutput(train_scores, head.score_samples(test_z), head.threshold_)


class OwnScoreMethod(Method):
    """An encoder's own anomaly score: the report series' earlier detectors (AE reconstruction
    error, VAE negative ELBO) and the ssl encoder's GEOM-style transformation likelihood."""

    NAMES: ClassVar[dict[str, tuple[str, str]]] = {
        "ae": ("ae-recon", "autoencoder reconstruction error"),
        "vae": ("vae-elbo", "VAE negative ELBO"),
        "ssl": ("ssl-geom", "ssl encoder: log-likelihood of the true rotation/mirror (GEOM's score)"),
    }

    def __init__(self, kind: str):
        self.kind = kind
        self.name, self.description = self.NAMES[kind]
        self.uses = (kind,)

    def run(self, task: ClassTask) -> MethodOutput:
        model = task.encoder(self.kind).encoder_
        device = resolve_device(task.config.device)
        train = -reconstruction_scores(model, task.train_x, device).astype(np.float64)
        test = -reconstruction_scores(model, task.test_x, device).astype(np.float64)
        return MethodOutput(train, test, nu_quantile(train, task.config.nu))


class DeepSVDDMethod(Method):
    """One-class Deep SVDD on the bias-free LeNet encoder, pretrained as the shared autoencoder."""

    name = "deep-svdd"
    description = "one-class Deep SVDD (AE-pretrained LeNet encoder, centre from the first pass)"
    uses = ("ae",)

    def run(self, task: ClassTask) -> MethodOutput:
        device = resolve_device(task.config.device)
        torch.manual_seed(task.seed)
        net, centre, history = train_deep_svdd(
            task.encoder("ae").encoder_,
            task.train_x,
            epochs=task.config.svdd_epochs,
            batch_size=task.config.batch_size,
            lr=task.config.svdd_lr,
            weight_decay=1e-6,
            seed=task.seed,
            device=device,
        )
        train = deep_svdd_scores(net, centre, task.train_x, device)
        test = deep_svdd_scores(net, centre, task.test_x, device)
        return MethodOutput(
            train, test, nu_quantile(train, task.config.nu), {"final_loss": history[-1]["loss"]}
        )


class DetectorMethod(Method):
    """The product as a user gets it, ``OneClassDetector(encoder=...).fit(train)``: its own
    encoder, the OC-NN head, and its threshold (from held-out images where the detector holds
    some out: the ssl encoder, small data)."""

    def __init__(self, encoder: str, description: str, default: bool = True):
        self.encoder, self.description, self.default = encoder, description, default
        self.name = f"ocnn@{encoder}"

    def run(self, task: ClassTask) -> MethodOutput:
        # --ssl-epochs (None: the detector's defaults) trains every network of an ssl detector
        epochs = {"encoder_epochs": task.config.ssl_epochs} if has_ssl_part(self.encoder) else {}
        detector = OneClassDetector(
            encoder=self.encoder,
            nu=task.config.nu,
            seed=task.seed,
            device=task.config.device,
            quiet=True,
            **epochs,
        ).fit(task.train_x)
        # the patch head keeps its out-of-fold image scores; others score the training images
        train_scores = getattr(detector.head_, "train_image_scores_", None)
        if train_scores is None:
            train_scores = detector.score_samples(task.train_x)
        extra = {"threshold_images": getattr(detector, "threshold_images_", 0)}
        return MethodOutput(train_scores, detector.score_samples(task.test_x), detector.threshold_, extra)


def _registry(*methods: Method) -> dict[str, Method]:
    return {m.name: m for m in methods}


METHODS: dict[str, Method] = _registry(
    DetectorMethod(
        "ssl-fast+ae+hog",
        "the default detector: the ssl encoder's single-pass student, the autoencoder and "
        "histograms of oriented gradients (nothing trained, their principal components fitted), "
        "an OC-NN on each, Fisher's combination, held-out threshold",
    ),
    DetectorMethod(
        "ssl-fast+ae",
        "the default before: the ssl encoder's single-pass student and the autoencoder, an "
        "OC-NN on each, Fisher's combination, held-out threshold",
    ),
    DetectorMethod(
        "ssl+ae",
        "ssl encoder (rotations and mirrors, 8 passes per image) and autoencoder, an OC-NN on "
        "each, Fisher's combination, held-out threshold",
    ),
    DetectorMethod("ssl", "ssl encoder (rotations and mirrors), OC-NN, held-out threshold"),
    DetectorMethod(
        "ssl-fast",
        "the ssl encoder's single-pass student, OC-NN, held-out threshold",
        default=False,
    ),
    DetectorMethod(
        "hog",
        "histograms of oriented gradients (their principal components), OC-NN: the third part alone",
        default=False,
    ),
    DetectorMethod(
        "ssl-fast+ae+lite0-global",
        "ssl-fast+ae with ImageNet features of the whole image as a third part (EfficientNet-Lite0, "
        "pretrained), three OC-NNs, Fisher's combination, held-out threshold (not in the default "
        "run: its ImageNet features take about a minute per class on 2 cores)",
        default=False,
    ),
    HeadMethod("ocnn", "ae"),
    HeadMethod("ocnn", "vae"),
    HeadMethod("ocnn-paper", "ae"),
    HeadMethod("ocnn-paper", "vae"),
    HeadMethod("ocsvm", "ae"),
    HeadMethod("ocsvm", "vae"),
    HeadMethod("ocsvm", "pixels"),
    HeadMethod("iforest", "ae"),
    HeadMethod("knn", "ae"),
    HeadMethod("knn", "vae"),
    # the three heads on the same ssl features (the shared encoder, trained on all training
    # images): the head's share of the gain, apart from the feature's
    HeadMethod("ocnn", "ssl", name="ocnn-head@ssl", default=False),
    HeadMethod("knn", "ssl"),
    HeadMethod("ocsvm", "ssl"),
    # and on the single-pass student's 64 outputs (the default's shape features)
    HeadMethod("ocnn", "ssl-fast", name="ocnn-head@ssl-fast", default=False),
    HeadMethod("knn", "ssl-fast"),
    HeadMethod("ocsvm", "ssl-fast"),
    # and on the gradient histograms' 32 principal components (the default's third part)
    HeadMethod("ocnn", "hog", name="ocnn-head@hog", default=False),
    HeadMethod("knn", "hog", default=False),
    HeadMethod("ocsvm", "hog", default=False),
    # the pretrained rows: ImageNet EfficientNet-Lite0's deep features of the whole image (DN2's
    # recipe), and its mid-level patch features averaged over the image
    *(HeadMethod(head, "lite0-global", default=False) for head in ("ocnn", "knn", "ocsvm")),
    *(
        HeadMethod(head, "lite0", name=f"{head}@lite0-pooled", default=False)
        for head in ("ocnn", "knn", "ocsvm")
    ),
    OwnScoreMethod("ae"),
    OwnScoreMethod("vae"),
    OwnScoreMethod("ssl"),
    DeepSVDDMethod(),
    DetectorMethod(
        "lite0",
        "the local detector: patch OC-NN on lite0 patch features (not in the default run: "
        "about 30 s per class on 2 cores; name it with --methods)",
        default=False,
    ),
)
