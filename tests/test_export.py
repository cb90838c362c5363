"""ONNX export: one graph from uint8 images to scores, checked in ONNX Runtime against PyTorch."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from oneclass import OneClassDetector
from oneclass.cli import main
from oneclass.errors import OneClassError
from oneclass.services.export import export_onnx

onnxruntime = pytest.importorskip("onnxruntime")

PARITY_ATOL = 1e-5  # largest |ONNX - PyTorch| score difference, relative to the largest |score|

QUICK = ["--encoder-epochs", "1", "--head-epochs", "3", "--device", "cpu", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def onnx_scores(path, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Scores of uint8 ``images`` ``(n, C, H, W)`` by the exported graph in ONNX Runtime."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    parts = [
        session.run(["score"], {"images": np.ascontiguousarray(images[i : i + batch_size])})[0]
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(parts)


def assert_fisher_detector_saves_loads_and_exports(detector, images: np.ndarray, tmp_path) -> None:
    """A detector whose head is a Fisher combination: loaded from its run folder it scores
    ``images`` ``(n, C, H, W)`` uint8 as before, and its ONNX graph scores them alike but where a
    member's score lies within float rounding of a reference score (its p-value moves one step)."""
    detector.save(tmp_path / "run")
    loaded = OneClassDetector.load(tmp_path / "run")
    images = np.ascontiguousarray(images)
    expected = detector.score_samples(images)
    assert np.array_equal(loaded.score_samples(images), expected)
    onnx = onnx_scores(export_onnx(loaded, tmp_path / "onnx"), images)
    differ = np.abs(onnx - expected) > 1e-4
    assert differ.mean() <= 0.02, differ.mean()
    assert np.corrcoef(onnx, expected)[0, 1] > 0.9999


def relative_error(onnx: np.ndarray, torch_scores: np.ndarray) -> float:
    return float(np.abs(onnx - torch_scores).max() / np.abs(torch_scores).max())


def test_cli_export_matches_pytorch_scores(tmp_path, mnist_test):
    run = tmp_path / "run"
    fit = invoke("fit", "--normal", "3", "--out", run, "--encoder", "vae", "--train-limit", "1500", *QUICK)
    assert fit.exit_code == 0, fit.output
    result = invoke("export", run, "--format", "onnx", "--alpha", "0.1")
    assert result.exit_code == 0, result.output
    meta = json.loads((run / "model.onnx.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert meta["head_threshold"] == pytest.approx(config["head"]["threshold"])
    assert meta["input"] == {"name": "images", "dtype": "uint8", "shape": ["n", 1, 28, 28]}
    assert meta["threshold"] == pytest.approx(meta["conformal_thresholds"]["0.1"])

    xt, _ = mnist_test
    scores_csv = tmp_path / "scores.csv"
    assert (
        invoke("score", run, "mnist:test", "--out", scores_csv, "--quiet", "--device", "cpu").exit_code == 0
    )
    torch_scores = np.array([float(row["score"]) for row in csv.DictReader(scores_csv.open())])
    onnx = onnx_scores(run / "model.onnx", xt[:, None])
    assert onnx.shape == (10000,) and onnx.dtype == np.float32
    assert np.std(onnx) > 0  # a constant graph would match a constant detector
    assert relative_error(onnx, torch_scores) <= PARITY_ATOL
    # any batch size, including a single image
    assert np.allclose(onnx_scores(run / "model.onnx", xt[:5, None], batch_size=1), onnx[:5], rtol=1e-5)
    # far from every normal image (random noise), where the linear OC-NN output underflowed to
    # 0 in both and parity proved nothing: distinct log-domain scores, equal in both
    noise = np.random.default_rng(0).integers(0, 256, (200, 1, 28, 28), dtype=np.uint8)
    detector = OneClassDetector.load(run, device="cpu")
    torch_noise, onnx_noise = detector.score_samples(noise), onnx_scores(run / "model.onnx", noise)
    assert len(np.unique(torch_noise)) == 200 and torch_noise.max() < torch_scores.min()
    assert relative_error(onnx_noise, torch_noise) <= PARITY_ATOL


@pytest.mark.parametrize("head", ["ocnn", "ocnn-paper"])
def test_both_ocnn_heads_export(head, tmp_path, digits_small):
    x, y, xt, _ = digits_small
    detector = OneClassDetector(
        encoder="ae", head=head, encoder_epochs=1, head_epochs=2, device="cpu", quiet=True
    ).fit(x[y == 1])
    path = export_onnx(detector, tmp_path)
    assert relative_error(onnx_scores(path, xt[:, None]), detector.score_samples(xt)) <= PARITY_ATOL


def test_export_refuses_heads_without_a_network(tmp_path, digits_small):
    x, y, _, _ = digits_small
    detector = OneClassDetector(encoder="ae", head="knn", encoder_epochs=1, device="cpu", quiet=True)
    detector.fit(x[y == 1][:300])
    with pytest.raises(OneClassError, match="head 'knn' has no network to export"):
        export_onnx(detector, tmp_path)
    assert not (tmp_path / "model.onnx").exists()


def test_a_graph_onnx_runtime_cannot_run_is_refused_and_replaces_nothing(tmp_path, digits_small, monkeypatch):
    """ONNX's checker accepts a float64 convolution; ONNX Runtime has no CPU kernel for it. The
    export runs the graph it wrote before the file replaces the user's earlier export."""
    from onnx import TensorProto, helper, save

    from oneclass.services import export

    image = helper.make_tensor_value_info("images", TensorProto.DOUBLE, ["n", 1, 8, 8])
    score = helper.make_tensor_value_info("score", TensorProto.DOUBLE, None)
    weight = helper.make_tensor("w", TensorProto.DOUBLE, [1, 1, 3, 3], [1.0] * 9)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w"], ["score"])], "g", [image], [score], [weight]
    )
    unrunnable = tmp_path / "unrunnable.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(unrunnable))
    with pytest.raises(OneClassError, match="ONNX Runtime cannot run the graph"):
        export.check_runs(unrunnable, (1, 8, 8), local=False)

    x, y, _, _ = digits_small
    detector = OneClassDetector(encoder="ae", encoder_epochs=1, head_epochs=2, device="cpu", quiet=True)
    detector.fit(x[y == 1][:300])
    earlier = export_onnx(detector, tmp_path / "run").read_bytes()

    def refuse(*args, **kwargs):
        raise OneClassError("ONNX export failed: ONNX Runtime cannot run the graph: (stand-in)")

    monkeypatch.setattr(export, "check_runs", refuse)
    with pytest.raises(OneClassError, match="cannot run"):
        export_onnx(detector, tmp_path / "run")
    assert (tmp_path / "run" / "model.onnx").read_bytes() == earlier
