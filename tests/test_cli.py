"""End to end through the public CLI, on small subsets of real MNIST."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from oneclass.cli import main
from oneclass.data import write_idx

QUICK = ["--encoder-epochs", "1", "--head-epochs", "3", "--device", "cpu", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "fit069"
    result = invoke(
        "fit",
        "--data",
        "mnist",
        "--normal",
        "0,6,9",
        "--out",
        out,
        "--encoder",
        "ae",
        "--train-limit",
        "2000",
        "--test-limit",
        "1000",
        *QUICK,
    )
    assert result.exit_code == 0, result.output
    assert "test AUROC" in result.output
    return out


def test_fit_writes_a_run_folder(run_dir):
    for name in ("config.json", "model.safetensors", "metrics.json", "train.log", "most_abnormal64.png"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["normal_classes"] == [0, 6, 9]
    assert metrics["n_calibration"] == 200  # 10% held out for calibration
    assert metrics["n_train"] == 1440 and metrics["n_threshold"] == 360  # few images: 20% for the threshold
    assert metrics["alpha"] == 0.05 and "test_conformal_false_alarm_rate" in metrics
    # held-out normal digits below the threshold: about nu (200 images, binomial sd 0.02)
    assert abs(metrics["calibration_share_below_threshold"] - 0.1) <= 0.07
    assert metrics["test_auroc"] > 0.7  # 0, 6, 9 against the rest, the right way round (0.79)
    assert metrics["encoder_schedule"] == {"batch_size": 57, "epochs": 1}  # 1,440 images: 25 steps
    assert metrics["head_passes"] <= 3 and metrics["head_duality_gap"] > 0
    assert "head: epoch=3" in (run_dir / "train.log").read_text()


def test_fit_refuses_to_overwrite(run_dir):
    result = invoke("fit", "--normal", "1", "--out", run_dir, *QUICK)
    assert result.exit_code == 2 and "already holds a run; pass --overwrite" in result.output


def test_score_dataset_split_idx_file_and_images(run_dir, tmp_path, digits_small):
    _, _, xt, yt = digits_small
    idx = tmp_path / "few-idx3-ubyte"
    write_idx(idx, xt[:7])
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(xt[i]).save(folder / f"digit{i}.png")
    Image.fromarray(np.pad(xt[3], 10)).convert("RGB").save(folder / "big_rgb.jpg")  # resized, grey-converted
    out = tmp_path / "scores.csv"
    result = invoke("score", run_dir, "mnist:test", idx, folder, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "AUROC" in result.output  # labelled split of the run's dataset
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 10000 + 7 + 4
    split_rows = rows[:10000]
    assert [int(r["label"]) for r in split_rows[:5]] == yt[:5].tolist()
    # the same image scores the same from every source, up to float32 rounding: the kernels'
    # summation order depends on the batch an image is scored in
    first = float(split_rows[0]["score"])
    assert float(rows[10000]["score"]) == pytest.approx(first, rel=1e-5)
    pngs = {r["id"].rsplit("/", 1)[-1]: r for r in rows if r["source"] == "files"}
    assert float(pngs["digit0.png"]["score"]) == pytest.approx(first, rel=1e-5)
    assert float(pngs["digit1.png"]["score"]) != pytest.approx(first, rel=1e-5)  # yet tells images apart
    for row in rows[:50]:
        decision, prediction = float(row["decision"]), int(row["prediction"])
        assert prediction == (1 if decision >= 0 else -1)
    assert len({r["score"] for r in split_rows}) > 100  # not constant


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "--normal", "0", "--nu", "0", "--out", "X"], "nu must be a number in (0, 1], got 0.0"),
        (["fit", "--normal", "12", "--out", "X"], "normal classes [12] are not classes of mnist"),
        (["fit", "--data", "cifar", "--normal", "1", "--out", "X"], "unknown dataset 'cifar'"),
        (["fit", "--normal", "1", "--hidden", "0", "--out", "X"], "hidden must be an integer >= 1, got 0"),
        (["score", "nowhere", "mnist:test", "--out", "s.csv"], "nowhere: not a run folder"),
    ],
)
def test_user_errors_are_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_unreachable_alpha_is_said_in_fit_and_refused_in_score(tmp_path):
    """40 calibration images: the smallest p-value is 1/41, so alpha 0.01 can never flag; fit
    says so on its summary line, score refuses it, each naming what would be needed."""
    run = tmp_path / "run"
    fit = invoke(
        "fit",
        "--normal",
        "1",
        "--train-limit",
        "400",
        "--test-limit",
        "300",
        "--alpha",
        "0.01",
        "--out",
        run,
        *QUICK,
    )
    assert fit.exit_code == 0, fit.output
    summary = fit.output.strip().splitlines()[-1]
    assert summary.startswith("fit: mnist normal=1") and "warning: alpha=0.01 cannot be reached" in summary
    assert "1/41 = 0.02439" in summary and "needs at least 99 calibration images" in summary
    assert "conformal_threshold" not in json.loads((run / "metrics.json").read_text())
    refused = CliRunner().invoke(
        main, ["score", str(run), "mnist:test", "--out", str(tmp_path / "s.csv"), "--alpha", "0.01"]
    )
    assert (
        refused.exit_code == 2 and "alpha=0.01 cannot be reached with 40 calibration images" in refused.output
    )
    assert not (tmp_path / "s.csv").exists()
    fine = invoke("score", run, "mnist:test", "--out", tmp_path / "s.csv", "--alpha", "0.05", "--quiet")
    assert fine.exit_code == 0 and "p-value <= 0.05" in fine.output


def test_an_image_size_that_cannot_fit_in_memory_is_refused_before_training(tmp_path, digits_small):
    folder = tmp_path / "data" / "train" / "good"
    folder.mkdir(parents=True)
    for i, image in enumerate(digits_small[0][:30]):
        Image.fromarray(image).save(folder / f"{i}.png")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main, ["fit", "--data", f"folder:{tmp_path / 'data'}", "--image-size", "100000", "--out", str(out)]
    )
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert (
        "patch features of 100000x100000 images (1 at a time) and the patch head's fit needs about"
        in result.output
    )
    assert "GiB of memory" in result.output and "lower --image-size or --batch-size" in result.output
    assert not out.exists()  # refused before anything was written


def test_score_reports_a_corrupt_image_by_path(run_dir, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = CliRunner().invoke(main, ["score", str(run_dir), str(bad), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2 and "broken.png: not a readable image" in result.output


@pytest.mark.parametrize("experiment", ["all-digits", "digits-069"])
def test_reproduce_writes_the_report_figures_and_metrics(experiment, tmp_path):
    out = tmp_path / experiment
    result = invoke(
        "reproduce", experiment, "--out", out, "--train-limit", "3000", "--test-limit", "1000", *QUICK
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("nu", "train_share_below_threshold", "score_std_per_epoch", "timings", "threshold"):
        assert key in metrics
    assert len(metrics["score_std_per_epoch"]) == 3
    assert abs(metrics["train_share_below_threshold"] - metrics["nu"]) <= 0.01
    for figure in metrics["figures"].values():
        grid = np.asarray(Image.open(out / figure))
        # 8 x 8 digits of 28 px with 2 px padding, drawn 3x: (8 * 30 + 2) * 3
        assert grid.shape == (726, 726)
    if experiment == "digits-069":
        assert {"untrained_share_closest64", "test_auroc"} <= set(metrics)
        assert 0.0 <= metrics["untrained_share_closest64"] <= 1.0
    # the run folder is a model folder too
    score = invoke("score", out, "mnist:test", "--out", tmp_path / "s.csv", "--quiet")
    assert score.exit_code == 0, score.output


def test_reproduce_with_the_kernel_head_uses_its_own_defaults(tmp_path):
    """--head ocnn gets the kernel head's 2048 units and 100 passes, as the help says, not the
    paper head's 256 and 25."""
    out = tmp_path / "kernel"
    args = ["--train-limit", "3000", "--test-limit", "500", "--encoder-epochs", "1", "--device", "cpu", "-q"]
    result = invoke("reproduce", "digits-069", "--out", out, "--head", "ocnn", *args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    head = json.loads((out / "config.json").read_text())["head"]
    assert metrics["hidden"] == 2048 and head["params"]["epochs"] == 100


def test_console_script_is_installed():
    exe = shutil.which("oneclass") or str(__import__("pathlib").Path(sys.executable).parent / "oneclass")
    done = subprocess.run([exe, "fit", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for option in ("--normal", "--encoder", "--nu", "--hidden", "--head-epochs", "--seed", "--out"):
        assert option in done.stdout
