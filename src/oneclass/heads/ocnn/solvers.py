"""The OC-NN's two solvers (Chalapathy et al. 2018, eq. 3-5):

- ``train_paper_ocnn``: the paper's loop for its network, alternating an Adam step on (V, w)
  with r held constant and r set to the nu-quantile of the mini-batch's outputs;
- ``frank_wolfe``: for the kernel OC-NN, whose hidden layer is fixed, the exact minimiser of the
  same objective over w by Frank-Wolfe on its dual (tens of passes over the data).

Under torchrun both take every quantile over the outputs of all ranks; whole-data-set passes are
split with ``distributed.shard`` and put back together with ``distributed.gather_shards``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...calibration import nu_quantile
from ...errors import OneClassError
from ...timing import Stopwatch
from ...training import distributed
from ...training.loop import check_finite, check_not_collapsed, epoch_bar, seeded_generator
from .networks import KernelOCNNNet, rows_per_pass

# Largest hidden-value matrix (bytes) Frank-Wolfe keeps in memory; above it, recomputed per pass.
HIDDEN_MATRIX_BUDGET = 1 << 30


def ocnn_loss(
    y_hat: torch.Tensor, weights: list[torch.Tensor], r: float | torch.Tensor, nu: float
) -> torch.Tensor:
    """Eq. 3: 1/2 sum ||W||_F^2 over ``weights`` + (1/nu) mean(relu(r - y_hat)) - r.

    For the paper's network ``weights`` is [V, w]. ``r`` enters as a constant: the caller
    passes a detached value, so no gradient flows into it.
    """
    regulariser = 0.5 * sum(weight.pow(2).sum() for weight in weights)
    return regulariser + torch.relu(r - y_hat).mean() / nu - r


@torch.no_grad()
def predict_outputs(net: nn.Module, latents: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """``net`` over ``latents`` in chunks, as float64 ``(n,)`` on the CPU (chunks of 512 keep a
    kernel net's (chunk, units) hidden values in cache: measured 4x faster than 4096-row chunks
    at 4096 units)."""
    net.eval()
    return torch.cat([net(part) for part in latents.split(batch_size)]).double().cpu().numpy()


def all_outputs(net: nn.Module, latents: torch.Tensor) -> np.ndarray:
    """Outputs ``(n,)`` for every training latent; each rank scores its shard when distributed."""
    if distributed.world_size() == 1:
        return predict_outputs(net, latents)
    local = predict_outputs(net, latents[distributed.shard(len(latents))])
    return distributed.gather_shards(torch.from_numpy(local).to(latents.device), len(latents)).cpu().numpy()


def train_paper_ocnn(
    net: nn.Module,
    latents: np.ndarray,
    *,
    nu: float,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
    quiet: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[float, list[dict]]:
    """Train ``net`` on ``latents`` ``(n, d)`` by the paper's alternation: per mini-batch, r is
    the nu-quantile of the batch's outputs (a constant during the step), then one Adam step on
    eq. 3 over ``net.regularised()`` and the hinge.

    After each epoch the whole training set is scored to record r and the score spread.
    Under torchrun each rank steps on its shard (DDP averages the gradients) and the batch's r
    is taken over the outputs of all ranks (the global batch).
    Returns the final threshold (nu-quantile over all training outputs) and the per-epoch history.
    """
    net.to(device)
    data = torch.as_tensor(latents, dtype=torch.float32, device=device)
    trainer = distributed.wrap(net, device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    generator = seeded_generator(seed)
    history = []
    for epoch in range(1, epochs + 1):
        clock = Stopwatch()
        net.train()
        total = torch.zeros((), dtype=torch.float64, device=device)
        batches = distributed.epoch_batches(len(data), batch_size, generator, seed, epoch)
        with epoch_bar(len(batches), f"oc-nn epoch {epoch}/{epochs}", quiet) as bar:
            for index in batches:
                y_hat = trainer(data.index_select(0, index.to(device)))
                r = nu_quantile(distributed.gather(y_hat.detach()).double().cpu().numpy(), nu)
                loss = ocnn_loss(y_hat, net.regularised(), r, nu)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach().double() * len(index)  # no .item(): a device sync per step
                bar.update()
        total = float(distributed.sum_over_ranks(total))
        outputs = all_outputs(net, data)
        check_finite(total, "OC-NN loss", epoch)
        check_finite(float(outputs.sum()), "OC-NN scores", epoch)
        record = {
            "epoch": epoch,
            "loss": total / len(data),
            "threshold": nu_quantile(outputs, nu),
            "score_mean": float(outputs.mean()),
            "score_std": float(outputs.std()),
            "seconds": clock.seconds(),
        }
        history.append(record)
        if on_epoch:
            on_epoch(record)
    outputs = all_outputs(net, data)
    check_not_collapsed(outputs, "OC-NN training scores")
    return nu_quantile(outputs, nu), history


def excluded_units(row_group: torch.Tensor, unit_group: torch.Tensor) -> torch.Tensor:
    """``(rows, units)`` bool: the units a training row is scored without, those centred on a
    point of the row's own group (the row itself, or its image for patches)."""
    return row_group[:, None] == unit_group[None, :]


