"""The fit run, the service behind ``oneclass fit``: the one-class protocol on a labelled dataset
(``evaluation/protocol.py``) or a user's folder of images; a share of the normal training images
is held out for conformal calibration; the run folder gets the model, metrics and figures."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import calibration
from ..data import load_dataset
from ..data.arrays import image_shape
from ..data.folders import ImageFolder, defect_masks, folder_splits, take
from ..detector import PAINTED_COPIES, OneClassDetector
from ..errors import OneClassError
from ..evaluation.metrics import detection_metrics, pixel_auroc, pro_score
from ..evaluation.protocol import one_class_split
from ..figures import plot_head_history, plot_score_histogram, save_grid
from ..timing import Stopwatch
from ..training import distributed
from ..training.checkpoint import Checkpointer
from .runfolder import RunFolder


@dataclass
class RunData:
    """What a run trains and is evaluated on, and how to find it again (for the report)."""

    train: np.ndarray | ImageFolder  # normal images only
    test: np.ndarray | ImageFolder | None  # evaluation images
    test_is_normal: np.ndarray | None
    spec: dict[str, Any]  # JSON-able description, stored in metrics.json as "data"
    masks: np.ndarray | None = None  # bool (n_test, H, W): defect masks of a folder's test split


def dataset_run_data(
    dataset: str,
    normal: tuple[int, ...],
    data_dir: str | os.PathLike | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> RunData:
    """The one-class protocol: the normal classes of the training split, the whole test split."""
    train_x, train_y = load_dataset(dataset, "train", data_dir)
    test_x, test_y = load_dataset(dataset, "test", data_dir)
    index = one_class_split(train_y, normal, train_limit)
    if len(index) == 0:
        raise OneClassError(f"no training images of classes {normal} in {dataset}")
    test_x, test_y = test_x[:test_limit], test_y[:test_limit]
    spec = {"kind": "dataset", "name": dataset, "normal_classes": list(normal), "n_test": len(test_x)}
    return RunData(train_x[index], test_x, np.isin(test_y, normal), spec)


def folder_run_data(
    root: str | None,
    normal_dir: str | None,
    abnormal_dir: str | None,
    image_size: int | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    train_limit: int | None = None,
    keep_detail: bool = False,
    white: int | None = None,
) -> RunData:
    """A user's folder of images (see ``data/folders.py`` for the layouts; ``keep_detail``: the
    default size keeps larger images' detail, for the local detector)."""
    train, test = folder_splits(
        root, normal_dir, abnormal_dir, image_size, channels, skip_bad, keep_detail, white
    )
    if train_limit is not None:
        train = train.subset(np.arange(min(train_limit, len(train))))
    spec = {
        "kind": "folder",
        "root": None if root is None else str(Path(root).resolve()),
        "normal_dir": None if normal_dir is None else str(Path(normal_dir).resolve()),
        "abnormal_dir": None if abnormal_dir is None else str(Path(abnormal_dir).resolve()),
        "image_size": max(train.image_shape[1:]),  # the larger side; the other follows the files
        "channels": train.image_shape[0],
        "skip_bad": skip_bad,
        "high_bit_white": train.white,  # grey files of more than 8 bits: this level is 255
    }
    masks = defect_masks(test, root) if test is not None and root is not None else None
    return RunData(train, test, None if test is None else test.is_normal, spec, masks)


def rebuild_run_data(spec: dict[str, Any], data_dir: str | os.PathLike | None = None) -> RunData:
    """The data of a finished run from the ``data`` entry of its metrics.json."""
    if spec.get("kind") == "dataset":
        data = dataset_run_data(spec["name"], tuple(spec["normal_classes"]), data_dir)
        limit = spec.get("n_test")
        return RunData(data.train, data.test[:limit], data.test_is_normal[:limit], spec)
    if spec.get("kind") == "folder":
        return folder_run_data(
            spec["root"],
            spec["normal_dir"],
            spec["abnormal_dir"],
            spec["image_size"],
            spec["channels"],
            spec.get("skip_bad", False),
            white=spec.get("high_bit_white"),
        )
    raise OneClassError(f"unknown data description {spec!r}")


