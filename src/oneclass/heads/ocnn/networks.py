"""The OC-NN's two networks: the paper's (sigmoid hidden layer) and the kernel OC-NN's
(Gaussian hidden units on whitened latents), both bias-free."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.covariance import ledoit_wolf
from torch import nn

from ...errors import OneClassError


class PaperOCNNNet(nn.Module):
    """y_hat = w . sigmoid(V z), both layers bias-free (a bias would shift y_hat and r together)."""

    def __init__(self, in_features: int, hidden: int):
        super().__init__()
        self.V = nn.Linear(in_features, hidden, bias=False)
        self.w = nn.Linear(hidden, 1, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.w(torch.sigmoid(self.V(z))).squeeze(1)

    def regularised(self) -> list[torch.Tensor]:
        """The weights of eq. 3's 1/2 ||.||^2 terms: the live parameters, not copies."""
        return [self.V.weight, self.w.weight]


# input rows per pass of a kernel net in eager scoring: its (rows, units) terms, 4 MB in float32,
# stay in the cache; at 8 MB (1,024 rows x 2,048 units) a pass ran 3x slower on 2 cores
TERMS_PER_PASS = 1 << 20
GPU_TERMS_PER_PASS = 1 << 26  # on a GPU, 256 MB of terms per pass: few, large kernel launches


