"""The ``oneclass`` command line: argument parsing and printing only; every verb calls the API."""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path

import click
import numpy as np

from . import __version__
from .detector import OneClassDetector
from .errors import OneClassError
from .heads import HEADS
from .networks import PATCH_ENCODERS
from .params import Boolean, Interval, Options, Param


def user_errors(func):
    """Turn the project's own errors into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except OneClassError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def _click_type(param: Param, names: list[str] | None = None):
    """The click type of a declared parameter: a choice for named options, else int or float
    (their ranges are checked by the estimator itself, with its one-line message)."""
    constraint = param.constraint
    if isinstance(constraint, Options):
        return click.Choice(names if names is not None else constraint.names())
    if isinstance(constraint, Interval):
        return constraint.kind
    raise TypeError(f"no command-line type for {constraint!r}")


def estimator_options(cls, names: list[str], choices: dict[str, list[str]] | None = None, **defaults):
    """click options for the declared parameters ``names`` of ``cls`` (``--latent-dim`` for
    ``latent_dim``): types, choices, defaults and help from ``cls.parameters`` and the signature;
    ``defaults`` and ``choices`` narrow them for one verb."""
    declared = cls.param_defaults()
    choices = choices or {}

    def decorate(func):
        for name in reversed(names):
            param = cls.parameters[name]
            default = defaults.get(name, declared[name])
            flag = name.replace("_", "-")
            if isinstance(param.constraint, Boolean):  # --name / --no-name
                func = click.option(
                    f"--{flag}/--no-{flag}", name, default=default, show_default=True, help=param.help
                )(func)
                continue
            func = click.option(
                f"--{flag}",
                name,
                type=_click_type(param, choices.get(name)),
                default=default,
                show_default=default is not None,
                help=param.help,
            )(func)
        return func

    return decorate


MODEL_OPTIONS = [
    "encoder",
    "latent_dim",
    "head",
    "nu",
    "hidden",
    "encoder_epochs",
    "head_epochs",
    "batch_size",
    "synthetic_defects",
    "defect_branch",
    "seed",
    "device",
]
SAVEABLE_HEADS = [name for name, cls in HEADS.items() if cls.saveable]


def model_options(**defaults):
    """Options shared by every verb that trains a detector; defaults differ per verb (fit's
    encoder: None, chosen by the data, see ``DEFAULT_FOLDER_ENCODER``)."""
    return estimator_options(OneClassDetector, MODEL_OPTIONS, {"head": SAVEABLE_HEADS}, **defaults)


# fit's encoder when none is given: local patch features for a user's folder (inspection
# benchmark), the whole-image encoder for the digit and garment data sets (one-class benchmark)
DEFAULT_FOLDER_ENCODER = "lite0"
DEFAULT_DATASET_ENCODER = "ssl-fast+ae+hog"


def _detector(model: dict, quiet: bool) -> OneClassDetector:
    return OneClassDetector(**model, quiet=quiet)


def device_option(help_text: str, default: str = "auto"):
    param = OneClassDetector.parameters["device"]
    return click.option(
        "--device", type=_click_type(param), default=default, show_default=True, help=help_text
    )


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    envvar="ONECLASS_DATA",
    help="Folder with the dataset IDX files, also the download cache [env ONECLASS_DATA; "
    "default ~/.cache/oneclass].",
)
quiet_option = click.option(
    "--quiet", "-q", is_flag=True, help="No progress bars or log lines; only the summary."
)
overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace an existing run in the output folder."
)
resume_option = click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted run in OUT from its last checkpoint (same options).",
)
limit_options = [
    click.option(
        "--train-limit",
        type=click.IntRange(min=1),
        default=None,
        help="Use only the first N training images (quick checks).",
    ),
    click.option(
        "--test-limit",
        type=click.IntRange(min=1),
        default=None,
        help="Use only the first N test images (quick checks).",
    ),
]


def with_limits(func):
    for option in reversed(limit_options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="oneclass")
def main() -> None:
    """Deep one-class anomaly detection on images.

    An encoder learns features from normal images (or, for a folder of inspection images,
    ImageNet features describe every region of them); a One-Class Neural Network on those
    features learns the boundary between normal and abnormal, with NU the share of normal
    images allowed outside it. Scores are higher for more normal images.
    """
    warnings.showwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on stderr (``warning: ...``), not Python's two-line form with a
    source line from inside the package."""
    click.echo(f"warning: {message}", err=True)


