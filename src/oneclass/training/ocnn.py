"""The OC-NN training loop: alternate a gradient step on (V, w) with r held constant and r set to
the nu-quantile of the outputs (Chalapathy et al. 2018; the report's eq. 3-5)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .common import Stopwatch, check_finite, check_not_collapsed, epoch_bar, minibatches, seeded_generator


def ocnn_loss(
    y_hat: torch.Tensor, V: torch.Tensor, w: torch.Tensor, r: float | torch.Tensor, nu: float
) -> torch.Tensor:
    """Eq. 3: 1/2 ||w||^2 + 1/2 ||V||_F^2 + (1/nu) mean(relu(r - y_hat)) - r.

    ``r`` enters as a constant: the caller passes a detached value, so no gradient flows into it.
    """
    regulariser = 0.5 * w.pow(2).sum() + 0.5 * V.pow(2).sum()
    return regulariser + torch.relu(r - y_hat).mean() / nu - r


def nu_quantile(y_hat: torch.Tensor | np.ndarray, nu: float) -> float:
    """Eq. 4-5: the value below which a share ``nu`` of the outputs lie."""
    values = y_hat.detach().double().cpu().numpy() if isinstance(y_hat, torch.Tensor) else y_hat
    return float(np.quantile(np.asarray(values, dtype=np.float64), nu))


@torch.no_grad()
def predict_outputs(net: nn.Module, latents: torch.Tensor, batch_size: int = 8192) -> np.ndarray:
    net.eval()
    return torch.cat([net(part) for part in latents.split(batch_size)]).double().cpu().numpy()


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
    quiet: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[float, list[dict]]:
    """Train ``net`` (with ``.V`` and ``.w`` linear layers) on ``latents`` ``(n, d)``.

    Per mini-batch: r = nu-quantile of the batch outputs (a constant), one Adam step on the loss of
    eq. 3. After each epoch the whole training set is scored to record r and the score spread.
    Returns the final r (nu-quantile over all training outputs) and the per-epoch history.
    """
    net.to(device)
    data = torch.as_tensor(latents, dtype=torch.float32, device=device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    generator = seeded_generator(seed)
    history = []
    for epoch in range(1, epochs + 1):
        clock = Stopwatch()
        net.train()
        total = 0.0
        batches = list(minibatches(len(data), batch_size, generator))
        with epoch_bar(len(batches), f"oc-nn epoch {epoch}/{epochs}", quiet) as bar:
            for index in batches:
                y_hat = net(data[index.to(device)])
                r = nu_quantile(y_hat, nu)
                loss = ocnn_loss(y_hat, net.V.weight, net.w.weight, r, nu)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(index)
                bar.update()
        outputs = predict_outputs(net, data)
        check_finite(total, "OC-NN loss", epoch)
        check_finite(float(outputs.sum()), "OC-NN scores", epoch)
        record = {
            "epoch": epoch,
            "loss": total / len(data),
            "r": nu_quantile(outputs, nu),
            "score_mean": float(outputs.mean()),
            "score_std": float(outputs.std()),
            "seconds": clock.seconds(),
        }
        history.append(record)
        if on_epoch:
            on_epoch(record)
    outputs = predict_outputs(net, data)
    check_not_collapsed(outputs, "OC-NN training scores")
    return nu_quantile(outputs, nu), history
