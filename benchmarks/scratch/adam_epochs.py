"""One-off: the kernel OC-NN's Adam loop (4096 units, lr 1e-3) stopped after 1, 2, 3, 5 and 20
epochs, against 5-NN distance, on latents cached by cache_latents.py (seed 0).

python benchmarks/scratch/cache_latents.py mnist 0
python benchmarks/scratch/adam_epochs.py mnist

Pinned to ``whiten=False`` (per-dimension scaling): its figures predate the whitened default.
"""

import sys

import numpy as np

from oneclass.evaluation.metrics import auroc
from oneclass.heads import KernelOCNN, KNNHead

dataset = sys.argv[1]
results: dict[str, list[float]] = {}
for c in range(10):
    cached = np.load(f"/tmp/lat/{dataset}_0_{c}.npz")
    train, test, normal = cached["train"], cached["test"], cached["normal"]
    for epochs in (1, 2, 3, 5, 20):
        head = KernelOCNN(whiten=False, hidden=4096, solver="adam", epochs=epochs).fit(train)
        results.setdefault(f"adam, {epochs} epochs", []).append(auroc(head.score_samples(test), normal))
    results.setdefault("5-NN", []).append(auroc(KNNHead().fit(train).score_samples(test), normal))
for name, values in results.items():
    print(dataset, name, " ".join(f"{100 * v:.1f}" for v in values), f"mean {100 * np.mean(values):.2f}")
