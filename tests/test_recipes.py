"""Training recipes as the official ones: stage 1 from LIA's vox.pt, the audio stage's Wav2Lip audio
encoder, mouth-crop L1 and frozen GAN term, the expression stage's identity start, and the
discriminator carried from one stage to the next."""

import argparse
import copy
import dataclasses
import logging

import pytest
import torch
from torch import nn

import edtalk
from edtalk.errors import CheckpointError
from networks import LIP_POSE, Audio2Lip, Generator
from networks.discriminator import Discriminator
from networks.lipsync_expert import SyncNet, crop_boxes
from train import lia, stages, wav2lip
from train.config import Audio2MouthConfig, FineTuneConfig, parse_config
from train.stage import AdversarialStage

CPU = torch.device("cpu")
GENERATOR_STAGES = (stages.EncoderGeneratorStage, stages.MouthPoseStage, stages.ExpressionStage, stages.FineTuneStage)


class NoPerceptual(nn.Module):
    """Stands in for the VGG19 perceptual loss (not under test here, and slow on this CPU)."""

    def forward(self, recon, target):
        return recon.new_zeros(())


@pytest.fixture(autouse=True)
def _cheap_perceptual(monkeypatch):
    monkeypatch.setattr(stages, "perceptual_loss", lambda cfg: NoPerceptual())


@dataclasses.dataclass
class AnyConfig(Audio2MouthConfig, FineTuneConfig):
    """Every option the image and audio-to-mouth stages read."""


def config(**fields) -> AnyConfig:
    return AnyConfig(data="unused", **fields)


def one_line_exit(excinfo, path) -> str:
    message = str(excinfo.value.code)
    assert "\n" not in message and str(path) in message, message
    return message


# ---- stage 1 from LIA's vox.pt --------------------------------------------------------------------


def lia_state_from(gen: Generator) -> dict:
    """LIA's generator layout built from our lip-pose generator's tensors (enc.net_app, fc -> enc.fc.0..3,
    dec), plus LIA's own 20-d motion head enc.fc.4 and 20-column bank dec.direction."""
    state = {}
    for key, value in gen.state_dict().items():
        if key.startswith(("enc.net_app.", "dec.")):
            state[key] = value.clone()
        elif key.startswith("fc."):
            state["enc." + key] = value.clone()
    state["enc.fc.4.weight"] = torch.randn(20, 512)
    state["enc.fc.4.bias"] = torch.randn(20)
    state["dec.direction.weight"] = torch.randn(512, 20)
    return state


@pytest.fixture(scope="module")
def vox(tmp_path_factory):
    """A LIA-format vox.pt: {'gen', 'dis', 'g_optim', 'd_optim', 'args'} (args an argparse.Namespace)."""
    torch.manual_seed(1)
    gen, dis = lia_state_from(Generator(LIP_POSE)), Discriminator().state_dict()
    path = tmp_path_factory.mktemp("lia") / "vox.pt"
    optim = {"state": {}, "param_groups": []}
    args = argparse.Namespace(size=256, latent_dim_style=512, latent_dim_motion=20)
    torch.save({"gen": gen, "dis": dis, "g_optim": optim, "d_optim": optim, "args": args}, path)
    return path, gen, dis


def expected_source(lia_gen: dict, key: str) -> torch.Tensor:
    """The LIA tensor a lip-pose key is mapped from."""
    return lia_gen["enc." + key] if key.startswith("fc.") else lia_gen[key]


def test_lia_keys_cover_the_shared_parts_of_the_lip_pose_generator(vox):
    _, lia_gen, _ = vox
    converted = lia.convert_generator(lia_gen)
    ours = Generator(LIP_POSE).state_dict()
    assert set(converted) == {k for k in ours if not k.startswith(lia.FRESH)}
    assert all(converted[k].shape == ours[k].shape for k in converted)
    assert all(converted[k] is expected_source(lia_gen, k) for k in converted)  # pure renaming
    assert lia.is_lia_generator(lia_gen) and not lia.is_lia_generator(ours)


