"""One-off: the AE epoch with a hand-written batch norm (var_mean) instead of nn.BatchNorm2d.

python benchmarks/scratch/batchnorm_variant.py plain
python benchmarks/scratch/batchnorm_variant.py fastbn
"""

import sys
import time

import torch
from torch import nn

from oneclass.data import load_dataset
from oneclass.data.arrays import to_tensor
from oneclass.networks import build_encoder


class FastBN(nn.Module):
    def __init__(self, c, eps=1e-4, momentum=0.1):
        super().__init__()
        self.eps = eps
        self.m = momentum
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x):
        if self.training:
            var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0, keepdim=True)
            with torch.no_grad():
                n = x.numel() / x.shape[1]
                self.running_mean.lerp_(mean.flatten(), self.m)
                self.running_var.lerp_(var.flatten() * n / (n - 1), self.m)
        else:
            mean = self.running_mean.view(1, -1, 1, 1)
            var = self.running_var.view(1, -1, 1, 1)
        return (x - mean) * torch.rsqrt(var + self.eps)


def swap(m):
    for name, ch in m.named_children():
        if isinstance(ch, nn.BatchNorm2d):
            setattr(m, name, FastBN(ch.num_features))
        else:
            swap(ch)


x, y = load_dataset("mnist", "train")
x = x[:, None]
torch.manual_seed(0)
model = build_encoder("ae", (1, 28, 28), 32, (8, 4)).train()
if "fastbn" in sys.argv[1]:
    swap(model)
model = model.to(memory_format=torch.channels_last)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
for ep in range(2):
    t = time.perf_counter()
    for idx in torch.randperm(len(x)).split(200):
        xb = to_tensor(x[idx.numpy()]).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in sys.argv[1]):
            loss = model(xb).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(sys.argv[1], ep, round(time.perf_counter() - t, 2), float(loss))
