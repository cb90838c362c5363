"""One-off: how many Frank-Wolfe passes the kernel OC-NN's output layer needs, plain and pairwise
(away steps), at tol 1e-3 and 1e-4, with the AUROC each gives.

    python benchmarks/scratch/cache_latents.py mnist 0
    oneclass fit --data mnist --normal 3 --encoder ae --encoder-epochs 2 --out /tmp/uxrun
    python benchmarks/scratch/frank_wolfe_passes.py

Cases: the benchmark's class-3 latents (seed 0), the class-3 latents of the 2-epoch CLI run, and
all 60,000 training digits under head_scaling.py's encoder (5 epochs; AUROC not applicable).

Pinned to ``whiten=False`` (per-dimension scaling): its figures predate the whitened default.
"""

import time

import numpy as np
import torch
import torch.nn.functional as F

from oneclass import OneClassDetector
from oneclass.data import load_dataset
from oneclass.evaluation.metrics import auroc
from oneclass.heads import KernelOCNN


@torch.no_grad()
def solve(hidden, nu, passes, tol, pairwise):
    """Frank-Wolfe on the dual of eq. 3 (as train_output_layer); pairwise: move weight from the
    active atom with the highest mean score to the new vertex instead of shrinking all atoms."""
    k = int(np.ceil(nu * len(hidden)))
    w = hidden.mean(0)
    atoms = [[None, hidden.mean(0), 1.0]]  # (rows or None for all, mean hidden vector, weight)
    for t in range(passes + 1):
        y = hidden @ w
        low = torch.topk(y, k, largest=False).indices.sort().values
        u = F.embedding_bag(low[None], hidden, mode="mean")[0]
        gap, norm = torch.dot(w, w - u).item(), torch.dot(w, w).item()
        if gap <= tol * norm or t == passes:
            return w, t, gap / norm
        if not pairwise:
            d = w - u
            w = w - min(1.0, gap / torch.dot(d, d).item()) * d
            continue
        scores = [y.mean().item() if rows is None else y[rows].mean().item() for rows, _, _ in atoms]
        away = atoms[int(np.argmax(scores))]
        d = u - away[1]
        if torch.dot(d, d).item() == 0:
            return w, t, gap / norm
        step = min(away[2], max(0.0, -torch.dot(w, d).item() / torch.dot(d, d).item()))
        w = w + step * d
        away[2] -= step
        for atom in atoms:
            if atom[0] is not None and torch.equal(atom[0], low):
                atom[2] += step
                break
        else:
            atoms.append([low, u, step])
        atoms = [atom for atom in atoms if atom[2] > 1e-12]
    return w, passes, gap / norm


x, y = load_dataset("mnist", "train")
xt, yt = load_dataset("mnist", "test")
cached = np.load("/tmp/lat/mnist_0_3.npz")
cases = {"benchmark class 3": (cached["train"], cached["test"], cached["normal"])}
run = OneClassDetector.load("/tmp/uxrun")
cases["2-epoch CLI run, class 3"] = (run.transform(x[y == 3]), run.transform(xt), yt == 3)
encoder = OneClassDetector(encoder="ae", encoder_epochs=5, seed=0, device="cpu", quiet=True).fit_encoder(x)
cases["60k, all digits"] = (encoder.transform(x), encoder.transform(xt), None)
for name, (train, test, normal) in cases.items():
    net = KernelOCNN(whiten=False, seed=0)._build(train)
    hidden = net.hidden_values(torch.from_numpy(train))
    for pairwise in (False, True):
        for tol in (1e-3, 1e-4):
            start = time.perf_counter()
            w, passes, gap = solve(hidden, 0.1, 300, tol, pairwise)
            seconds = time.perf_counter() - start
            net.w.weight.data.copy_(w[None])
            with torch.no_grad():
                scores = torch.cat([net(part) for part in torch.from_numpy(test).split(512)]).numpy()
            quality = f"AUROC {auroc(scores, normal):.4f}" if normal is not None else ""
            kind = "pairwise" if pairwise else "plain"
            print(f"{name}: {kind} tol {tol}: {passes} passes, gap {gap:.1e}, {seconds:.2f} s {quality}")