@main.command()
@click.option(
    "--data",
    "dataset",
    default="mnist",
    show_default=True,
    help="mnist, fashion-mnist, or folder:PATH for a folder with train/good/ and test/<kind>/.",
)
@click.option("--normal", default=None, help="Normal classes of a dataset, comma-separated (e.g. 0,6,9).")
@click.option(
    "--normal-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Instead of --data: a folder of normal training images.",
)
@click.option(
    "--abnormal-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="With --normal-dir: abnormal images, used for evaluation only.",
)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@model_options(encoder=None)
@click.option(
    "--image-size",
    type=click.IntRange(min=4),
    default=None,
    help=(
        "Folder data: resize images so that their larger side is SIZE, the other keeping the "
        "images' aspect ratio [the local detector: the images' larger side, 64 to 256; the "
        "others: 28 for images of 32 pixels or less, else 64]."
    ),
)
@click.option(
    "--channels",
    type=click.Choice(["1", "3"]),
    default=None,
    help="Folder data: 1 = grey, 3 = colour [as the first training image].",
)
@click.option(
    "--skip-bad", is_flag=True, help="Skip unreadable image files with a warning instead of stopping."
)
@click.option(
    "--calibration-share",
    type=float,
    default=0.1,
    show_default=True,
    help="Share of the normal training images held out for conformal calibration (0 = none).",
)
@click.option(
    "--alpha",
    type=float,
    default=0.05,
    show_default=True,
    help="Target false-alarm rate of the conformal threshold reported in metrics.json (reachable "
    "with 19 or more calibration images).",
)
@with_limits
@data_dir_option
@overwrite_option
@resume_option
@quiet_option
@user_errors
def fit(
    dataset,
    normal,
    normal_dir,
    abnormal_dir,
    out,
    image_size,
    channels,
    skip_bad,
    calibration_share,
    alpha,
    train_limit,
    test_limit,
    data_dir,
    overwrite,
    quiet,
    resume,
    **model,
):
    """Train a detector on normal images: the NORMAL classes of a dataset's training split, or a
    folder of a user's images.

    Writes OUT/config.json, OUT/model.safetensors, OUT/metrics.json (test AUROC, false alarms at
    the threshold and at the conformal level alpha), OUT/train.log, figures and OUT/report.html.
    The encoder is checkpointed every epoch: --resume continues an interrupted run. Launched by torchrun
    (torchrun --nproc_per_node N --no-python -- oneclass fit ...), it trains data-parallel on N
    processes (README, "Scaling up").
    """
    from . import calibration
    from .data.datasets import dataset_info
    from .evaluation.protocol import parse_classes
    from .services.fit import dataset_run_data, fit_run, folder_run_data

    calibration.check_alpha(alpha)
    folder = dataset.startswith("folder:") or normal_dir is not None
    if model["encoder"] is None:  # the detector that measures best on such data (BENCHMARKS.md)
        model["encoder"] = DEFAULT_FOLDER_ENCODER if folder else DEFAULT_DATASET_ENCODER
    if folder:
        root = dataset.removeprefix("folder:") if dataset.startswith("folder:") else None
        data = folder_run_data(
            root,
            normal_dir,
            abnormal_dir,
            image_size,
            int(channels) if channels else None,
            skip_bad,
            train_limit,
            keep_detail=model["encoder"] in PATCH_ENCODERS,
        )
        described = root or normal_dir
    else:
        name = dataset_info(dataset).name
        if normal is None:
            raise OneClassError(f"--normal is required with --data {name}: the normal classes, e.g. 0,6,9")
        classes = parse_classes(normal, name)
        data = dataset_run_data(name, classes, data_dir, train_limit, test_limit)
        described = f"{name} normal={','.join(map(str, classes))}"
    detector = _detector(model, quiet)
    metrics = fit_run(
        detector,
        data,
        out,
        calibration_share=calibration_share,
        alpha=alpha,
        overwrite=overwrite,
        resume=resume,
        quiet=quiet,
    )
    from .training import distributed

    distributed.teardown()  # leave the process group (torchrun) before anything else
    if not metrics:  # a worker process of a distributed run: the first process reports
        return
    _report(out, data_dir, quiet)
    line = f"fit: {described} -> {out}"
    if "test_auroc" in metrics:
        line += f" (test AUROC {metrics['test_auroc']:.4f})"
    for key in ("alpha_warning", "threshold_warning"):
        if key in metrics:
            line += f"; warning: {metrics[key]}"
    click.echo(line)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="CSV file to write.")
