"""The training engine's contract: a Stage subclass runs in the loop, resumes exactly (random state
included), keeps its config.yaml and says what changed, rotates checkpoints by step, checks the
set's size first, validates --weights, and every training script documents every flag."""

import argparse
import logging
import runpy
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from train import checkpoint, loop
from train.config import TrainConfig, parse_config
from train.stage import Stage
from train.stages import STAGES, EncoderGeneratorStage

from .conftest import ROOT


class ToyData(torch.utils.data.Dataset):
    """`size` samples: x (4,) = the index, y (1,) = 1."""

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key):
        _, index = key if isinstance(key, tuple) else (0, key)
        return {"x": torch.full((4,), float(index)), "y": torch.ones(1)}


class ToyStage(Stage):
    """A regression with dropout, so the run depends on torch's random generator."""

    weights = {"mse": 1.0}
    val_metrics = ("mse",)
    checkpoint_key = "net"
    size = 8

    def build(self, cfg, device):
        return {"net": nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 1)).to(device)}

    def dataset(self, cfg, split):
        return ToyData(self.size)

    def generator_losses(self, models, batch):
        error = (models["net"](batch["x"]) - batch["y"]).square()
        return {"mse": error.mean()}, {"rows": [batch["x"].view(-1, 1, 2, 2).expand(-1, 3, -1, -1).tanh()]}

    def validation_metrics(self, models, batch):
        return {"mse": (models["net"](batch["x"]) - batch["y"]).square().mean(1)}


@pytest.fixture(autouse=True)
def _gradients():
    with torch.enable_grad():  # the suite runs without them (conftest)
        yield


def toy_config(run_dir: Path, steps: int, **extra) -> TrainConfig:
    return TrainConfig(
        data="unused", run_dir=str(run_dir), steps=steps, batch_size=2, workers=0, val_split="", save_every=2, **extra
    )


def weights_at(run_dir: Path, step: int) -> dict:
    return torch.load(run_dir / "checkpoints" / f"{step:06d}.pt", weights_only=True)["net"]


def test_a_resumed_run_continues_the_random_draws_and_keeps_its_config(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    loop.train(ToyStage(), toy_config(tmp_path / "whole", 4))
    loop.train(ToyStage(), toy_config(tmp_path / "parts", 2))
    loop.train(ToyStage(), toy_config(tmp_path / "parts", 4, resume="auto"))
    whole, parts = weights_at(tmp_path / "whole", 4), weights_at(tmp_path / "parts", 4)
    for key in whole:
        torch.testing.assert_close(parts[key], whole[key], atol=1e-6, rtol=1e-6)
    assert "resumed with a changed option (config.yaml keeps the first run's): steps: 2 -> 4" in caplog.text
    assert yaml.safe_load((tmp_path / "parts" / "config.yaml").read_text())["steps"] == 2

    # without the saved random state the dropout masks after the resume differ
    monkeypatch.setattr(loop, "restore_rng", lambda states: None)
    loop.train(ToyStage(), toy_config(tmp_path / "fresh", 2))
    loop.train(ToyStage(), toy_config(tmp_path / "fresh", 4, resume="auto"))
    fresh = weights_at(tmp_path / "fresh", 4)
    assert any((fresh[k] - whole[k]).abs().max() > 1e-4 for k in whole)


def test_the_set_size_is_checked_before_the_stage_builds_anything(tmp_path):
    class Small(ToyStage):
        size = 3

        def build(self, cfg, device):
            raise AssertionError("built before the size check")

    with pytest.raises(SystemExit, match="3 usable clips: too few for --batch_size 4 on 1 process"):
        loop.train(Small(), TrainConfig(data="unused", run_dir=str(tmp_path), batch_size=4, val_split=""))


def test_checkpoints_rotate_by_step_not_by_name(tmp_path):
    for step in (999998, 999999, 1000000):
        checkpoint.save(tmp_path, step, {"step": step}, keep=2)
    assert [p.name for p in checkpoint.periodic(tmp_path)] == ["999999.pt", "1000000.pt"]
    assert checkpoint.latest(tmp_path).name == "1000000.pt"


def test_weights_must_name_the_stages_loss_terms():
    stage = EncoderGeneratorStage()
    assert parse_config(["--data", "d", "--weights", '{"vgg": 2}'], stage, "").weights == {"vgg": 2}
    with pytest.raises(SystemExit, match="--weights: vg is not a loss term of this stage .its terms: l1, vgg, gan"):
        parse_config(["--data", "d", "--weights", '{"vg": 2}'], stage, "")


def test_every_stage_has_its_own_options():
    options = {name: {f for f in stage.config.__dataclass_fields__} for name, stage in STAGES.items()}
    assert "window" in options["audio2pose"] and "window" not in options["E_G"]
    assert "only_fine_tune_dec" in options["fine_tune"] and "only_fine_tune_dec" not in options["audio2mouth"]
    assert {"generator", "wav2lip", "syncnet", "vgg_weights"} <= options["audio2mouth"]
    assert "vgg_weights" not in options["syncnet"] and "generator" not in options["E_G"]


SCRIPTS = sorted(ROOT.glob("train/train_*.py")) + [ROOT / "train" / "lia.py"]
SCRIPTS += [ROOT / "data_preprocess" / f"{name}.py" for name in ("prepare_dataset", "make_face_template")]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_flag_of_every_training_script_is_described(script, monkeypatch, capsys):
    parsers = []
    parse = argparse.ArgumentParser.parse_args

    def record(self, *args, **kwargs):
        parsers.append(self)
        return parse(self, *args, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", record)
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        if script.name.startswith("train_"):  # stand-alone scripts
            runpy.run_path(str(script), run_name="__main__")
        else:  # modules run with python -m, imported afresh as python -m does
            module = f"{script.parent.name}.{script.stem}"
            monkeypatch.delitem(sys.modules, module, raising=False)
            runpy.run_module(module, run_name="__main__")
    assert exit_info.value.code == 0 and parsers
    text = capsys.readouterr().out
    for action in parsers[-1]._actions:
        assert action.help and action.help.strip(), f"{script.name}: {action.option_strings or action.dest} has no help"
        for flag in action.option_strings:
            assert flag in text
