"""ImageNet features of the whole image (``lite0-global``) and the three-part joint encoder
``ssl-fast+ae+lite0-global``: the features' sizes for any image shape, the pretrained weights
actually loaded, the detectors on real Fashion-MNIST (AUROC, held-out threshold, save/load, ONNX
parity) and through the command line."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import is_constant
from oneclass import OneClassDetector, OneClassError
from oneclass.cli import main
from oneclass.evaluation.metrics import auroc
from oneclass.networks import build_encoder, holds_out_threshold, part_kinds
from oneclass.networks.global_features import GlobalImageNetFeatures


@pytest.mark.parametrize(
    ("shape", "resized"),
    [
        ((1, 28, 28), (84, 84)),
        ((3, 20, 28), (84, 118)),
        ((3, 300, 200), (126, 84)),
        ((2, 64, 64), (84, 84)),
    ],
)
def test_features_have_432_numbers_for_any_image_shape(shape, resized):
    """Enlarged or shrunk so that the smaller side is 84; grey, RGB, or other channel counts."""
    net = GlobalImageNetFeatures(shape)
    x = torch.rand(3, *shape)
    assert tuple(net.resized(x).shape[-2:]) == resized
    features = net.encode(x)
    assert features.shape == (3, 432) and torch.isfinite(features).all()


def test_the_imagenet_weights_are_loaded_and_change_the_features(fashion):
    x = torch.from_numpy(fashion[0][:16, None]).float() / 255
    fresh = GlobalImageNetFeatures((1, 28, 28))
    pretrained = GlobalImageNetFeatures((1, 28, 28)).load_pretrained()
    assert not torch.allclose(fresh.encode(x), pretrained.encode(x))
    # every tensor of the folded network came from the file (nothing left at its initial value)
    for name, tensor in pretrained.state_dict().items():
        assert not torch.equal(tensor, fresh.state_dict()[name]), name


def test_pretrained_features_train_nothing_and_hold_out_their_threshold():
    assert part_kinds("lite0-global") == ()
    assert part_kinds("ssl-fast+ae+lite0-global") == ("ssl", "student", "ae")
    assert holds_out_threshold("lite0-global") and holds_out_threshold("ssl-fast+ae+lite0-global")
    with pytest.raises(OneClassError, match="channels: encoder lite0-global"):
        build_encoder("lite0-global", (1, 28, 28), 32, channels=(8, 4))


@pytest.fixture(scope="module")
def global_detector(fashion):
    x, y, _, _ = fashion
    return OneClassDetector(encoder="lite0-global", seed=0, device="cpu", quiet=True).fit(x[y == 0][:1000])


def test_global_detector_on_real_t_shirts(global_detector, fashion):
    _, _, xt, yt = fashion
    scores = global_detector.score_samples(xt)
    assert not is_constant(scores) and np.isfinite(scores).all()
    assert auroc(scores, yt == 0) > 0.85
    assert global_detector.threshold_images_ == 200  # 20% held out
    assert global_detector.encoder_schedule_ == {}


@pytest.fixture(scope="module")
def three_part_detector(fashion):
    """ssl-fast+ae+lite0-global on 1,000 real T-shirts (1 epoch per trained network)."""
    x, y, _, _ = fashion
    return OneClassDetector(
        encoder="ssl-fast+ae+lite0-global", encoder_epochs=1, seed=0, device="cpu", quiet=True
    ).fit(x[y == 0][:1000])


def test_three_part_detector_on_real_t_shirts(three_part_detector, fashion):
    _, _, xt, yt = fashion
    scores = three_part_detector.score_samples(xt)
    assert not is_constant(scores) and np.isfinite(scores).all()
    assert auroc(scores, yt == 0) > 0.85
    assert three_part_detector.head_.group_sizes == (64, 32, 432)
    assert set(three_part_detector.encoder_schedule_) == {"ssl", "student", "ae"}


def test_three_part_detector_saves_loads_and_exports(three_part_detector, fashion, tmp_path):
    from test_export import assert_fisher_detector_saves_loads_and_exports

    assert_fisher_detector_saves_loads_and_exports(three_part_detector, fashion[2][:300, None], tmp_path)


def test_cli_fits_and_scores_a_folder_of_non_square_colour_images(fashion, tmp_path):
    """A user's folder: colour 24x32 images, fit and score through the command line."""
    from PIL import Image

    x, y, _, _ = fashion
    for kind, images in (
        ("train/good", x[y == 7][:60]),
        ("test/good", x[y == 7][60:80]),
        ("test/bag", x[y == 8][:20]),
    ):
        folder = tmp_path / "data" / kind
        folder.mkdir(parents=True)
        for i, image in enumerate(images):
            rgb = np.stack([image, image // 2, 255 - image], axis=-1)
            Image.fromarray(rgb).resize((32, 24)).save(folder / f"{i}.png")
    run = tmp_path / "run"
    result = CliRunner().invoke(
        main, ["fit", "--data", f"folder:{tmp_path / 'data'}", "--encoder", "lite0-global", "--out", str(run)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_auroc"] > 0.8
    result = CliRunner().invoke(
        main, ["score", str(run), str(tmp_path / "data" / "test"), "--out", str(tmp_path / "s.csv")]
    )
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 41  # a header and 40 images
