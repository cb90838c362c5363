"""Recalibration, the service behind ``oneclass calibrate``: a saved run's threshold and conformal
p-values set anew from normal images the user brings.

The threshold a run was fitted with holds nu for new normal images that resemble the held-out
training images. When production images differ from the training set in a way that is not a
defect (new lighting, a new batch of material, or a training set of overlapping views of one
scene), the share of good images flagged can be far above nu: on the inspection benchmark's
test folders the local detector flagged 84% of good crops cut from the photographs' other
blocks. Scoring a batch of known-good images from production and setting the threshold from
them (the conformal threshold at level nu, and the calibration scores behind the p-values) makes
the promise hold for images like those.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import calibration
from ..data.folders import take
from ..data.sources import load_inputs
from ..detector import OneClassDetector
from ..errors import OneClassError
from ..fileio import write_json
from .export import ONNX_FILE
from .runfolder import read_metrics
from .score import known_normal, trained_on_count

CALIBRATION_FILE = "calibration.json"


@dataclass
class Recalibration:
    images: int
    left_out: int  # images whose labels say abnormal (a labelled split, a folder's defect kinds)
    training_images: int  # of ``images``, those from the run's training folder or split (in-sample)
    sources: list[str]
    nu: float
    threshold_before: float
    threshold: float
    flagged_before: float  # share of these normal images the old threshold flagged
    onnx_stale: bool  # the run folder holds an ONNX export made with the old threshold


def calibrate_run(
    run_dir: str | os.PathLike,
    inputs: list[str],
    *,
    data_dir: str | os.PathLike | None = None,
    skip_bad: bool = False,
    device: str = "cpu",
    progress: bool = False,
) -> Recalibration:
    """Score the normal images ``inputs`` (dataset splits, IDX files, image files, folders or
    globs; every image is taken as normal unless its labels say otherwise: a split of the run's
    dataset keeps the run's normal classes, an MVTec-layout folder its good images) with the
    run's detector, set its threshold to their
    conformal threshold at level nu and keep their scores as its calibration scores; save the
    detector in place (atomically) and record what changed in ``RUN_DIR/calibration.json``."""
    detector = OneClassDetector.load(run_dir, device=device)
    trained_on = read_metrics(run_dir)
    batches = load_inputs(list(inputs), detector.image_shape_, data_dir, skip_bad, trained_on.get("data"))
    kept, left_out, seen = [], 0, 0
    for batch in batches:
        keep = np.arange(len(batch.ids))
        known = known_normal(batch, trained_on)
        if known is not None:  # images the labels call abnormal are left out, unscored
            labelled, is_normal = known
            keep = np.flatnonzero(~(labelled & ~is_normal))
            left_out += len(batch.ids) - len(keep)
        seen += trained_on_count(batch, keep, trained_on.get("data", {}))
        if len(keep):
            images = batch.images if len(keep) == len(batch.ids) else take(batch.images, keep)
            kept.append(detector.score_samples(images, progress=progress))
    scores = np.concatenate(kept or [np.empty(0)])
    problem = calibration.unreachable_alpha(detector.nu, len(scores))
    if problem:
        raise OneClassError(
            f"{', '.join(inputs)}: {len(scores)} normal images are too few for a threshold at "
            f"nu={detector.nu:g} (at least {calibration.calibration_needed(detector.nu)} needed)"
            + (f"; {left_out} images their folders label abnormal were left out" if left_out else "")
        )
    if seen:
        warnings.warn(
            f"{seen} of these {len(scores)} images are from the run's training folder or split: the detector "
            "was fitted on most of them, so they score as more normal than new good images, and "
            "a threshold set from them flags more than nu of new ones; calibrate on good images "
            "the run has not seen",
            stacklevel=2,
        )
    before = detector.threshold_
    detector.threshold_from_scores(scores).calibrate_from_scores(scores)
    record = Recalibration(
        images=len(scores),
        left_out=left_out,
        training_images=seen,
        sources=[batch.source for batch in batches],
        nu=detector.nu,
        threshold_before=before,
        threshold=detector.threshold_,
        flagged_before=float(np.mean(calibration.flagged(scores, before))),
        onnx_stale=Path(run_dir, ONNX_FILE).is_file(),
    )
    detector.save(run_dir)
    write_json(Path(run_dir, CALIBRATION_FILE), asdict(record))
    return record
