"""One-class Deep SVDD (Ruff et al. 2018): train a bias-free encoder to pull the normal
training data towards a fixed centre c, taken from the initial forward pass."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..data.arrays import to_tensor
from ..timing import Stopwatch
from .autoencoder import encode
from .loop import check_finite, epoch_bar, minibatches, seeded_generator

CENTRE_EPS = 0.1  # Ruff et al.: keep centre coordinates away from 0, where a zero map would sit


def initial_centre(latents: np.ndarray, eps: float = CENTRE_EPS) -> torch.Tensor:
    centre = torch.as_tensor(latents.mean(0), dtype=torch.float32)
    small = centre.abs() < eps
    centre[small & (centre < 0)] = -eps
    centre[small & (centre >= 0)] = eps
    return centre


def train_deep_svdd(
    pretrained: nn.Module,
    images: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    device: torch.device,
    quiet: bool = True,
) -> tuple[nn.Module, torch.Tensor, list[dict]]:
    """Copy ``pretrained`` (an autoencoder whose ``encode`` is bias-free) and train its encoder
    with the one-class objective mean ||phi(x) - c||^2. Returns (network, centre, history)."""
    net = copy.deepcopy(pretrained).to(device)
    net.decoder = None  # only the encoder is trained
    centre = initial_centre(encode(net, images, device)).to(device)
    optimizer = torch.optim.Adam(
        [p for p in net.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay
    )
    generator = seeded_generator(seed)
    history = []
    for epoch in range(1, epochs + 1):
        clock = Stopwatch()
        net.train()
        total = 0.0
        batches = list(minibatches(len(images), batch_size, generator))
        with epoch_bar(len(batches), f"deep-svdd epoch {epoch}/{epochs}", quiet) as bar:
            for index in batches:
                z = net.encode(to_tensor(images[index.numpy()], device))
                loss = (z - centre).pow(2).sum(1).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(index)
                bar.update()
        check_finite(total, "Deep SVDD loss", epoch)
        history.append({"epoch": epoch, "loss": total / len(images), "seconds": clock.seconds()})
    net.eval()
    return net, centre.cpu(), history


def deep_svdd_scores(
    net: nn.Module, centre: torch.Tensor, images: np.ndarray, device: torch.device
) -> np.ndarray:
    """Higher = more normal: minus the squared distance to the centre."""
    z = encode(net, images, device)
    return -((z - centre.numpy()) ** 2).sum(1).astype(np.float64)
