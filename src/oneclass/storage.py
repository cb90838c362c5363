"""Tensors in safetensors plus a JSON manifest, the one format of model files and checkpoints.

``save_tensors`` writes ``<weights>`` atomically, then the manifest (``format``, what the caller
adds, and ``weights: {file, sha256}``), also atomically and last: a bundle is whole or absent.
``load_tensors`` checks the format, the file name (a bare name in the same folder), the sha256
and reads the tensors with safetensors: nothing is ever unpickled.

The same tensors always give the same bytes: the safetensors header carries one metadata entry
only (its metadata map has no fixed order, so several entries could come out shuffled).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import OneClassError
from .fileio import atomic_path, read_json, sha256_file, write_json


def save_tensors(
    manifest_path: str | os.PathLike,
    weights_name: str,
    tensors: dict[str, torch.Tensor],
    manifest: dict[str, Any],
) -> str:
    """Write ``tensors`` beside ``manifest_path`` as ``weights_name`` and the manifest; returns
    the weights' sha256. ``manifest`` must carry a ``format`` entry."""
    manifest_path = Path(manifest_path)
    contiguous = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    with atomic_path(manifest_path.parent / weights_name) as tmp:
        save_file(contiguous, str(tmp), metadata={"format": str(manifest["format"])})
        digest = sha256_file(tmp)
    write_json(manifest_path, {**manifest, "weights": {"file": weights_name, "sha256": digest}})
    return digest


def load_tensors(
    manifest_path: str | os.PathLike, weights_name: str, fmt: str, what: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The manifest and tensors written by :func:`save_tensors`; refuses a manifest of another
    ``fmt`` (naming ``what`` was expected), another weights file, a changed checksum or a file
    that is not safetensors, each with a one-line :class:`OneClassError`."""
    manifest_path = Path(manifest_path)
    manifest = read_json(manifest_path)
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise OneClassError(f"{manifest_path}: not a {what}")
    weights = manifest.get("weights")
    if not isinstance(weights, dict) or not isinstance(weights.get("file"), str):
        raise OneClassError(f"{manifest_path}: no weights entry")
    if weights["file"] != weights_name:
        raise OneClassError(f"{manifest_path}: weights must be {weights_name} in the same folder")
    weights_path = manifest_path.parent / weights_name
    if not weights_path.is_file():
        raise OneClassError(f"{weights_path}: weights file missing")
    if sha256_file(weights_path) != weights.get("sha256"):
        raise OneClassError(
            f"{weights_path}: checksum does not match {manifest_path.name} (file altered or truncated)"
        )
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise OneClassError(f"{weights_path}: not a readable safetensors file ({exc})") from exc
    return manifest, tensors
