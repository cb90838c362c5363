"""A run folder: config.json + model.safetensors (from the detector), metrics.json, train.log,
figures. Created once; an existing run is never overwritten unless asked."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import OneClassError
from ..fileio import read_json, write_json
from ..training.checkpoint import Checkpointer

METRICS_FILE = "metrics.json"
MARKERS = ("config.json", METRICS_FILE, "model.safetensors")


class RunFolder:
    """``resume``: continue an interrupted run from its checkpoints; ``overwrite``: start afresh
    in a folder that holds a run. Without either, an existing run is never touched."""

    def __init__(
        self, path: str | os.PathLike, overwrite: bool = False, quiet: bool = False, resume: bool = False
    ):
        self.path = Path(path)
        self.quiet = quiet
        if self.path.exists() and not self.path.is_dir():
            raise OneClassError(f"{self.path}: exists and is not a folder")
        finished = any((self.path / name).exists() for name in MARKERS)
        interrupted = any(self.path.glob("checkpoint-*.json"))
        if resume and overwrite:
            raise OneClassError("--resume and --overwrite exclude each other")
        if resume and finished:
            raise OneClassError(f"{self.path}: the run already finished; nothing to resume")
        if resume and not interrupted:
            raise OneClassError(
                f"{self.path}: no checkpoint to resume from (checkpoints are written after each epoch "
                "of a trained encoder; a local detector keeps none); run the same fit without --resume"
            )
        if not (resume or overwrite) and finished:
            raise OneClassError(f"{self.path}: already holds a run; pass --overwrite to replace it")
        if not (resume or overwrite) and interrupted:
            raise OneClassError(
                f"{self.path}: holds an interrupted run; pass --resume to continue it or --overwrite"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for stale in self.path.glob("checkpoint-*"):
                stale.unlink()
        self.log_path = self.path / "train.log"
        if not resume:
            self.log_path.write_text("")
        self.started = time.perf_counter()

    def checkpointer(self, stage: str) -> Checkpointer:
        return Checkpointer(self.path, stage)

    def clear_checkpoints(self) -> None:
        """Called once the run's results are written: the checkpoints have done their job."""
        for path in self.path.glob("checkpoint-*"):
            path.unlink()

    def log(self, message: str) -> None:
        """Append a line to train.log and show it on stderr (unless quiet)."""
        stamp = f"[{time.perf_counter() - self.started:7.1f}s]"
        with open(self.log_path, "a") as handle:
            handle.write(f"{stamp} {message}\n")
        if not self.quiet:
            print(f"{stamp} {message}", file=sys.stderr, flush=True)

    def epoch_logger(self, stage: str) -> Callable[[dict], None]:
        def log_epoch(record: dict) -> None:
            fields = " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
            )
            self.log(f"{stage}: {fields}")

        return log_epoch

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        write_json(self.path / METRICS_FILE, metrics)
        return self.path / METRICS_FILE


def read_metrics(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A run's metrics.json, or {} for a run without one (a model saved from Python)."""
    path = Path(run_dir, METRICS_FILE)
    return read_json(path) if path.is_file() else {}
