"""Distributed helpers (torchrun): rank, world size, barriers, gathering. No-ops alone."""

from __future__ import annotations

import torch

from .errors import DeviceError


def is_initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the process group; (0, 1) outside ``torchrun``."""
    if is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def barrier() -> None:
    """Wait for every rank (after rank 0 wrote files the others read)."""
    if is_initialized() and torch.distributed.get_world_size() > 1:
        torch.distributed.barrier()


def gather(x: torch.Tensor, with_grad: bool = True) -> torch.Tensor:
    """Concatenate ``x`` over ranks (rank order). With grad, gradients flow back to each rank."""
    _, world = rank_world()
    if world == 1:
        return x
    if with_grad:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(x), dim=0)
    parts = [torch.empty_like(x) for _ in range(world)]
    torch.distributed.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts, dim=0)


def check_device(device: str | None) -> None:
    """A device that exists here, before any work starts (a one-line ``DeviceError``)."""
    import torch

    if device is not None:
        try:
            dev = torch.device(str(device))
        except (RuntimeError, ValueError):
            raise DeviceError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
        if dev.type == "cuda":
            n = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if n == 0:
                raise DeviceError(f"device {device!r} asked for but CUDA is not available here; "
                                  "use device = \"cpu\" (or leave it out)")
            if dev.index is not None and dev.index >= n:
                raise DeviceError(f"device {device!r} does not exist (this machine has {n} CUDA "
                                  "device(s))")
        elif dev.type not in ("cpu", "mps"):
            raise DeviceError(f"unsupported device {device!r}; use cpu or cuda[:N]")
