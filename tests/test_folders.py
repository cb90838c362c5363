"""A user's folder of images, built from real MNIST digits written as PNG files, through the CLI;
and the conformal false-alarm rate against its target."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from oneclass import OneClassDetector
from oneclass.cli import main
from oneclass.data.folders import ImageFolder, folder_splits
from oneclass.errors import OneClassError
from oneclass.evaluation.metrics import auroc

QUICK = ["--encoder", "ae", "--encoder-epochs", "1", "--head-epochs", "3", "--device", "cpu", "--quiet"]


def _write(folder, images, prefix, rgb=False):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        picture = Image.fromarray(image)
        if rgb:
            picture = picture.convert("RGB").resize((40, 40))
        picture.save(folder / f"{prefix}{i:04d}.png")


@pytest.fixture(scope="module")
def mvtec_like(tmp_path_factory, mnist_train, mnist_test):
    """train/good = 600 ones; test/good = 150 ones; test/seven = 100 sevens; test/two = 50 twos."""
    (x, y), (xt, yt) = mnist_train, mnist_test
    root = tmp_path_factory.mktemp("folder") / "digits"
    _write(root / "train" / "good", x[y == 1][:600], "one")
    _write(root / "test" / "good", xt[yt == 1][:150], "one")
    _write(root / "test" / "seven", xt[yt == 7][:100], "seven")
    _write(root / "test" / "two", xt[yt == 2][:50], "two")
    return root


def test_folder_layout_is_read_lazily(mvtec_like):
    train, test = folder_splits(mvtec_like)
    assert isinstance(train, ImageFolder) and train.shape == (600, 1, 28, 28)
    assert test.shape == (300, 1, 28, 28) and int(test.is_normal.sum()) == 150
    assert sorted(set(test.kinds)) == ["good", "seven", "two"]
    assert train[np.array([3, 1])].shape == (2, 1, 28, 28) and train[5].shape == (1, 28, 28)


def test_fit_score_report_on_a_folder(mvtec_like, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        ["fit", "--data", f"folder:{mvtec_like}", "--out", str(run), "--alpha", "0.05", *QUICK],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data"]["kind"] == "folder" and metrics["n_calibration"] == 60
    assert metrics["n_train"] == 432 and metrics["n_threshold"] == 108  # few images: 20% for the threshold
    assert metrics["test_auroc"] > 0.6  # ones against sevens and twos
    page = (run / "report.html").read_text()
    assert f"folder {mvtec_like.resolve()} (normal: train/good)" in page

    whole = tmp_path / "whole.csv"
    result = CliRunner().invoke(main, ["score", str(run), str(mvtec_like / "test"), "--out", str(whole)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(whole.open()))
    assert sorted({r["label"] for r in rows}) == ["good", "seven", "two"]
    assert all(r["label"] == r["id"].split("/")[-2] for r in rows)  # the folder each image is in
    scores = np.array([float(r["score"]) for r in rows])
    good = np.array([r["label"] == "good" for r in rows])
    flagged = np.array([r["prediction"] == "-1" for r in rows])
    line = result.output.strip().splitlines()[0]
    assert f"AUROC {auroc(scores, good):.4f}" in line
    assert f"false alarms {flagged[good].mean():.1%} of 150 normal" in line
    assert f"detected {flagged[~good].mean():.1%} of 150 abnormal" in line

    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(
        main,
        [
            "score",
            str(run),
            str(mvtec_like / "test" / "seven"),
            str(mvtec_like / "test" / "good" / "one000*"),
            "--out",
            str(out),
            "--alpha",
            "0.2",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "flagged abnormal (p-value <= 0.2)" in result.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 100 + 10
    assert all(0 < float(r["p_value"]) <= 1 for r in rows)
    assert all(int(r["prediction"]) == (-1 if float(r["p_value"]) <= 0.2 else 1) for r in rows)
    sevens = [float(r["p_value"]) for r in rows if "seven" in r["id"]]
    ones = [float(r["p_value"]) for r in rows if "one" in r["id"]]
    assert np.mean(sevens) < np.mean(ones)


def test_colour_folder_with_normal_dir_and_a_corrupt_file(mnist_train, tmp_path):
    x, y = mnist_train
    normal, abnormal = tmp_path / "ok", tmp_path / "bad"
    _write(normal, x[y == 0][:200], "zero", rgb=True)
    _write(abnormal, x[y == 5][:40], "five", rgb=True)
    (normal / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    args = ["fit", "--normal-dir", str(normal), "--abnormal-dir", str(abnormal), "--image-size", "32", *QUICK]

    stopped = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "r1")])
    assert stopped.exit_code == 2 and "broken.png: not a readable image" in stopped.output

    result = CliRunner().invoke(
        main, [*args, "--skip-bad", "--out", str(tmp_path / "r2")], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert f"warning: skipping {normal / 'broken.png'}: not a readable image" in result.output
    assert "UserWarning" not in result.output  # one line, not Python's warning with a source line
    config = json.loads((tmp_path / "r2" / "config.json").read_text())
    assert config["image_shape"] == [3, 32, 32]  # colour kept, resized as asked


def test_folders_beside_the_training_folder_are_new_images_not_defect_kinds(mnist_train, tmp_path):
    """A user's layout: ``good/`` trained on, ``new/`` and ``line-good/`` beside it (images to score
    and known-good images to calibrate on), ``defects/`` given at fit as --abnormal-dir. The
    MVTec rule (a folder beside a ``good`` folder is a defect kind) holds for other ``good``
    folders only: ``new/`` is unlabelled, ``line-good/`` calibrates, ``defects/`` is abnormal."""
    x, y = mnist_train
    _write(tmp_path / "good", x[y == 0][:200], "zero")
    _write(tmp_path / "new", np.concatenate([x[y == 0][200:210], x[y == 5][:10]]), "new")
    _write(tmp_path / "line-good", x[y == 0][210:240], "zero")
    _write(tmp_path / "defects", x[y == 5][10:30], "five")
    run = tmp_path / "run"
    args = ["--normal-dir", tmp_path / "good", "--abnormal-dir", tmp_path / "defects", "--out", run]
    fit = CliRunner().invoke(main, ["fit", *map(str, args), *QUICK], catch_exceptions=False)
    assert fit.exit_code == 0, fit.output

    def score(folder):
        out = tmp_path / f"{folder}.csv"
        result = CliRunner().invoke(main, ["score", str(run), str(tmp_path / folder), "--out", str(out)])
        assert result.exit_code == 0, result.output
        with open(out) as f:
            return result.output, [row["label"] for row in csv.DictReader(f)]

    output, labels = score("new")
    assert labels == [""] * 20 and "detected" not in output and "false alarms" not in output
    output, labels = score("defects")
    assert labels == ["defects"] * 20 and "detected" in output and "of 20 abnormal" in output
    # fit scored the same 20 as its test images (abnormal only: no AUROC, the detection rate)
    with open(tmp_path / "defects.csv") as f:
        flagged = np.mean([row["prediction"] == "-1" for row in csv.DictReader(f)])
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test_auroc" not in metrics and metrics["test_detection_rate"] == pytest.approx(flagged)
    logged = (run / "train.log").read_text()  # the summary line (fit ran --quiet)
    assert f"detected {flagged:.3f} of 20 abnormal test images" in logged
    held_out = metrics["calibration_share_below_threshold"]
    assert f"held-out good images below it={held_out:.3f} of {metrics['n_calibration']}" in logged
    page = (run / "report.html").read_text()
    assert f"{tmp_path / 'defects'} (abnormal)" in page and "abnormal images detected" in page
    assert f"{round(flagged * 20)} of 20 ({flagged:.3f})" in page and "held-out good images flagged" in page
    output, labels = score("good")
    assert labels == ["good"] * 200 and "false alarms" in output and "of 200 normal" in output
    assert "(200 of them the run's training images: in-sample, fewer flagged than new)" in output
    assert "training images" not in score("line-good")[0]  # good images, new to the run

    calibrated = CliRunner().invoke(main, ["calibrate", str(run), str(tmp_path / "line-good"), "-q"])
    assert calibrated.exit_code == 0, calibrated.output
    record = json.loads((run / "calibration.json").read_text())
    assert record["images"] == 30 and record["training_images"] == 0 and "warning" not in calibrated.output
    # the training folder itself: in-sample scores, a threshold that flags more than nu of new images
    in_sample = CliRunner().invoke(main, ["calibrate", str(run), str(tmp_path / "good"), "-q"])
    assert in_sample.exit_code == 0, in_sample.output
    assert "warning: 200 of these 200 images are from the run's training folder or split" in in_sample.output
    assert json.loads((run / "calibration.json").read_text())["training_images"] == 200
    refused = CliRunner().invoke(main, ["calibrate", str(run), str(tmp_path / "defects"), "-q"])
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert "0 normal images are too few" in refused.output
    assert "20 images their folders label abnormal were left out" in refused.output


def test_12_bit_files_are_read_with_one_factor_for_the_whole_run(mnist_train, tmp_path):
    """A 12-bit camera's frames in 16-bit PNGs (levels 0..4095): fit finds the bit depth (4095 is
    white, recorded in the run), reads every training file as its 8-bit original, and score reads
    new files with the same factor, so that a frame taken with half the light reads half as
    bright (a factor per image stretched each to its own brightest pixel and hid it)."""
    x, y = mnist_train
    zeros = x[y == 0][:120]
    normal = tmp_path / "normal"
    normal.mkdir()
    for i, image in enumerate(zeros):
        Image.fromarray(image.astype(np.uint16) * 16).save(normal / f"zero{i:03d}.png")
    dim = tmp_path / "dim"
    dim.mkdir()
    Image.fromarray(zeros[0].astype(np.uint16) * 8).save(dim / "half-light.png")
    Image.fromarray(zeros[0].astype(np.uint16) * 16).save(dim / "full-light.png")
    run = tmp_path / "run"
    fit = CliRunner().invoke(main, ["fit", "--normal-dir", str(normal), "--out", str(run), *QUICK])
    assert fit.exit_code == 0, fit.output
    assert json.loads((run / "metrics.json").read_text())["data"]["high_bit_white"] == 4095
    train, _ = folder_splits(normal_dir=normal)
    assert train.white == 4095
    assert np.abs(train[np.arange(120)][:, 0].astype(int) - zeros).max() <= 1

    out = tmp_path / "dim.csv"
    result = CliRunner().invoke(main, ["score", str(run), str(dim), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out) as f:
        scored = {Path(row["id"]).name: float(row["score"]) for row in csv.DictReader(f)}
    detector = OneClassDetector.load(run, device="cpu")
    levels = zeros[0].astype(np.float64) * np.array([8, 16])[:, None, None]  # the two files' levels
    as_read = detector.score_samples(np.rint(levels * 255 / 4095).astype(np.uint8)[:, None])
    np.testing.assert_allclose([scored["half-light.png"], scored["full-light.png"]], as_read, rtol=1e-5)
    assert scored["half-light.png"] != pytest.approx(scored["full-light.png"])


def test_conformal_false_alarm_rate_is_within_tolerance_of_alpha(mnist_train):
    """Split-conformal: fit on one part of the normal digits, calibrate on a second, and count
    the false alarms on a third. FAR <= alpha in expectation; with n_cal = 1000 and n_test = 2500
    its standard deviation is about 0.011, so a 4-sigma band is used."""
    x, y = mnist_train
    ones = x[y == 1]
    order = np.random.default_rng(0).permutation(len(ones))
    fit, calibration, test = ones[order[:2000]], ones[order[2000:3000]], ones[order[3000:5500]]
    detector = OneClassDetector(encoder="ae", encoder_epochs=1, head_epochs=3, device="cpu", quiet=True)
    detector.fit(fit).calibrate(calibration)
    for alpha in (0.05, 0.2):
        rate = float((detector.p_values(test) <= alpha).mean())
        assert abs(rate - alpha) < 4 * np.sqrt(alpha * (1 - alpha) * (1 / 1000 + 1 / 2500)), (alpha, rate)
        threshold = detector.conformal_threshold(alpha)
        assert np.array_equal(detector.score_samples(test) < threshold, detector.p_values(test) <= alpha)


def test_alpha_needs_enough_calibration_images(fitted_detector, digits_small):
    fitted_detector.calibrate(digits_small[0][:20])
    with pytest.raises(OneClassError, match="needs at least 99 calibration images"):
        fitted_detector.conformal_threshold(0.01)


def test_detector_trains_and_scores_straight_from_disk(mvtec_like):
    """The streaming path (folders too large to hold in memory): no array is ever built."""
    train, test = folder_splits(mvtec_like)
    detector = OneClassDetector(encoder="ae", encoder_epochs=1, head_epochs=2, device="cpu", quiet=True)
    detector.fit(train.subset(np.arange(300)))
    streamed = detector.score_samples(test)
    in_memory = detector.score_samples(test[:])
    np.testing.assert_allclose(streamed, in_memory, rtol=1e-6)
    assert streamed[test.is_normal].mean() > streamed[~test.is_normal].mean()


def test_a_plain_folder_given_as_a_layout_is_refused_with_the_way_out(mnist_train, tmp_path):
    x, _ = mnist_train
    plain = tmp_path / "plain"
    _write(plain, x[:5], "digit")
    result = CliRunner().invoke(main, ["fit", "--data", f"folder:{plain}", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"{plain}/train/good/" in lines[0] and f"--normal-dir {plain}" in lines[0]
    missing = CliRunner().invoke(
        main, ["fit", "--data", f"folder:{tmp_path / 'nowhere'}", "--out", str(tmp_path / "r")]
    )
    assert missing.exit_code == 2 and "nowhere: no such folder" in missing.output
    assert not (tmp_path / "r").exists()


def test_score_warns_once_about_files_that_reading_distorts(mnist_train, tmp_path):
    """A colour run on 4:3 frames scores a folder with portrait frames (one stored landscape with
    a camera's turn-by-a-quarter tag), a grey file, and frames that fit (one stored portrait, its
    tag turning it to landscape): one warning line per problem, with the first file and a count;
    nothing about the frames that fit."""
    x, y = mnist_train

    def frame(i, size=(40, 30), mode="RGB"):
        return Image.fromarray(x[y == 0][i]).convert(mode).resize(size)

    normal = tmp_path / "normal"
    normal.mkdir()
    for i in range(150):
        frame(i).save(normal / f"zero{i:03d}.png")
    run = tmp_path / "run"
    fit = CliRunner().invoke(main, ["fit", "--normal-dir", str(normal), "--out", str(run), *QUICK])
    assert fit.exit_code == 0, fit.output
    assert json.loads((run / "config.json").read_text())["image_shape"] == [3, 48, 64]

    new = tmp_path / "new"
    new.mkdir()
    turned = Image.Exif()
    turned[0x0112] = 6  # shown turned a quarter: the stored width and height trade places
    frame(150).save(new / "a-landscape.png")
    frame(151, (30, 40)).save(new / "b-portrait.png")
    frame(152, (40, 30)).save(new / "c-stored-landscape-shown-portrait.jpg", exif=turned)
    frame(153, (30, 40)).save(new / "d-stored-portrait-shown-landscape.jpg", exif=turned)
    frame(154, mode="L").save(new / "e-grey.png")
    result = CliRunner().invoke(main, ["score", str(run), str(new), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warned == [
        f"warning: {new / 'b-portrait.png'} (30x40) and 1 more: not of the run's aspect ratio (64x48); "
        "read stretched to it, a distorted image",
        f"warning: {new / 'e-grey.png'}: grey, while the run's images are colour; "
        "read with three equal channels",
    ]


def test_calibration_counts_the_images_a_run_was_fitted_on(tmp_path):
    """Images a run may have been fitted on, among those given to calibrate: a split named
    ``<its dataset>:train`` (its normal classes, as kept), files inside its training folder
    (through a link too); not the test split, another data set's split or files beside it."""
    from oneclass.data.sources import InputBatch
    from oneclass.services.score import trained_on_count

    mnist_run = {"kind": "dataset", "name": "mnist", "normal_classes": [3]}
    keep = np.arange(5)
    assert trained_on_count(InputBatch("mnist:train", [], None, dataset="mnist"), keep, mnist_run) == 5
    assert trained_on_count(InputBatch("mnist:test", [], None, dataset="mnist"), keep, mnist_run) == 0
    fashion = InputBatch("fashion-mnist:train", [], None, dataset="fashion-mnist")
    assert trained_on_count(fashion, keep, mnist_run) == 0

    (tmp_path / "good" / "sub").mkdir(parents=True)
    (tmp_path / "good-new").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "good")
    ids = [str(tmp_path / p) for p in ("good/a.png", "good/sub/b.png", "link/c.png", "good-new/d.png")]
    folder_run = {"kind": "folder", "normal_dir": str(tmp_path / "good")}
    files = InputBatch("files", ids, None)
    assert trained_on_count(files, np.arange(4), folder_run) == 3
    assert trained_on_count(files, np.array([3]), folder_run) == 0
    assert trained_on_count(files, np.arange(4), {"kind": "folder", "root": str(tmp_path)}) == 0
