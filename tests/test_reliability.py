"""Reliability: interrupted training resumes bitwise, model files are safe, bad input is named."""

import contextlib
import hashlib
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file

from oneclass import OneClassDetector, OneClassError
from oneclass.data.folders import infer_shape
from oneclass.data.images import ImageFileError, high_bit_white, read_image
from oneclass.errors import TrainingError
from oneclass.training.autoencoder import train_autoencoder

FIT = [
    sys.executable,
    "-m",
    "oneclass.cli",
    "fit",
    "--data",
    "mnist",
    "--normal",
    "1",
    "--encoder",
    "ae",
    "--encoder-epochs",
    "6",
    "--head-epochs",
    "2",
    "--train-limit",
    "3000",
    "--test-limit",
    "500",
    "--device",
    "cpu",
    "--quiet",
    "--out",
]


def test_killed_fit_resumes_to_the_same_model(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([*FIT, str(whole)], check=True, capture_output=True, timeout=300)

    process = subprocess.Popen([*FIT, str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = killed / "checkpoint-encoder.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if checkpoint.is_file() and json.loads(checkpoint.read_text() or "{}").get("epoch", 0) >= 2:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (killed / "config.json").exists(), "the run finished before it could be killed"

    refused = subprocess.run([*FIT, str(killed)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "holds an interrupted run; pass --resume" in refused.stderr

    subprocess.run([*FIT, str(killed), "--resume"], check=True, capture_output=True, timeout=300)
    # bitwise the same model: the same tensors and the same bytes
    resumed, uninterrupted = load_file(killed / "model.safetensors"), load_file(whole / "model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[name], uninterrupted[name]) for name in resumed)
    assert (killed / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    assert "resuming" in (killed / "train.log").read_text()
    assert not list(killed.glob("checkpoint-*"))

    again = subprocess.run([*FIT, str(killed), "--resume"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already finished" in again.stderr


def test_same_model_same_bytes(fitted_detector, tmp_path):
    """Model files and checkpoints of the same tensors are byte-identical (so their sha256 in
    config.json is too): saved twenty times, in this process and in a fresh one."""
    first = fitted_detector.save(tmp_path / "first") / "model.safetensors"
    for i in range(20):
        again = fitted_detector.save(tmp_path / f"again{i}") / "model.safetensors"
        assert again.read_bytes() == first.read_bytes()
    code = (
        "import sys; from oneclass import OneClassDetector; "
        "OneClassDetector.load(sys.argv[1]).save(sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", code, str(first.parent), str(tmp_path / "fresh")], check=True)
    assert (tmp_path / "fresh" / "model.safetensors").read_bytes() == first.read_bytes()

    from oneclass.training.checkpoint import Checkpointer

    model = fitted_detector.encoder_
    optimizer = torch.optim.Adam(model.parameters())
    written = []
    for name in ("a", "b"):
        Checkpointer(tmp_path / name, "encoder").save(3, model, optimizer, torch.Generator(), [])
        written.append((tmp_path / name / "checkpoint-encoder.safetensors").read_bytes())
    assert written[0] == written[1]


@pytest.fixture
def saved_run(fitted_detector, tmp_path):
    return fitted_detector.save(tmp_path / "run")


class _Payload:
    marker = ""

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _plant(run: Path, name: str, marker: Path) -> None:
    _Payload.marker = str(marker)
    payload = pickle.dumps(_Payload())
    (run / name).write_bytes(payload)
    config = json.loads((run / "config.json").read_text())
    config["weights"] = {"file": name, "sha256": hashlib.sha256(payload).hexdigest()}
    (run / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("name", ["model.safetensors", "model.pkl", "../model.pt"])
def test_a_planted_pickle_is_never_executed(saved_run, tmp_path, name):
    marker = tmp_path / "pwned"
    _plant(saved_run, name.replace("../", ""), marker)
    if name.startswith(".."):
        config = json.loads((saved_run / "config.json").read_text())
        config["weights"]["file"] = name
        (saved_run / "config.json").write_text(json.dumps(config))
    with pytest.raises(OneClassError, match="safetensors"):
        OneClassDetector.load(saved_run)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: {"format": "something-else"}, "not a oneclass detector config"),
        (lambda c: {**c, "format_version": 99}, "format version 99"),
        (lambda c: {**c, "image_shape": [1, 32, 32]}, "weights do not fit the config"),
        (lambda c: {k: v for k, v in c.items() if k != "params"}, "malformed config"),
    ],
)
def test_foreign_or_altered_configs_are_refused(saved_run, mutate, message):
    path = saved_run / "config.json"
    path.write_text(json.dumps(mutate(json.loads(path.read_text()))))
    with pytest.raises(OneClassError, match=message):
        OneClassDetector.load(saved_run)


def test_truncated_config_is_refused(saved_run):
    path = saved_run / "config.json"
    path.write_text(path.read_text()[:50])
    with pytest.raises(OneClassError, match="config.json: not valid JSON"):
        OneClassDetector.load(saved_run)


def test_nan_loss_stops_training_naming_the_epoch():
    class Exploding(torch.nn.Module):
        kind = "test"

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):  # the training loop's contract: model(x) = per-image losses
            return self.weight * torch.full((len(x),), float("nan"))

    with pytest.raises(TrainingError, match="became nan in epoch 1"):
        train_autoencoder(
            Exploding(),
            np.zeros((10, 1, 4, 4), np.uint8),
            epochs=2,
            batch_size=5,
            lr=1e-3,
            weight_decay=0,
            seed=0,
            device=torch.device("cpu"),
            quiet=True,
        )


SHAPE = (1, 28, 28)


def _png(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


def test_image_loader_handles_16_bit_alpha_palette_and_sizes(tmp_path):
    deep = Image.fromarray(np.arange(40 * 30, dtype=np.uint16).reshape(40, 30) * 50)
    assert deep.mode.startswith("I;16")
    rgba = Image.new("RGBA", (50, 20), (255, 255, 255, 128))
    palette = Image.new("P", (28, 28), 3)
    for image in (deep, rgba, palette):
        array = read_image(_png(image, tmp_path / "x.png"), SHAPE)
        assert array.shape == SHAPE and array.dtype == np.uint8
    assert read_image(_png(deep, tmp_path / "d.png"), SHAPE).max() > 200  # scaled, not clipped
    # one factor, not one per image: level 4095 is white where a run says so, and above it clips
    twelve = Image.fromarray(np.array([[0, 1000, 2048, 4095, 8000]], dtype=np.uint16))
    read = read_image(_png(twelve, tmp_path / "t.png"), (1, 1, 5), white=4095)[0, 0]
    np.testing.assert_array_equal(read, [0, 62, 128, 255, 255])
    np.testing.assert_array_equal(read_image(tmp_path / "t.png", (1, 1, 5))[0, 0], [0, 4, 8, 16, 31])
    assert [high_bit_white(level) for level in (200, 256, 4095, 4096, 65535)] == [255, 511, 4095, 8191, 65535]
    colour = read_image(_png(rgba, tmp_path / "c.png"), (3, 16, 16))
    assert colour.shape == (3, 16, 16)


def test_a_file_taken_turned_is_read_upright_and_sized_so(tmp_path):
    """A camera's EXIF orientation tag (6: turned a quarter clockwise to view): the image is read
    as a viewer shows it, and the size that fit infers is the upright one."""
    landscape = np.zeros((20, 40), np.uint8)
    landscape[:5] = 255  # a bright band along the top of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "turned.png"
    Image.fromarray(landscape).save(path, exif=exif.tobytes())
    upright = read_image(path, (1, 40, 20))[0]  # (H, W): portrait
    assert upright[:, -5:].min() == 255 and upright[:, :-5].max() == 0  # the band is now on the right
    assert infer_shape([path], None, None, keep_detail=True) == (1, 64, 32)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n", b"hello, not an image", None])
def test_bad_image_files_are_named(tmp_path, content):
    path = tmp_path / "bad.png"
    if content is None:  # a real PNG cut in half
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(buffer, "PNG")
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    path.write_bytes(content)
    with pytest.raises(ImageFileError, match="bad.png"):
        read_image(path, SHAPE)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300), st.sampled_from([".png", ".jpg", ".bmp", ".tif"]))
def test_image_loader_raises_only_its_own_error(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    with contextlib.suppress(ImageFileError):
        assert read_image(path, SHAPE).shape == SHAPE


def test_a_run_folder_says_what_to_do_when_there_is_nothing_to_resume(tmp_path):
    """A local fit interrupted before it finished leaves only train.log (it keeps no checkpoint):
    --resume says so and how to start again, and the same fit without it starts again."""
    from oneclass.errors import OneClassError
    from oneclass.services.runfolder import RunFolder

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train.log").write_text("[    0.1s] fit on 108 normal images\n")
    with pytest.raises(
        OneClassError, match="no checkpoint to resume from.*run the same fit without --resume"
    ):
        RunFolder(tmp_path / "run", resume=True)
    assert RunFolder(tmp_path / "run").path == tmp_path / "run"
