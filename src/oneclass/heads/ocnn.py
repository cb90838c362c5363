"""One-Class Neural Network heads (Chalapathy, Menon, Chawla 2018), trained with the OC-NN
objective and the nu-quantile r (``training/ocnn.py``).

- ``ocnn-report``: the report's network exactly (sigmoid hidden layer on raw latents).
- ``ocnn``: the default, a kernel OC-NN whose hidden units are Gaussian bumps around centres
  taken from the training data, on PCA-whitened latents, with non-negative output weights. It is
  a linear-cost approximation of the RBF one-class SVM (docs/ocnn.md says why the report's
  variant ranks badly and what each change does).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import OneClassError
from ..training import distributed
from ..training.common import resolve_device
from ..training.ocnn import R_UPDATES, SOLVERS, predict_outputs, train_ocnn, train_output_layer
from .base import Head, check_latents

ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}


class OCNNNet(nn.Module):
    """y_hat = w . g(V z), both layers bias-free (a bias would shift y_hat and r together)."""

    def __init__(self, in_features: int, hidden: int, activation: str = "sigmoid"):
        super().__init__()
        self.V = nn.Linear(in_features, hidden, bias=False)
        self.w = nn.Linear(hidden, 1, bias=False)
        self.g = ACTIVATIONS[activation]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.w(self.g(self.V(z))).squeeze(1)

    def regularised(self) -> list[torch.Tensor]:
        return [self.V.weight, self.w.weight]


class KernelOCNNNet(nn.Module):
    """y_hat = w . exp(-gamma ||s - v_j||^2), s = (z - mean) @ transform the whitened (or
    standardised) latent, v_j the rows of V.

    The hidden layer's value does not grow with the input's norm (the sigmoid units of the report
    do, which ranks far-out points as the most normal); w >= 0 makes the score a weighted sum of
    similarities to the normal data, so a point far from all of it scores lowest.
    """

    def __init__(
        self,
        mean: torch.Tensor,
        transform: torch.Tensor,
        centres: torch.Tensor,
        gamma: float,
        learn_centres: bool = False,
    ):
        super().__init__()
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("transform", transform.float().clone())  # (latent_dim, latent_dim)
        self.register_buffer("gamma", torch.tensor(float(gamma)))
        self.V = nn.Linear(centres.shape[1], centres.shape[0], bias=False)
        self.V.weight.data.copy_(centres)
        self.V.weight.requires_grad_(learn_centres)
        self.w = nn.Linear(centres.shape[0], 1, bias=False)
        nn.init.constant_(self.w.weight, 1.0 / centres.shape[0])  # start as a kernel density

    def _projection(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(2 gamma V, -gamma ||v_j||^2)``: -gamma ||s - v_j||^2 = s . 2 gamma v_j - gamma ||v_j||^2
        - gamma ||s||^2, one matrix product with a bias and one subtraction per hidden value."""
        gamma = self.gamma.expand(self.V.weight.shape[0])  # one per unit (the studies vary it)
        return self.V.weight * (2 * gamma)[:, None], self.V.weight.pow(2).sum(1) * -gamma

    def hidden(self, z: torch.Tensor) -> torch.Tensor:
        s = (z - self.mean) @ self.transform
        weight, bias = self._projection()
        exponent = torch.addmm(bias, s, weight.t()) - self.gamma * (s * s).sum(1, keepdim=True)
        return torch.exp(exponent.clamp(max=0))

    @torch.no_grad()
    def hidden_values(self, z: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """``hidden(z)`` for many rows at once, ``(n, units)``: the same operations, written in
        place into one preallocated matrix (no temporaries of that size, no concatenation)."""
        out = torch.empty((len(z), self.V.weight.shape[0]), dtype=z.dtype, device=z.device)
        weight, bias = self._projection()
        for start in range(0, len(z), chunk):
            s = (z[start : start + chunk] - self.mean) @ self.transform
            part = out[start : start + chunk]
            torch.addmm(bias, s, weight.t(), out=part)
            part.sub_(self.gamma * (s * s).sum(1, keepdim=True)).clamp_(max=0).exp_()
        return out

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.readout(self.hidden(z))

    def readout(self, hidden: torch.Tensor) -> torch.Tensor:
        """The output layer alone: ``(n, units)`` hidden values to ``(n,)`` scores."""
        return self.w(hidden).squeeze(1)

    def frozen_features(self) -> bool:
        """True when only ``w`` is trained, so the hidden values can be computed once."""
        return not self.V.weight.requires_grad

    def regularised(self) -> list[torch.Tensor]:
        return [self.w.weight]  # the centres are points of the data space, not weights to shrink

    @torch.no_grad()
    def project(self) -> None:
        self.w.weight.clamp_(min=0.0)


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


class _TorchOCNN(Head):
    """Shared by the OC-NN heads: fitting through ``train_ocnn``, scoring, safetensors state."""

    r_update: str
    net_: nn.Module

    def _build(self, Z: np.ndarray) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def _empty_net(cls, head: _TorchOCNN, weights: dict[str, torch.Tensor]) -> nn.Module:
        raise NotImplementedError

    def fit(self, Z: np.ndarray, on_epoch=None) -> _TorchOCNN:
        Z = check_latents(Z)
        torch.manual_seed(self.seed)
        self.net_ = self._build(Z)
        device = distributed.setup(resolve_device(self.device))
        self.offset_, self.history_ = self._train(Z, device, on_epoch)
        self.net_.cpu()
        self.n_features_in_ = Z.shape[1]
        return self

    def _train(self, Z: np.ndarray, device: torch.device, on_epoch) -> tuple[float, list[dict]]:
        return train_ocnn(
            self.net_,
            Z,
            nu=self.nu,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            device=device,
            r_update=self.r_update,
            quiet=self.quiet,
            on_epoch=on_epoch,
        )

    def score_samples(self, Z: np.ndarray) -> np.ndarray:
        Z = check_latents(Z, dim=self.n_features_in_)
        return predict_outputs(self.net_, torch.from_numpy(Z))

    def torch_module(self) -> nn.Module:
        return self.net_

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {f"head.{k}": v for k, v in self.net_.state_dict().items()}

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> _TorchOCNN:
        head = cls(**config["params"])
        weights = {k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")}
        head.net_ = cls._empty_net(head, weights)
        head.net_.load_state_dict(weights)
        head.n_features_in_ = weights["V.weight"].shape[1]
        head.offset_ = float(config["offset"])
        head.history_ = []
        return head


class ReportOCNN(_TorchOCNN):
    """The report's OC-NN exactly: sigmoid hidden layer, per-batch nu-quantile r, raw latents.

    Parameters
    ----------
    nu : share of the training data allowed below r (on the abnormal side), in (0, 1].
    hidden : hidden units (the report's high-dimensional map), default 256.
    epochs, batch_size, lr : Adam training of V and w.
    r_update : "batch" (the report) or "epoch" (for the study in docs/ocnn.md).
    activation : "sigmoid" (the report), "tanh" or "relu" (for the same study).
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
        r_update: str = "batch",
        activation: str = "sigmoid",
        seed: int = 0,
        device: str = "cpu",
        quiet: bool = True,
    ):
        validate_ocnn_params(nu=nu, hidden=hidden, epochs=epochs, batch_size=batch_size, lr=lr)
        if r_update not in R_UPDATES:
            raise OneClassError(f"r_update must be one of {', '.join(R_UPDATES)}, got {r_update!r}")
        if activation not in ACTIVATIONS:
            raise OneClassError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        self.nu, self.hidden, self.epochs = nu, hidden, epochs
        self.batch_size, self.lr, self.seed = batch_size, lr, seed
        self.r_update, self.activation = r_update, activation
        self.device, self.quiet = device, quiet

    def get_params(self) -> dict[str, Any]:
        return {
            "nu": self.nu,
            "hidden": self.hidden,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "r_update": self.r_update,
            "activation": self.activation,
            "seed": self.seed,
        }

    def _build(self, Z: np.ndarray) -> nn.Module:
        return OCNNNet(Z.shape[1], self.hidden, self.activation)

    @classmethod
    def _empty_net(cls, head, weights):
        return OCNNNet(weights["V.weight"].shape[1], head.hidden, head.activation)


class KernelOCNN(_TorchOCNN):
    """The default OC-NN: Gaussian hidden units on whitened latents, w >= 0, r the nu-quantile.

    Parameters
    ----------
    nu : share of the training data allowed below r, in (0, 1].
    hidden : number of Gaussian units (at most one per training point); their centres are training
        latents drawn with the seed. 2048 by default: as accurate as 4096 once w is trained to the
        optimum (BENCHMARKS.md).
    bandwidth : kernel width as a multiple of the median pairwise distance of the mapped
        training latents (gamma = 1 / (2 (bandwidth * median)^2)).
    whiten : map the latents to zero mean and identity covariance (PCA whitening) before the
        Gaussian units, so the kernel measures Mahalanobis distance (default; +0.1 AUROC points
        on MNIST, +0.7 on Fashion-MNIST, BENCHMARKS.md). False: scale each dimension to unit
        variance only.
    solver : "frank-wolfe" (default): the exact minimiser of the OC-NN objective over w, a few
        passes over the data (``training/ocnn.py: train_output_layer``); "adam": the paper's
        mini-batch loop (needed to learn the centres; r per epoch or per batch).
    epochs : most passes (Frank-Wolfe steps; default 100, it stops earlier at ``tol``) or Adam
        epochs (default 20).
    tol : Frank-Wolfe stops when the duality gap falls below ``tol`` x ||w||^2.
    learn_centres : also move the centres by gradient descent (solver "adam"; measured worse).
    batch_size, lr, r_update : the Adam loop's settings (r_update "epoch" or "batch").
    """

    name = "ocnn"

    def __init__(
        self,
        nu: float = 0.1,
        hidden: int = 2048,
        bandwidth: float = 0.2,
        whiten: bool = True,
        solver: str = "frank-wolfe",
        epochs: int | None = None,
        tol: float = 1e-3,
        learn_centres: bool = False,
        batch_size: int = 200,
        lr: float = 1e-3,
        r_update: str = "epoch",
        seed: int = 0,
        device: str = "cpu",
        quiet: bool = True,
    ):
        if solver not in SOLVERS:
            raise OneClassError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
        epochs = (100 if solver == "frank-wolfe" else 20) if epochs is None else epochs
        validate_ocnn_params(nu=nu, hidden=hidden, epochs=epochs, batch_size=batch_size, lr=lr)
        if not bandwidth > 0:
            raise OneClassError(f"bandwidth must be > 0, got {bandwidth!r}")
        if not tol >= 0:
            raise OneClassError(f"tol must be >= 0, got {tol!r}")
        if r_update not in R_UPDATES:
            raise OneClassError(f"r_update must be one of {', '.join(R_UPDATES)}, got {r_update!r}")
        if learn_centres and solver != "adam":
            raise OneClassError("learn_centres=True needs solver='adam' (Frank-Wolfe trains w alone)")
        self.nu, self.hidden, self.bandwidth, self.solver = nu, hidden, bandwidth, solver
        self.whiten = bool(whiten)
        self.epochs, self.tol, self.learn_centres = epochs, tol, learn_centres
        self.batch_size, self.lr, self.r_update = batch_size, lr, r_update
        self.seed, self.device, self.quiet = seed, device, quiet

    def _train(self, Z: np.ndarray, device: torch.device, on_epoch) -> tuple[float, list[dict]]:
        if self.solver == "adam":
            return super()._train(Z, device, on_epoch)
        return train_output_layer(
            self.net_, Z, nu=self.nu, epochs=self.epochs, tol=self.tol, device=device, on_epoch=on_epoch
        )

    def get_params(self) -> dict[str, Any]:
        return {
            "nu": self.nu,
            "hidden": self.hidden,
            "bandwidth": self.bandwidth,
            "whiten": self.whiten,
            "solver": self.solver,
            "tol": self.tol,
            "learn_centres": self.learn_centres,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "r_update": self.r_update,
            "seed": self.seed,
        }

    def _build(self, Z: np.ndarray) -> nn.Module:
        rng = np.random.default_rng(self.seed)
        mean = Z.mean(0, dtype=np.float64)
        transform = whitening(Z) if self.whiten else np.diag(1.0 / (Z.std(0, dtype=np.float64) + 1e-6))
        mapped = ((Z - mean) @ transform).astype(np.float32)
        centres = mapped[rng.choice(len(Z), min(self.hidden, len(Z)), replace=False)]
        gamma = 1.0 / (2.0 * (self.bandwidth * median_distance(mapped, rng)) ** 2)
        return KernelOCNNNet(
            torch.from_numpy(mean),
            torch.from_numpy(transform),
            torch.from_numpy(centres),
            gamma,
            self.learn_centres,
        )

    @classmethod
    def _empty_net(cls, head, weights):
        if "scale" in weights:  # a model file from before whitening: per-dimension scale only
            weights["transform"] = torch.diag(1.0 / weights.pop("scale"))
            head.whiten = False
        centres = weights["V.weight"]
        return KernelOCNNNet(
            weights["mean"], weights["transform"], centres, float(weights["gamma"]), head.learn_centres
        )


def whitening(Z: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """``(d, d)`` matrix T with ``cov((Z - mean) @ T) = I`` (PCA whitening), float64.

    Eigenvalues below ``floor`` x the largest are raised to it, so a direction in which the
    training latents (almost) never vary is scaled up a million-fold at most, not divided by 0.
    """
    if len(Z) < 2:
        return np.eye(Z.shape[1])
    values, vectors = np.linalg.eigh(np.atleast_2d(np.cov(Z, rowvar=False)))
    largest = max(float(values.max()), np.finfo(np.float64).tiny)
    return vectors / np.sqrt(np.maximum(values, floor * largest))


def median_distance(points: np.ndarray, rng: np.random.Generator, sample: int = 1000) -> float:
    """Median Euclidean distance between distinct points of a random subset."""
    subset = points[rng.choice(len(points), min(sample, len(points)), replace=False)].astype(np.float64)
    squared = (subset**2).sum(1)[:, None] - 2 * subset @ subset.T + (subset**2).sum(1)[None]
    distances = np.sqrt(np.clip(squared[np.triu_indices(len(subset), 1)], 0, None))
    positive = distances[distances > 0]
    if positive.size == 0:
        raise OneClassError("all training latents are identical: nothing to learn a boundary from")
    return float(np.median(positive))