@click.option(
    "--skip-bad", is_flag=True, help="Skip unreadable image files with a warning instead of stopping."
)
@click.option(
    "--alpha",
    type=float,
    default=None,
    help="Flag images whose conformal p-value is <= ALPHA (false-alarm rate <= ALPHA) instead of "
    "the threshold.",
)
@click.option(
    "--maps",
    "maps_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Local detectors: write each image's anomaly map into this folder as a PNG overlay "
    "(red where it passes the pixel threshold); the CSV's map column names it.",
)
@data_dir_option
@device_option("Where to score.")
@quiet_option
@user_errors
def score(run_dir, inputs, out, skip_bad, alpha, maps_dir, data_dir, device, quiet):
    """Score INPUTS with the detector in RUN_DIR and write a CSV.

    INPUTS are dataset splits (mnist:test, fashion-mnist:train), IDX image files, image files
    (PNG, JPEG, BMP, TIFF), folders of images or glob patterns. The CSV has one row per image:
    source, id (index or path), label (when known), score (higher = more normal), decision
    (score - threshold, negative = abnormal), prediction (+1 normal / -1 abnormal) and p_value (the
    conformal p-value, for calibrated runs: small = unusual among normal images).
    """
    from .services.score import score_inputs

    _, summaries = score_inputs(
        run_dir,
        list(inputs),
        out,
        alpha=alpha,
        data_dir=data_dir,
        skip_bad=skip_bad,
        device=device,
        progress=not quiet,
        keep_rows=False,
        maps_dir=maps_dir,
    )
    rule = f"p-value <= {alpha}" if alpha is not None else "score < threshold"
    for summary in summaries:
        line = f"score: {summary.source}: {summary.count} images, "
        line += f"{summary.flagged:.1%} flagged abnormal ({rule})"
        if summary.auroc is not None:
            line += f", AUROC {summary.auroc:.4f}"
        if summary.false_alarm_rate is not None:
            line += f", false alarms {summary.false_alarm_rate:.1%} of {summary.n_normal} normal"
            if summary.n_training:
                trained = summary.n_training
                line += f" ({trained} of them the run's training images: in-sample, fewer flagged than new)"
        if summary.detection_rate is not None:
            line += f", detected {summary.detection_rate:.1%} of {summary.n_abnormal} abnormal"
        if summary.warning:
            line += f"; warning: {summary.warning}"
        click.echo(line)
    click.echo(f"score: wrote {out}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--skip-bad", is_flag=True, help="Skip unreadable image files with a warning instead of stopping."
)
@data_dir_option
@device_option("Where to score.")
@quiet_option
@user_errors
def calibrate(run_dir, inputs, skip_bad, data_dir, device, quiet):
    """Set the threshold of the detector in RUN_DIR from normal images INPUTS.

    INPUTS (as for score; every image is taken as normal, except those their labels call
    abnormal: a split of the run's dataset keeps its normal classes, an MVTec-layout folder its
    good images) are scored, the threshold becomes their
    conformal threshold at the run's nu (a new normal image like them is flagged with probability
    at most nu) and their scores become the run's calibration scores (p-values, score --alpha).
    For when good images from production differ from the training images in ways that are not
    defects (lighting, material batch): the run's own threshold holds nu only for images like its
    training images. The images must be new to the run: its own training images score as more
    normal than new ones, and a threshold set from them flags more than nu of new good images
    (a warning says so). Rewrites RUN_DIR's model files and writes RUN_DIR/calibration.json.
    """
    from .services.calibrate import CALIBRATION_FILE, calibrate_run

    done = calibrate_run(
        run_dir, list(inputs), data_dir=data_dir, skip_bad=skip_bad, device=device, progress=not quiet
    )
    left_out = f" ({done.left_out} labelled abnormal left out)" if done.left_out else ""
    click.echo(
        f"calibrate: {done.images} normal images{left_out}; the threshold before flagged "
        f"{done.flagged_before:.1%} of them; threshold {done.threshold_before:.4g} -> "
        f"{done.threshold:.4g} (nu = {done.nu:g}); "
        f"wrote {Path(run_dir) / CALIBRATION_FILE}"
    )
    if done.onnx_stale:
        click.echo(f"calibrate: run `oneclass export {run_dir}` again: its ONNX files hold the old threshold")
    if (Path(run_dir) / "report.html").is_file():
        _report(run_dir, data_dir, quiet)


