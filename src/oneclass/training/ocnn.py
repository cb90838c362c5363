"""The OC-NN training loop: alternate a gradient step on (V, w) with r held constant and r set to
the nu-quantile of the outputs (Chalapathy et al. 2018; the report's eq. 3-5)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..errors import OneClassError
from .common import Stopwatch, check_finite, check_not_collapsed, epoch_bar, minibatches, seeded_generator

R_UPDATES = ("batch", "epoch")
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
def predict_outputs(net: nn.Module | Callable, latents: torch.Tensor, batch_size: int = 8192) -> np.ndarray:
    """``net`` over ``latents`` in chunks, as float64 ``(n,)`` on the CPU."""
    if isinstance(net, nn.Module):
        net.eval()
    return torch.cat([net(part) for part in latents.split(batch_size)]).double().cpu().numpy()


@torch.no_grad()
def _training_inputs(net: nn.Module, data: torch.Tensor, batch_size: int = 8192):
    """``(inputs, forward)`` for the training loop.

    A net whose first layer is fixed (``net.frozen_features()``) has its hidden values computed
    once, and training runs the output layer alone on them: the same steps and results as the
    full forward pass, minus recomputing the first layer every epoch (most of the cost).
    """
    frozen = getattr(net, "frozen_features", None)
    if frozen is None or not frozen():
        return data, net
    net.eval()
    units = net.hidden(data[:1]).shape[1]
    if len(data) * units * data.element_size() > FROZEN_FEATURES_BUDGET:
        return data, net
    hidden = torch.cat([net.hidden(part) for part in data.split(batch_size)])
    return hidden, net.readout


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
    Returns the final r (nu-quantile over all training outputs) and the per-epoch history.
    """
    if r_update not in R_UPDATES:
        raise OneClassError(f"r_update must be one of {', '.join(R_UPDATES)}, got {r_update!r}")
    net.to(device)
    data, forward = _training_inputs(net, torch.as_tensor(latents, dtype=torch.float32, device=device))
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    generator = seeded_generator(seed)
    project = getattr(net, "project", None)
    history = []
    epoch_r = nu_quantile(predict_outputs(forward, data), nu)
    for epoch in range(1, epochs + 1):
        clock = Stopwatch()
        net.train()
        total = torch.zeros((), dtype=torch.float64, device=device)
        batches = list(minibatches(len(data), batch_size, generator))
        with epoch_bar(len(batches), f"oc-nn epoch {epoch}/{epochs}", quiet) as bar:
            for index in batches:
                y_hat = forward(data.index_select(0, index.to(device)))
                r = nu_quantile(y_hat, nu) if r_update == "batch" else epoch_r
                loss = ocnn_loss(y_hat, net.regularised(), r, nu)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if project is not None:
                    project()
                total += loss.detach() * len(index)  # no .item(): a device sync per step
                bar.update()
        total = float(total)
        outputs = predict_outputs(forward, data)
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
    outputs = predict_outputs(forward, data)
    check_not_collapsed(outputs, "OC-NN training scores")
    return nu_quantile(outputs, nu), history
