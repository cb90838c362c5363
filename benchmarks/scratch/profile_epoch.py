"""One-off: PyTorch profiler table of 50 AE training steps (batch 200), grouped by input shape.

python benchmarks/scratch/profile_epoch.py
"""

import time

import torch
from torch.profiler import ProfilerActivity, profile

from oneclass.data import load_dataset
from oneclass.data.arrays import to_tensor
from oneclass.networks import build_encoder
from oneclass.training.common import keep_freed_memory

keep_freed_memory()  # as train_autoencoder does

x, y = load_dataset("mnist", "train")
x = x[:, None]
model = build_encoder("ae", (1, 28, 28), 32, (8, 4)).train()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
order = torch.randperm(len(x))


def step(idx):
    loss = model(to_tensor(x[idx.numpy()])).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


for idx in order[:4000].split(200):
    step(idx)
t = time.perf_counter()
for idx in order[4000:14000].split(200):
    step(idx)
print("50 steps", time.perf_counter() - t)
with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
    for idx in order[14000:24000].split(200):
        step(idx)
print(
    p.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=30, max_shapes_column_width=50
    )
)