@pytest.mark.parametrize("stage_class", GENERATOR_STAGES, ids=lambda c: c.__name__)
def test_init_from_vox_in_every_generator_stage(vox, stage_class):
    path, lia_gen, lia_dis = vox
    torch.manual_seed(7)
    fresh = Generator(stage_class.layout).state_dict()  # what build's generator starts from
    torch.manual_seed(7)
    models = stage_class().build(config(init=str(path)), CPU)
    state = models["gen"].state_dict()
    for key, value in state.items():
        if key.startswith(lia.FRESH):
            assert torch.equal(value, fresh[key]), key  # unmapped heads untouched
        elif not stages._is_expression_key(key):
            assert torch.equal(value, expected_source(lia_gen, key)), key
    assert all(torch.equal(v, lia_dis[k]) for k, v in models["dis"].state_dict().items())  # 'dis' carried


def test_lia_command_writes_a_file_that_init_accepts(vox, tmp_path):
    path, lia_gen, lia_dis = vox
    out = tmp_path / "lia_lip_pose.pt"
    assert lia.main([str(path), str(out)]) == 0
    data = torch.load(out, weights_only=True)
    assert data["converted_from"] == "LIA" and set(data) == {"gen", "dis", "converted_from"}
    gen = Generator(LIP_POSE)
    heads = {k: v.clone() for k, v in gen.state_dict().items() if k.startswith(lia.FRESH)}
    stages.init_generator(gen, str(out))
    state = gen.state_dict()
    assert all(torch.equal(state[k], expected_source(lia_gen, k)) for k in data["gen"])
    assert all(torch.equal(state[k], v) for k, v in heads.items())
    assert all(torch.equal(data["dis"][k], v) for k, v in lia_dis.items())
    # no trained heads: not a file to render from, nor a teacher for the audio stage
    with pytest.raises(CheckpointError):
        edtalk.load_generator(out)
    for source in (path, out):
        with pytest.raises(SystemExit) as excinfo:
            stages.init_generator(Generator(LIP_POSE), str(source), allow_lia=False)
        assert "LIA" in one_line_exit(excinfo, source)


def test_unknown_layouts_exit_with_one_line_naming_the_file(vox, tmp_path):
    _, lia_gen, _ = vox
    cases = {
        "foreign": {"gen": {"foo.weight": torch.zeros(3)}},
        "lia_extra_key": {"gen": {**lia_gen, "enc.extra.weight": torch.zeros(3)}},
        "lia_wrong_shape": {"gen": {**lia_gen, "enc.fc.0.weight": torch.zeros(256, 512)}},
        "no_gen": {"audio2lip": Audio2Lip().state_dict()},
        "bad_dis": {"gen": lia_gen, "dis": {"convs.0.0.weight": torch.zeros(3)}},
    }
    for name, payload in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(payload, path)
        with pytest.raises(SystemExit) as excinfo:
            stages.EncoderGeneratorStage().build(config(init=str(path)), CPU)
        one_line_exit(excinfo, path)
    with pytest.raises(SystemExit) as excinfo:
        lia.main([str(tmp_path / "foreign.pt"), str(tmp_path / "out.pt")])
    one_line_exit(excinfo, tmp_path / "foreign.pt")
    assert not (tmp_path / "out.pt").exists()


# ---- discriminator carried from stage to stage --------------------------------------------------


def test_an_init_without_dis_warns_that_the_discriminator_starts_afresh(synthetic_ckpts, caplog):
    lip_pose = synthetic_ckpts / "EDTalk_lip_pose.pt"
    with caplog.at_level(logging.WARNING):
        stages.FineTuneStage().build(config(init=str(lip_pose)), CPU)
    assert "has no 'dis' entry" in caplog.text


