"""Run by tests/test_distributed.py under torchrun (2 gloo processes): every rank trains the same
kernel OC-NN head on the same latents, the patch head (with and without its discriminator of
synthetic defects), the autoencoder and the ssl encoder on its shard, the
ssl+ae detector (both parts, both heads), the ssl-fast detector (teacher, then student) and the
patch features' defect branch (fine-tuned on painted digits), and writes what it ended with,
so the test can compare the ranks with each other and with one process."""

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from oneclass import OneClassDetector
from oneclass.data import load_dataset
from oneclass.heads import KernelOCNN
from oneclass.heads.ocnn.patch import PatchOCNN
from oneclass.networks import build_encoder, build_patch_features
from oneclass.training import distributed
from oneclass.training.autoencoder import train_autoencoder
from oneclass.training.defect_tuning import tune_defect_branch


def patch_features(index: np.ndarray) -> torch.Tensor:
    """Feature maps ``(k, 8, 6, 6)`` of synthetic images: the same on every rank for an index;
    images 1000 and above have one abnormal region (for scoring)."""
    maps = []
    for i in np.atleast_1d(index):
        features = torch.randn(8, 6, 6, generator=torch.Generator().manual_seed(int(i)))
        if i >= 1000:
            features[:, int(i) % 6, (int(i) // 6) % 6] += 4.0
        maps.append(features)
    return torch.stack(maps)


def fit_patch_head() -> PatchOCNN:
    return PatchOCNN(hidden=64, seed=0).fit(patch_features, 61, (24, 24))  # odd: unequal shards


def painted_features(index: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The images' feature maps with a synthetic defect (channel 0 raised over 2x2 regions) and
    its mask at the 24x24 image size (4x4 pixels per region)."""
    features = patch_features(index)
    masks = np.zeros((len(features), 24, 24), dtype=bool)
    for j, i in enumerate(np.atleast_1d(index)):
        row, col = int(i) % 5, (int(i) // 5) % 5
        features[j, 0, row : row + 2, col : col + 2] += 3.0
        masks[j, 4 * row : 4 * row + 8, 4 * col : 4 * col + 8] = True
    return features, masks


def fit_patch_head_with_defects() -> PatchOCNN:
    return PatchOCNN(hidden=64, seed=0).fit(patch_features, 61, (24, 24), painted_of=painted_features)


def main(out: Path) -> None:
    device = distributed.setup(torch.device("cpu"))
    latents = np.random.default_rng(0).normal(size=(3001, 8)).astype(np.float32)  # odd: unequal shards
    head = KernelOCNN(hidden=256, seed=0).fit(latents)
    patch = fit_patch_head()
    painted = fit_patch_head_with_defects()  # the discriminator: painted rows gathered, trained alike
    test = np.r_[np.arange(500, 530), np.arange(1000, 1030)]
    x, y = load_dataset("mnist", "train")
    tensors = {f"head.{k}": v for k, v in head.net_.state_dict().items()}
    tensors["head.threshold"] = torch.tensor(head.threshold_, dtype=torch.float64)
    for kind in ("ae", "ssl"):  # the one training loop, for a reconstruction and the ssl encoder
        torch.manual_seed(0)
        model = build_encoder(kind, (1, 28, 28), 32)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        train_autoencoder(
            model, x[y == 3][:600, None], epochs=1, batch_size=100, lr=1e-3, weight_decay=0, seed=0,
            device=device, quiet=True,
        )  # fmt: skip
        tensors.update({f"{kind}.{k}": v.contiguous() for k, v in model.state_dict().items()})
        tensors.update({f"{kind}-initial.{k}": v.contiguous() for k, v in initial.items()})
    joint = OneClassDetector(encoder="ssl+ae", encoder_epochs=1, seed=0, device="cpu", quiet=True)
    joint.fit(x[y == 3][:600])  # both parts under DDP, both heads' out-of-fold scores gathered
    tensors.update({f"joint.{k}": v.contiguous() for k, v in joint.encoder_.state_dict().items()})
    tensors["joint.threshold"] = torch.tensor(joint.threshold_, dtype=torch.float64)
    tensors["joint.scores"] = torch.from_numpy(joint.score_samples(x[:200]))
    fast = OneClassDetector(encoder="ssl-fast", encoder_epochs=1, seed=0, device="cpu", quiet=True)
    fast.fit(x[y == 3][:600])  # the teacher under DDP, then the student on its targets
    tensors.update({f"fast.{k}": v.contiguous() for k, v in fast.encoder_.state_dict().items()})
    tensors["fast.scores"] = torch.from_numpy(fast.score_samples(x[:200]))
    features = build_patch_features("lite0", (1, 28, 28), pretrained=True)  # 24 digits, 1 painted copy
    initial = {k: v.clone() for k, v in features.backbone.blocks[3:5].state_dict().items()}
    tune_defect_branch(features, x[y == 3][:24, None], 0, device, copies=1, epochs=2)
    tensors.update({f"tuned.{k}": v.contiguous() for k, v in features.defect_branch.state_dict().items()})
    tensors.update({f"tuned-initial.blocks.{k}": v.contiguous() for k, v in initial.items()})
    with torch.no_grad():
        tensors["tuned.logits"] = features(torch.from_numpy(x[:4, None]).float() / 255)[:, -1].contiguous()
    tensors.update({f"patch.{k}": v.contiguous() for k, v in patch.net_.state_dict().items()})
    tensors["patch.threshold"] = torch.tensor(patch.threshold_, dtype=torch.float64)
    tensors["patch.train_scores"] = torch.from_numpy(patch.train_image_scores_)
    tensors["patch.test_scores"] = torch.from_numpy(patch.score_samples(patch_features(test)))
    tensors.update({f"painted.{k}": v.contiguous() for k, v in painted.state_tensors().items()})
    tensors["painted.threshold"] = torch.tensor(painted.threshold_, dtype=torch.float64)
    tensors["painted.train_scores"] = torch.from_numpy(painted.train_image_scores_)
    tensors["painted.test_scores"] = torch.from_numpy(painted.score_samples(patch_features(test)))
    save_file(tensors, str(out / f"rank{distributed.rank()}.safetensors"))
    distributed.teardown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