class _HiddenLayer:
    """A fixed hidden layer's values ``(n, units)`` on ``latents``, each row without the units of
    its own group (``excluded_units``): one matrix when it fits ``HIDDEN_MATRIX_BUDGET``, else
    recomputed chunk by chunk at every use (constant memory)."""

    def __init__(
        self,
        net: KernelOCNNNet,
        latents: torch.Tensor,
        row_group: torch.Tensor,
        unit_group: torch.Tensor,
        chunk: int = 8192,
    ):
        self.net, self.latents, self.chunk = net, latents, chunk
        self.row_group, self.unit_group = row_group, unit_group
        self.units = net.units
        fits = len(latents) * self.units * latents.element_size() <= HIDDEN_MATRIX_BUDGET
        self.matrix = self._values(0, len(latents)) if fits else None

    def _values(self, start: int, stop: int) -> torch.Tensor:
        values = self.net.hidden_values(self.latents[start:stop], self.chunk)
        return values.masked_fill_(excluded_units(self.row_group[start:stop], self.unit_group), 0.0)

    def _chunks(self):
        for start in range(0, len(self.latents), self.chunk):
            yield start, self._values(start, min(start + self.chunk, len(self.latents)))

    def outputs(self, w: torch.Tensor) -> torch.Tensor:
        """``(n,)`` outputs ``hidden @ w``."""
        if self.matrix is not None:
            return torch.mv(self.matrix, w)
        return torch.cat([torch.mv(part, w) for _, part in self._chunks()])

    def weighted_sum(self, weights: torch.Tensor) -> torch.Tensor:
        """``(units,)`` sum of the hidden vectors weighted by ``weights`` ``(n,)`` (mostly 0)."""
        rows = torch.nonzero(weights).squeeze(1)
        if self.matrix is not None:
            return F.embedding_bag(
                rows[None], self.matrix, mode="sum", per_sample_weights=weights[rows][None]
            )[0]
        total = torch.zeros(self.units, dtype=self.latents.dtype, device=self.latents.device)
        for start, part in self._chunks():
            total += weights[start : start + len(part)] @ part
        return total


def capped_simplex_vertex(outputs: torch.Tensor, nu: float) -> torch.Tensor:
    """The dual's best vertex for these outputs ``(n,)``: weights ``(n,)`` with 1/(nu n) on the
    floor(nu n) lowest outputs and the rest of the unit mass on the next one (exact also when
    nu n is not an integer); ties broken by position, so every rank finds the same vertex."""
    n = len(outputs)
    cap = 1.0 / (nu * n)
    full = min(n, math.floor(nu * n))
    order = torch.sort(outputs, stable=True).indices
    weights = torch.zeros(n, dtype=torch.float64, device=outputs.device)
    weights[order[:full]] = cap
    remainder = 1.0 - full * cap
    if full < n and remainder > 1e-12:
        weights[order[full]] = min(cap, remainder)
    return weights


