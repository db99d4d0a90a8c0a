"""The stage-agnostic training loop: data, generator step, discriminator step, logs, samples, checkpoints."""

import dataclasses
import itertools
import json
import logging
import time
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from . import checkpoint, distributed
from .config import TrainConfig
from .samples import save_grid

log = logging.getLogger("train")


def endless_batches(dataset, cfg: TrainConfig, start_step: int):
    """Endless batches; each process sees its own shard, reshuffled every epoch."""
    if distributed.world_size() > 1:
        sampler = DistributedSampler(dataset, shuffle=True, seed=cfg.seed, drop_last=True)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(cfg.seed))
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=len(dataset) >= cfg.batch_size,
        persistent_workers=cfg.workers > 0,
    )
    for epoch in itertools.count(start_step // max(1, len(loader))):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        yield from loader


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _sync_start(models: dict) -> None:
    """Every process starts from rank 0's weights (as DistributedDataParallel does)."""
    if dist.is_initialized():
        for model in models.values():
            for tensor in itertools.chain(model.parameters(), model.buffers()):
                dist.broadcast(tensor.data, 0)


def _average_gradients(params: list[torch.nn.Parameter]) -> None:
    """All-reduce and average gradients across processes, in one flat buffer per call."""
    if not dist.is_initialized():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= distributed.world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _optimizers(stage, models: dict, cfg: TrainConfig):
    """Adam with the official lazy-regularisation ratios (G: lr * 4/5, D: lr * 16/17; beta1 = 0)."""
    g_ratio, d_ratio = 4 / 5, 16 / 17
    g_optim = torch.optim.Adam(stage.trainable(models, cfg), lr=cfg.lr * g_ratio, betas=(0.0, 0.99**g_ratio))
    d_optim = None
    if stage.has_discriminator:
        d_optim = torch.optim.Adam(models["dis"].parameters(), lr=cfg.lr * d_ratio, betas=(0.0, 0.99**d_ratio))
    return g_optim, d_optim


def _set_train_modes(models: dict) -> None:
    """Train mode for the models that learn, eval mode for frozen ones (teachers, VGG, experts)."""
    for model in models.values():
        model.train(any(p.requires_grad for p in model.parameters()))


@dataclasses.dataclass
class Trainer:
    """What one training run holds besides the data: models, optimisers (the discriminator's is
    None when the stage has none), gradient scaler and loss weights."""

    stage: object
    models: dict
    g_optim: torch.optim.Optimizer
    d_optim: torch.optim.Optimizer | None
    scaler: torch.amp.GradScaler
    weights: dict
    use_amp: bool

    @classmethod
    def build(cls, stage, cfg: TrainConfig, device: torch.device) -> "Trainer":
        """Fresh models and optimisers for `stage` on `device` (AMP only on CUDA, when asked)."""
        models = stage.build(cfg, device)
        g_optim, d_optim = _optimizers(stage, models, cfg)
        _set_train_modes(models)
        use_amp = cfg.amp and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        return cls(stage, models, g_optim, d_optim, scaler, stage.weights | cfg.weights, use_amp)

    def step(self, batch: dict) -> tuple[dict, torch.Tensor, dict]:
        """One optimisation step: the stage's weighted generator losses, then (if it has one) the
        discriminator on the same batch with the generator's outputs detached. Gradients are
        averaged across processes. Returns (named losses, weighted total, images for the grid)."""
        stage, models, weights, scaler = self.stage, self.models, self.weights, self.scaler
        device_type = next(v for v in batch.values() if torch.is_tensor(v)).device.type
        with torch.autocast(device_type, enabled=self.use_amp):
            named, images = stage.generator_losses(models, batch)
            total = sum(weights[k] * v for k, v in named.items() if weights.get(k, 0))
        self.g_optim.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        _average_gradients([p for group in self.g_optim.param_groups for p in group["params"]])
        scaler.step(self.g_optim)
        if self.d_optim is not None:
            with torch.autocast(device_type, enabled=self.use_amp):
                named["d"] = stage.discriminator_loss(models, images)
            self.d_optim.zero_grad(set_to_none=True)
            scaler.scale(named["d"]).backward()
            _average_gradients(list(models["dis"].parameters()))
            scaler.step(self.d_optim)
        scaler.update()
        return named, total, images


def train(stage, cfg: TrainConfig) -> Path | None:
    """Run `stage` for cfg.steps steps (from a resumed step if asked); returns the last checkpoint."""
    # ---- set-up: processes, run directory, models, optimisers, resume -------------------------
    device = distributed.setup(cfg.device)
    torch.manual_seed(cfg.seed + distributed.rank())
    run_dir = Path(cfg.run_dir)
    if distributed.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(message)s",
            handlers=[logging.FileHandler(run_dir / "log.txt"), logging.StreamHandler()],
        )
    trainer = Trainer.build(stage, cfg, device)
    models, g_optim, d_optim, scaler = trainer.models, trainer.g_optim, trainer.d_optim, trainer.scaler
    step = 0
    resume = checkpoint.latest(run_dir) if cfg.resume == "auto" else cfg.resume
    if resume:
        state = checkpoint.load(resume)
        stage.load_state(models, state)
        g_optim.load_state_dict(state["g_optim"])
        if d_optim is not None:
            d_optim.load_state_dict(state["d_optim"])
        scaler.load_state_dict(state["scaler"])
        step = state["step"]
        log.info("resumed from %s at step %d", resume, step)
    _sync_start(models)
    batches = endless_batches(stage.dataset(cfg), cfg, step)
    stats = open(run_dir / "stats.jsonl", "a") if distributed.is_main() else None
    last = None
    started = time.perf_counter()

    # ---- loop ---------------------------------------------------------------------------------
    while step < cfg.steps:
        batch = to_device(next(batches), device)
        named, total, images = trainer.step(batch)
        step += 1

        # Logs, sample grids and checkpoints (rank 0 writes).
        if step % cfg.log_every == 0 or step == cfg.steps:
            values = {k: distributed.mean(v.float()).item() for k, v in named.items()}
            values["total"] = distributed.mean(total.float()).item()
            if stats is not None:
                elapsed = time.perf_counter() - started
                stats.write(json.dumps({"step": step, "seconds": round(elapsed, 2), **values}) + "\n")
                stats.flush()
                log.info("step %d  %s", step, "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
        if distributed.is_main() and (step % cfg.sample_every == 0 or step == cfg.steps):
            save_grid(images["rows"], run_dir / "samples" / f"{step:06d}.png")
        if step % cfg.save_every == 0 or step == cfg.steps:
            if distributed.is_main():
                payload = stage.state(models) | {
                    "g_optim": g_optim.state_dict(),
                    "d_optim": d_optim.state_dict() if d_optim is not None else None,
                    "scaler": scaler.state_dict(),
                    "step": step,
                    "config": dataclasses.asdict(cfg),
                }
                last = checkpoint.save(run_dir, step, payload, cfg.keep_checkpoints)
            distributed.barrier()
    if stats is not None:
        stats.close()
    distributed.cleanup()
    return last


def main(stage_name: str, argv: list[str] | None, description: str) -> int:
    """Entry point shared by the train_*.py scripts."""
    from .config import parse_config
    from .stages import STAGES

    stage = STAGES[stage_name]()
    cfg = parse_config(argv, stage.defaults, description)
    train(stage, cfg)
    return 0
