"""torch.distributed helpers that are no-ops in a single process. Launch with torchrun."""

import os

import torch
import torch.distributed as dist


def setup(device_name: str) -> torch.device:
    """Join the process group if torchrun started us (nccl on CUDA, gloo otherwise); pick the device."""
    from edtalk.device import resolve_device

    device = resolve_device(device_name)
    if "RANK" in os.environ and not dist.is_initialized():
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around a module with trainable parameters (so gradients are averaged)."""
    if not dist.is_initialized() or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


def mean(value: torch.Tensor) -> torch.Tensor:
    """Average a scalar over processes (for logging)."""
    if not dist.is_initialized():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / world_size()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