IN_MEMORY_LIMIT = 2e9  # bytes: a folder up to this size is read once and kept in memory


def in_memory_if_small(images: np.ndarray | ImageFolder) -> np.ndarray | ImageFolder:
    """Read a folder into memory once when it fits (training visits every image each epoch);
    larger folders stay on disk and are streamed batch by batch."""
    if isinstance(images, ImageFolder) and _bytes(images) <= IN_MEMORY_LIMIT:
        return images[:]
    return images


def _synthetic_defects_line(detector: OneClassDetector) -> str:
    """What the local head did with synthetic defects, for train.log."""
    if detector.head_.defects_used_:
        learners, references = detector.head_.defect_images_
        line = (
            f"discriminator of synthetic defects: trained on {learners} images ({PAINTED_COPIES} painted "
            f"copies of each), its map standardised on {references} others"
        )
        if detector.head_.tuned_:
            line += (
                f"; defect branch (the backbone's later blocks fine-tuned): {detector.tuning_images_} of "
                "those images and their painted copies, its map standardised on the same others"
            )
        return line
    if not detector.synthetic_defects:
        return "synthetic defects: off (--no-synthetic-defects); the OC-NN's map alone"
    return (
        "synthetic defects: too few images reach the head for the discriminator (16 needed, about 30 "
        "in the folder once the threshold's and calibration's images are held out); the OC-NN's map alone"
    )


def _head_convergence(history: list[dict]) -> dict[str, Any]:
    """Frank-Wolfe passes and final duality gap of a kernel OC-NN head; one of each per member
    of a combined head (its records carry ``group``)."""
    if not history or "duality_gap" not in history[-1]:
        return {}
    groups = sorted({record.get("group", 0) for record in history})
    runs = [[r for r in history if r.get("group", 0) == group] for group in groups]
    passes, gaps = [len(run) - 1 for run in runs], [run[-1]["duality_gap"] for run in runs]
    if len(runs) == 1:
        return {"head_passes": passes[0], "head_duality_gap": gaps[0]}
    return {"head_passes": passes, "head_duality_gap": gaps}


def _bytes(images: np.ndarray | ImageFolder) -> float:
    return float(np.prod(images.shape, dtype=np.float64))


