"""One-off: fine-tune the autoencoder jointly with the kernel OC-NN objective (the OC-NN paper's
joint training), then refit the head; compare with kNN on the pretrained and fine-tuned latents.

python benchmarks/scratch/joint_finetune.py fashion-mnist 2,4,6 [epochs] [weight]

Loss per step: reconstruction error (the AE's) + weight * (1/nu) mean(relu(r - y_hat)) with the
head (centres, gamma, w, r) frozen from its fit on the pretrained latents; Adam 1e-4.

Pinned to ``whiten=False`` (per-dimension scaling): its figures predate the whitened default.
"""

import sys

import torch

from oneclass.data import load_dataset
from oneclass.data.arrays import to_tensor
from oneclass.evaluation.methods import BenchConfig, ClassTask
from oneclass.evaluation.metrics import auroc
from oneclass.evaluation.protocol import one_class_split
from oneclass.heads import KernelOCNN, KNNHead
from oneclass.training.common import minibatches, seeded_generator

ds, classes = sys.argv[1], [int(c) for c in sys.argv[2].split(",")]
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
weight = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
x, y = load_dataset(ds, "train")
xt, yt = load_dataset(ds, "test")
for c in classes:
    idx = one_class_split(y, (c,))
    task = ClassTask(ds, c, 0, x[idx][:, None], xt[:, None], yt == c, BenchConfig(encoder_epochs=15))
    train_z, test_z = task.features("ae")
    detector = task.encoder("ae")
    model = detector.encoder_
    head = KernelOCNN(whiten=False, seed=0).fit(train_z)
    line = {
        "ocnn": auroc(head.score_samples(test_z), task.test_is_normal),
        "knn": auroc(KNNHead().fit(train_z).score_samples(test_z), task.test_is_normal),
    }
    net = head.net_
    for p in net.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = seeded_generator(0)
    for _ in range(epochs):
        model.train()
        for index in minibatches(len(task.train_x), 200, generator):
            batch = to_tensor(task.train_x[index.numpy()]).contiguous(memory_format=torch.channels_last)
            z = model.encode(batch)
            recon = (model.decoder(z) - batch).pow(2).flatten(1).sum(1).mean()
            hinge = torch.relu(head.offset_ - net(z)).mean() / head.nu / head.offset_
            loss = recon + weight * hinge
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    tuned_z, tuned_test = detector.transform(task.train_x), detector.transform(task.test_x)
    line["ocnn tuned"] = auroc(
        KernelOCNN(whiten=False, seed=0).fit(tuned_z).score_samples(tuned_test), task.test_is_normal
    )
    line["knn tuned"] = auroc(KNNHead().fit(tuned_z).score_samples(tuned_test), task.test_is_normal)
    print(
        ds, c, f"epochs {epochs} weight {weight}", {k: round(100 * v, 2) for k, v in line.items()}, flush=True
    )
