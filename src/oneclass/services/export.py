"""Export, the service behind ``oneclass export``: a fitted detector as one ONNX graph from raw
pixels to the normality score.

The graph takes ``images``: uint8 ``(n, C, H, W)`` with the detector's image shape (pixels
0..255, the same bytes ``oneclass score`` reads from an image file after resizing) and returns
``score``: float32 ``(n,)``, higher = more normal. The scaling to [0, 1], the encoder and the
head are all inside it. Beside it a small JSON file gives the threshold to apply (the head's,
or the conformal threshold at a chosen alpha) and, for a calibrated detector, conformal
thresholds at common alphas.

Needs the optional extra: ``pip install 'oneclass[onnx]'`` (onnx, onnxscript for the exporter,
onnxruntime to run the graph).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..detector import OneClassDetector
from ..errors import OneClassError
from ..fileio import atomic_path, write_json

ONNX_FILE = "model.onnx"
ONNX_META_FILE = "model.onnx.json"
OPSET = 18


class ScoringGraph(nn.Module):
    """uint8 images ``(n, C, H, W)`` -> scores ``(n,)``: pixel scaling, encoder, head."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32) / 255.0
        return self.head(self.encoder.encode(x))


class LocalScoringGraph(nn.Module):
    """uint8 images ``(n, C, H, W)`` -> (scores ``(n,)``, anomaly maps ``(n, H, W)``): pixel
    scaling, patch features, the patch OC-NN, map upsampling and smoothing, in one graph."""

    def __init__(self, features: nn.Module, scorer: nn.Module):
        super().__init__()
        self.features = features
        self.scorer = scorer

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scorer(self.features(images.to(torch.float32) / 255.0))


def scoring_graph(detector: OneClassDetector) -> nn.Module:
    """The detector's scoring path as one ``nn.Module`` in eval mode (CPU, float32)."""
    detector._check_fitted()
    head = detector.head_.torch_module()
    if detector.local:
        return LocalScoringGraph(detector.encoder_, head).cpu().eval()
    if head is None:
        raise OneClassError(
            f"head {detector.head_.name!r} has no network to export; export supports the OC-NN "
            "heads (ocnn, ocnn-paper)"
        )
    return ScoringGraph(detector.encoder_, head).cpu().eval()


def export_onnx(
    detector: OneClassDetector,
    directory: str | os.PathLike,
    *,
    alpha: float | None = None,
) -> Path:
    """Write ``directory/model.onnx`` and ``directory/model.onnx.json``; returns the ONNX path.

    The JSON's ``threshold`` is the head's, or the conformal threshold at ``alpha`` when given
    (the detector must then be calibrated). Scores below the threshold are abnormal.
    """
    try:
        import onnx
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError as exc:
        raise OneClassError("ONNX export needs the optional extra: pip install 'oneclass[onnx]'") from exc
    graph = scoring_graph(detector)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    example = torch.zeros((2, *detector.image_shape_), dtype=torch.uint8)
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                graph,
                (example,),
                input_names=["images"],
                output_names=["score", "map"] if detector.local else ["score"],
                dynamic_shapes=({0: torch.export.Dim("n")},),
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many kinds; the user needs one line
        raise OneClassError(f"ONNX export failed: {str(exc).splitlines()[0]}") from exc
    with atomic_path(directory / ONNX_FILE) as tmp:
        program.save(str(tmp), external_data=False)  # one self-contained file (the model is small)
        onnx.checker.check_model(str(tmp))
        check_runs(tmp, detector.image_shape_, detector.local)
    write_json(directory / ONNX_META_FILE, export_metadata(detector, alpha))
    return directory / ONNX_FILE


def check_runs(path: Path, image_shape: tuple[int, ...], local: bool) -> None:
    """Run the written graph once in ONNX Runtime (when installed) on a few images of the
    detector's shape: a graph that ONNX's checker accepts can still hold an operator that ONNX
    Runtime cannot run, and the user should learn it here, before the file replaces anything."""
    try:
        import onnxruntime
    except ImportError:
        return
    images = np.random.default_rng(0).integers(0, 256, (3, *image_shape), dtype=np.uint8)
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs = session.run(None, {"images": images})
    except Exception as exc:  # onnxruntime's errors have no common base class
        raise OneClassError(
            f"ONNX export failed: ONNX Runtime cannot run the graph: {str(exc).splitlines()[0]}"
        ) from exc
    expected = [(3,), (3, *image_shape[1:])] if local else [(3,)]
    shapes = [tuple(output.shape) for output in outputs]
    if shapes != expected or not all(np.isfinite(output).all() for output in outputs):
        raise OneClassError(
            f"ONNX export failed: the graph gave outputs of shapes {shapes} (expected {expected}) "
            "or values that are not finite"
        )


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter logs warnings that concern its own internals (skipped torchvision operators,
    deprecated pytree names), not the user's model: keep them off the terminal."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def export_metadata(detector: OneClassDetector, alpha: float | None) -> dict:
    if alpha is not None and not detector.calibrated:
        raise OneClassError("--alpha needs a calibrated run (fit with --calibration-share > 0)")
    conformal = {}
    if detector.calibrated:
        for level in (0.01, 0.05, 0.1):
            try:
                conformal[str(level)] = detector.conformal_threshold(level)
            except OneClassError:
                continue  # too few calibration images for this level
    threshold = detector.conformal_threshold(alpha) if alpha is not None else detector.threshold_
    return {
        "format": "oneclass-onnx",
        "model": ONNX_FILE,
        "input": {"name": "images", "dtype": "uint8", "shape": ["n", *detector.image_shape_]},
        "output": {"name": "score", "dtype": "float32", "shape": ["n"], "higher": "more normal"},
        **(
            {
                "map_output": {
                    "name": "map",
                    "dtype": "float32",
                    "shape": ["n", *detector.image_shape_[1:]],
                    "higher": "more abnormal",
                },
                "pixel_threshold": float(detector.pixel_threshold_),
            }
            if detector.local
            else {}
        ),
        "threshold": float(threshold),
        "threshold_rule": f"conformal, alpha={alpha}" if alpha is not None else "the head's (nu-quantile)",
        "head_threshold": float(detector.threshold_),
        "conformal_thresholds": conformal,
        "nu": detector.nu,
        "head": detector.head_.name,
        "opset": OPSET,
    }
