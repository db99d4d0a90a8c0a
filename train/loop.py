"""The stage-agnostic training loop: data, generator phase, discriminator phase, validation, logs,
samples, checkpoints.

Each phase's losses are computed inside one `nn.Module` (`GeneratorObjective`,
`DiscriminatorObjective`) wrapped by DistributedDataParallel, so gradients are averaged during the
backward pass and every process starts from rank 0's weights. As in the StyleGAN2 recipe, only the
parameters a phase trains require gradients while it runs: the discriminator is frozen while the
generator learns from it, and the other way round.
"""

import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import torch
import yaml
from torch import nn

from . import checkpoint, distributed
from .config import TrainConfig, changed_options
from .samples import save_grid
from .sampling import check_size, endless_batches, to_device, validation_batches
from .stage import AdversarialStage, Stage

log = logging.getLogger("train")


class GeneratorObjective(nn.Module):
    """forward(batch) -> (named losses, weighted total, images for the grid and the discriminator)."""

    def __init__(self, stage: Stage, models: dict[str, nn.Module], weights: dict[str, float]):
        super().__init__()
        self.stage = stage
        self.models = nn.ModuleDict(models)
        self.weights = weights

    def forward(self, batch: dict) -> tuple[dict, torch.Tensor, dict]:
        named, images = self.stage.generator_losses(self.models, batch)
        total = sum(self.weights[k] * v for k, v in named.items() if self.weights.get(k, 0))
        return named, total, images


class DiscriminatorObjective(nn.Module):
    """forward(images) -> the stage's discriminator loss on real and (detached) generated images."""

    def __init__(self, stage: AdversarialStage, dis: nn.Module):
        super().__init__()
        self.stage = stage
        self.dis = dis

    def forward(self, images: dict) -> torch.Tensor:
        return self.stage.discriminator_loss({"dis": self.dis}, images)


def _optimizers(g_params: list, d_params: list, cfg: TrainConfig):
    """Adam with the official lazy-regularisation ratios (G: lr * 4/5, D: lr * 16/17; beta1 = 0)."""
    g_ratio, d_ratio = 4 / 5, 16 / 17
    g_optim = torch.optim.Adam(g_params, lr=cfg.lr * g_ratio, betas=(0.0, 0.99**g_ratio))
    d_optim = None
    if d_params:
        d_optim = torch.optim.Adam(d_params, lr=cfg.lr * d_ratio, betas=(0.0, 0.99**d_ratio))
    return g_optim, d_optim


