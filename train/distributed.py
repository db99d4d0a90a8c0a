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


def wrap(module: torch.nn.Module, device: torch.device, find_unused_parameters: bool) -> torch.nn.Module:
    """DistributedDataParallel around `module` when several processes run, else the module itself.

    DDP takes the parameters that require gradients *now*: freeze what this wrapper must not
    synchronise before calling. It starts every process from rank 0's weights and averages
    gradients during the backward pass.
    """
    if not dist.is_initialized():
        return module
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=ids, find_unused_parameters=find_unused_parameters
    )


def sum_over_processes(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of a tensor over processes (a copy; the tensor itself in one process)."""
    if not dist.is_initialized():
        return values
    values = values.detach().clone()
    dist.all_reduce(values)
    return values


def max_divergence(modules: list[torch.nn.Module]) -> float:
    """Largest relative difference between processes of any parameter's fingerprint (its float64
    sum and sum of squares): 0 while DDP keeps the replicas identical. (Running statistics are
    not compared: each process updates them from its own batch until DDP's next broadcast.)"""
    if not dist.is_initialized():
        return 0.0
    tensors = [p.detach() for m in modules for p in m.parameters()]
    local = torch.stack([torch.stack([t.double().sum(), t.double().square().sum()]) for t in tensors])
    gathered = [torch.empty_like(local) for _ in range(world_size())]
    dist.all_gather(gathered, local)
    spread = torch.stack(gathered).amax(0) - torch.stack(gathered).amin(0)
    return (spread / local.abs().clamp_min(1e-12)).max().item()


def gather_objects(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every process (picklable objects; collective)."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def mean(value: torch.Tensor) -> torch.Tensor:
    """Average a scalar over processes (for logging)."""
    return sum_over_processes(value) / world_size()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
