"""Data-parallel training under ``torchrun`` (torch.distributed): process group, sharding, gathering.

Launched by ``torchrun --nproc_per_node N oneclass fit ...`` (README, "Scaling up"), every process
holds the whole training set, trains on its shard (``DistributedSampler``) with gradients averaged
by ``DistributedDataParallel``, and computes the OC-NN's r over the outputs of all ranks. Without
torchrun (no ``WORLD_SIZE`` in the environment) everything here is a no-op and training runs
exactly as in a single process.
"""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from ..errors import OneClassError
from .loop import minibatches


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> torch.device:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU); the device to use.

    On CUDA each process takes the GPU of its ``LOCAL_RANK``.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return _local_device(device)
    if device.type == "mps":
        raise OneClassError("distributed training supports cuda (NCCL) and cpu (gloo), not mps")
    device = _local_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    atexit.register(teardown)
    return device


def _local_device(device: torch.device) -> torch.device:
    if device.type == "cuda" and launched_by_torchrun():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main_process() -> bool:
    """Only this process writes files (run folder, checkpoints, logs)."""
    return rank() == 0


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel when distributed (gradients averaged over ranks)."""
    if world_size() == 1:
        return module
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def shard_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """This rank's mini-batches of ``range(n)`` for ``epoch``: a shuffled ``DistributedSampler``
    shard, in batches of ``batch_size // world_size`` so that a step sees ``batch_size`` images in
    all. Every rank gets the same number of batches (the sampler pads by repeating indices)."""
    sampler = DistributedSampler(range(n), num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    indices = torch.tensor(list(sampler), dtype=torch.long)
    return list(indices.split(max(1, batch_size // world_size())))


def shard(n: int) -> slice:
    """This rank's contiguous block of ``range(n)``: the one way work on a whole data set (scoring
    it, the OC-NN's solvers) is split between ranks. Blocks differ in length by at most one."""
    size, extra = divmod(n, world_size())
    start = rank() * size + min(rank(), extra)
    return slice(start, start + size + (rank() < extra))


def gather_shards(local: torch.Tensor, n: int) -> torch.Tensor:
    """Every rank's block of ``(n,)`` values (``local`` is this rank's, as ``shard(n)`` splits
    them), assembled in the global order on every rank; gathered on ``local``'s device."""
    if world_size() == 1:
        return local
    size, extra = divmod(n, world_size())
    padded = torch.zeros(size + (extra > 0), dtype=local.dtype, device=local.device)
    padded[: len(local)] = local
    parts = gather(padded).view(world_size(), -1)
    return torch.cat([parts[r, : size + (r < extra)] for r in range(world_size())])


def gather(values: torch.Tensor) -> torch.Tensor:
    """Concatenation of every rank's ``values`` (equal shapes on every rank)."""
    if world_size() == 1:
        return values
    parts = [torch.empty_like(values) for _ in range(world_size())]
    dist.all_gather(parts, values.contiguous())
    return torch.cat(parts)


def sum_over_ranks(value: torch.Tensor) -> torch.Tensor:
    if world_size() > 1:
        value = value.clone()
        dist.all_reduce(value)
    return value


def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank: each rank's last
    forward pass updated its own, and all ranks must encode identically afterwards."""
    if world_size() > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (a model each rank trained on the same
    gathered rows: equal up to the last bits of nondeterministic kernels, made equal)."""
    if world_size() > 1:
        for parameter in module.parameters():
            dist.broadcast(parameter.data, src=0)
    broadcast_buffers(module)


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def epoch_batches(n: int, batch_size: int, generator: torch.Generator, seed: int, epoch: int):
    """The mini-batches of one epoch: this rank's shard when distributed, else the generator's
    shuffle of ``range(n)`` (bitwise the single-process order, for resume and reproducibility)."""
    if world_size() > 1:
        return shard_batches(n, batch_size, seed, epoch)
    return list(minibatches(n, batch_size, generator))
