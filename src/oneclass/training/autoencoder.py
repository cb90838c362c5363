"""The training loop of the encoders trained on the normal images (autoencoder, VAE and the ssl
transformation predictor share it: each model's ``forward`` returns its own per-image training
loss)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..data.arrays import to_tensor
from ..timing import Stopwatch
from . import distributed
from .checkpoint import Checkpointer
from .loop import check_finite, epoch_bar, keep_freed_memory, seeded_generator


def train_autoencoder(
    model: nn.Module,
    images: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    device: torch.device,
    quiet: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    checkpoint: Checkpointer | None = None,
    targets: np.ndarray | None = None,
) -> list[dict]:
    """Train ``model`` on ``images`` ``(n, C, H, W)`` (uint8 or float in [0, 1]).

    ``targets`` ``(n, ...)``, when given, are per-image regression targets handed to the model's
    loss with each batch (``model(x, targets)``; the ``ssl-fast`` student's).
    With a ``checkpoint``, the state is saved after every epoch and, if a checkpoint already
    exists, training continues after its last epoch (bitwise the same result on CPU).
    Under torchrun each process trains on its shard with gradients averaged over processes
    (``training/distributed.py``); only the first process writes checkpoints.
    Returns one record per epoch: ``{"epoch", "loss", "seconds"}`` (loss = mean per image).
    """
    keep_freed_memory()
    model.to(device).train()
    trainer = distributed.wrap(model, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = seeded_generator(seed)
    history: list[dict] = []
    done = 0
    if checkpoint is not None and checkpoint.exists():
        done, history = checkpoint.restore(model, optimizer, generator)
        model.to(device).train()
    for epoch in range(done + 1, epochs + 1):
        clock = Stopwatch()
        total = torch.zeros(2, dtype=torch.float64, device=device)  # summed loss, images
        batches = distributed.epoch_batches(len(images), batch_size, generator, seed, epoch)
        with epoch_bar(len(batches), f"{model.kind} epoch {epoch}/{epochs}", quiet) as bar:
            for index in batches:
                rows = index.numpy()
                inputs = [to_tensor(images[rows], device)]
                if targets is not None:
                    inputs.append(torch.from_numpy(targets[rows]).to(device))
                with mixed_precision(device):
                    loss = trainer(*inputs).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total[0] += loss.detach().double() * len(index)  # no .item(): a device sync per step
                total[1] += len(index)
                bar.update()
        total = distributed.sum_over_ranks(total)
        mean_loss = float(total[0] / total[1])
        check_finite(mean_loss, f"{model.kind} loss", epoch)
        record = {"epoch": epoch, "loss": mean_loss, "seconds": clock.seconds()}
        history.append(record)
        if checkpoint is not None and distributed.is_main_process():
            checkpoint.save(epoch, model, optimizer, generator, history)
        if on_epoch:
            on_epoch(record)
    distributed.broadcast_buffers(model)
    model.eval()
    return history


def mixed_precision(device: torch.device):
    """bfloat16 autocast on CUDA (convolutions and matrix products at tensor-core speed, same
    exponent range as float32, so no loss scaling); a no-op elsewhere, so CPU training stays
    float32 and bitwise reproducible."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def _in_batches(
    apply, model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int
) -> np.ndarray:
    """``apply(x)`` over ``images`` batch by batch, model in eval mode, float32 results on the CPU."""
    keep_freed_memory()
    model.to(device).eval()
    parts = [
        apply(to_tensor(images[start : start + batch_size], device)).float().cpu()
        for start in range(0, len(images), batch_size)
    ]
    return torch.cat(parts).numpy()


def encode(model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 2048) -> np.ndarray:
    """Latent vectors ``(n, latent_dim)`` as float32, in eval mode."""
    return _in_batches(model.encode, model, images, device, batch_size)


def reconstruction_scores(
    model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 2048
) -> np.ndarray:
    """The model's own anomaly score per image ``(n,)``: higher = more abnormal."""
    return _in_batches(model.anomaly_score, model, images, device, batch_size)
