"""Histograms of oriented gradients (``hog``) and the three-part joint encoder ``ssl-fast+ae+hog``:
orientations where the edges are, any image shape and channel count, the fitted projection, and
the detector on real Fashion-MNIST (AUROC, save/load, ONNX parity) and through the command line."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import is_constant
from oneclass import OneClassDetector
from oneclass.cli import main
from oneclass.evaluation.metrics import auroc
from oneclass.networks import holds_out_threshold, part_kinds
from oneclass.networks.gradients import BINS, GradientHistograms, OrientedGradients, cell_pooling


def edge_image(vertical: bool, size: int = 28) -> torch.Tensor:
    """``(1, 1, size, size)``: dark left (top) half, bright right (bottom) half."""
    x = torch.zeros(1, 1, size, size)
    if vertical:
        x[..., size // 2 :] = 1.0
    else:
        x[..., size // 2 :, :] = 1.0
    return x


def test_an_edge_counts_in_the_bin_of_its_orientation():
    net = GradientHistograms((1, 28, 28))
    across = net.orientation_maps(edge_image(vertical=True)).sum((0, 2, 3))  # gradient along x
    assert across[0] > 0 and torch.count_nonzero(across) == 1
    down = net.orientation_maps(edge_image(vertical=False)).sum((0, 2, 3))  # gradient along y: 90 degrees
    assert torch.count_nonzero(down) == 2  # half-way between the two bins nearest 90 degrees
    assert torch.allclose(down[BINS // 2], down[BINS // 2 + 1])


def test_a_grey_image_in_three_channels_has_the_grey_images_histograms():
    x = torch.rand(4, 1, 28, 28)
    grey = GradientHistograms((1, 28, 28)).encode(x)
    colour = GradientHistograms((3, 28, 28)).encode(x.repeat(1, 3, 1, 1))
    assert torch.allclose(grey, colour, atol=1e-4)  # float32 rounding of sqrt(3) x the gradients


def test_a_blank_image_has_finite_histograms():
    features = GradientHistograms((1, 28, 28)).encode(torch.full((2, 1, 28, 28), 0.5))
    assert torch.isfinite(features).all() and features.abs().max() < 1e-3


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 20, 28), (3, 300, 200), (2, 64, 64), (1, 9, 7)])
def test_features_for_any_image_shape(shape):
    net = GradientHistograms(shape)
    features = net.encode(torch.rand(3, *shape))
    assert features.shape == (3, net.feature_size) == (3, 1296) and torch.isfinite(features).all()


@pytest.mark.parametrize(("size", "cells"), [(28, 7), (20, 7), (300, 7), (7, 7), (5, 7)])
def test_cell_pooling_averages_every_pixel_into_a_cell(size, cells):
    pooling = cell_pooling(size, cells)
    assert np.allclose(pooling.sum(1), 1.0)
    assert (pooling.sum(0) > 0).all()


def test_the_projection_is_fitted_to_the_training_images():
    x = torch.rand(300, 1, 28, 28)
    part = OrientedGradients((1, 28, 28))
    part.fit_projection(part.histograms.encode(x).numpy())
    features = part.encode(x)
    assert features.shape == (300, 32)
    assert torch.allclose(features.mean(0), torch.zeros(32), atol=1e-4)
    variances = features.var(0)
    assert variances[0] == pytest.approx(1.0, rel=0.01) and (variances[:-1] >= variances[1:] - 1e-6).all()


def test_gradient_histograms_train_nothing():
    assert part_kinds("hog") == () and part_kinds("ssl-fast+ae+hog") == ("ssl", "student", "ae")
    assert not holds_out_threshold("hog") and holds_out_threshold("ssl-fast+ae+hog")


@pytest.fixture(scope="module")
def hog_detector(fashion):
    """ssl-fast+ae+hog on 1,000 real shirts (1 epoch per trained network)."""
    x, y, _, _ = fashion
    return OneClassDetector(
        encoder="ssl-fast+ae+hog", encoder_epochs=1, seed=0, device="cpu", quiet=True
    ).fit(x[y == 6][:1000])


def test_three_part_detector_on_real_shirts(hog_detector, fashion):
    _, _, xt, yt = fashion
    scores = hog_detector.score_samples(xt)
    assert not is_constant(scores) and np.isfinite(scores).all()
    assert auroc(scores, yt == 6) > 0.75
    assert hog_detector.head_.group_sizes == (64, 32, 32)
    projection = hog_detector.encoder_.parts["hog"].projection
    assert torch.count_nonzero(projection) > 0  # fitted during fit


def test_gradient_histograms_alone_see_shirts(fashion):
    x, y, xt, yt = fashion
    detector = OneClassDetector(encoder="hog", seed=0, device="cpu", quiet=True).fit(x[y == 6][:1000])
    scores = detector.score_samples(xt)
    assert not is_constant(scores) and auroc(scores, yt == 6) > 0.75
    assert detector.encoder_schedule_ == {}


def test_three_part_detector_saves_loads_and_exports(hog_detector, fashion, tmp_path):
    from test_export import assert_fisher_detector_saves_loads_and_exports

    assert_fisher_detector_saves_loads_and_exports(hog_detector, fashion[2][:300, None], tmp_path)


def test_cli_fits_scores_and_exports_a_folder_of_non_square_colour_images(fashion, tmp_path):
    """A user's folder: colour 24x32 images, fit, score and export through the command line."""
    pytest.importorskip("onnxruntime")
    from PIL import Image

    x, y, _, _ = fashion
    for kind, images in (
        ("train/good", x[y == 7][:80]),
        ("test/good", x[y == 7][80:100]),
        ("test/bag", x[y == 8][:20]),
    ):
        folder = tmp_path / "data" / kind
        folder.mkdir(parents=True)
        for i, image in enumerate(images):
            rgb = np.stack([image, image // 2, 255 - image], axis=-1)
            Image.fromarray(rgb).resize((32, 24)).save(folder / f"{i}.png")
    run = tmp_path / "run"
    fit = ["fit", "--data", f"folder:{tmp_path / 'data'}", "--encoder", "ssl-fast+ae+hog", "--out", str(run)]
    result = CliRunner().invoke(main, fit)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_auroc"] > 0.8
    result = CliRunner().invoke(
        main, ["score", str(run), str(tmp_path / "data" / "test"), "--out", str(tmp_path / "s.csv")]
    )
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 41  # a header and 40 images
    result = CliRunner().invoke(main, ["export", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "model.onnx").stat().st_size > 0  # export ran it once in ONNX Runtime first


def test_bench_runs_every_head_on_the_gradient_histograms(tmp_path):
    """The head's share apart from the features': the three heads and the detector on ``hog``."""
    out = tmp_path / "bench"
    methods = "ocnn@hog,ocnn-head@hog,knn@hog,ocsvm@hog"
    command = ["bench", "--dataset", "fashion-mnist", "--quick", "--methods", methods, "--out", str(out)]
    result = CliRunner().invoke(main, [*command, "--quiet"])
    assert result.exit_code == 0, result.output
    records = json.loads((out / "results.json").read_text())["records"]
    assert {r["method"] for r in records} == set(methods.split(","))
    for record in records:
        assert 0.6 < record["auroc"] <= 1.0, record