@main.command()
@click.argument("experiment", type=click.Choice(["all-digits", "digits-069"]))
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False), help="Folder for figures and metrics."
)
@model_options(head="ocnn-paper")  # units and epochs: each head's own (ocnn-paper: 256, 25)
@with_limits
@data_dir_option
@overwrite_option
@quiet_option
@user_errors
def reproduce(
    experiment,
    out,
    train_limit,
    test_limit,
    data_dir,
    overwrite,
    quiet,
    **model,
):
    """Re-run one of the study's experiments on MNIST (the study this project reproduces).

    all-digits (section 4.1, figures 4-5): encoder and OC-NN trained on all 60,000 digits.
    digits-069 (section 4.2, figures 6-7): encoder on all digits, OC-NN on 0, 6 and 9 only.
    Writes the 8x8 grids of the 64 training images closest to and farthest from the origin,
    metrics.json, training curves and the model into OUT.
    """
    from .services.reproduce import reproduce as run_experiment

    detector = _detector(model, quiet)
    metrics = run_experiment(
        experiment,
        out,
        detector=detector,
        data_dir=data_dir,
        train_limit=train_limit,
        test_limit=test_limit,
        overwrite=overwrite,
        quiet=quiet,
    )
    _report(out, data_dir, quiet)
    figures = metrics["figures"]
    click.echo(
        f"reproduce {experiment}: figures {Path(out) / figures['closest']} and "
        f"{Path(out) / figures['farthest']}; metrics {Path(out) / 'metrics.json'}"
    )
    stages = ", ".join(f"{k.removesuffix('_s')} {v:.1f}s" for k, v in metrics["timings"].items())
    click.echo(f"reproduce {experiment}: time {stages}")


def _report(run_dir, data_dir, quiet: bool) -> None:
    from .report.html import write_report

    path = write_report(run_dir, data_dir)
    if not quiet:
        click.echo(f"report: {path}", err=True)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@data_dir_option
@user_errors
def report(run_dir, data_dir):
    """Write RUN_DIR/report.html: one self-contained page with the most abnormal and most normal
    images, score histograms, ROC and precision-recall curves, training curves, a latent-space
    map and the configuration. fit and reproduce write it automatically."""
    from .report.html import write_report

    click.echo(f"report: wrote {write_report(run_dir, data_dir)}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True, help="Export format."
)
@click.option(
    "--alpha",
    type=float,
    default=None,
    help="Write the conformal threshold at false-alarm level ALPHA as the threshold (calibrated runs).",
)
@user_errors
def export(run_dir, fmt, alpha):
    """Write RUN_DIR/model.onnx: one graph from uint8 images (n, C, H, W) to scores (n,),
    pixel scaling included, and RUN_DIR/model.onnx.json with the threshold (scores below
    it are abnormal). Needs the extra: pip install 'oneclass[onnx]'."""
    from .services.export import export_onnx

    detector = OneClassDetector.load(run_dir, device="cpu")
    path = export_onnx(detector, run_dir, alpha=alpha)
    click.echo(f"export: wrote {path} and {path.with_name(path.name + '.json')}")


