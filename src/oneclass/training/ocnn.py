"""OC-NN training (Chalapathy et al. 2018; the report's eq. 3-5), two ways:

- ``train_ocnn``: the paper's loop, alternating a gradient step on (V, w) with r held constant
  and r set to the nu-quantile of the outputs (any OC-NN; the report's variant).
- ``train_output_layer``: for a net whose hidden layer is fixed (the kernel OC-NN), the exact
  minimiser of the same objective over w by Frank-Wolfe on its dual (tens of passes).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import OneClassError
from . import distributed
from .common import Stopwatch, check_finite, check_not_collapsed, epoch_bar, seeded_generator

R_UPDATES = ("batch", "epoch")
SOLVERS = ("frank-wolfe", "adam")
# Largest hidden-value matrix (bytes) kept in memory to train the output layer alone.
FROZEN_FEATURES_BUDGET = 1 << 30


def ocnn_loss(
    y_hat: torch.Tensor, weights: list[torch.Tensor], r: float | torch.Tensor, nu: float
) -> torch.Tensor:
    """Eq. 3: 1/2 sum ||W||_F^2 over ``weights`` + (1/nu) mean(relu(r - y_hat)) - r.

    For the report's network ``weights`` is [V, w]. ``r`` enters as a constant: the caller
    passes a detached value, so no gradient flows into it.
    """
    regulariser = 0.5 * sum(weight.pow(2).sum() for weight in weights)
    return regulariser + torch.relu(r - y_hat).mean() / nu - r


def nu_quantile(y_hat: torch.Tensor | np.ndarray, nu: float) -> float:
    """Eq. 4-5: the value below which a share ``nu`` of the outputs lie."""
    values = y_hat.detach().double().cpu().numpy() if isinstance(y_hat, torch.Tensor) else y_hat
    return float(np.quantile(np.asarray(values, dtype=np.float64), nu))


@torch.no_grad()
def predict_outputs(net: nn.Module, latents: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """``net`` over ``latents`` in chunks, as float64 ``(n,)`` on the CPU (chunks of 512 keep a
    kernel net's (chunk, units) hidden values in cache: measured 4x faster than 4096-row chunks
    at 4096 units)."""
    net.eval()
    return torch.cat([net(part) for part in latents.split(batch_size)]).double().cpu().numpy()


class _Readout(nn.Module):
    """The output layer of a net with a fixed first layer, as a module (for DDP)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net.readout(hidden)


def _hidden_units_if_they_fit(net: nn.Module, data: torch.Tensor) -> tuple[int, bool]:
    """``(units, fits)``: the net's hidden width, and whether its hidden values on ``data`` fit
    ``FROZEN_FEATURES_BUDGET`` as one matrix."""
    units = net.hidden(data[:1]).shape[1]
    return units, len(data) * units * data.element_size() <= FROZEN_FEATURES_BUDGET


@torch.no_grad()
def _training_inputs(
    net: nn.Module, data: torch.Tensor, batch_size: int = 8192
) -> tuple[torch.Tensor, nn.Module]:
    """``(inputs, module)`` for the training loop: ``module(inputs[i])`` is the net's output.

    A net whose first layer is fixed (``net.frozen_features()``) has its hidden values computed
    once, and training runs the output layer alone on them: the same steps and results as the
    full forward pass, minus recomputing the first layer every step (most of the cost).
    """
    frozen = getattr(net, "frozen_features", None)
    if frozen is None or not frozen():
        return data, net
    net.eval()
    if not _hidden_units_if_they_fit(net, data)[1]:
        return data, net
    return net.hidden_values(data, batch_size), _Readout(net)


def all_outputs(module: nn.Module, inputs: torch.Tensor) -> np.ndarray:
    """Outputs ``(n,)`` for every training input; each rank scores its shard when distributed."""
    if distributed.world_size() == 1:
        return predict_outputs(module, inputs)  # no shard copy: inputs may be n x 4096 hidden values
    shard = distributed.score_shard(len(inputs))
    outputs = predict_outputs(module, inputs.index_select(0, shard.to(inputs.device)))
    return distributed.gather_by_index(torch.from_numpy(outputs).to(inputs.device), shard, len(inputs))