def rows_per_pass(units: int, device: torch.device | str = "cpu") -> int:
    """Input rows per pass of a kernel net with ``units`` Gaussian units (``TERMS_PER_PASS``, or
    ``GPU_TERMS_PER_PASS`` on a GPU)."""
    terms = TERMS_PER_PASS if torch.device(device).type == "cpu" else GPU_TERMS_PER_PASS
    return max(1, terms // max(1, units))


def row_logsumexp(terms: torch.Tensor) -> torch.Tensor:
    """``torch.logsumexp(terms, dim=1)``; in an ONNX export, written out as max, exp, sum and log,
    which ONNX Runtime runs on all its threads (its ReduceLogSumExp took half of the local graph's
    time, 3 times PyTorch's, benchmarks/local_speed.py --onnx)."""
    if not torch.onnx.is_in_onnx_export():
        return torch.logsumexp(terms, dim=1)
    peak = terms.amax(1, keepdim=True)
    return (terms - peak).exp().sum(1).log() + peak.squeeze(1)


class KernelOCNNNet(nn.Module):
    """The kernel OC-NN's output y_hat = w . h, h_j = exp(-gamma ||s - v_j||^2), s = (z - mean) @
    transform the whitened (or standardised) latent, v_j the rows of V (fixed centres), w >= 0.

    ``forward`` returns log y_hat, computed as one log-sum-exp of log w_j - gamma ||s - v_j||^2:
    it never underflows (y_hat itself is 0 in float32 for any point further than about 13 kernel
    widths from every centre, which made far-out images tie at 0), and it orders images as y_hat
    does. Its size means something: a difference of 1 is a factor e in similarity to the normal
    data.

    The hidden layer's value does not grow with the input's norm (the sigmoid units of the paper
    do, which ranks far-out points as the most normal); w >= 0 makes the score a weighted sum of
    similarities to the normal data, so a point far from all of it scores lowest.
    """

    def __init__(self, mean: torch.Tensor, transform: torch.Tensor, centres: torch.Tensor, gamma: float):
        super().__init__()
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("transform", transform.float().clone())  # (latent_dim, latent_dim)
        self.register_buffer("gamma", torch.tensor(float(gamma)))
        self.V = nn.Linear(centres.shape[1], centres.shape[0], bias=False)
        self.V.weight.data.copy_(centres)
        self.V.weight.requires_grad_(False)
        self.w = nn.Linear(centres.shape[0], 1, bias=False)
        nn.init.constant_(self.w.weight, 1.0 / centres.shape[0])  # start as a kernel density
        self.w.weight.requires_grad_(False)  # trained by Frank-Wolfe, not by gradients

    @property
    def units(self) -> int:
        return self.V.weight.shape[0]

    def _mapped(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean) @ self.transform

    def _projection(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(2 gamma V, -gamma ||v_j||^2)``: -gamma ||s - v_j||^2 = s . 2 gamma v_j - gamma ||v_j||^2
        - gamma ||s||^2, one matrix product with a bias and one subtraction per hidden value."""
        return self.V.weight * (2 * self.gamma), self.V.weight.pow(2).sum(1) * -self.gamma

    def hidden(self, z: torch.Tensor) -> torch.Tensor:
        """The hidden values ``(n, units)`` (they underflow to 0 far from a centre)."""
        s = self._mapped(z)
        weight, bias = self._projection()
        exponent = torch.addmm(bias, s, weight.t()) - self.gamma * (s * s).sum(1, keepdim=True)
        return torch.exp(exponent.clamp(max=0))

    @torch.no_grad()
    def hidden_values(self, z: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """``hidden(z)`` for many rows at once, ``(n, units)``: the same operations, written in
        place into one preallocated matrix (no temporaries of that size, no concatenation)."""
        out = torch.empty((len(z), self.units), dtype=z.dtype, device=z.device)
        weight, bias = self._projection()
        for start in range(0, len(z), chunk):
            s = self._mapped(z[start : start + chunk])
            part = out[start : start + chunk]
            torch.addmm(bias, s, weight.t(), out=part)
            part.sub_(self.gamma * (s * s).sum(1, keepdim=True)).clamp_(max=0).exp_()
        return out

    def log_terms(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, c)`` with log w_j + log h_j(z) = A[:, j] - c: log w folded into the bias of the
        one matrix product, and the per-row term gamma ||s||^2 (taken out of the log-sum-exp)."""
        s = self._mapped(z)
        weight, bias = self._projection()
        terms = torch.addmm(bias + torch.log(self.w.weight[0]), s, weight.t())
        return terms, self.gamma * (s * s).sum(1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """log y_hat ``(n,)``."""
        terms, row = self.log_terms(z)
        return row_logsumexp(terms) - row

    @torch.no_grad()
    def log_scores_in_passes(self, z: torch.Tensor) -> torch.Tensor:
        """``forward(z)`` ``(n,)`` in passes of ``rows_per_pass(units)`` rows (eager scoring of
        many rows; an exported graph takes ``forward`` in one piece)."""
        return torch.cat([self(part) for part in z.split(rows_per_pass(self.units, z.device))])

    @torch.no_grad()
    def log_scores_without(self, z: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
        """log y_hat of training points ``(n,)`` without the units marked in ``excluded``
        ``(n, units)`` (those centred on the point itself or its image): scored as new points."""
        terms, row = self.log_terms(z)
        return torch.logsumexp(terms.masked_fill_(excluded, -torch.inf), dim=1) - row

    @torch.no_grad()
    def keep_units(self, keep: torch.Tensor) -> None:
        """Drop the units not in ``keep`` (bool, ``(units,)``): those whose weight is 0 add
        nothing to any score."""
        centres, weights = self.V.weight[keep].clone(), self.w.weight[:, keep].clone()
        self.V = nn.Linear(centres.shape[1], centres.shape[0], bias=False)
        self.V.weight.data.copy_(centres)
        self.V.weight.requires_grad_(False)
        self.w = nn.Linear(centres.shape[0], 1, bias=False)
        self.w.weight.data.copy_(weights)
        self.w.weight.requires_grad_(False)


# below this many points per dimension the covariance is shrunk before whitening (``whitening``)
SHRINK_BELOW = 2


def whitening(Z: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """``(d, d)`` matrix T with ``cov((Z - mean) @ T) = I`` (PCA whitening), float64.

    Eigenvalues below ``floor`` x the largest are raised to it, so a direction in which the
    training latents (almost) never vary is scaled up a million-fold at most, not divided by 0.
    With fewer than ``SHRINK_BELOW`` x d points the covariance is first shrunk towards a multiple
    of the identity (Ledoit-Wolf): there the sample covariance's small eigenvalues are far too
    small, and at n <= d + 1 whitening puts the points on a regular simplex, every pair equally
    far apart, so that every kernel score comes out the same (40 images and a 32-number latent
    did).
    """
    if len(Z) < 2:
        return np.eye(Z.shape[1])
    if len(Z) < SHRINK_BELOW * Z.shape[1]:
        covariance = ledoit_wolf(np.asarray(Z, dtype=np.float64))[0]
    else:
        covariance = np.cov(Z, rowvar=False)
    values, vectors = np.linalg.eigh(np.atleast_2d(covariance))
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
