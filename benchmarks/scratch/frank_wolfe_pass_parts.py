"""One-off: the parts of one Frank-Wolfe pass of the default kernel OC-NN at 60,000 x 2048, and
the one-time hidden-value matrix, on head_scaling.py's encoder (5 epochs on all MNIST digits).

python benchmarks/scratch/frank_wolfe_pass_parts.py

Pinned to ``whiten=False`` (per-dimension scaling): its figures predate the whitened default.
"""

import time

import numpy as np
import torch
import torch.nn.functional as F

from oneclass import OneClassDetector
from oneclass.data import load_dataset
from oneclass.heads import KernelOCNN


def best_ms(run, repeats: int = 5) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


x, _ = load_dataset("mnist", "train")
latents = OneClassDetector(encoder="ae", encoder_epochs=5, seed=0, device="cpu", quiet=True).fit_encoder(x)
z = torch.from_numpy(latents.transform(x))
net = KernelOCNN(whiten=False, seed=0)._build(z.numpy())
print(f"hidden values, 60000 x 2048 (one matrix): {best_ms(lambda: net.hidden_values(z), 3):.0f} ms")
hidden = net.hidden_values(z)
w = hidden.mean(0)
outputs = torch.mv(hidden, w)
k = int(np.ceil(0.1 * len(z)))
rows = torch.nonzero(outputs <= torch.kthvalue(outputs, k).values).squeeze(1)
gigabytes = hidden.numel() * hidden.element_size() / 1e9
matvec = best_ms(lambda: torch.mv(hidden, w))
print(f"outputs (matrix-vector product): {matvec:.1f} ms, {gigabytes / matvec * 1000:.0f} GB/s")
print(f"k-th value: {best_ms(lambda: torch.kthvalue(outputs, k)):.1f} ms")
bagged = best_ms(lambda: F.embedding_bag(rows[None], hidden, mode="mean"))
copied = best_ms(lambda: hidden.index_select(0, rows).mean(0))
print(f"mean of the nu-tail's rows: embedding_bag {bagged:.1f} ms, index_select then mean {copied:.1f} ms")
