"""Run by tests/test_distributed.py under torchrun (2 gloo processes): every rank trains the same
kernel OC-NN head on the same latents and the autoencoder on its shard, and writes what it ended
with, so the test can compare the ranks with each other and with one process."""

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from oneclass.data import load_dataset
from oneclass.heads import KernelOCNN
from oneclass.networks import build_encoder
from oneclass.training import distributed
from oneclass.training.autoencoder import train_autoencoder


def main(out: Path) -> None:
    device = distributed.setup(torch.device("cpu"))
    latents = np.random.default_rng(0).normal(size=(3001, 8)).astype(np.float32)  # odd: unequal shards
    head = KernelOCNN(hidden=256, seed=0).fit(latents)
    x, y = load_dataset("mnist", "train")
    torch.manual_seed(0)
    model = build_encoder("ae", (1, 28, 28), 32)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    train_autoencoder(
        model, x[y == 3][:600, None], epochs=1, batch_size=100, lr=1e-3, weight_decay=0, seed=0,
        device=device, quiet=True,
    )  # fmt: skip
    tensors = {f"head.{k}": v for k, v in head.net_.state_dict().items()}
    tensors["head.threshold"] = torch.tensor(head.threshold_, dtype=torch.float64)
    tensors.update({f"encoder.{k}": v.contiguous() for k, v in model.state_dict().items()})
    tensors.update({f"initial.{k}": v.contiguous() for k, v in initial.items()})
    save_file(tensors, str(out / f"rank{distributed.rank()}.safetensors"))
    distributed.teardown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
