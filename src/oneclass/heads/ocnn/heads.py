"""The OC-NN heads (Chalapathy, Menon, Chawla 2018): the objective of eq. 3, the threshold r
the nu-quantile of the training outputs.

- ``ocnn-paper``: the paper's network exactly, as the study reproduced by ``oneclass reproduce``
  uses it (sigmoid hidden layer on raw latents, trained by Adam with r per mini-batch);
- ``ocnn``: the default, a kernel OC-NN whose hidden units are Gaussian bumps around centres
  taken from the training data, on PCA-whitened latents, with non-negative output weights
  trained to the optimum by Frank-Wolfe. It closes around the data where the paper's network
  cuts a half-plane (docs/ocnn.md).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...calibration import NU, nu_quantile
from ...devices import resolve_device
from ...params import Boolean, Interval, Param
from ...training import distributed
from ..base import Head, check_latents
from .networks import KernelOCNNNet, PaperOCNNNet, median_distance, whitening
from .solvers import frank_wolfe, predict_outputs, sharded_out_of_fold_scores, train_paper_ocnn

THRESHOLD_FOLDS = 5  # the threshold comes from out-of-fold scores (solvers.frank_wolfe says why)
NU_PARAM = Param(NU, "Share of training data allowed on the abnormal side, in (0, 1].")


class _TorchOCNN(Head):
    """Shared by the OC-NN heads: fitting, scoring, safetensors state."""

    saveable = True
    net_: nn.Module

    def _build(self, Z: np.ndarray) -> nn.Module:
        raise NotImplementedError

    def _train(self, Z: np.ndarray, device: torch.device, on_epoch) -> tuple[float, list[dict]]:
        raise NotImplementedError

    @classmethod
    def _empty_net(cls, head: _TorchOCNN, weights: dict[str, torch.Tensor]) -> nn.Module:
        raise NotImplementedError

    def fit(self, Z: np.ndarray, on_epoch=None) -> _TorchOCNN:
        """Train on features ``Z`` ``(n, d)`` of normal data; ``on_epoch`` gets each epoch's record."""
        Z = check_latents(Z)
        torch.manual_seed(self.seed)
        self.net_ = self._build(Z)
        device = distributed.setup(resolve_device(self.device))
        self.threshold_, self.history_ = self._train(Z, device, on_epoch)
        self.net_.cpu()
        self.n_features_in_ = Z.shape[1]
        return self

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
        head.threshold_ = float(config["threshold"])
        head.history_ = []
        return head


class PaperOCNN(_TorchOCNN):
    """The paper's OC-NN exactly: sigmoid hidden layer, per-batch nu-quantile r, raw latents.

    Parameters
    ----------
    nu : share of the training data allowed below the threshold, in (0, 1].
    hidden : hidden units (the paper's high-dimensional map), default 256.
    epochs, batch_size, lr : Adam training of V and w.
    seed : drives the initialisation and the batch order.
    device, quiet : where to train; no progress bar.
    """

    name = "ocnn-paper"
    parameters: ClassVar[dict[str, Param]] = {
        "nu": NU_PARAM,
        "hidden": Param(Interval(int, 1), "Hidden units."),
        "epochs": Param(Interval(int, 1), "Adam epochs."),
        "batch_size": Param(Interval(int, 1), "Mini-batch size."),
        "lr": Param(Interval(float, 0, closed="neither"), "Adam learning rate."),
        "seed": Param(Interval(int, 0), "Seed of the initialisation and batch order."),
    }

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
        self.validate_params()

    def _build(self, Z: np.ndarray) -> nn.Module:
        return PaperOCNNNet(Z.shape[1], self.hidden)

    def _train(self, Z: np.ndarray, device: torch.device, on_epoch) -> tuple[float, list[dict]]:
        return train_paper_ocnn(
            self.net_,
            Z,
            nu=self.nu,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            device=device,
            quiet=self.quiet,
            on_epoch=on_epoch,
        )

    @classmethod
    def _empty_net(cls, head, weights):
        return PaperOCNNNet(weights["V.weight"].shape[1], head.hidden)