def train_ocnn(
    net: nn.Module,
    latents: np.ndarray,
    *,
    nu: float,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
    r_update: str = "batch",
    quiet: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[float, list[dict]]:
    """Train ``net`` on ``latents`` ``(n, d)``; ``net.regularised()`` lists the weights of the
    1/2 ||.||^2 terms, and an optional ``net.project()`` runs after every step (constraints).

    r_update "batch" (the report): per mini-batch r = nu-quantile of the batch outputs, a
    constant during the step. "epoch": r = nu-quantile over all training outputs, recomputed
    after every epoch (steadier: nu * batch_size points make a noisy quantile).
    After each epoch the whole training set is scored to record r and the score spread.
    Under torchrun each rank steps on its shard (DDP averages the gradients) and every quantile
    is taken over the outputs of all ranks: the global batch, or the whole training set.
    Returns the final r (nu-quantile over all training outputs) and the per-epoch history.
    """
    if r_update not in R_UPDATES:
        raise OneClassError(f"r_update must be one of {', '.join(R_UPDATES)}, got {r_update!r}")
    net.to(device)
    data, module = _training_inputs(net, torch.as_tensor(latents, dtype=torch.float32, device=device))
    trainer = distributed.wrap(module, device)
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    generator = seeded_generator(seed)
    project = getattr(net, "project", None)
    history = []
    epoch_r = nu_quantile(all_outputs(module, data), nu)
    for epoch in range(1, epochs + 1):
        clock = Stopwatch()
        module.train()
        total = torch.zeros((), dtype=torch.float64, device=device)
        batches = distributed.epoch_batches(len(data), batch_size, generator, seed, epoch)
        with epoch_bar(len(batches), f"oc-nn epoch {epoch}/{epochs}", quiet) as bar:
            for index in batches:
                y_hat = trainer(data.index_select(0, index.to(device)))
                r = nu_quantile(distributed.gather(y_hat.detach()), nu) if r_update == "batch" else epoch_r
                loss = ocnn_loss(y_hat, net.regularised(), r, nu)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if project is not None:
                    project()
                total += loss.detach().double() * len(index)  # no .item(): a device sync per step
                bar.update()
        total = float(distributed.sum_over_ranks(total))
        outputs = all_outputs(module, data)
        check_finite(total, "OC-NN loss", epoch)
        check_finite(float(outputs.sum()), "OC-NN scores", epoch)
        epoch_r = nu_quantile(outputs, nu)
        record = {
            "epoch": epoch,
            "loss": total / len(data),
            "r": epoch_r,
            "score_mean": float(outputs.mean()),
            "score_std": float(outputs.std()),
            "seconds": clock.seconds(),
        }
        history.append(record)
        if on_epoch:
            on_epoch(record)
    outputs = all_outputs(module, data)
    check_not_collapsed(outputs, "OC-NN training scores")
    return nu_quantile(outputs, nu), history


class _HiddenLayer:
    """A fixed hidden layer's values ``(n, units)`` on ``latents``: one matrix when it fits
    ``FROZEN_FEATURES_BUDGET``, else recomputed chunk by chunk at every use (constant memory)."""

    def __init__(self, net: nn.Module, latents: torch.Tensor, chunk: int = 8192):
        self.net, self.latents, self.chunk = net, latents, chunk
        self.units, fits = _hidden_units_if_they_fit(net, latents)
        self.matrix = net.hidden_values(latents, chunk) if fits else None

    def outputs(self, w: torch.Tensor) -> torch.Tensor:
        """``(n,)`` outputs ``hidden @ w``."""
        if self.matrix is not None:
            return torch.mv(self.matrix, w)
        return torch.cat(
            [torch.mv(self.net.hidden_values(part), w) for part in self.latents.split(self.chunk)]
        )

    def row_sum(self, rows: torch.Tensor) -> torch.Tensor:
        """``(units,)`` sum of the hidden values of ``rows`` (without copying them out)."""
        if self.matrix is not None:
            return F.embedding_bag(rows[None], self.matrix, mode="sum")[0]
        total = torch.zeros(self.units, dtype=self.latents.dtype, device=self.latents.device)
        for part in rows.split(self.chunk):
            total += self.net.hidden_values(self.latents[part]).sum(0)
        return total


def _gather_outputs(local: torch.Tensor, n: int) -> torch.Tensor:
    """Every rank's outputs, concatenated (``(n,)``; shards differ in length by at most one)."""
    if distributed.world_size() == 1:
        return local
    width = math.ceil(n / distributed.world_size())
    padded = torch.full((width,), math.inf, dtype=local.dtype, device=local.device)
    padded[: len(local)] = local
    values = distributed.gather(padded)
    return values[torch.isfinite(values)]


def _lowest_share_mean(
    hidden: _HiddenLayer, local: torch.Tensor, outputs: torch.Tensor, count: int
) -> torch.Tensor:
    """Mean hidden vector of the ``count`` training points with the lowest outputs, over all ranks
    (``local``: this rank's outputs, ``outputs``: every rank's): Frank-Wolfe's vertex."""
    kth = torch.kthvalue(outputs, count).values
    rows = torch.nonzero(local <= kth).squeeze(1)
    total = distributed.sum_over_ranks(
        torch.cat([hidden.row_sum(rows), torch.tensor([float(len(rows))], device=local.device)])
    )
    return total[:-1] / total[-1]


@torch.no_grad()
def train_output_layer(
    net: nn.Module,
    latents: np.ndarray,
    *,
    nu: float,
    epochs: int,
    tol: float,
    device: torch.device,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[float, list[dict]]:
    """Minimise the OC-NN objective over the output weights w of ``net`` (hidden layer fixed).

    With h_i the hidden values, the objective 1/2 ||w||^2 + (1/nu) mean(relu(r - w.h_i)) - r is
    convex in (w, r); its dual is min 1/2 ||sum_i a_i h_i||^2 over 0 <= a_i <= 1/(nu n),
    sum a_i = 1, and at the optimum w = sum_i a_i h_i (so w >= 0 when h >= 0) and r is the
    nu-quantile of the outputs. Frank-Wolfe on that dual: start from a_i = 1/n (w = the mean
    hidden vector: a kernel density), then each pass (an "epoch") scores every training point,
    takes the mean hidden vector u of the ceil(nu n) lowest-scored points (the dual's best
    vertex) and moves w towards u with the exact line-search step. It stops when the duality gap
    w.(w - u) falls below ``tol`` ||w||^2 or after ``epochs`` passes. Under torchrun each rank
    holds the hidden values of its shard; the k-th lowest output is taken over all ranks.
    Returns r (the nu-quantile of the final outputs) and one record per pass.
    """
    net.to(device).eval()
    n = len(latents)
    shard = torch.arange(distributed.rank(), n, distributed.world_size())
    hidden = _HiddenLayer(net, torch.as_tensor(latents[shard.numpy()], dtype=torch.float32, device=device))
    everything = torch.arange(len(shard), device=device)
    w = distributed.sum_over_ranks(hidden.row_sum(everything)) / n
    history = []
    for epoch in range(epochs + 1):
        clock = Stopwatch()
        local = hidden.outputs(w)
        check_finite(float(local.sum()), "OC-NN scores", epoch)
        outputs = _gather_outputs(local, n)
        direction = w - _lowest_share_mean(hidden, local, outputs, max(1, math.ceil(nu * n)))
        gap = float(torch.dot(w.double(), direction.double()))
        norm = float(w.double().square().sum())
        if norm == 0.0:  # w = 0 is the optimum only when the nu-tail's hidden values are all 0
            raise OneClassError(
                "OC-NN: a share nu or more of the training points has every Gaussian unit at 0 "
                "(further from all centres than float32 resolves): the bandwidth is too small for "
                "these latents; raise it"
            )
        scores, r = outputs.double(), nu_quantile(outputs, nu)
        record = {
            "epoch": epoch,
            "loss": float(ocnn_loss(scores, [w.double()], r, nu)),  # eq. 3 at r = the nu-quantile
            "r": r,
            "score_mean": float(scores.mean()),
            "score_std": float(scores.std()),
            "duality_gap": gap / norm,
        }
        done = gap <= tol * norm or epoch == epochs
        if not done:  # exact line search: the step minimising 1/2 ||w - step * direction||^2
            w = w - min(1.0, gap / float(direction.double().square().sum())) * direction
        record["seconds"] = clock.seconds()
        history.append(record)
        if on_epoch:
            on_epoch(record)
        if done:
            break
    net.w.weight.copy_(w[None])
    check_not_collapsed(outputs.cpu().numpy(), "OC-NN training scores")
    return history[-1]["r"], history
