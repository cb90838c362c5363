"""Per-epoch checkpoints of a training loop, so that an interrupted run resumes to the same result.

A checkpoint holds everything the next epoch depends on: the model's parameters and buffers, the
optimiser's state, the batch-order generator and torch's global generator (the VAE samples from
it), and the history so far: tensors in ``checkpoint-<stage>.safetensors``, the rest in
``checkpoint-<stage>.json``, written by ``storage.py`` as a model file is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import OneClassError
from ..storage import load_tensors, save_tensors

FORMAT = "oneclass-checkpoint"


class Checkpointer:
    def __init__(self, directory: str | os.PathLike, stage: str):
        self.directory = Path(directory)
        self.stage = stage
        self.tensors_path = self.directory / f"checkpoint-{stage}.safetensors"
        self.meta_path = self.directory / f"checkpoint-{stage}.json"

    def part(self, name: str) -> Checkpointer:
        """The checkpoints of one part of a stage (a joint encoder trains its parts one by one)."""
        return Checkpointer(self.directory, f"{self.stage}-{name}")

    def exists(self) -> bool:
        return self.meta_path.is_file()

    def save(
        self,
        epoch: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        history: list[dict],
    ) -> None:
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        optim_state = optimizer.state_dict()
        for index, state in optim_state["state"].items():
            for key, value in state.items():
                tensors[f"optim.{index}.{key}"] = torch.as_tensor(value)
        tensors["rng.batches"] = generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        save_tensors(
            self.meta_path,
            self.tensors_path.name,
            tensors,
            {
                "format": FORMAT,
                "stage": self.stage,
                "epoch": epoch,
                "history": history,
                "param_groups": optim_state["param_groups"],
            },
        )

    def restore(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator
    ) -> tuple[int, list[dict]]:
        """Load the checkpoint into the given objects; return (last finished epoch, history)."""
        meta, tensors = load_tensors(
            self.meta_path, self.tensors_path.name, FORMAT, f"oneclass checkpoint ({self.stage})"
        )
        if meta.get("stage") != self.stage:
            raise OneClassError(f"{self.meta_path}: not a {self.stage} checkpoint of oneclass")
        model_state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        try:
            model.load_state_dict(model_state)
        except RuntimeError as exc:
            raise OneClassError(
                f"{self.tensors_path}: checkpoint does not fit this model (were the options changed?)"
            ) from exc
        state: dict[int, dict[str, Any]] = {}
        for name, value in tensors.items():
            if name.startswith("optim."):
                _, index, key = name.split(".", 2)
                state.setdefault(int(index), {})[key] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        generator.set_state(tensors["rng.batches"])
        torch.set_rng_state(tensors["rng.torch"])
        return int(meta["epoch"]), list(meta["history"])
