"""One-off: AE training epoch on 60k MNIST with glibc's default allocator vs `keep_freed_memory`.

    python benchmarks/scratch/allocator.py default   # keep_freed_memory disabled (patched to a no-op)
    python benchmarks/scratch/allocator.py tuned     # as the library runs it
Run each mode in its own process (mallopt settings are process-wide and cannot be undone).
"""

import sys

import torch

import oneclass.training.autoencoder as autoencoder
from oneclass.data import load_dataset
from oneclass.networks import build_encoder

mode = sys.argv[1]
if mode == "default":
    autoencoder.keep_freed_memory = lambda: False
x, _ = load_dataset("mnist", "train")
model = build_encoder("ae", (1, 28, 28), 32, (8, 4))
history = autoencoder.train_autoencoder(
    model, x[:, None], epochs=2, batch_size=200, lr=1e-3, weight_decay=1e-6, seed=0,
    device=torch.device("cpu"), quiet=True,
)  # fmt: skip
print(mode, [record["seconds"] for record in history])
