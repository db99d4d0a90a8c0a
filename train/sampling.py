"""Which samples each process trains and validates on, epoch after epoch.

Training: every epoch is a fresh shuffle of the split, sharded across processes by
`DistributedSampler` (no clip twice within an epoch, the tail dropped). The datasets draw their
random frames from (seed, epoch, index), and the epoch travels with each index as an
`(epoch, index)` key: DataLoader workers keep their own copy of the dataset for the whole run
(`persistent_workers`), so an epoch counter set on the main process's copy would never reach them.
A run resumed mid-epoch skips the samples its first steps already used, so it sees exactly the
batches an uninterrupted run would have seen.

Validation: a fixed set (the first `val_samples` clips of the validation split, epoch 0),
sharded across processes.
"""

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .config import TrainConfig


class EpochSampler(Sampler):
    """This process's shard of a new shuffle every epoch, as (epoch, index) keys."""

    def __init__(self, size: int, rank: int, world: int, seed: int):
        self.shards = DistributedSampler(range(size), world, rank, shuffle=True, seed=seed, drop_last=True)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Start `epoch`, leaving out its first `skip` samples."""
        self.shards.set_epoch(epoch)
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return len(self.shards) - self.skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, index) for index in itertools.islice(self.shards, self.skip, None))


def check_size(clips: int, batch_size: int, world: int) -> None:
    """One-line SystemExit when `clips` usable training clips cannot fill one batch per process."""
    if clips // world < batch_size:
        raise SystemExit(
            f"the training split has {clips} usable clips: too few for --batch_size {batch_size} "
            f"on {world} process(es) (needs at least {batch_size * world})"
        )


def endless_batches(dataset: Dataset, cfg: TrainConfig, start_step: int, rank: int, world: int, pin: bool = False):
    """Batches for steps start_step, start_step + 1, ... on process `rank` of `world`.

    The DataLoader draws its worker seeds from a generator of its own, not from torch's global one,
    so the global generator (dropout and the like) follows only the training steps and a resumed run
    continues it exactly."""
    check_size(len(dataset), cfg.batch_size, world)
    sampler = EpochSampler(len(dataset), rank, world, cfg.seed)
    steps_per_epoch = len(sampler.shards) // cfg.batch_size
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=True,
        persistent_workers=cfg.workers > 0,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(cfg.seed + rank),
    )
    first_epoch, done = divmod(start_step, steps_per_epoch)
    for epoch in itertools.count(first_epoch):
        sampler.set_epoch(epoch, skip=done * cfg.batch_size)
        done = 0
        yield from loader


def validation_batches(dataset: Dataset, cfg: TrainConfig, rank: int, world: int) -> DataLoader:
    """The fixed validation samples of this process (may be none), in batches of cfg.batch_size."""
    keys = [(0, index) for index in range(min(cfg.val_samples, len(dataset)))][rank::world]
    own = torch.Generator().manual_seed(cfg.seed)  # leaves the global generator alone (see endless_batches)
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=keys, num_workers=0, generator=own)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
