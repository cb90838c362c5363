"""One-Class Neural Network heads (Chalapathy, Menon, Chawla 2018)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import OneClassError
from ..training.common import resolve_device
from ..training.ocnn import predict_outputs, train_ocnn
from .base import Head, check_latents


class OCNNNet(nn.Module):
    """y_hat = w . g(V z), both layers bias-free (a bias would shift y_hat and r together)."""

    def __init__(self, in_features: int, hidden: int):
        super().__init__()
        self.V = nn.Linear(in_features, hidden, bias=False)
        self.w = nn.Linear(hidden, 1, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.w(torch.sigmoid(self.V(z))).squeeze(1)


class ReportOCNN(Head):
    """The report's OC-NN exactly: sigmoid hidden layer, per-batch nu-quantile r, raw latents.

    Parameters
    ----------
    nu : share of the training data allowed below r (on the abnormal side), in (0, 1].
    hidden : hidden units (the report's high-dimensional map), default 256.
    epochs, batch_size, lr : Adam training of V and w.
    seed : drives the initialisation and the batch order.
    """

    name = "ocnn-report"

    def __init__(
        self,
        nu: float = 0.1,
        hidden: int = 256,
        epochs: int = 25,
        batch_size: int = 200,
        lr: float = 1e-3,
        seed: int = 0,
        device: str = "cpu",
        quiet: bool = True,
    ):
        self.nu, self.hidden, self.epochs = nu, hidden, epochs
        self.batch_size, self.lr, self.seed = batch_size, lr, seed
        self.device, self.quiet = device, quiet
        validate_ocnn_params(nu=nu, hidden=hidden, epochs=epochs, batch_size=batch_size, lr=lr)

    def get_params(self) -> dict[str, Any]:
        return {
            "nu": self.nu,
            "hidden": self.hidden,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "seed": self.seed,
        }

    def fit(self, Z: np.ndarray, on_epoch=None) -> ReportOCNN:
        Z = check_latents(Z)
        torch.manual_seed(self.seed)
        self.net_ = OCNNNet(Z.shape[1], self.hidden)
        self.offset_, self.history_ = train_ocnn(
            self.net_,
            Z,
            nu=self.nu,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            device=resolve_device(self.device),
            quiet=self.quiet,
            on_epoch=on_epoch,
        )
        self.net_.cpu()
        self.n_features_in_ = Z.shape[1]
        return self

    def score_samples(self, Z: np.ndarray) -> np.ndarray:
        Z = check_latents(Z, dim=self.n_features_in_)
        return predict_outputs(self.net_, torch.from_numpy(Z))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {f"head.{k}": v for k, v in self.net_.state_dict().items()}

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> ReportOCNN:
        head = cls(**config["params"])
        weights = {k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")}
        in_features = weights["V.weight"].shape[1]
        head.net_ = OCNNNet(in_features, head.hidden)
        head.net_.load_state_dict(weights)
        head.n_features_in_ = in_features
        head.offset_ = float(config["offset"])
        head.history_ = []
        return head


def validate_ocnn_params(*, nu: float, hidden: int, epochs: int, batch_size: int, lr: float) -> None:
    if not (isinstance(nu, (int, float)) and 0.0 < nu <= 1.0):
        raise OneClassError(f"nu must be in (0, 1], got {nu!r}")
    if int(hidden) < 1:
        raise OneClassError(f"hidden must be >= 1, got {hidden!r}")
    if int(epochs) < 1:
        raise OneClassError(f"epochs must be >= 1, got {epochs!r}")
    if int(batch_size) < 1:
        raise OneClassError(f"batch_size must be >= 1, got {batch_size!r}")
    if not lr > 0:
        raise OneClassError(f"lr must be > 0, got {lr!r}")
