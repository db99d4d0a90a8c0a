"""What a training stage is: the contract between one stage and the shared loop (loop.py).

A stage says which models it trains and how; the loop owns everything else (processes and DDP,
optimisers, AMP, sampling, validation, logs, sample grids, checkpoints, resume). To add one:

    @dataclass
    class MyConfig(TrainConfig):                 # train/config.py: common options + your own
        depth: int = option(4, "layers of the thing")   # each field: a default and a help text

    class MyStage(Stage):
        config = MyConfig                        # its flags and --help come from these fields
        defaults = {"batch_size": 16}            # overrides of common defaults (optional)
        weights = {"mse": 1.0, "smooth": 0.1}    # loss term -> default weight (--weights may change them)
        val_metrics = ("mse",)                   # per-sample validation metrics; the first picks best.pt
        checkpoint_key = "thing"                 # the trained model's name in `models` and in checkpoints

        def build(self, cfg, device) -> dict[str, nn.Module]       # every model, on `device`
        def dataset(self, cfg, split) -> Dataset                   # items addressed by index or (epoch, index)
        def generator_losses(self, models, batch) -> (dict, dict)  # named losses, images ({'rows': [...]})
        def validation_metrics(self, models, batch) -> dict        # name -> (B,) tensor

    loop.main("my_stage", argv, __doc__)  or  loop.train(MyStage(), cfg)

Defaults you may override: `trainable` (the parameters the generator optimiser trains; default:
all of models[checkpoint_key]), `state` / `load_state` (the checkpoint entries; default:
{checkpoint_key: state dict}), `usable_clips` (the training set's size, checked against batch
size x processes before `build` runs any long step; default: len(dataset)). The loop puts a model
in train mode when it has a trained parameter and freezes everything else. A stage with a
discriminator subclasses `AdversarialStage`: models['dis'] is trained by `discriminator_loss`
after each generator step, on the `images` its `generator_losses` returned ('real', 'fake').
"""

import abc

import torch
from torch import nn
from torch.utils.data import Dataset

from edtalk.checkpoints import strip_prefixes

from .config import TrainConfig


class Stage(abc.ABC):
    """One training stage (see the module docstring for the contract)."""

    config: type[TrainConfig] = TrainConfig
    defaults: dict = {}
    weights: dict[str, float]
    val_metrics: tuple[str, ...]
    checkpoint_key: str

    @abc.abstractmethod
    def build(self, cfg: TrainConfig, device: torch.device) -> dict[str, nn.Module]:
        """Every model the stage uses, on `device` (from cfg.init when given)."""

    @abc.abstractmethod
    def dataset(self, cfg: TrainConfig, split: str) -> Dataset:
        """The samples of list `split`; items addressed by index or (epoch, index)."""

    @abc.abstractmethod
    def generator_losses(self, models: dict, batch: dict) -> tuple[dict, dict]:
        """(named unweighted losses, images: 'rows' for the sample grid, 'real'/'fake' for a discriminator)."""

    @abc.abstractmethod
    def validation_metrics(self, models: dict, batch: dict) -> dict[str, torch.Tensor]:
        """One (B,) tensor per name in `val_metrics` (lower is better for the first)."""

    def trainable(self, models: dict, cfg: TrainConfig) -> list[nn.Parameter]:
        """The parameters the generator optimiser trains."""
        return list(models[self.checkpoint_key].parameters())

    def usable_clips(self, cfg: TrainConfig, split: str) -> int:
        """How many samples list `split` gives, known before `build` (checked against the batch size)."""
        return len(self.dataset(cfg, split))

    def state(self, models: dict) -> dict:
        """The checkpoint entries of the trained model(s)."""
        return {self.checkpoint_key: models[self.checkpoint_key].state_dict()}

    def load_state(self, models: dict, state: dict) -> None:
        models[self.checkpoint_key].load_state_dict(strip_prefixes(state[self.checkpoint_key]))


class AdversarialStage(Stage):
    """A stage whose models['dis'] is trained against the generator; checkpoints carry 'dis' too."""

    @abc.abstractmethod
    def discriminator_loss(self, models: dict, images: dict) -> torch.Tensor:
        """Loss of models['dis'] on images['real'] and the (detached) images['fake']."""

    def state(self, models: dict) -> dict:
        return super().state(models) | {"dis": models["dis"].state_dict()}

    def load_state(self, models: dict, state: dict) -> None:
        super().load_state(models, state)
        models["dis"].load_state_dict(strip_prefixes(state["dis"]))