def fit_run(
    detector: OneClassDetector,
    data: RunData,
    out: str | os.PathLike,
    *,
    calibration_share: float = 0.1,
    alpha: float = 0.05,
    overwrite: bool = False,
    resume: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Fit ``detector`` on ``data.train`` less a held-out calibration share; calibrate; evaluate
    on ``data.test`` when there is one; write the run folder ``out``. Returns the metrics.

    The encoder is checkpointed every epoch; ``resume`` continues an interrupted run (the head
    trains in seconds and is simply retrained, with the same seed).

    Under torchrun every process trains (data-parallel) and only the first one writes the run
    folder and evaluates; the others return an empty dict after training."""
    if not 0.0 <= calibration_share < 1.0:
        raise OneClassError(f"calibration share must be in [0, 1), got {calibration_share}")
    calibration.check_alpha(alpha)
    n_calibration = int(round(calibration_share * len(data.train)))
    held = len(data.train) if _bytes(data.train) <= IN_MEMORY_LIMIT else 0
    detector.check_memory(image_shape(data.train), len(data.train) - n_calibration, 2 * held)
    detector.training_device()  # joins torchrun's process group, if launched by it
    main = distributed.is_main_process()
    run = RunFolder(out, overwrite=overwrite, quiet=quiet, resume=resume) if main else None
    distributed.barrier()  # the others read checkpoints only once stale ones are gone
    train = in_memory_if_small(data.train)
    order = np.random.default_rng(detector.seed).permutation(len(train))
    fit_index, calibration_index = np.sort(order[n_calibration:]), np.sort(order[:n_calibration])
    fit_images = take(train, fit_index)
    split = detector.threshold_split(len(fit_images))  # few images: the threshold from held-out ones
    threshold_images = None if split is None else take(fit_images, split[1])
    if split is not None:
        fit_images = take(fit_images, split[0])
    if run is None:  # a worker process of a distributed run: train, write nothing
        detector.quiet = True
        detector.fit_encoder(fit_images, checkpoint=Checkpointer(out, "encoder"))
        detector.fit_head(fit_images)
        distributed.barrier()  # exit together with the first process, once it has written the run
        return {}
    if detector.local:
        features = f"patch features {detector.encoder} (pretrained, not trained)"
    else:
        features = "; ".join(
            f"{kind} encoder: batch {batch_size}, {epochs} epochs"
            for kind, (batch_size, epochs) in detector.encoder_schedules(len(fit_images)).items()
        )
    held_for_threshold = 0 if threshold_images is None else len(threshold_images)
    channels, height, width = image_shape(train)
    colour = "grey" if channels == 1 else "colour"
    run.log(
        f"fit on {len(fit_images)} normal images of {width}x{height} ({colour}; {n_calibration} more "
        f"held out for calibration, {held_for_threshold} for the threshold); " + features
    )
    if resume:
        run.log("resuming from the last encoder checkpoint")
    if distributed.world_size() > 1:
        run.log(f"distributed: {distributed.world_size()} processes")

    clock = Stopwatch()
    detector.fit_encoder(
        fit_images, on_epoch=run.epoch_logger("encoder"), checkpoint=run.checkpointer("encoder")
    )
    # a local head's passes report region scores (log y_hat of one region), not image scores
    stage = "head (region scores)" if detector.local else "head"
    detector.fit_head(fit_images, on_epoch=run.epoch_logger(stage))
    if detector.local:
        run.log(_synthetic_defects_line(detector))
    if threshold_images is not None:
        detector.threshold_from(threshold_images)
    fit_seconds = clock.seconds()
    train_scores = detector.score_samples(fit_images)
    threshold = detector.threshold_
    metrics: dict[str, Any] = {
        "data": data.spec,
        **(
            {"dataset": data.spec["name"], "normal_classes": data.spec["normal_classes"]}
            if data.spec["kind"] == "dataset"
            else {}
        ),
        "n_train": len(fit_images),
        "n_calibration": n_calibration,
        "n_threshold": held_for_threshold,  # held-out images the threshold came from (0: out of fold)
        "nu": detector.nu,
        "threshold": threshold,
        "train_share_below_threshold": float(calibration.flagged(train_scores, threshold).mean()),
        "encoder_schedule": detector.encoder_schedule_,
        "fit_seconds": fit_seconds,
        "world_size": distributed.world_size(),
    }
    if detector.local:
        metrics["synthetic_defects"] = bool(detector.head_.defects_used_)
    metrics.update(_head_convergence(detector.history_["head"]))
    problem = calibration.unreachable_alpha(alpha, n_calibration)
    if problem:  # p-values still work; only this alpha cannot flag anything
        metrics["alpha_warning"] = problem
        run.log(f"warning: {problem}")
    if n_calibration:
        detector.calibrate(take(train, calibration_index))
        metrics["calibration_share_below_threshold"] = float(
            calibration.flagged(detector.calibration_scores_, threshold).mean()
        )
        if not problem:
            metrics["conformal_threshold"] = detector.conformal_threshold(alpha)
            metrics["alpha"] = alpha
    if data.test is not None:
        test_scores, maps = _score_test(detector, data.test)
        metrics["n_test"] = len(test_scores)
        _evaluate(metrics, detector, test_scores, data.test_is_normal, run)
        if maps is not None and data.masks is not None:
            metrics["test_pixel_auroc"] = pixel_auroc(maps, data.masks)
            metrics["test_pro"] = pro_score(maps, data.masks)
        order = np.argsort(test_scores, kind="stable")
        save_grid(run.path / "most_abnormal64.png", data.test[order[:64]])
        save_grid(run.path / "most_normal64.png", data.test[order[::-1][:64]])
    if detector.history_["head"] and "score_std" in detector.history_["head"][0]:
        title = "OC-NN training, region scores (the image threshold is set after)" if detector.local else ""
        plot_head_history(detector.history_["head"], run.path / "head_training.png", title)
    detector.save(run.path)
    run.write_metrics(metrics)
    run.clear_checkpoints()
    summary = (
        f"threshold={threshold:.4g}, train share below it={metrics['train_share_below_threshold']:.3f} "
        f"(nu={detector.nu})"
    )
    if "test_auroc" in metrics:
        summary += f", test AUROC={metrics['test_auroc']:.4f}"
        summary += f", false alarms at the threshold={metrics['test_false_alarm_rate']:.3f}"
    if "test_conformal_false_alarm_rate" in metrics:
        summary += f", at alpha={alpha}: {metrics['test_conformal_false_alarm_rate']:.3f}"
    if "test_auroc" not in metrics and "test_detection_rate" in metrics:
        detected = metrics["test_detection_rate"]
        summary += f", detected {detected:.3f} of {metrics['n_test']} abnormal test images"
    if "calibration_share_below_threshold" in metrics:
        summary += (
            f", held-out good images below it={metrics['calibration_share_below_threshold']:.3f}"
            f" of {n_calibration}"
        )
    for warning in (problem, metrics.get("threshold_warning")):
        if warning:
            summary += f"; warning: {warning}"
    run.log(f"done in {fit_seconds:.1f}s: {summary}")
    distributed.barrier()  # the others wait here: a process leaving the group early can abort gloo
    return metrics


def _score_test(detector: OneClassDetector, images) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores of the test images and, for a local detector, their anomaly maps (one pass)."""
    return detector.scores_and_maps(images) if detector.local else (detector.score_samples(images), None)


def _evaluate(metrics, detector, test_scores, is_normal, run) -> None:
    """Test metrics at the threshold and, when calibrated, at the conformal level alpha."""
    if is_normal is None:
        return
    threshold = detector.threshold_
    if not is_normal.any():  # abnormal images only (--abnormal-dir beside --normal-dir)
        metrics["test_detection_rate"] = float(calibration.flagged(test_scores, threshold).mean())
        if "alpha" in metrics:
            p = detector.p_values_of_scores(test_scores)
            metrics["test_conformal_detection_rate"] = float(
                calibration.flagged_by_p_value(p, metrics["alpha"]).mean()
            )
        return
    shifted = calibration.excess_false_alarms(
        calibration.flagged(test_scores[is_normal], threshold), detector.nu
    )
    if shifted:
        metrics["threshold_warning"] = shifted
    flagged = None
    if "alpha" in metrics:
        p = detector.p_values_of_scores(test_scores)
        flagged = calibration.flagged_by_p_value(p, metrics["alpha"])
        metrics["test_conformal_false_alarm_rate"] = float(flagged[is_normal].mean())
    if is_normal.all():
        metrics["test_false_alarm_rate"] = float(calibration.flagged(test_scores, threshold).mean())
        return
    metrics.update({f"test_{k}": v for k, v in detection_metrics(test_scores, is_normal, threshold).items()})
    if flagged is not None:
        metrics["test_conformal_detection_rate"] = float(flagged[~is_normal].mean())
    plot_score_histogram(
        test_scores,
        {"normal (test)": is_normal, "abnormal (test)": ~is_normal},
        threshold,
        run.path / "score_histogram.png",
        "test scores",
    )
