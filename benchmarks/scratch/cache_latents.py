"""One-off: cache the benchmark's AE latents per class (seed as given) in /tmp/lat for head studies.

python benchmarks/scratch/cache_latents.py mnist 0
"""

import sys
import time

import numpy as np

from oneclass.data import load_dataset
from oneclass.evaluation.methods import BenchConfig, ClassTask
from oneclass.evaluation.protocol import one_class_split

ds = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
x, y = load_dataset(ds, "train")
xt, yt = load_dataset(ds, "test")
for c in range(10):
    t = time.time()
    idx = one_class_split(y, (c,))
    task = ClassTask(ds, c, seed, x[idx][:, None], xt[:, None], yt == c, BenchConfig(encoder_epochs=15))
    tz, sz = task.features("ae")
    np.savez(f"/tmp/lat/{ds}_{seed}_{c}.npz", train=tz, test=sz, normal=yt == c)
    print(c, time.time() - t, flush=True)
