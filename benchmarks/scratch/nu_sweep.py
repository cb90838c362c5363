"""One-off: the default kernel OC-NN trained with other nu (the objective's nu, which also sets r),
AUROC per class on latents cached by cache_latents.py (seed 0).

python benchmarks/scratch/nu_sweep.py fashion-mnist

Pinned to ``whiten=False`` (per-dimension scaling): its figures predate the whitened default.
"""

import sys

import numpy as np

from oneclass.evaluation.metrics import auroc
from oneclass.heads import KernelOCNN

dataset = sys.argv[1]
results: dict[float, list[float]] = {}
for c in range(10):
    cached = np.load(f"/tmp/lat/{dataset}_0_{c}.npz")
    for nu in (0.05, 0.1, 0.2, 0.3, 0.5):
        scores = KernelOCNN(whiten=False, nu=nu).fit(cached["train"]).score_samples(cached["test"])
        results.setdefault(nu, []).append(auroc(scores, cached["normal"]))
for nu, values in results.items():
    print(
        dataset, f"nu {nu}", " ".join(f"{100 * v:.1f}" for v in values), f"mean {100 * np.mean(values):.2f}"
    )
