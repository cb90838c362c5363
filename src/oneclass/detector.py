"""The detector facade: encoder + one-class head + threshold, in scikit-learn's style.

Every user-facing path (CLI, Python API, experiments, benchmark, export) scores through
:class:`OneClassDetector`, so a score means the same thing everywhere: higher = more normal,
``decision_function = score_samples - threshold_`` is negative for abnormal images, and
``predict`` returns +1 (normal) / -1 (abnormal). Thresholds and p-values come from
``calibration.py``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__, calibration
from .calibration import NU
from .data.arrays import check_images
from .data.synthetic_defects import painted_copies
from .devices import DEVICES, check_memory, resolve_device
from .errors import OneClassError
from .heads import HEADS, Head, head_class
from .heads.combination import FisherCombination
from .heads.ocnn.patch import PatchOCNN
from .heads.ocnn.patch import fit_bytes as patch_fit_bytes
from .networks import (
    DEFAULT_BATCH,
    DEFAULT_EPOCHS,
    ENCODERS,
    PATCH_ENCODERS,
    PATCH_HEAD_UNITS,
    STUDENT_KIND,
    build_encoder,
    build_patch_features,
    check_channels,
    component_kinds,
    feature_bytes,
    holds_out_threshold,
    images_per_pass,
    load_pretrained_parts,
    part_kinds,
    patch_descriptors,
    projected_parts,
    scoring_batch,
    sizing_features,
    trained_parts,
    training_bytes,
)
from .networks.efficientnet import VARIANTS as LITE_VARIANTS
from .networks.global_features import KIND as GLOBAL_KIND
from .networks.global_features import scoring_bytes as global_scoring_bytes
from .params import Boolean, Estimator, Interval, Options, Param, PositiveInts, construct
from .storage import load_tensors, save_tensors
from .timing import Stopwatch
from .training import distributed
from .training.autoencoder import encode, train_autoencoder
from .training.checkpoint import Checkpointer
from .training.defect_tuning import tune_defect_branch, tuning_bytes, tuning_images
from .training.loop import training_schedule

# 2: the kernel OC-NN scores log y_hat and sets its threshold out of fold;
# 3: the local detector's maps are standardised per pixel (global models of version 2 still load)
FORMAT_VERSION = 3
CONFIG_FORMAT = "oneclass-detector"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SCORE_CHUNK = 1024  # images scored per chunk: memory stays flat however many are passed
# Below SMALL_DATA training images the threshold comes from held-out images (THRESHOLD_SHARE of
# them, never trained on): an encoder trained on a few hundred images knows them better than any
# new one, and out-of-fold head scores cannot undo that (BENCHMARKS.md, "False alarms").
SMALL_DATA = 2000
THRESHOLD_SHARE = 0.2
# painted copies of each image the local detector's discriminator learns from: 3 gained 0.3 / 0.3 /
# 0.8 image AUROC over 1 in three seeds of the validation folds (benchmarks/defaults/patch-copies*.md)
PAINTED_COPIES = 3


class OneClassDetector(Estimator):
    """Deep one-class detector: a convolutional AE/VAE encoder and a one-class head on its latent.

    Parameters (declared in ``parameters``, with the constraints the command line also uses)
    ----------
    encoder : "ssl" (transformation prediction: rotations and mirrors), "ssl-fast" (a single-pass
        student distilled from it), "vae" or "ae" (trained to reconstruct), "ssl+ae" /
        "ssl-fast+ae" (an ssl encoder and the autoencoder, one head on each, combined by Fisher's
        method), all trained on the normal images; "hog" (histograms of oriented gradients,
        nothing trained, their principal components fitted), "ssl-fast+ae+hog" (them as a third
        part beside ssl-fast+ae); "lite0-global" (ImageNet features of the whole image,
        pretrained, nothing trained), "ssl-fast+ae+lite0-global" (them as a third part beside
        ssl-fast+ae); "lite0" (pretrained patch features).
    latent_dim : size of the latent vector the head sees.
    channels : convolution channels per encoder stage (None: the encoder's default).
    head : name of the one-class head (see ``oneclass.heads.HEADS``): "ocnn" (default, the kernel
        OC-NN), "ocnn-paper" (the OC-NN paper's network), "ocsvm", "knn", "iforest".
    nu : share of training data allowed on the abnormal side, in (0, 1].
    hidden : hidden units of an OC-NN head (None: the default, 2048 / 256; lite0-fast 1024).
    encoder_epochs, head_epochs : training epochs of each part (None: the encoder's / head's default).
    batch_size, encoder_lr, head_lr, weight_decay : optimiser settings (Adam; head_lr None: the
        head's default).
    synthetic_defects : a local detector also learns from synthetic defects painted on a part of
        the training images (a discriminator beside the patch OC-NN, ``heads/defects.py``).
    defect_branch : with ``synthetic_defects``, also fine-tune copies of the backbone's later blocks
        on them (a third map, ``training/defect_tuning.py``): more accurate, a longer fit.
    seed : one seed drives every random generator; the same seed gives the same scores.
    device : "auto", "cpu", "cuda" or "mps".
    quiet : no progress bars.
    """

    parameters: ClassVar[dict[str, Param]] = {
        "encoder": Param(
            Options({**ENCODERS, **PATCH_ENCODERS}),
            "Feature extractor: ssl, a small network trained on the normal images to tell their "
            "rotations and mirror images apart (whole-image scores that see shape); ssl-fast: a "
            "student of it that sees each image once (scoring several times faster); a convolutional "
            "VAE (posterior mean as latent) or autoencoder trained to redraw them; ssl+ae (ssl-fast+ae): "
            "the ssl (ssl-fast) encoder and the autoencoder, a head on each, their scores combined "
            "(shape and texture); hog: histograms of oriented gradients (edges by orientation, "
            "nothing trained); ssl-fast+ae+hog: them as a third part beside ssl-fast+ae; "
            "lite0-global: ImageNet EfficientNet-Lite0's deep features of the whole image "
            "(pretrained, nothing trained; DN2's recipe); ssl-fast+ae+lite0-global: them as a third "
            "part beside ssl-fast+ae (more accurate on both data sets, scoring about 25 times "
            "slower); "
            "or lite0: ImageNet EfficientNet-Lite0 patch features (a score per region: anomaly maps, "
            "local defects); lite0-fast: every other region of them and 1024 units (about twice the "
            "scoring speed, coarser maps). fit's default: lite0 for folders, ssl-fast+ae+hog for "
            "mnist and fashion-mnist.",
        ),
        "latent_dim": Param(Interval(int, 1), "Size of the latent vector (ae, vae)."),
        "channels": Param(
            PositiveInts(none_ok=True),
            "Convolution channels per encoder stage [the encoder's default: 8,4 ae/vae; 16,32,64,64 ssl].",
        ),
        "head": Param(Options(HEADS), "One-class head on the latent."),
        "nu": Param(NU, "Share of training data allowed on the abnormal side, in (0, 1]."),
        "hidden": Param(
            Interval(int, 1, none_ok=True),
            "Hidden units of the OC-NN [head's default: 2048 ocnn, 256 ocnn-paper].",
        ),
        "encoder_epochs": Param(
            Interval(int, 1, none_ok=True),
            "Encoder training epochs [the encoder's default: 10 ae/vae, 3 ssl, 4 for ssl-fast's "
            "student; a joint or distilled encoder: each network's, and a value given applies to all].",
        ),
        "head_epochs": Param(
            Interval(int, 1, none_ok=True),
            "OC-NN training epochs [head's default: ocnn at most 100 Frank-Wolfe passes, stopping at "
            "its tolerance; ocnn-paper 25].",
        ),
        "batch_size": Param(
            Interval(int, 1, none_ok=True),
            "Mini-batch size [the encoder's default: 200 ae/vae, 64 ssl, 16 ssl-fast's student; "
            "several networks: each one's].",
        ),
        "encoder_lr": Param(Interval(float, 0, closed="neither"), "Encoder learning rate (Adam)."),
        "head_lr": Param(
            Interval(float, 0, closed="neither", none_ok=True), "OC-NN learning rate [head's default]."
        ),
        "weight_decay": Param(Interval(float, 0), "Encoder weight decay."),
        "synthetic_defects": Param(
            Boolean(),
            "Local detector (lite0): also learn from synthetic defects (stains, blur, grain, foreign "
            "texture, thin lines) painted on four fifths of the training images, a discriminator beside "
            "the patch OC-NN.",
        ),
        "defect_branch": Param(
            Boolean(),
            "Local detector with synthetic defects: also fine-tune a copy of the backbone's later blocks "
            "to tell them apart, a third map (more accurate; 7-18 s more per fit of 64x64 images, 2 cores).",
        ),
        "seed": Param(
            Interval(int, 0), "Seed of every random generator; the same seed gives the same scores."
        ),
        "device": Param(Options(DEVICES), "Where to train: auto picks a GPU when there is one."),
    }

    def __init__(
        self,
        encoder: str = "vae",
        latent_dim: int = 32,
        channels: tuple[int, ...] | None = None,
        head: str = "ocnn",
        nu: float = 0.1,
        hidden: int | None = None,
        encoder_epochs: int | None = None,
        head_epochs: int | None = None,
        batch_size: int | None = None,
        encoder_lr: float = 1e-3,
        head_lr: float | None = None,
        weight_decay: float = 1e-6,
        synthetic_defects: bool = True,
        defect_branch: bool = True,
        seed: int = 0,
        device: str = "auto",
        quiet: bool = False,
    ):
        self.encoder = encoder
        self.latent_dim = latent_dim
        self.channels = tuple(channels) if channels else None
        self.head = head
        self.nu = nu
        self.hidden = hidden
        self.encoder_epochs = encoder_epochs
        self.head_epochs = head_epochs
        self.batch_size = batch_size
        self.encoder_lr = encoder_lr
        self.head_lr = head_lr
        self.weight_decay = weight_decay
        self.synthetic_defects = synthetic_defects
        self.defect_branch = defect_branch
        self.seed = seed
        self.device = device
        self.quiet = quiet
        self.validate_params()
        check_channels(self.encoder, self.channels)
        resolve_device(self.device)
        self.history_: dict[str, list[dict]] = {"encoder": [], "head": []}
        self.timings_: dict[str, float] = {}

    # -- parameters ------------------------------------------------------------------------------

    def _device(self) -> torch.device:
        return resolve_device(self.device)

    def training_device(self) -> torch.device:
        """Where training runs; under torchrun this joins the process group (NCCL on CUDA,
        gloo on CPU) and each process trains on its shard of the data."""
        return distributed.setup(self._device())

    def _new_head(self) -> Head:
        """The head the features are scored by: one per feature group of a joint encoder,
        combined by Fisher's method."""
        group_sizes = getattr(self.encoder_, "group_sizes", None)
        if group_sizes is None:
            return self._single_head()
        return FisherCombination([self._single_head() for _ in group_sizes], group_sizes, nu=self.nu)

    def _single_head(self) -> Head:
        return construct(
            head_class(self.head),
            nu=self.nu,
            hidden=self.hidden,
            epochs=self.head_epochs,
            batch_size=self.batch_size or DEFAULT_BATCH["ae"],
            lr=self.head_lr,
            seed=self.seed,
            device=self.device,
            quiet=self.quiet,
        )

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, X: np.ndarray, y: None = None) -> OneClassDetector:
        """Train the encoder and then the head on normal images ``X``.

        ``X``: uint8 ``(n, H, W)`` / ``(n, C, H, W)``, or float in [0, 1]. ``y`` is ignored.
        """
        split = self.threshold_split(len(X))
        if split is None:
            return self.fit_encoder(X).fit_head(X)
        trained, held_out = X[split[0]], X[split[1]]
        return self.fit_encoder(trained).fit_head(trained).threshold_from(held_out)

    def threshold_split(self, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(train, held_out)`` indices for ``n`` training images when the threshold should come
        from held-out images (fewer than ``SMALL_DATA``, or an encoder that always holds out:
        ``networks.holds_out_threshold``), else None (out-of-fold scores suffice). The held-out
        share is ``THRESHOLD_SHARE``, at least 1/nu images, at most half."""
        held = max(int(np.ceil(1.0 / self.nu)), int(round(THRESHOLD_SHARE * n)))
        large = n >= SMALL_DATA and not holds_out_threshold(self.encoder)
        if large or 2 * held > n:
            return None
        order = np.random.default_rng([self.seed, 104729]).permutation(n)
        return np.sort(order[held:]), np.sort(order[:held])

    def threshold_from(self, X: np.ndarray) -> OneClassDetector:
        """Set the threshold from normal images ``X`` that neither the encoder nor the head saw:
        the conformal threshold at level nu (a new normal image falls below it with probability
        at most nu, close to nu, if it is exchangeable with ``X``)."""
        return self.threshold_from_scores(self.score_samples(X))

    def threshold_from_scores(self, scores: np.ndarray) -> OneClassDetector:
        """``threshold_from`` with the images' ``score_samples`` already computed ``(n,)``."""
        self._check_fitted()
        scores = np.sort(np.asarray(scores, dtype=np.float64))
        self.head_.threshold_ = calibration.conformal_threshold(scores, self.nu)
        self.threshold_images_ = len(scores)
        return self

    def fit_encoder(
        self,
        X: np.ndarray,
        on_epoch: Callable[[dict], None] | None = None,
        checkpoint: Checkpointer | None = None,
    ) -> OneClassDetector:
        """Train only the encoder (e.g. on all data, as in the report, before ``fit_head``).

        With a ``checkpoint`` the encoder's training is saved every epoch and resumed from it.
        """
        images = check_images(X)
        clock = Stopwatch()
        self.image_shape_ = tuple(int(s) for s in images.shape[1:])
        if self.local:  # pretrained patch features: nothing to train
            self.encoder_ = build_patch_features(self.encoder, self.image_shape_, pretrained=True)
            self.encoder_schedule_ = None
            self.history_["encoder"] = []
            self.timings_["encoder_fit_s"] = clock.seconds()
            return self
        schedules = self.encoder_schedules(len(images))
        self.check_memory(self.image_shape_, len(images))
        torch.manual_seed(self.seed)
        self.encoder_ = build_encoder(self.encoder, self.image_shape_, self.latent_dim, self.channels)
        load_pretrained_parts(self.encoder_)
        parts = trained_parts(self.encoder_)
        joint = len(parts) > 1  # the records and checkpoints of each part say which part they are
        self.history_["encoder"] = []
        for kind, network in parts:
            batch_size, epochs = schedules[kind]
            targets = None
            if kind == STUDENT_KIND:  # its targets are the trained teacher's features
                device, batch = self.training_device(), scoring_batch(network.teacher.kind, SCORE_CHUNK)
                features = encode(network.teacher, images, device, batch)
                network.prepare_distillation(features)
                targets = network.copy_targets(features)
            records = train_autoencoder(
                network,
                images,
                epochs=epochs,
                batch_size=batch_size,
                lr=self.encoder_lr,
                weight_decay=self.weight_decay,
                seed=self.seed,
                device=self.training_device(),
                quiet=self.quiet,
                on_epoch=_tagged(on_epoch, kind) if joint else on_epoch,
                checkpoint=checkpoint.part(kind) if joint and checkpoint else checkpoint,
                targets=targets,
            )
            self.history_["encoder"] += [{"part": kind, **r} for r in records] if joint else records
        for part in projected_parts(self.encoder_):  # fitted, not trained: a pass over the images
            batch = scoring_batch(part.kind, SCORE_CHUNK)
            part.fit_projection(encode(part.histograms, images, self.training_device(), batch))
        self.encoder_schedule_ = _schedule_record(schedules)
        self.encoder_.cpu()
        self.timings_["encoder_fit_s"] = clock.seconds()
        return self

    def encoder_schedules(self, n: int) -> dict[str, tuple[int, int]]:
        """``{part: (batch size, epochs)}``: how each network of the encoder (one, or the joint
        encoder's parts) trains ``n`` images: ``batch_size`` and ``encoder_epochs`` as asked
        (for every part), else the part's defaults; for few images a smaller batch and more
        epochs, so that training takes enough steps (``training.loop.training_schedule``)."""
        # a pretrained (local) encoder trains nothing: its schedule only sizes the memory check
        return {
            kind: training_schedule(
                n,
                self.batch_size or DEFAULT_BATCH.get(kind, DEFAULT_BATCH["ae"]),
                self.encoder_epochs or DEFAULT_EPOCHS.get(kind, DEFAULT_EPOCHS["ae"]),
            )
            for kind in part_kinds(self.encoder)
        }

    def check_memory(self, image_shape: tuple[int, ...], n_images: int, images_in_memory: int = 0) -> None:
        """Refuse, before any work, an image size or batch that would not fit in memory: the
        largest training step for ``n_images`` training images plus ``images_in_memory`` uint8
        images held at once."""
        size = "x".join(str(s) for s in image_shape[1:])
        if self.local:
            sizes = sizing_features(self.encoder, tuple(image_shape))
            dim, height, width = sizes.descriptor_shape()
            hidden = self.hidden or PATCH_HEAD_UNITS[self.encoder]
            per_pass = images_per_pass(image_shape, self._device())
            needed = feature_bytes(self.encoder, tuple(image_shape), per_pass)
            needed += patch_fit_bytes(dim, height * width, hidden)
            if self.synthetic_defects and self.defect_branch:  # the branch's tuning, before the head's fit
                needed += tuning_bytes(sizes.first_tap_size(), image_shape, PAINTED_COPIES)
            what = f"patch features of {size} images ({per_pass} at a time) and the patch head's fit"
        else:
            needed, batch_size = max(
                (
                    (training_bytes(kind, tuple(image_shape), self.channels, batch), batch)
                    for kind, (batch, _) in self.encoder_schedules(n_images).items()
                ),
                default=(0, 0),
            )
            steps = [f"training on {size} images with batch {batch_size}"] if batch_size else []
            if GLOBAL_KIND in component_kinds(self.encoder):
                batch = scoring_batch(self.encoder, SCORE_CHUNK)
                needed = max(needed, global_scoring_bytes(tuple(image_shape), batch))
                steps.append(f"ImageNet features of {size} images, {batch} at a time")
            what = " and ".join(steps)
        needed += images_in_memory * int(np.prod(image_shape))
        check_memory(needed, self._device(), what, "lower --image-size or --batch-size")

    @property
    def local(self) -> bool:
        """True when the detector scores every region (patch features, anomaly maps)."""
        return self.encoder in PATCH_ENCODERS

    def fit_head(self, X: np.ndarray, on_epoch: Callable[[dict], None] | None = None) -> OneClassDetector:
        """Train only the head on the latents of normal images ``X`` (encoder stays fixed)."""
        self._check_encoder()
        clock = Stopwatch()
        if self.local:
            images = self._images(X)
            head = construct(
                PatchOCNN,
                nu=self.nu,
                hidden=self.hidden or PATCH_HEAD_UNITS[self.encoder],
                epochs=self.head_epochs,
                synthetic_defects=self.synthetic_defects,
                seed=self.seed,
                device=self.device,
            )
            device = self.training_device()  # under torchrun, this process's GPU
            self.head_ = head.fit(
                lambda index: self._patch_features(images[index], device),
                len(images),
                self.image_shape_[1:],
                on_epoch,
                painted_of=lambda index: self._painted_features(images, index, device),
                tune_features=(lambda index: self._tune_features(images[index], device))
                if self.defect_branch
                else None,
            )
            self.history_["head"] = list(self.head_.history_)
            self.timings_["head_fit_s"] = clock.seconds()
            return self
        latents = self.transform(X)
        self.timings_["encode_s"] = clock.seconds()
        clock = Stopwatch()
        head = self._new_head()
        accepts_callback = "on_epoch" in inspect.signature(head.fit).parameters  # the OC-NNs log epochs
        self.head_ = head.fit(latents, on_epoch=on_epoch) if accepts_callback else head.fit(latents)
        self.history_["head"] = list(getattr(self.head_, "history_", []))
        self.timings_["head_fit_s"] = clock.seconds()
        return self

    # -- scoring ---------------------------------------------------------------------------------

    def _check_encoder(self) -> None:
        if not hasattr(self, "encoder_"):
            raise OneClassError("this detector is not fitted yet: call fit(X) first")

    def _check_fitted(self) -> None:
        self._check_encoder()
        if not hasattr(self, "head_"):
            raise OneClassError("the head is not fitted yet: call fit(X) or fit_head(X) first")

    def _images(self, X: np.ndarray) -> np.ndarray:
        images = check_images(X)
        if tuple(images.shape[1:]) != self.image_shape_:
            raise OneClassError(
                f"X has images of shape {tuple(images.shape[1:])}, the detector was fitted on "
                f"{self.image_shape_} (channels, height, width)"
            )
        return images

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Latent vectors ``(n, latent_dim)`` of images ``X`` (a local detector: the mean patch
        descriptor of each image, ``(n, D)``)."""
        self._check_encoder()
        if self.local:
            chunks = self._chunks(self._images(X))
            dim = self.encoder_.dim  # the defect branch's logit, if any, left out
            return np.concatenate(
                [self._patch_features(part)[:, :dim].mean((2, 3)).cpu().numpy() for part in chunks]
            )
        return encode(self.encoder_, self._images(X), self._device(), self._scoring_batch())

    def _scoring_batch(self) -> int:
        return scoring_batch(self.encoder, SCORE_CHUNK)

    def _patch_features(self, images: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
        """Patch descriptors ``(n, D, h, w)`` of validated images, computed and kept on ``device``
        (the detector's when None)."""
        device = self._device() if device is None else device
        return patch_descriptors(self.encoder_, images, images_per_pass(self.image_shape_, device), device)

    def _tune_features(self, images: np.ndarray, device: torch.device) -> bool:
        """Fine-tune the patch encoder's defect branch (the local detector's third member,
        ``training/defect_tuning.py``) on some of ``images``; True when it has one afterwards."""
        if self.encoder_.backbone_name not in LITE_VARIANTS:
            return False
        chosen = tuning_images(images, self.encoder_.first_tap_size(), PAINTED_COPIES, self.seed)
        self.tuning_images_ = len(chosen)
        branch = tune_defect_branch(self.encoder_, images[chosen], self.seed, device, PAINTED_COPIES)
        self.encoder_.cpu()
        return branch is not None

    def _painted_features(
        self, images: np.ndarray, index: np.ndarray, device: torch.device
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Patch descriptors (on ``device``) of ``PAINTED_COPIES`` copies of ``images[index]`` with
        a synthetic defect painted on each image of each copy, and the defects' masks
        ``(PAINTED_COPIES * k, H, W)``; the same defects for the same seed and images."""
        painted, masks = painted_copies(images[index], [self.seed, int(index[0])], PAINTED_COPIES)
        return self._patch_features(painted, device), masks

    def _local_scores(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image scores ``(n,)`` and anomaly maps ``(n, H, W)`` of validated images, a few
        images at a time (features and maps of a whole chunk would not stay in the cache)."""
        scores = np.empty(len(images), dtype=np.float64)
        maps = np.empty((len(images), *self.image_shape_[1:]), dtype=np.float32)
        device = self._device()
        per_pass = images_per_pass(self.image_shape_, device)
        for start in range(0, len(images), per_pass):
            part = slice(start, start + per_pass)
            scores[part], maps[part] = self.head_.score_maps(self._patch_features(images[part], device))
        return scores, maps

    @staticmethod
    def _chunks(images):
        for start in range(0, len(images), SCORE_CHUNK):
            yield images[start : start + SCORE_CHUNK]

    def anomaly_maps(self, X: np.ndarray) -> np.ndarray:
        """Anomaly maps ``(n, H, W)`` of a local detector: higher = more abnormal; a pixel above
        ``pixel_threshold_`` is flagged."""
        return self.scores_and_maps(X)[1]

    def scores_and_maps(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``score_samples`` ``(n,)`` and ``anomaly_maps`` ``(n, H, W)`` of a local detector in one pass."""
        self._require_local()
        images = self._images(X)
        scores = np.empty(len(images), dtype=np.float64)
        maps = np.empty((len(images), *self.image_shape_[1:]), dtype=np.float32)
        for start, _, chunk_scores, chunk_maps in self.scored_chunks(images, maps=True):
            scores[start : start + len(chunk_scores)] = chunk_scores
            maps[start : start + len(chunk_maps)] = chunk_maps
        return scores, maps

    @property
    def pixel_threshold_(self) -> float:
        """The anomaly-map value above which a pixel is flagged (a local detector's threshold in
        anomaly units: an image whose worst regions pass it is flagged)."""
        self._require_local()
        return -self.threshold_

    def _require_local(self) -> None:
        if not self.local:
            raise OneClassError(
                f"encoder {self.encoder!r} scores whole images: anomaly maps need a local detector "
                f"(encoder {', '.join(PATCH_ENCODERS)})"
            )

    def scored_chunks(self, X: np.ndarray, maps: bool = False, progress: bool = False):
        """The one scoring path: ``(start, images, scores, maps or None)`` for consecutive chunks
        of ``X``, so that memory stays flat however many images are scored (an ``ImageFolder`` is
        read from disk chunk by chunk); ``maps`` (local detectors) adds the anomaly maps."""
        self._check_fitted()
        if maps:
            self._require_local()
        images = self._images(X)
        starts = range(0, len(images), SCORE_CHUNK)
        with tqdm(
            total=len(images),
            desc="scoring",
            unit="img",
            disable=not progress or len(starts) < 2,
            leave=False,
            dynamic_ncols=True,
        ) as bar:
            for start in starts:
                chunk = images[start : start + SCORE_CHUNK]
                if self.local:
                    scores, found = self._local_scores(chunk)
                else:
                    found = None
                    scores = self.head_.score_samples(
                        encode(self.encoder_, chunk, self._device(), self._scoring_batch())
                    )
                yield start, chunk, scores, found if maps else None
                bar.update(len(chunk))

    def score_samples(self, X: np.ndarray, progress: bool = False) -> np.ndarray:
        """Normality score per image ``(n,)``: higher = more normal (the OC-NN's log y_hat).

        Images are scored in chunks (``scored_chunks``); ``progress`` shows a bar.
        """
        # one output array filled in place: small per-chunk results kept alive between the large
        # temporaries of each chunk would fragment the heap and grow memory with the number of images
        scores = np.empty(len(X), dtype=np.float64)
        for start, _, chunk_scores, _ in self.scored_chunks(X, progress=progress):
            scores[start : start + len(chunk_scores)] = chunk_scores
        return scores

    # -- thresholds and conformal calibration (calibration.py) -----------------------------------

    def calibrate(self, X: np.ndarray) -> OneClassDetector:
        """Keep the scores of held-out normal images ``X`` (not used in training) for p-values.

        For a new normal image exchangeable with them, ``p_values`` is uniform up to ties, so
        flagging ``p <= alpha`` has a false-alarm rate of at most alpha (split-conformal).
        """
        return self.calibrate_from_scores(self.score_samples(X))

    def calibrate_from_scores(self, scores: np.ndarray) -> OneClassDetector:
        """``calibrate`` with the images' ``score_samples`` already computed ``(n,)``."""
        self.calibration_scores_ = np.sort(np.asarray(scores, dtype=np.float64))
        return self

    @property
    def calibrated(self) -> bool:
        return getattr(self, "calibration_scores_", None) is not None

    def _calibration(self) -> np.ndarray:
        if not self.calibrated:
            raise OneClassError("this detector has no calibration scores: call calibrate(X_normal) first")
        return self.calibration_scores_

    def p_values(self, X: np.ndarray) -> np.ndarray:
        """(1 + #{calibration scores <= score}) / (n_calibration + 1): small = unusually abnormal."""
        return self.p_values_of_scores(self.score_samples(X))

    def p_values_of_scores(self, scores: np.ndarray) -> np.ndarray:
        """Conformal p-values of scores already computed with ``score_samples``."""
        return calibration.p_values(self._calibration(), scores)

    def conformal_threshold(self, alpha: float) -> float:
        """The score below which an image is flagged at false-alarm level ``alpha``: the same
        images as ``p_values(X) <= alpha``."""
        return calibration.conformal_threshold(self._calibration(), alpha)

    @property
    def threshold_(self) -> float:
        """The head's threshold (r of the OC-NN paper): scores below it are abnormal."""
        self._check_fitted()
        return float(self.head_.threshold_)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """``score_samples(X) - threshold_``: negative = abnormal."""
        return self.score_samples(X) - self.threshold_

    def predict(self, X: np.ndarray) -> np.ndarray:
        """+1 for normal, -1 for abnormal images."""
        return np.where(self.decision_function(X) >= 0, 1, -1)

    # -- persistence -----------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"encoder.{k}": v for k, v in self.encoder_.state_dict().items()}
        tensors.update(self.head_.state_tensors())
        if self.calibrated:
            tensors["calibration.scores"] = torch.from_numpy(self.calibration_scores_.copy())
        params = self.model_params()
        params["channels"] = list(self.channels) if self.channels else None
        save_tensors(
            directory / CONFIG_FILE,
            WEIGHTS_FILE,
            tensors,
            {
                "format": CONFIG_FORMAT,
                "format_version": FORMAT_VERSION,
                "oneclass_version": __version__,
                "params": params,
                "image_shape": list(self.image_shape_),
                "head": self.head_.get_config(),
                "encoder_schedule": getattr(self, "encoder_schedule_", None),
                "history": self.history_,
                "timings": self.timings_,
            },
        )
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | None = None) -> OneClassDetector:
        """Rebuild a detector saved by :meth:`save`; refuses foreign, truncated or altered files."""
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not directory.is_dir():
            raise OneClassError(f"{directory}: not a run folder (no such directory)")
        config, tensors = load_tensors(config_path, WEIGHTS_FILE, CONFIG_FORMAT, "oneclass detector config")
        if config.get("format_version") == 1:
            raise OneClassError(
                f"{config_path}: a model of oneclass 0.1 (format version 1: linear-domain scores, "
                "threshold on the training scores); refit it with this version: run the same "
                "`oneclass fit` command again (its options are in config.json's params)"
            )
        if config.get("format_version") == 2 and config.get("head", {}).get("local"):
            raise OneClassError(
                f"{config_path}: a local model of format version 2 (anomaly maps not standardised "
                "per pixel); refit it with this version: run the same `oneclass fit` command again"
            )
        if config.get("format_version") not in (2, FORMAT_VERSION):
            raise OneClassError(
                f"{config_path}: format version {config.get('format_version')!r}, "
                f"this oneclass reads versions 2 to {FORMAT_VERSION}"
            )
        try:
            params = {k: v for k, v in config["params"].items() if k in cls.parameters}
            params["channels"] = tuple(params["channels"]) if params.get("channels") else None
            if device is not None:
                params["device"] = device
            detector = cls(**params, quiet=True)
            detector.image_shape_ = tuple(int(s) for s in config["image_shape"])
            if detector.local:
                detector.encoder_ = build_patch_features(detector.encoder, detector.image_shape_)
                if any(k.startswith("encoder.defect_branch.") for k in tensors):
                    detector.encoder_.add_defect_branch()
            else:
                detector.encoder_ = build_encoder(
                    detector.encoder, detector.image_shape_, detector.latent_dim, detector.channels
                )
            head_config = config["head"]
        except (KeyError, TypeError, ValueError) as exc:
            raise OneClassError(f"{config_path}: malformed config ({exc.__class__.__name__}: {exc})") from exc
        weights_path = directory / WEIGHTS_FILE
        encoder_state = {
            k.removeprefix("encoder."): v for k, v in tensors.items() if k.startswith("encoder.")
        }
        try:
            detector.encoder_.load_state_dict(encoder_state)
            detector.head_ = _saved_head_class(head_config).from_state(head_config, tensors)
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise OneClassError(
                f"{weights_path}: weights do not fit the config ({str(exc).splitlines()[0]})"
            ) from exc
        detector.encoder_.eval()
        if "calibration.scores" in tensors:
            detector.calibration_scores_ = tensors["calibration.scores"].double().numpy()
        detector.history_ = config.get("history", {"encoder": [], "head": []})
        detector.timings_ = config.get("timings", {})
        return detector


def _tagged(on_epoch: Callable[[dict], None] | None, part: str) -> Callable[[dict], None] | None:
    """``on_epoch`` that also says which part of a joint encoder the record is of."""
    if on_epoch is None:
        return None
    return lambda record: on_epoch({"part": part, **record})


def _schedule_record(schedules: dict[str, tuple[int, int]]) -> dict:
    """The schedule as config.json and metrics.json keep it: ``{"batch_size", "epochs"}``, or one
    such record per part of a joint encoder."""
    records = {kind: {"batch_size": b, "epochs": e} for kind, (b, e) in schedules.items()}
    return next(iter(records.values())) if len(records) == 1 else records


def _saved_head_class(config: dict) -> type[Head]:
    """The head class a saved head config names (the patch head and the combination are not
    in the ``HEADS`` a user chooses from)."""
    if config.get("local"):
        return PatchOCNN
    if config["name"] == FisherCombination.name:
        return FisherCombination
    return head_class(config["name"])
