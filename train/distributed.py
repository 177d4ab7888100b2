"""DistributedDataParallel plumbing for `torchrun` (gloo on CPU, nccl on GPU).

Outside torchrun (no WORLD_SIZE in the environment) everything degrades to one process.
Only rank 0 writes files; every rank computes the same data order from (seed, epoch).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: str | None = None) -> Dist:
    """Join the process group torchrun describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if world <= 1:
        return Dist(device=torch.device("cuda" if want_cuda else "cpu"))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    return Dist(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def wrap(model: nn.Module, d: Dist, find_unused_parameters: bool = False) -> nn.Module:
    """DDP around `model` when distributed (it broadcasts rank 0's weights at construction)."""
    if not d.enabled:
        return model
    ids = [d.local_rank] if d.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused_parameters
    )


def mean_over_ranks(values: dict[str, float], d: Dist) -> dict[str, float]:
    """Average logged scalars over ranks (for the loss curve; gradients are DDP's job)."""
    if not d.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=_comm_device(d))
    dist.all_reduce(t)
    t /= d.world_size
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def sync_buffers(model: nn.Module, d: Dist) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP keeps parameters equal, but each rank updates its running statistics on its own
    shard during the last forward passes; without this the saved models would differ.
    """
    if not d.enabled:
        return
    for buf in model.buffers():
        dist.broadcast(buf.data, 0)


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer, to check that ranks agree bit for bit."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def gather_digests(model: nn.Module, d: Dist) -> list[str]:
    """Every rank's weights digest (rank order); one entry outside DDP."""
    mine = weights_digest(model)
    if not d.enabled:
        return [mine]
    out: list[str | None] = [None] * d.world_size
    dist.all_gather_object(out, mine)
    return [str(x) for x in out]


def broadcast_flag(flag: bool, d: Dist) -> bool:
    """Rank 0's decision, on every rank."""
    if not d.enabled:
        return flag
    t = torch.tensor([int(flag)], device=_comm_device(d))
    dist.broadcast(t, 0)
    return bool(t.item())


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def cleanup(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device(d: Dist) -> torch.device:
    return d.device if d.device.type == "cuda" else torch.device("cpu")