def _requires_grad(params: list[nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


@dataclasses.dataclass
class Trainer:
    """What one training run holds besides the data: models, the two phases' (DDP-wrapped)
    objectives, optimisers (the discriminator's are None when the stage has none), gradient
    scaler."""

    stage: Stage
    models: dict
    g_params: list
    d_params: list
    g_objective: nn.Module
    d_objective: nn.Module | None
    g_optim: torch.optim.Optimizer
    d_optim: torch.optim.Optimizer | None
    scaler: torch.amp.GradScaler
    use_amp: bool

    @classmethod
    def build(cls, stage: Stage, cfg: TrainConfig, device: torch.device) -> "Trainer":
        """Models, objectives and optimisers for `stage` on `device` (AMP only on CUDA, when asked).

        Frozen parts (teachers, VGG, experts, the stage's fixed layers) never require gradients;
        models with a trained part are in train mode, the others in eval mode."""
        models = stage.build(cfg, device)
        g_params = stage.trainable(models, cfg)
        d_params = list(models["dis"].parameters()) if isinstance(stage, AdversarialStage) else []
        trained = {id(p) for p in g_params + d_params}
        for model in models.values():
            model.train(any(id(p) in trained for p in model.parameters()))
            model.requires_grad_(False)
        weights = stage.weights | cfg.weights
        _requires_grad(g_params, True)
        g_objective = distributed.wrap(GeneratorObjective(stage, models, weights), device, True)
        d_objective = None
        if d_params:
            _requires_grad(g_params, False)
            _requires_grad(d_params, True)
            d_objective = distributed.wrap(DiscriminatorObjective(stage, models["dis"]), device, False)
            _requires_grad(d_params, False)
            _requires_grad(g_params, True)
        g_optim, d_optim = _optimizers(g_params, d_params, cfg)
        use_amp = cfg.amp and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        return cls(stage, models, g_params, d_params, g_objective, d_objective, g_optim, d_optim, scaler, use_amp)

    def step(self, batch: dict) -> tuple[dict, torch.Tensor, dict]:
        """One optimisation step: the stage's weighted generator losses, then (if it has one) the
        discriminator on the same batch with the generator's outputs detached. Returns (named
        losses, weighted total, images for the grid)."""
        device_type = next(v for v in batch.values() if torch.is_tensor(v)).device.type
        with torch.autocast(device_type, enabled=self.use_amp):
            named, total, images = self.g_objective(batch)
        self.g_optim.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.g_optim)
        if self.d_objective is not None:
            _requires_grad(self.g_params, False)
            _requires_grad(self.d_params, True)
            with torch.autocast(device_type, enabled=self.use_amp):
                named["d"] = self.d_objective(images)
            self.d_optim.zero_grad(set_to_none=True)
            self.scaler.scale(named["d"]).backward()
            self.scaler.step(self.d_optim)
            _requires_grad(self.d_params, False)
            _requires_grad(self.g_params, True)
        self.scaler.update()
        return named, total, images

    @torch.no_grad()
    def validate(self, batches, device: torch.device) -> dict[str, float]:
        """Means of the stage's per-sample validation metrics over every process's samples (models
        in eval mode meanwhile); a process without samples contributes nothing."""
        modes = {name: model.training for name, model in self.models.items()}
        for model in self.models.values():
            model.eval()
        sums = torch.zeros(len(self.stage.val_metrics), 2, dtype=torch.float64, device=device)
        for batch in batches:
            metrics = self.stage.validation_metrics(self.models, to_device(batch, device))
            for row, key in enumerate(self.stage.val_metrics):
                sums[row] += torch.stack([metrics[key].double().sum(), sums.new_tensor(len(metrics[key]))])
        for name, model in self.models.items():
            model.train(modes[name])
        sums = distributed.sum_over_processes(sums)
        return {f"val_{k}": s / n for k, (s, n) in zip(self.stage.val_metrics, sums.tolist()) if n}

    def state(self, step: int, cfg: TrainConfig, rng: list[dict]) -> dict:
        """A training checkpoint: the stage's official-format entries, optimisers, scaler, step,
        config and every process's random number generator states (`rng_states`)."""
        return self.stage.state(self.models) | {
            "g_optim": self.g_optim.state_dict(),
            "d_optim": self.d_optim.state_dict() if self.d_optim is not None else None,
            "scaler": self.scaler.state_dict(),
            "step": step,
            "config": dataclasses.asdict(cfg),
            "rng": rng,
        }

    def load(self, state: dict) -> int:
        """Continue from a training checkpoint, random number generators included; returns its step."""
        self.stage.load_state(self.models, state)
        self.g_optim.load_state_dict(state["g_optim"])
        if self.d_optim is not None:
            self.d_optim.load_state_dict(state["d_optim"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng(state.get("rng") or [])
        return state["step"]


def rng_states() -> list[dict]:
    """Every process's torch (and CUDA, where present) generator states, in rank order (collective)."""
    own = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        own["cuda"] = torch.cuda.get_rng_state()
    return distributed.gather_objects(own)


def restore_rng(states: list[dict]) -> None:
    """Set this process's generators to those its rank saved (a warning when the checkpoint has none)."""
    if distributed.rank() >= len(states):
        log.warning("the checkpoint holds no random state for process %d: dropout draws differ", distributed.rank())
        return
    own = states[distributed.rank()]
    torch.set_rng_state(own["torch"])
    if "cuda" in own and torch.cuda.is_available():
        torch.cuda.set_rng_state(own["cuda"])


class Validation:
    """Held-out metrics every cfg.val_every steps; the checkpoint with the lowest first metric of
    `stage.val_metrics` is kept as checkpoints/best.pt, described by checkpoints/best.json."""

    def __init__(self, stage: Stage, cfg: TrainConfig, run_dir: Path):
        self.stage, self.cfg = stage, cfg
        self.key = f"val_{stage.val_metrics[0]}"
        try:
            dataset = stage.dataset(cfg, cfg.val_split)
        except FileNotFoundError as err:
            raise SystemExit(f"--val_split: {err}, or pass --val_split '' to train without validation") from None
        if len(dataset) == 0:
            log.warning("the validation list '%s' is empty: no validation (choose one with --val_split)", cfg.val_split)
        self.batches = validation_batches(dataset, cfg, distributed.rank(), distributed.world_size())
        record = checkpoint.best_record_path(run_dir)
        self.best = json.loads(record.read_text())[self.key] if record.is_file() else math.inf

    def due(self, step: int) -> bool:
        return step % self.cfg.val_every == 0 or step == self.cfg.steps

    def run(self, trainer: Trainer, step: int, device: torch.device, run_dir: Path) -> dict[str, float]:
        """Validate; when the key metric improves, rank 0 writes best.pt and best.json."""
        values = trainer.validate(self.batches, device)
        if self.key in values and values[self.key] < self.best:
            self.best = values[self.key]
            rng = rng_states()
            if distributed.is_main():
                checkpoint.save_best(run_dir, trainer.state(step, self.cfg, rng), {"step": step, **values})
                log.info("step %d  new best %s %.4f: saved checkpoints/best.pt", step, self.key, self.best)
        return values


def _setup_logging(run_dir: Path, cfg: TrainConfig) -> None:
    """Logs to run_dir/log.txt and stderr; config.yaml written by a new run, kept by a resumed one
    (whose changed options are logged, one line each)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        handlers=[logging.FileHandler(run_dir / "log.txt"), logging.StreamHandler()],
    )
    saved, options = run_dir / "config.yaml", dataclasses.asdict(cfg)
    if cfg.resume and saved.is_file():
        old = yaml.safe_load(saved.read_text()) or {}
        for line in changed_options({**old, "resume": cfg.resume}, options):
            log.info("resumed with a changed option (config.yaml keeps the first run's): %s", line)
    else:
        saved.write_text(yaml.safe_dump(options, sort_keys=False))


def train(stage: Stage, cfg: TrainConfig) -> Path | None:
    """Run `stage` for cfg.steps steps (from a resumed step if asked); returns the last checkpoint."""
    # ---- set-up: processes, run directory, models, optimisers, resume, data -------------------
    device = distributed.setup(cfg.device)
    rank, world = distributed.rank(), distributed.world_size()
    check_size(stage.usable_clips(cfg, cfg.split), cfg.batch_size, world)  # before any long step
    torch.manual_seed(cfg.seed + rank)
    run_dir = Path(cfg.run_dir)
    if distributed.is_main():
        _setup_logging(run_dir, cfg)
    trainer = Trainer.build(stage, cfg, device)
    step = 0
    resume = checkpoint.latest(run_dir) if cfg.resume == "auto" else cfg.resume
    if resume:
        step = trainer.load(checkpoint.load(resume))
        log.info("resumed from %s at step %d", resume, step)
    batches = endless_batches(stage.dataset(cfg, cfg.split), cfg, step, rank, world, pin=device.type == "cuda")
    validation = Validation(stage, cfg, run_dir) if cfg.val_split else None
    stats = open(run_dir / "stats.jsonl", "a") if distributed.is_main() else None
    last = None
    started = time.perf_counter()

    # ---- loop ---------------------------------------------------------------------------------
    while step < cfg.steps:
        named, total, images = trainer.step(to_device(next(batches), device))
        step += 1
        values = {}
        if step % cfg.log_every == 0 or step == cfg.steps:
            values = {k: distributed.mean(v.float()).item() for k, v in named.items()}
            values["total"] = distributed.mean(total.float()).item()
        if validation is not None and validation.due(step):
            values |= validation.run(trainer, step, device, run_dir)
        if distributed.is_main() and (step % cfg.sample_every == 0 or step == cfg.steps):
            save_grid(images["rows"], run_dir / "samples" / f"{step:06d}.png")
        if step % cfg.save_every == 0 or step == cfg.steps:
            divergence = values["replica_divergence"] = distributed.max_divergence(list(trainer.models.values()))
            if divergence > 1e-5:
                log.warning("the processes' weights differ (relative %.2g): check the launch", divergence)
            rng = rng_states()
            if distributed.is_main():
                last = checkpoint.save(run_dir, step, trainer.state(step, cfg, rng), cfg.keep_checkpoints)
            distributed.barrier()
        if values and stats is not None:
            elapsed = time.perf_counter() - started
            stats.write(json.dumps({"step": step, "seconds": round(elapsed, 2), **values}) + "\n")
            stats.flush()
            log.info("step %d  %s", step, "  ".join(f"{k} {v:.4g}" for k, v in values.items()))
    if stats is not None:
        stats.close()
    distributed.cleanup()
    return last


def main(stage_name: str, argv: list[str] | None, description: str) -> int:
    """Entry point shared by the train_*.py scripts."""
    from .config import parse_config
    from .stages import STAGES

    stage = STAGES[stage_name]()
    cfg = parse_config(argv, stage, description)
    train(stage, cfg)
    return 0