def test_an_init_of_another_width_is_a_one_line_error_and_its_own_width_loads(narrow_ckpts):
    narrow = narrow_ckpts / "EDTalk_lip_pose.pt"
    with pytest.raises(SystemExit) as excinfo:
        stages.FineTuneStage().build(config(init=str(narrow)), CPU)
    assert "--channel_divisor" in one_line_exit(excinfo, narrow)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stages, "perceptual_loss", lambda cfg: NoPerceptual())
        models = stages.FineTuneStage().build(config(init=str(narrow), channel_divisor=8), CPU)
    assert models["gen"].config.channel_divisor == 8
    assert models["dis"].convs[0][0].weight.shape[0] == 64 // 8


# ---- expression stage starts from the lip-pose generator's output ----------------------------------


@pytest.fixture(scope="module")
def expression_stage(synthetic_ckpts):
    """The expression stage built from the synthetic lip-pose checkpoint (no expression keys)."""
    cfg = config(init=str(synthetic_ckpts / "EDTalk_lip_pose.pt"))
    stage = stages.ExpressionStage()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stages, "perceptual_loss", lambda cfg: NoPerceptual())
        models = stage.build(cfg, CPU)
    return stage, cfg, models


def images(seed: int, batch: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, 256, 256, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_expression_stage_renders_what_the_lip_pose_generator_renders(expression_stage, lip_pose_generator):
    _, _, models = expression_stage
    full = models["gen"]
    assert full.has_expression
    lip_pose = lip_pose_generator
    source, drive = images(0, 2), images(1, 2)
    h = full.encode(drive)
    exp = full.coefficients(h, "exp")
    assert torch.equal(exp, torch.zeros_like(exp))  # alpha_exp = 0
    alpha = torch.cat([full.coefficients(h, "lip"), full.coefficients(h, "pose")], 1)
    assert torch.equal(alpha, torch.cat([lip_pose.coefficients(h, "lip"), lip_pose.coefficients(h, "pose")], 1))
    # The joint QR's first 26 columns are the lip-pose bank's QR: exactly in float64; float32 LAPACK
    # (blocked for 36 columns, unblocked for 26) differs in the last bit (measured 1.6e-7).
    assert torch.allclose(full.basis()[:, :26], lip_pose.basis(), atol=1e-6, rtol=0)
    banks = [lip_pose.direction_lipnonlip.weight.double(), full.direction_exp.weight.double()]
    joint, alone = torch.linalg.qr(torch.cat(banks, 1) + 1e-8)[0], torch.linalg.qr(banks[0] + 1e-8)[0]
    assert torch.allclose(joint[:, :26], alone, atol=1e-12, rtol=0)
    # Same latent: the EEMs are exact identities and the expression latent is exactly 0.
    src = full.encode_source(source)
    latent, exp_latent = full.compose_latent(src.wa, torch.cat([alpha, exp], 1))
    assert torch.equal(exp_latent, torch.zeros_like(exp_latent))
    assert torch.equal(full.render(src, latent, exp_latent), lip_pose.render(src, latent, None))
    # End to end the 1-ulp basis difference is all that is left; this decoder amplifies it to a
    # few 1e-5 at worst (measured max 2.9e-5, mean 7e-7, on these synthetic weights).
    difference = (full(source, drive) - lip_pose(source, drive)).abs()
    assert difference.max() <= 1e-4 and difference.mean() <= 1e-5, (difference.max(), difference.mean())


def test_expression_parameters_learn_from_the_identity_start(expression_stage):
    stage, cfg, models = expression_stage
    models = {"gen": copy.deepcopy(models["gen"])}
    gen = models["gen"]
    params = stage.trainable(models, cfg)
    before = {name: p.detach().clone() for name, p in gen.named_parameters()}
    optim = torch.optim.Adam(params, lr=1e-3)
    with torch.enable_grad():
        loss = (gen(images(2), images(3)) - images(3)).abs().mean()
        loss.backward()
    optim.step()
    changed = {name for name, p in gen.named_parameters() if not torch.equal(p, before[name])}
    levels = len(gen.dec.fineadainresblock)
    must = {"exp_fc.2.weight", "exp_fc.2.bias"}
    for level in range(levels):
        for part in ("mlp_gamma", "mlp_beta"):
            must |= {f"dec.fineadainresblock.{level}.norm2.{part}.{w}" for w in ("weight", "bias")}
    assert must <= changed, sorted(must - changed)
    assert all(stages._is_expression_key(name) for name in changed)  # mouth and pose stay fixed


# ---- audio-to-mouth as the official trainer ---------------------------------------------------------


@pytest.fixture(scope="module")
def lip_pose_with_dis(synthetic_ckpts, tmp_path_factory):
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("a2m") / "lip_pose_with_dis.pt"
    gen = torch.load(synthetic_ckpts / "EDTalk_lip_pose.pt", weights_only=True)["gen"]
    dis = Discriminator().state_dict()
    torch.save({"gen": gen, "dis": dis}, path)
    return path, dis


@pytest.fixture(scope="module")
def fake_wav2lip(tmp_path_factory):
    """A Wav2Lip generator checkpoint: DataParallel keys, audio encoder (with running statistics) among others."""
    torch.manual_seed(6)
    encoder = Audio2Lip().audio_encoder.state_dict()
    encoder = {k: (torch.rand_like(v) + 0.5 if v.is_floating_point() else v + 3) for k, v in encoder.items()}
    state = {f"module.audio_encoder.{k}": v for k, v in encoder.items()}
    state["module.face_encoder_blocks.0.0.conv_block.0.weight"] = torch.randn(16, 6, 7, 7)
    state["module.output_block.1.weight"] = torch.randn(3, 32, 1, 1)
    path = tmp_path_factory.mktemp("wav2lip") / "wav2lip.pth"
    torch.save({"state_dict": state, "optimizer": {}, "global_step": 5, "global_epoch": 1}, path)
    return path, encoder


def test_audio_encoder_starts_from_wav2lip_and_stays_frozen(lip_pose_with_dis, fake_wav2lip):
    generator, dis_state = lip_pose_with_dis
    path, encoder = fake_wav2lip
    stage = stages.Audio2MouthStage()
    cfg = config(generator=str(generator), wav2lip=str(path))
    models = stage.build(cfg, CPU)
    a2l = models["audio2lip"]
    assert all(torch.equal(v, encoder[k]) for k, v in a2l.audio_encoder.state_dict().items())
    assert torch.equal(a2l.mapping.bias, torch.zeros(20))  # official init
    params = stage.trainable(models, cfg)
    assert {id(p) for p in params} == {id(p) for p in a2l.mapping.parameters()}
    assert not any(p.requires_grad for p in a2l.audio_encoder.parameters())
    # frozen discriminator from the generator checkpoint, never optimised
    assert not isinstance(stage, AdversarialStage) and not any(p.requires_grad for p in models["dis"].parameters())
    assert all(torch.equal(v, dis_state[k]) for k, v in models["dis"].state_dict().items())
    params = stage.trainable(models, config(generator=str(generator), train_audio_encoder=True))
    assert len(params) == len(list(a2l.parameters())) and all(p.requires_grad for p in params)


def test_the_sync_loss_takes_wav2lip_s_expert_or_ours(lip_pose_with_dis, tmp_path):
    generator, _ = lip_pose_with_dis
    torch.manual_seed(10)
    expert = SyncNet().state_dict()
    files = {"wav2lip": {"state_dict": expert, "global_step": 1}, "ours": {"syncnet": expert, "step": 1}}
    for name, payload in files.items():
        torch.save(payload, tmp_path / f"{name}.pth")
        cfg = config(generator=str(generator), syncnet=str(tmp_path / f"{name}.pth"))
        models = stages.Audio2MouthStage().build(cfg, CPU)
        assert all(torch.equal(v, expert[k]) for k, v in models["syncnet"].state_dict().items())
    torch.save({"state_dict": Audio2Lip().state_dict()}, tmp_path / "generator.pth")
    with pytest.raises(SystemExit) as excinfo:
        wav2lip.load_sync_expert(SyncNet(), tmp_path / "generator.pth")
    one_line_exit(excinfo, tmp_path / "generator.pth")


def test_wav2lip_layouts(fake_wav2lip, tmp_path):
    path, encoder = fake_wav2lip
    state = torch.load(path, weights_only=True)["state_dict"]
    plain = {k.removeprefix("module."): v for k, v in state.items()}
    assert wav2lip.audio_encoder_state(plain).keys() == encoder.keys()
    # the lip-sync expert's audio encoder has one block more: not Wav2Lip's generator
    sync = {f"audio_encoder.{k}": v for k, v in SyncNet().audio_encoder.state_dict().items()}
    for name, payload in {"syncnet": {"state_dict": sync}, "empty": {"state_dict": {}}}.items():
        bad = tmp_path / f"{name}.pth"
        torch.save(payload, bad)
        with pytest.raises(SystemExit) as excinfo:
            wav2lip.load_audio_encoder(Audio2Lip().audio_encoder, bad)
        assert "not Wav2Lip" in one_line_exit(excinfo, bad)


def test_without_wav2lip_or_dis_the_stage_says_what_is_missing(synthetic_ckpts, caplog):
    lip_pose = synthetic_ckpts / "EDTalk_lip_pose.pt"
    with caplog.at_level(logging.WARNING):
        models = stages.Audio2MouthStage().build(config(generator=str(lip_pose)), CPU)
    assert "no --wav2lip" in caplog.text and "--train_audio_encoder" in caplog.text
    assert "without its GAN term" in caplog.text and "dis" not in models


def test_audio_losses_include_the_mouth_crop_l1_and_the_gan_term(lip_pose_with_dis):
    generator, _ = lip_pose_with_dis
    stage = stages.Audio2MouthStage()
    models = stage.build(config(generator=str(generator)), CPU)
    gen = torch.Generator().manual_seed(8)
    batch = {
        "frames": torch.rand(1, 5, 3, 256, 256, generator=gen) * 2 - 1,
        "mels": torch.randn(1, 5, 1, 80, 16, generator=gen),
        "identity": torch.rand(1, 3, 256, 256, generator=gen) * 2 - 1,
        "face_boxes": torch.tensor([[40.0, 50.0, 210.0, 230.0]]).repeat(1, 5, 1),
    }
    out, _ = stage.generator_losses(models, batch)
    assert set(out) == {"coef", "smooth", "l1", "vgg", "mouth_l1", "gan"}
    assert all(torch.isfinite(v) for v in out.values()) and out["mouth_l1"] > 0 and out["gan"] > 0
    assert stage.weights["mouth_l1"] == 1 and stage.weights["gan"] == 1


def test_mouth_crop_l1_is_the_official_face_crop_l1():
    g = torch.Generator().manual_seed(9)
    recon, target = torch.rand(2, 3, 256, 256, generator=g), torch.rand(2, 3, 256, 256, generator=g)
    boxes = torch.tensor([[60.0, 60.0, 200.0, 200.0], [30.0, 80.0, 190.0, 240.0]])
    expected = (crop_boxes(target, boxes, 96) - crop_boxes(recon, boxes, 96)).abs().mean()
    assert torch.allclose(stages.mouth_crop_l1(recon, target, boxes), expected)
    outside = recon.clone()
    outside[:, :, :20] = 5.0  # above both boxes
    assert stages.mouth_crop_l1(recon, outside, boxes) == 0
    with torch.enable_grad():
        recon.requires_grad_(True)
        stages.mouth_crop_l1(recon, target, boxes).backward()
    assert recon.grad[:, :, 70:190, 70:190].abs().sum() > 0 and recon.grad[:, :, :20].abs().sum() == 0


def test_audio_encoder_flags():
    stage = stages.Audio2MouthStage()
    cfg = parse_config(["--data", "d", "--wav2lip", "wav2lip.pth", "--train_audio_encoder"], stage, "test")
    assert cfg.wav2lip == "wav2lip.pth" and cfg.train_audio_encoder
    assert not parse_config(["--data", "d"], stage, "test").train_audio_encoder
    with pytest.raises(SystemExit):
        parse_config(["--data", "d", "--freeze_audio_encoder"], stage, "test")