def _log_outputs(outputs: torch.Tensor) -> torch.Tensor:
    """log of linear outputs for the training record, 0 floored at float32's smallest value."""
    return torch.log(outputs.double().clamp(min=torch.finfo(torch.float32).tiny))


def _solve(
    hidden: _HiddenLayer,
    rows: torch.Tensor,
    n: int,
    *,
    nu: float,
    max_passes: int,
    tol: float,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[torch.Tensor, list[dict]]:
    """Frank-Wolfe on the training points selected by ``rows`` (bool, this rank's block of a
    global ``(n,)`` mask); returns w and one record per pass."""
    selected = distributed.gather_shards(rows.float(), n) > 0
    count = int(selected.sum())
    w = distributed.sum_over_ranks(hidden.weighted_sum(rows.float())) / count
    history = []
    for epoch in range(max_passes + 1):
        clock = Stopwatch()
        local = hidden.outputs(w)
        check_finite(float(local.sum()), "OC-NN scores", epoch)
        outputs = distributed.gather_shards(local, n)[selected]
        weights = torch.zeros(n, dtype=torch.float64, device=outputs.device)
        weights[selected] = capped_simplex_vertex(outputs, nu)
        direction = w - distributed.sum_over_ranks(hidden.weighted_sum(weights[distributed.shard(n)].float()))
        gap = float(torch.dot(w.double(), direction.double()))
        norm = float(w.double().square().sum())
        if norm == 0.0:  # w = 0 is the optimum only when the nu-tail's hidden values are all 0
            raise OneClassError(
                "OC-NN: a share nu or more of the training points has every Gaussian unit at 0 "
                "(further from all centres than float32 resolves): the bandwidth is too small for "
                "these latents; raise it"
            )
        logs = _log_outputs(outputs)
        record = {
            "epoch": epoch,
            "loss": float(ocnn_loss(outputs.double(), [w.double()], nu_quantile(outputs, nu), nu)),
            "threshold": nu_quantile(logs, nu),
            "score_mean": float(logs.mean()),
            "score_std": float(logs.std()),
            "duality_gap": gap / norm,
        }
        done = gap <= tol * norm or epoch == max_passes
        if not done:  # exact line search: the step minimising 1/2 ||w - step * direction||^2
            w = w - min(1.0, gap / float(direction.double().square().sum())) * direction
        record["seconds"] = clock.seconds()
        history.append(record)
        if on_epoch:
            on_epoch(record)
        if done:
            return w, history
    raise AssertionError("unreachable")


@dataclass
class FrankWolfeFit:
    weights: torch.Tensor  # (units,) w on all training points
    fold_weights: list[torch.Tensor]  # w fitted without fold k, for k = 0, 1, ...
    history: list[dict]  # the final run's records


@torch.no_grad()
def frank_wolfe(
    net: KernelOCNNNet,
    latents: np.ndarray,
    row_group: np.ndarray,
    unit_group: np.ndarray,
    fold: np.ndarray,
    *,
    nu: float,
    max_passes: int,
    tol: float,
    device: torch.device,
    on_epoch: Callable[[dict], None] | None = None,
) -> FrankWolfeFit:
    """Minimise the OC-NN objective over the output weights w of ``net`` (hidden layer fixed):
    once on every training point, and once without each fold (``fold[i]``), so that a point's
    score can be taken from weights fitted without it (cross-fitting).

    With h_i the hidden values, the objective 1/2 ||w||^2 + (1/nu) mean(relu(r - w.h_i)) - r is
    convex in (w, r); its dual is min 1/2 ||sum_i a_i h_i||^2 over 0 <= a_i <= 1/(nu n),
    sum a_i = 1, and at the optimum w = sum_i a_i h_i (so w >= 0 when h >= 0) and r is the
    nu-quantile of the outputs. Frank-Wolfe on that dual: start from a_i = 1/n (w = the mean
    hidden vector: a kernel density), then each pass scores every training point, takes the
    dual's best vertex (the lowest-scored points, ``capped_simplex_vertex``) and moves w towards
    it with the exact line-search step. It stops when the duality gap w.(w - u) falls below
    ``tol`` ||w||^2 or after ``max_passes`` passes, whichever comes first (the history records
    the gap reached). Each row's hidden values leave out the units of its own group
    (``row_group``, ``unit_group``: ``excluded_units``), so the fit never uses a point's
    similarity to itself.

    Under torchrun each rank holds the hidden values of its shard; every vertex is chosen over
    the outputs of all ranks. ``net`` is left as it was.
    """
    net.to(device).eval()
    n = len(latents)
    block = distributed.shard(n)
    local = torch.as_tensor(latents[block], dtype=torch.float32, device=device)
    groups = torch.as_tensor(row_group[block], dtype=torch.long, device=device)
    units = torch.as_tensor(unit_group, dtype=torch.long, device=device)
    local_fold = torch.as_tensor(fold[block], dtype=torch.long, device=device)
    hidden = _HiddenLayer(net, local, groups, units)
    fold_weights = [
        _solve(hidden, local_fold != k, n, nu=nu, max_passes=max_passes, tol=tol)[0]
        for k in range(int(fold.max()) + 1)
    ]
    everything = torch.ones(len(local), dtype=torch.bool, device=device)
    w, history = _solve(hidden, everything, n, nu=nu, max_passes=max_passes, tol=tol, on_epoch=on_epoch)
    return FrankWolfeFit(w, fold_weights, history)


@torch.no_grad()
def out_of_fold_log_scores(
    net: KernelOCNNNet,
    latents: torch.Tensor,
    row_group: torch.Tensor,
    unit_group: torch.Tensor,
    fold: torch.Tensor,
    fold_weights: list[torch.Tensor],
) -> torch.Tensor:
    """log y_hat of training rows ``(n,)`` as new points would get it: without the units of
    their own group, with the weights of the fold they were left out of. ``net``'s own weights
    are kept."""
    chunk = rows_per_pass(net.units, latents.device)
    kept = net.w.weight.detach().clone()
    scores = torch.empty(len(latents), dtype=torch.float32, device=latents.device)
    try:
        for k, w in enumerate(fold_weights):
            net.w.weight.copy_(w[None])
            rows = torch.nonzero(fold == k).squeeze(1)
            for part in rows.split(chunk):
                scores[part] = net.log_scores_without(
                    latents[part], excluded_units(row_group[part], unit_group)
                )
    finally:
        net.w.weight.copy_(kept)
    return scores


def sharded_out_of_fold_scores(
    net: KernelOCNNNet,
    latents: np.ndarray,
    row_group: np.ndarray,
    unit_group: np.ndarray,
    fold: np.ndarray,
    fitted: FrankWolfeFit,
    device: torch.device,
) -> np.ndarray:
    """``out_of_fold_log_scores`` of every training row ``(n,)``, each rank scoring its shard."""
    n = len(latents)
    block = distributed.shard(n)
    scores = out_of_fold_log_scores(
        net,
        torch.as_tensor(latents[block], dtype=torch.float32, device=device),
        torch.as_tensor(row_group[block], dtype=torch.long, device=device),
        torch.as_tensor(unit_group, dtype=torch.long, device=device),
        torch.as_tensor(fold[block], dtype=torch.long, device=device),
        fitted.fold_weights,
    )
    scores = distributed.gather_shards(scores, n).cpu().numpy()
    check_not_collapsed(scores, "OC-NN training scores")
    return scores