class KernelOCNN(_TorchOCNN):
    """The default OC-NN: Gaussian hidden units on whitened latents, w >= 0, trained to the
    optimum of eq. 3 by Frank-Wolfe; scores are log y_hat (no underflow); the threshold is the
    nu-quantile of the training points' scores, each scored as a new point would be (without the
    unit centred on it, by output weights fitted without it: ``solvers.frank_wolfe``), so that
    about a share nu of new normal points falls below it too.

    Parameters
    ----------
    nu : share of the training data allowed below the threshold, in (0, 1].
    hidden : number of Gaussian units (at most one per training point); their centres are
        training latents drawn with the seed.
    bandwidth : kernel width as a multiple of the median pairwise distance of the mapped
        training latents (gamma = 1 / (2 (bandwidth * median)^2)).
    whiten : map the latents to zero mean and identity covariance (PCA whitening) before the
        Gaussian units, so the kernel measures Mahalanobis distance (default); False: scale each
        dimension to unit variance only.
    epochs : most Frank-Wolfe passes; it stops earlier once the duality gap is below ``tol``.
    tol : Frank-Wolfe stops when the duality gap falls below ``tol`` x ||w||^2.
    seed : draws the centres and the bandwidth's sample.
    device, quiet : where to train; unused (no progress bar).
    """

    name = "ocnn"
    parameters: ClassVar[dict[str, Param]] = {
        "nu": NU_PARAM,
        "hidden": Param(Interval(int, 1), "Gaussian units (centres drawn from the training data)."),
        "bandwidth": Param(
            Interval(float, 0, closed="neither"), "Kernel width, a multiple of the median distance."
        ),
        "whiten": Param(Boolean(), "PCA-whiten the features before the Gaussian units."),
        "epochs": Param(Interval(int, 1), "Most Frank-Wolfe passes."),
        "tol": Param(Interval(float, 0), "Frank-Wolfe stops at this relative duality gap."),
        "seed": Param(Interval(int, 0), "Seed of the centres' draw."),
    }

    def __init__(
        self,
        nu: float = 0.1,
        hidden: int = 2048,
        bandwidth: float = 0.2,
        whiten: bool = True,
        epochs: int = 100,
        tol: float = 1e-3,
        seed: int = 0,
        device: str = "cpu",
        quiet: bool = True,
    ):
        self.nu, self.hidden, self.bandwidth, self.whiten = nu, hidden, bandwidth, whiten
        self.epochs, self.tol, self.seed = epochs, tol, seed
        self.device, self.quiet = device, quiet
        self.validate_params()

    def _train(self, Z: np.ndarray, device: torch.device, on_epoch) -> tuple[float, list[dict]]:
        row_group = np.arange(len(Z))  # each point is its own group: left out of its own unit
        fitted = frank_wolfe(
            self.net_,
            Z,
            row_group,
            self._centre_rows,
            self._fold,
            nu=self.nu,
            max_passes=self.epochs,
            tol=self.tol,
            device=device,
            on_epoch=on_epoch,
        )
        scores = sharded_out_of_fold_scores(
            self.net_, Z, row_group, self._centre_rows, self._fold, fitted, device
        )
        self.net_.w.weight.copy_(fitted.weights[None])
        self.net_.keep_units(fitted.weights > 0)
        self.out_of_fold_scores_ = scores
        return nu_quantile(scores, self.nu), fitted.history

    def _build(self, Z: np.ndarray) -> nn.Module:
        rng = np.random.default_rng(self.seed)
        mean = Z.mean(0, dtype=np.float64)
        transform = whitening(Z) if self.whiten else np.diag(1.0 / (Z.std(0, dtype=np.float64) + 1e-6))
        mapped = ((Z - mean) @ transform).astype(np.float32)
        self._centre_rows = rng.choice(len(Z), min(self.hidden, len(Z)), replace=False)
        self._fold = rng.permutation(len(Z)) % min(THRESHOLD_FOLDS, len(Z))  # cross-fitted threshold
        gamma = 1.0 / (2.0 * (self.bandwidth * median_distance(mapped, rng)) ** 2)
        centres = torch.from_numpy(mapped[self._centre_rows])
        return KernelOCNNNet(torch.from_numpy(mean), torch.from_numpy(transform), centres, gamma)

    @classmethod
    def _empty_net(cls, head, weights):
        return KernelOCNNNet(
            weights["mean"], weights["transform"], weights["V.weight"], float(weights["gamma"])
        )
