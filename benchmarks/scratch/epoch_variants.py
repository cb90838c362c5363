"""One-off: AE training epoch variants on 60k MNIST (a hand-written loop, not train_autoencoder).

    python benchmarks/scratch/epoch_variants.py VARIANT [BATCH]
VARIANT contains any of: nchw (weights back to NCHW), bf16 (CPU autocast), compile (torch.compile),
prof (profiler table after the epochs). Models are built in channels_last, so "base" is the default.
"""

import sys
import time

import torch

from oneclass.data import load_dataset
from oneclass.data.arrays import to_tensor
from oneclass.networks import build_encoder

x, y = load_dataset("mnist", "train")
x = x[:, None]
variant = sys.argv[1]
bs = int(sys.argv[2]) if len(sys.argv) > 2 else 200
torch.manual_seed(0)
model = build_encoder("ae", (1, 28, 28), 32, (8, 4)).train()
cl = "nchw" not in variant
if not cl:
    model = model.to(memory_format=torch.contiguous_format)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
fwd = model
if "compile" in variant:
    fwd = torch.compile(model)


def step(xb):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in variant):
        loss = fwd(xb).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


n = len(x)
prof = "prof" in variant
for ep in range(2):
    order = torch.randperm(n)
    t = time.perf_counter()
    tl = 0.0
    for idx in order.split(bs):
        t0 = time.perf_counter()
        xb = to_tensor(x[idx.numpy()])
        if cl:
            xb = xb.contiguous(memory_format=torch.channels_last)
        tl += time.perf_counter() - t0
        step(xb)
    print(variant, bs, "epoch", ep, round(time.perf_counter() - t, 2), "loading", round(tl, 2), flush=True)
if prof:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as p:
        for idx in order.split(bs)[:50]:
            step(to_tensor(x[idx.numpy()]))
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))
