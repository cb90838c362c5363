"""One-off: do far test points underflow to a kernel OC-NN score of 0 (ties)? Compares the AUROC
of the score with that of its log computed by logsumexp, on latents cached by cache_latents.py.

python benchmarks/scratch/log_domain.py fashion-mnist

Pinned to ``whiten=False`` (per-dimension scaling): its figures predate the whitened default.
"""

import sys

import numpy as np
import torch

from oneclass.evaluation.metrics import auroc
from oneclass.heads import KernelOCNN

dataset = sys.argv[1]
plain, logged = [], []
for c in range(10):
    cached = np.load(f"/tmp/lat/{dataset}_0_{c}.npz")
    test, normal = cached["test"], cached["normal"]
    head = KernelOCNN(whiten=False, seed=0).fit(cached["train"])
    net, scores = head.net_, head.score_samples(test)
    with torch.no_grad():
        standard = ((torch.from_numpy(test) - net.mean) @ net.transform).double()
        squared = torch.cdist(standard, net.V.weight.double()).pow(2)
        log_weights = torch.log(net.w.weight[0].double().clamp_min(1e-300))
        log_scores = torch.logsumexp(log_weights - net.gamma.double() * squared, 1).numpy()
    plain.append(auroc(scores, normal))
    logged.append(auroc(log_scores, normal))
    zeros = float((scores <= 0).mean())
    print(f"class {c}: share of test scores <= 0 {zeros:.4f}, AUROC {plain[-1]:.4f} / log {logged[-1]:.4f}")
print(f"{dataset}: mean AUROC {100 * np.mean(plain):.2f} / log domain {100 * np.mean(logged):.2f}")
