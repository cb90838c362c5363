"""The detector facade: encoder + one-class head + threshold, in scikit-learn's style.

Every user-facing path (CLI, Python API, experiments, benchmark) scores through
:class:`OneClassDetector`, so a score means the same thing everywhere: higher = more normal,
``decision_function = score_samples - offset_`` is negative for abnormal images, and ``predict``
returns +1 (normal) / -1 (abnormal).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from . import __version__
from .data.arrays import check_images
from .errors import OneClassError
from .fileio import atomic_path, read_json, sha256_file, write_json
from .heads import Head, head_class
from .networks import ENCODERS, build_encoder
from .training import distributed
from .training.autoencoder import encode, train_autoencoder
from .training.checkpoint import Checkpointer
from .training.common import Stopwatch, resolve_device

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SCORE_CHUNK = 1024  # images scored per chunk: memory stays flat however many are passed


class OneClassDetector:
    """Deep one-class detector: a convolutional AE/VAE encoder and a one-class head on its latent.

    Parameters
    ----------
    encoder : "vae" or "ae", the feature extractor trained with reconstruction loss.
    latent_dim : size of the latent vector the head sees.
    channels : convolution channels per encoder stage (each stage halves the image size).
    head : name of the one-class head (see ``oneclass.heads.HEADS``): "ocnn" (default, the kernel
        OC-NN), "ocnn-report" (the report's network), "ocsvm", "knn", "iforest".
    nu : share of training data allowed on the abnormal side, in (0, 1].
    hidden : hidden units of an OC-NN head (None: the head's default, 2048 / 256).
    encoder_epochs, head_epochs : training epochs of each part (head_epochs None: head's default).
    batch_size, encoder_lr, head_lr, weight_decay : optimiser settings (Adam; head_lr None: the
        head's default).
    seed : one seed drives every random generator; the same seed gives the same scores.
    device : "auto", "cpu", "cuda" or "mps".
    quiet : no progress bars.
    """

    def __init__(
        self,
        encoder: str = "vae",
        latent_dim: int = 32,
        channels: tuple[int, ...] = (8, 4),
        head: str = "ocnn",
        nu: float = 0.1,
        hidden: int | None = None,
        encoder_epochs: int = 10,
        head_epochs: int | None = None,
        batch_size: int = 200,
        encoder_lr: float = 1e-3,
        head_lr: float | None = None,
        weight_decay: float = 1e-6,
        seed: int = 0,
        device: str = "auto",
        quiet: bool = False,
    ):
        self.encoder = encoder
        self.latent_dim = latent_dim
        self.channels = tuple(channels)
        self.head = head
        self.nu = nu
        self.hidden = hidden
        self.encoder_epochs = encoder_epochs
        self.head_epochs = head_epochs
        self.batch_size = batch_size
        self.encoder_lr = encoder_lr
        self.head_lr = head_lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device
        self.quiet = quiet
        self._validate()
        self.history_: dict[str, list[dict]] = {"encoder": [], "head": []}
        self.timings_: dict[str, float] = {}

    # -- parameters ------------------------------------------------------------------------------

    _PARAMS = (
        "encoder",
        "latent_dim",
        "channels",
        "head",
        "nu",
        "hidden",
        "encoder_epochs",
        "head_epochs",
        "batch_size",
        "encoder_lr",
        "head_lr",
        "weight_decay",
        "seed",
        "device",
    )

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._PARAMS}

    def _validate(self) -> None:
        head_class(self.head)
        if self.encoder not in ENCODERS:
            raise OneClassError(f"unknown encoder {self.encoder!r}; expected one of {', '.join(ENCODERS)}")
        resolve_device(self.device)
        if not (isinstance(self.nu, (int, float)) and 0.0 < self.nu <= 1.0):
            raise OneClassError(f"nu must be in (0, 1], got {self.nu!r}")
        for name in ("latent_dim", "hidden", "encoder_epochs", "head_epochs", "batch_size"):
            value = getattr(self, name)
            if value is None and name in ("hidden", "head_epochs"):
                continue
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise OneClassError(f"{name} must be an integer >= 1, got {value!r}")
        if not self.channels or any(int(c) < 1 for c in self.channels):
            raise OneClassError(f"channels must be positive integers, got {self.channels!r}")
        for name in ("encoder_lr", "head_lr"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise OneClassError(f"{name} must be > 0, got {getattr(self, name)!r}")

    def _device(self) -> torch.device:
        return resolve_device(self.device)

    def training_device(self) -> torch.device:
        """Where training runs; under torchrun this joins the process group (NCCL on CUDA,
        gloo on CPU) and each process trains on its shard of the data."""
        return distributed.setup(self._device())

    def _new_head(self) -> Head:
        cls = head_class(self.head)
        offered = {
            "nu": self.nu,
            "hidden": self.hidden,
            "epochs": self.head_epochs,
            "batch_size": self.batch_size,
            "lr": self.head_lr,
            "seed": self.seed,
            "device": self.device,
            "quiet": self.quiet,
        }
        accepted = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in offered.items() if k in accepted and v is not None})

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, X: np.ndarray, y: None = None) -> OneClassDetector:
        """Train the encoder and then the head on normal images ``X``.

        ``X``: uint8 ``(n, H, W)`` / ``(n, C, H, W)``, or float in [0, 1]. ``y`` is ignored.
        """
        return self.fit_encoder(X).fit_head(X)

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
        torch.manual_seed(self.seed)
        self.image_shape_ = tuple(int(s) for s in images.shape[1:])
        self.encoder_ = build_encoder(self.encoder, self.image_shape_, self.latent_dim, self.channels)
        self.history_["encoder"] = train_autoencoder(
            self.encoder_,
            images,
            epochs=self.encoder_epochs,
            batch_size=self.batch_size,
            lr=self.encoder_lr,
            weight_decay=self.weight_decay,
            seed=self.seed,
            device=self.training_device(),
            quiet=self.quiet,
            on_epoch=on_epoch,
            checkpoint=checkpoint,
        )
        self.encoder_.cpu()
        self.timings_["encoder_fit_s"] = clock.seconds()
        return self

    def fit_head(self, X: np.ndarray, on_epoch: Callable[[dict], None] | None = None) -> OneClassDetector:
        """Train only the head on the latents of normal images ``X`` (encoder stays fixed)."""
        self._check_encoder()
        clock = Stopwatch()
        latents = self.transform(X)
        self.timings_["encode_s"] = clock.seconds()
        clock = Stopwatch()
        head = self._new_head()
        accepts_callback = "on_epoch" in inspect.signature(head.fit).parameters
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
        """Latent vectors ``(n, latent_dim)`` of images ``X``."""
        self._check_encoder()
        return encode(self.encoder_, self._images(X), self._device(), SCORE_CHUNK)

    def score_samples(self, X: np.ndarray, progress: bool = False) -> np.ndarray:
        """Normality score per image ``(n,)``: higher = more normal (the OC-NN's y_hat).

        Images are encoded in chunks, so memory stays flat however many are passed (an
        ``ImageFolder`` is read from disk chunk by chunk); ``progress`` shows a bar.
        """
        self._check_fitted()
        images = self._images(X)
        # one output array filled in place: small per-chunk results kept alive between the large
        # temporaries of each chunk would fragment the heap and grow memory with the number of images
        scores = np.empty(len(images), dtype=np.float64)
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
                scores[start : start + len(chunk)] = self.head_.score_samples(
                    encode(self.encoder_, chunk, self._device(), SCORE_CHUNK)
                )
                bar.update(len(chunk))
        return scores

    # -- conformal calibration -------------------------------------------------------------------

    def calibrate(self, X: np.ndarray) -> OneClassDetector:
        """Keep the scores of held-out normal images ``X`` (not used in training) for p-values.

        For a new normal image exchangeable with them, ``p_values`` is uniform up to ties, so
        flagging ``p <= alpha`` has a false-alarm rate of at most alpha (split-conformal).
        """
        scores = self.score_samples(X)
        self.calibration_scores_ = np.sort(scores.astype(np.float64))
        return self

    def p_values(self, X: np.ndarray) -> np.ndarray:
        """(1 + #{calibration scores <= score}) / (n_calibration + 1): small = unusually abnormal."""
        return self.p_values_of_scores(self.score_samples(X))

    def p_values_of_scores(self, scores: np.ndarray) -> np.ndarray:
        """Conformal p-values of scores already computed with ``score_samples``."""
        if getattr(self, "calibration_scores_", None) is None:
            raise OneClassError("this detector has no calibration scores: call calibrate(X_normal) first")
        calibration = self.calibration_scores_
        return (1.0 + np.searchsorted(calibration, scores, side="right")) / (len(calibration) + 1.0)

    def conformal_threshold(self, alpha: float) -> float:
        """The score at or below which an image is flagged at false-alarm level ``alpha``."""
        if not 0.0 < alpha < 1.0:
            raise OneClassError(f"alpha must be in (0, 1), got {alpha!r}")
        if getattr(self, "calibration_scores_", None) is None:
            raise OneClassError("this detector has no calibration scores: call calibrate(X_normal) first")
        count = int(np.floor(alpha * (len(self.calibration_scores_) + 1)))
        if count < 1:
            raise OneClassError(
                f"alpha={alpha} needs at least {int(np.ceil(1 / alpha)) - 1} calibration images, "
                f"this detector has {len(self.calibration_scores_)}"
            )
        return float(self.calibration_scores_[count - 1])

    @property
    def offset_(self) -> float:
        """The threshold r: scores below it are abnormal."""
        self._check_fitted()
        return float(self.head_.offset_)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """``score_samples(X) - offset_``: negative = abnormal."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: np.ndarray) -> np.ndarray:
        """+1 for normal, -1 for abnormal images."""
        return np.where(self.decision_function(X) >= 0, 1, -1)

    # -- persistence -----------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"encoder.{k}": v.detach().cpu().contiguous() for k, v in self.encoder_.state_dict().items()
        }
        tensors.update({k: v.detach().cpu().contiguous() for k, v in self.head_.state_tensors().items()})
        if getattr(self, "calibration_scores_", None) is not None:
            tensors["calibration.scores"] = torch.from_numpy(self.calibration_scores_.copy())
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "oneclass", "version": str(FORMAT_VERSION)})
            digest = sha256_file(tmp)
        params = self.get_params()
        params["channels"] = list(self.channels)
        write_json(
            directory / CONFIG_FILE,
            {
                "format": "oneclass-detector",
                "format_version": FORMAT_VERSION,
                "oneclass_version": __version__,
                "params": params,
                "image_shape": list(self.image_shape_),
                "head": self.head_.get_config(),
                "weights": {"file": WEIGHTS_FILE, "sha256": digest},
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
        config = read_json(config_path)
        if not isinstance(config, dict) or config.get("format") != "oneclass-detector":
            raise OneClassError(f"{config_path}: not a oneclass detector config")
        if config.get("format_version") != FORMAT_VERSION:
            raise OneClassError(
                f"{config_path}: format version {config.get('format_version')!r}, "
                f"this oneclass reads version {FORMAT_VERSION}"
            )
        weights = config.get("weights")
        if not isinstance(weights, dict) or not isinstance(weights.get("file"), str):
            raise OneClassError(f"{config_path}: no weights entry")
        if weights["file"] != WEIGHTS_FILE:
            raise OneClassError(f"{config_path}: weights must be {WEIGHTS_FILE} in the run folder")
        weights_path = directory / WEIGHTS_FILE
        if not weights_path.is_file():
            raise OneClassError(f"{weights_path}: weights file missing")
        if sha256_file(weights_path) != weights.get("sha256"):
            raise OneClassError(
                f"{weights_path}: checksum does not match config.json (file altered or truncated)"
            )
        try:
            tensors = load_file(str(weights_path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise OneClassError(f"{weights_path}: not a readable safetensors file ({exc})") from exc
        try:
            params = {k: v for k, v in config["params"].items() if k in cls._PARAMS}
            params["channels"] = tuple(params["channels"])
            if device is not None:
                params["device"] = device
            detector = cls(**params, quiet=True)
            detector.image_shape_ = tuple(int(s) for s in config["image_shape"])
            detector.encoder_ = build_encoder(
                detector.encoder, detector.image_shape_, detector.latent_dim, detector.channels
            )
            head_config = config["head"]
        except (KeyError, TypeError, ValueError) as exc:
            raise OneClassError(f"{config_path}: malformed config ({exc.__class__.__name__}: {exc})") from exc
        encoder_state = {
            k.removeprefix("encoder."): v for k, v in tensors.items() if k.startswith("encoder.")
        }
        try:
            detector.encoder_.load_state_dict(encoder_state)
            detector.head_ = head_class(head_config["name"]).from_state(head_config, tensors)
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