def _int_list(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise OneClassError(f"{what} must be comma-separated integers, got {text!r}") from exc


@main.command()
@click.option(
    "--dataset",
    default="mnist",
    show_default=True,
    help="mnist, fashion-mnist, or folder:ROOT (MVTec-layout categories: the inspection benchmark).",
)
@click.option("--methods", default=None, help="Comma-separated method names (default: all; see --list).")
@click.option("--classes", default=None, help="Normal classes to run, comma-separated (default: all 10).")
@click.option("--seeds", default="0", show_default=True, help="Seeds, comma-separated.")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for results.json, results.csv and results.md.",
)
@click.option(
    "--quick", is_flag=True, help="Small smoke run: classes 0,1, 600 training / 1000 test images, 1-3 epochs."
)
@click.option(
    "--encoder-epochs", type=click.IntRange(min=1), default=None, help="ae/vae encoder epochs [15]."
)
@click.option(
    "--ssl-epochs",
    type=click.IntRange(min=1),
    default=None,
    help="ssl encoder epochs (detectors with an ssl part: every network's) [the detector's default].",
)
@click.option(
    "--head-epochs", type=click.IntRange(min=1), default=None, help="OC-NN epochs [each head's default]."
)
@click.option("--svdd-epochs", type=click.IntRange(min=1), default=None, help="Deep SVDD epochs [15].")
@click.option("--nu", type=float, default=0.1, show_default=True, help="nu of every nu-based method.")
@click.option(
    "--split",
    type=click.Choice(["test", "validation"]),
    default="test",
    show_default=True,
    help="Evaluate on the test split, or on a validation split of the training images (20% of the "
    "normal class held out, other training classes as stand-in anomalies): for choosing settings.",
)
@click.option(
    "--image-size",
    type=click.IntRange(min=4),
    default=None,
    help="folder:ROOT only: every method sees the images with their larger side SIZE, aspect "
    "ratio kept [the size fit gives the local detector: the images' larger side, 64 to 256].",
)
@with_limits
@device_option("Where to train.", default="cpu")
@data_dir_option
@click.option("--list", "list_methods", is_flag=True, help="List the methods and exit.")
@quiet_option
@user_errors
def bench(
    dataset,
    methods,
    classes,
    seeds,
    out,
    quick,
    encoder_epochs,
    ssl_epochs,
    head_epochs,
    svdd_epochs,
    nu,
    split,
    image_size,
    train_limit,
    test_limit,
    device,
    data_dir,
    list_methods,
    quiet,
):
    """Run a benchmark. On mnist or fashion-mnist the one-class protocol: each method trained on one
    class, AUROC on the whole test split. On --dataset folder:ROOT the inspection benchmark:
    every MVTec-layout category under ROOT, image AUROC, and pixel AUROC and PRO where
    ground_truth masks exist.

    Writes OUT/results.json (one record per method, class or category, and seed), OUT/results.csv
    and OUT/results.md (tables, with the published numbers beside ours).
    """
    from . import calibration
    from .data.datasets import dataset_info
    from .evaluation.inspection import INSPECTION_METHODS
    from .evaluation.methods import METHODS, BenchConfig
    from .report.html import write_bench_report
    from .services.bench import run_benchmark, select_methods

    if list_methods:
        for name, method in {**METHODS, **INSPECTION_METHODS}.items():
            click.echo(f"{name:>18}  {method.description}")
        return
    if out is None:
        raise OneClassError("--out is required: the folder for the results")
    calibration.check_nu(nu)
    command = "oneclass " + " ".join(sys.argv[1:]) if sys.argv and "oneclass" in sys.argv[0] else ""
    log = (lambda _line: None) if quiet else (lambda line: click.echo(line, err=True))
    if dataset.startswith("folder:"):
        from .services.inspection import run_inspection_benchmark, select_inspection_methods

        records = run_inspection_benchmark(
            dataset.removeprefix("folder:"),
            select_inspection_methods(methods.split(",") if methods else None),
            _int_list(seeds, "--seeds") or [0],
            out,
            nu=nu,
            image_size=image_size,
            command=command,
            log=log,
        )
        means = {}
        for record in records:
            means.setdefault(record["method"], []).append(record["auroc"])
        click.echo("bench: mean image AUROC " + ", ".join(f"{m} {np.mean(v):.4f}" for m, v in means.items()))
        click.echo(f"bench: wrote {Path(out) / 'results.md'}")
        return
    if image_size is not None:
        raise OneClassError("--image-size is for folder data (--dataset folder:ROOT)")
    info = dataset_info(dataset)
    chosen = select_methods(methods.split(",") if methods else None)
    class_list = _int_list(classes, "--classes") or ([0, 1] if quick else list(range(len(info.class_names))))
    bad = [c for c in class_list if not 0 <= c < len(info.class_names)]
    if bad:
        raise OneClassError(f"--classes {bad} are not classes of {info.name}")
    quick_defaults = {
        "encoder_epochs": 1,
        "ssl_epochs": 1,
        "head_epochs": 3,
        "svdd_epochs": 1,
        "train_limit": 600,
        "test_limit": 1000,
    }
    given = {
        "encoder_epochs": encoder_epochs,
        "ssl_epochs": ssl_epochs,
        "head_epochs": head_epochs,
        "svdd_epochs": svdd_epochs,
        "train_limit": train_limit,
        "test_limit": test_limit,
    }
    settings = {k: v for k, v in given.items() if v is not None}
    if quick:
        settings = {**quick_defaults, **settings}
    config = BenchConfig(nu=nu, device=device, split=split, **settings)
    records = run_benchmark(
        info.name,
        chosen,
        class_list,
        _int_list(seeds, "--seeds") or [0],
        config,
        out,
        data_dir=data_dir,
        command=command,
        log=log,
    )
    write_bench_report(out, records, info.name, command)
    means = {}
    for record in records:
        means.setdefault(record["method"], []).append(record["auroc"])
    click.echo("bench: mean AUROC " + ", ".join(f"{m} {np.mean(v):.4f}" for m, v in means.items()))
    click.echo(f"bench: wrote {Path(out) / 'results.md'}")


@main.group()
def data() -> None:
    """Get datasets ready for offline use."""


@data.command("fetch")
@click.argument("dataset", type=click.Choice(["mnist", "fashion-mnist"]))
@data_dir_option
@user_errors
def data_fetch(dataset, data_dir):
    """Find or fetch DATASET once and report where it is cached."""
    from .data import load_dataset

    for split in ("train", "test"):
        images, labels = load_dataset(dataset, split, data_dir)
        click.echo(
            f"{dataset} {split}: {images.shape[0]} images {images.shape[1]}x{images.shape[2]}, "
            f"{len(np.unique(labels))} classes"
        )


@data.command("import-mnist-pickle")
@click.argument("pickle_path", type=click.Path(dir_okay=False))
@data_dir_option
@user_errors
def data_import_mnist_pickle(pickle_path, data_dir):
    """Convert a hand-fetched classic mnist.pkl.gz (checked by sha256) into cached IDX files."""
    from .data.datasets import default_data_dir, import_mnist_pickle

    target = Path(data_dir) if data_dir else default_data_dir()
    click.echo(f"MNIST written to {import_mnist_pickle(pickle_path, target / 'mnist')}")


if __name__ == "__main__":
    main()
