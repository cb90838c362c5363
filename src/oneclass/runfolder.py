"""A run folder: config.json + model.safetensors (from the detector), metrics.json, train.log,
figures. Created once; an existing run is never overwritten unless asked."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import OneClassError
from .fileio import write_json

MARKERS = ("config.json", "metrics.json", "model.safetensors")


class RunFolder:
    def __init__(self, path: str | os.PathLike, overwrite: bool = False, quiet: bool = False):
        self.path = Path(path)
        self.quiet = quiet
        if self.path.exists() and not self.path.is_dir():
            raise OneClassError(f"{self.path}: exists and is not a folder")
        if not overwrite and any((self.path / name).exists() for name in MARKERS):
            raise OneClassError(f"{self.path}: already holds a run; pass --overwrite to replace it")
        self.path.mkdir(parents=True, exist_ok=True)
        self.log_path = self.path / "train.log"
        self.log_path.write_text("")
        self.started = time.perf_counter()

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
        write_json(self.path / "metrics.json", metrics)
        return self.path / "metrics.json"
