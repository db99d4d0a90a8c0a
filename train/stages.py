"""The EDTalk training stages: the only place where they differ (models, trainable set, data, losses).

Each stage follows the contract of `stage.py` (`Stage`, or `AdversarialStage` for the GAN stages).
"""

import logging
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from edtalk.checkpoints import strip_prefixes
from networks import EDTALK, LIP_POSE, Audio2Lip, Generator, GeneratorConfig
from networks.discriminator import Discriminator
from networks.lipsync_expert import SyncNet, crop_boxes, lower_halves

from . import lia, losses, wav2lip
from .checkpoint import load
from .config import Audio2MouthConfig, FineTuneConfig, ImageConfig, TrainConfig
from .datasets import AudioWindowDataset, CrossPairDataset, PairDataset
from .motion_stages import MOTION_STAGES
from .stage import AdversarialStage, Stage
from .vgg19 import VGG19, VGGLoss

log = logging.getLogger(__name__)


def perceptual_loss(cfg: ImageConfig) -> VGGLoss:
    vgg = VGG19()
    if cfg.vgg_weights:
        vgg.load(cfg.vgg_weights)
    else:
        log.warning("no --vgg_weights given: the perceptual loss uses a randomly initialised VGG19")
    return VGGLoss(vgg)


def networks_of_width(layout: GeneratorConfig, cfg: ImageConfig) -> tuple[Generator, Discriminator]:
    """A generator of `layout` and a discriminator, both with every width divided by --channel_divisor."""
    return Generator(replace(layout, channel_divisor=cfg.channel_divisor)), Discriminator(divisor=cfg.channel_divisor)


def init_generator(gen: Generator, path: str, allow_missing_expression: bool = False, allow_lia: bool = True) -> dict:
    """Load the 'gen' entry of the checkpoint at `path` into `gen`; returns the whole checkpoint.

    With `allow_missing_expression` a lip-pose checkpoint may seed a full generator (the expression
    parts keep their initialisation). With `allow_lia`, LIA's vox.pt or its conversion by
    train/lia.py seeds enc, fc and dec, and lip_fc, pose_fc, direction_lipnonlip keep theirs.
    Anything else that does not fit raises a one-line SystemExit naming the file.
    """
    data = load(path)
    if "gen" not in data:
        raise SystemExit(f"{path} has no 'gen' entry: not a generator checkpoint")
    state = strip_prefixes(data["gen"])
    fresh: tuple[str, ...] = ()
    if lia.is_lia_generator(state) or lia.is_converted(data):
        if not allow_lia:
            raise SystemExit(f"{path} is LIA's model (no trained mouth/pose heads): train stages 1 and 2 from it first")
        if lia.is_lia_generator(state):
            try:
                state = lia.convert_generator(state)
            except ValueError as exc:
                raise SystemExit(f"{path}: {exc}") from None
        fresh = lia.FRESH
        log.info("%s: LIA's generator mapped onto the lip-pose layout (see train/lia.py)", path)
    try:
        result = gen.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes differ
        raise SystemExit(
            f"{path} does not fit this generator (another --channel_divisor?): {_last_line(exc)}"
        ) from None
    missing = [
        k
        for k in result.missing_keys
        if not (k.startswith(fresh) or allow_missing_expression and _is_expression_key(k))
    ]
    if missing or result.unexpected_keys:
        raise SystemExit(
            f"{path} does not fit this generator: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}"
        )
    return data


def load_discriminator(dis: Discriminator, checkpoint: dict, path: str) -> bool:
    """Load the checkpoint's 'dis' entry into `dis`; False (nothing loaded) when it has none."""
    if "dis" not in checkpoint:
        return False
    try:
        dis.load_state_dict(strip_prefixes(checkpoint["dis"]))
    except RuntimeError as exc:
        raise SystemExit(f"{path}: its 'dis' entry does not fit the discriminator: {_last_line(exc)}") from None
    return True


def _last_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[-1].strip()[:200]


def mouth_crop_l1(recon: torch.Tensor, target: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The official audio stage's `img_l1_sync`: mean |crop(target) - crop(recon)| over the 96x96
    differentiable bilinear crops of the face boxes (B, 4) pixels x1, y1, x2, y2 (the crops whose
    lower halves the lip-sync expert sees). recon, target (B, 3, H, W)."""
    return (crop_boxes(target, boxes) - crop_boxes(recon, boxes)).abs().mean()


def _is_expression_key(key: str) -> bool:
    return key.startswith(("exp_fc.", "direction_exp.", "dec.fineadainresblock."))


class GeneratorStage(AdversarialStage):
    """Shared by the image stages: a generator, a discriminator, L1 + VGG + GAN losses."""

    config = ImageConfig
    layout = LIP_POSE  # the generator's layout
    weights = {"l1": 1.0, "vgg": 1.0, "gan": 1.0}
    val_metrics = ("l1", "psnr")
    checkpoint_key = "gen"

    def build(self, cfg: ImageConfig, device: torch.device) -> dict[str, nn.Module]:
        """Generator and discriminator, from `--init` when given: its 'gen' (a lip-pose checkpoint
        may seed the full generator; LIA's vox.pt the shared parts) and its 'dis' when present."""
        gen, dis = networks_of_width(self.layout, cfg)
        if cfg.init:
            if gen.has_expression:
                # Kept when --init has no expression parts: the full generator then starts by
                # rendering exactly what the lip-pose generator renders.
                gen.init_expression_identity()
            checkpoint = init_generator(gen, cfg.init, allow_missing_expression=gen.has_expression)
            if not load_discriminator(dis, checkpoint, cfg.init):
                log.warning("%s has no 'dis' entry: the discriminator starts from random weights", cfg.init)
        models = {"gen": gen, "dis": dis, "vgg": perceptual_loss(cfg)}
        return {k: m.to(device) for k, m in models.items()}

    def dataset(self, cfg: TrainConfig, split: str):
        return PairDataset(cfg.data, split, seed=cfg.seed)

    def reconstruct(self, models: dict, batch: dict) -> torch.Tensor:
        return models["gen"](batch["source"], batch["target"])

    def generator_losses(self, models: dict, batch: dict) -> tuple[dict, dict]:
        recon = self.reconstruct(models, batch)
        out = {
            "l1": losses.l1(recon, batch["target"]),
            "vgg": models["vgg"](recon, batch["target"]),
            "gan": losses.g_nonsaturating(models["dis"](recon)),
        }
        return out, {"real": batch["target"], "fake": recon, "rows": [batch["source"], batch["target"], recon]}

    def discriminator_loss(self, models: dict, images: dict) -> torch.Tensor:
        return losses.d_nonsaturating(models["dis"](images["real"]), models["dis"](images["fake"].detach()))

    def validation_metrics(self, models: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Held-out self-reconstruction of the target frame from the source frame."""
        return losses.image_metrics(self.reconstruct(models, batch), batch["target"])


class EncoderGeneratorStage(GeneratorStage):
    """Stage 1: encoder/generator reconstruction fine-tuning (self-reconstruction, all parameters)."""

    defaults = {"batch_size": 12, "save_every": 3000}


class MouthPoseStage(GeneratorStage):
    """Stage 2: mouth-pose decoupling by cross-reconstruction with mouth swapping (lip-pose model)."""

    weights = {
        "l1": 1.0,
        "vgg": 1.0,
        "cross_l1": 1.0,
        "cross_vgg": 1.0,
        "gan": 1.0,
        "lip_space": 1.0,
        "pose_space": 1.0,
    }

    def dataset(self, cfg: TrainConfig, split: str):
        return CrossPairDataset(cfg.data, split, seed=cfg.seed)

    def generator_losses(self, models: dict, batch: dict) -> tuple[dict, dict]:
        gen = models["gen"]
        a, b, ab, ba = batch["img_a"], batch["img_b"], batch["imagea_b"], batch["imageb_a"]
        # One encoder pass for the four driving images, one for the two identities, one decoder
        # pass for the four renders. A's pose lives in imagea_b (A's frame, B's mouth), A's mouth
        # in imageb_a, and vice versa.
        h = gen.encode(torch.cat([a, b, ab, ba]))
        lip = dict(zip(("a", "b", "ab", "ba"), gen.coefficients(h, "lip").chunk(4)))
        pose = dict(zip(("a", "b", "ab", "ba"), gen.coefficients(h, "pose").chunk(4)))
        order = {"a": ("a", "a"), "b": ("b", "b"), "a_cross": ("ba", "ab"), "b_cross": ("ab", "ba")}
        alpha = {k: torch.cat([lip[m], pose[p]], 1) for k, (m, p) in order.items()}
        identities = torch.cat([batch["img_a_identity"], batch["img_b_identity"]])
        sources = gen.encode_source(identities).select(torch.arange(len(identities), device=a.device).repeat(2))
        latent, _ = gen.compose_latent(sources.wa, torch.cat(list(alpha.values())))
        recon_a, recon_b, recon_a_cross, recon_b_cross = gen.render(sources, latent, None).chunk(4)
        parts = {k: gen.part_latents(v) for k, v in alpha.items()}
        out = {
            "l1": losses.l1(recon_a, a) + losses.l1(recon_b, b),
            "vgg": models["vgg"](recon_a, a) + models["vgg"](recon_b, b),
            "cross_l1": losses.l1(recon_a_cross, a) + losses.l1(recon_b_cross, b),
            "cross_vgg": models["vgg"](recon_a_cross, a) + models["vgg"](recon_b_cross, b),
            "gan": losses.g_nonsaturating(models["dis"](torch.cat([recon_a, recon_b, recon_a_cross, recon_b_cross]))),
            "lip_space": losses.latent_consistency(parts["a_cross"]["lip"], parts["a"]["lip"])
            + losses.latent_consistency(parts["b_cross"]["lip"], parts["b"]["lip"]),
            "pose_space": losses.latent_consistency(parts["a_cross"]["pose"], parts["a"]["pose"])
            + losses.latent_consistency(parts["b_cross"]["pose"], parts["b"]["pose"]),
        }
        images = {
            "real": torch.cat([a, b]),
            "fake": torch.cat([recon_a_cross, recon_b_cross]),
            "rows": [batch["img_a_identity"], ab, ba, recon_a_cross, a],
        }
        return out, images

    def validation_metrics(self, models: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Held-out cross-reconstruction of A: its mouth read from B's frame carrying A's mouth, its
        pose from A's frame carrying B's mouth."""
        gen = models["gen"]
        mouth_h, pose_h = gen.encode(torch.cat([batch["imageb_a"], batch["imagea_b"]])).chunk(2)
        lip, pose = gen.coefficients(mouth_h, "lip"), gen.coefficients(pose_h, "pose")
        return losses.image_metrics(gen.animate(batch["img_a_identity"], lip, pose), batch["img_a"])


class ExpressionStage(GeneratorStage):
    """Stage 3 (not in the official release, built from the paper): expression decoupling by
    self-reconstruction complementary learning. Starting from the mouth-pose model, only the
    expression navigation (exp_fc, direction_exp) and the EEM blocks learn; mouth and pose stay
    fixed, so the expression bank has to explain what they cannot. From a lip-pose checkpoint the
    expression parts start as an identity (`Generator.init_expression_identity`): the first step
    renders what the mouth-pose model renders."""

    layout = EDTALK

    def trainable(self, models: dict, cfg: TrainConfig) -> list[nn.Parameter]:
        gen = models["gen"]
        chosen = [p for name, p in gen.named_parameters() if _is_expression_key(name)]
        for name, p in gen.named_parameters():
            p.requires_grad_(_is_expression_key(name))
        return chosen


class FineTuneStage(GeneratorStage):
    """Per-person fine-tuning of the lip-pose model on frames of one video (`--only_fine_tune_dec`)."""

    config = FineTuneConfig
    defaults = {"batch_size": 8, "sample_every": 20, "save_every": 10000}

    def build(self, cfg: FineTuneConfig, device: torch.device) -> dict[str, nn.Module]:
        if not cfg.init:
            raise SystemExit("--init is required: the lip-pose checkpoint to fine-tune (ckpts/EDTalk_lip_pose.pt)")
        return super().build(cfg, device)

    def trainable(self, models: dict, cfg: FineTuneConfig) -> list[nn.Parameter]:
        gen = models["gen"]
        if not cfg.only_fine_tune_dec:
            return list(gen.parameters())
        gen.requires_grad_(False)  # no gradients computed for the frozen encoder and heads
        return list(gen.dec.requires_grad_(True).parameters())

    def dataset(self, cfg: TrainConfig, split: str):
        return PairDataset(cfg.data, split, seed=cfg.seed, same_clip=True)


class SyncNetStage(Stage):
    """The lip-sync expert: does this mel window belong to these five mouths?"""

    defaults = {"batch_size": 16, "lr": 0.0001}
    weights = {"sync": 1.0}
    val_metrics = ("sync", "accuracy")
    checkpoint_key = "syncnet"

    def build(self, cfg: TrainConfig, device: torch.device) -> dict[str, nn.Module]:
        if cfg.batch_size < 2:
            raise SystemExit("the lip-sync expert has BatchNorm layers: train it with --batch_size 2 or more")
        net = SyncNet()
        if cfg.init:
            net.load_state_dict(strip_prefixes(load(cfg.init)["syncnet"]))
        return {"syncnet": net.to(device)}

    def dataset(self, cfg: TrainConfig, split: str):
        return AudioWindowDataset(cfg.data, split, seed=cfg.seed, sync_negatives=True)

    def generator_losses(self, models: dict, batch: dict) -> tuple[dict, dict]:
        faces = lower_halves(batch["frames"], batch["face_boxes"])
        similarity = models["syncnet"](batch["sync_mel"], faces)
        return {"sync": losses.sync_loss(similarity, batch["in_sync"])}, {"rows": [batch["frames"][:, 0]]}

    def validation_metrics(self, models: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Held-out BCE and accuracy (similarity above 0.5 = in sync) on in- and off-sync windows."""
        similarity = models["syncnet"](batch["sync_mel"], lower_halves(batch["frames"], batch["face_boxes"]))
        return {
            "sync": losses.sync_loss(similarity, batch["in_sync"], reduction="none"),
            "accuracy": ((similarity > 0.5).float() == batch["in_sync"]).float(),
        }


class Audio2MouthStage(Stage):
    """Audio-to-mouth, as the official trainer: Audio2Lip learns the trained lip-pose model's mouth
    coefficients (feature loss + temporal smoothness), the frames rendered from them (L1, VGG, L1
    of the 96x96 face crops, GAN term of the lip-pose checkpoint's frozen discriminator) and lip
    sync (if a trained expert is given).

    The audio encoder starts from Wav2Lip's generator (`--wav2lip wav2lip.pth`) and stays frozen
    unless `--train_audio_encoder`: only `mapping` (bias initialised to 0) learns. Audio2Lip is
    nevertheless in train mode (the loop's rule: a model with a trainable parameter trains), so
    the frozen encoder's BatchNorms normalise with batch statistics and keep updating their
    running statistics, as in the official trainer. The lip-pose generator and the discriminator
    are frozen and in eval mode; the discriminator is never updated."""

    config = Audio2MouthConfig
    weights = {"coef": 1.0, "smooth": 0.1, "l1": 1.0, "vgg": 1.0, "mouth_l1": 1.0, "gan": 1.0, "sync": 5.0}
    val_metrics = ("coef", "l1", "psnr")
    checkpoint_key = "audio2lip"

    def build(self, cfg: Audio2MouthConfig, device: torch.device) -> dict[str, nn.Module]:
        if not cfg.generator:
            raise SystemExit("--generator is required: the trained lip-pose checkpoint (teacher and renderer)")
        gen, dis = networks_of_width(LIP_POSE, cfg)
        checkpoint = init_generator(gen, cfg.generator, allow_lia=False)
        gen.requires_grad_(False).eval()
        a2l = Audio2Lip()
        nn.init.zeros_(a2l.mapping.bias)  # as the official Audio2Lip
        if cfg.wav2lip:
            wav2lip.load_audio_encoder(a2l.audio_encoder, cfg.wav2lip)
        elif not cfg.init:
            what = (
                "is trained from them (--train_audio_encoder)"
                if cfg.train_audio_encoder
                else "stays frozen; pass --wav2lip wav2lip.pth (the official start), or --train_audio_encoder"
            )
            log.warning("no --wav2lip: the audio encoder starts from random weights and %s", what)
        if cfg.init:
            a2l.load_state_dict(strip_prefixes(load(cfg.init)["audio2lip"]))
        models = {"audio2lip": a2l, "gen": gen, "vgg": perceptual_loss(cfg)}
        if load_discriminator(dis, checkpoint, cfg.generator):
            models["dis"] = dis.requires_grad_(False).eval()
        else:
            log.warning("%s has no 'dis' entry: the audio-to-mouth stage runs without its GAN term", cfg.generator)
        if cfg.syncnet:
            sync = SyncNet()
            wav2lip.load_sync_expert(sync, cfg.syncnet)
            models["syncnet"] = sync.requires_grad_(False).eval()
        return {k: m.to(device) for k, m in models.items()}

    def trainable(self, models: dict, cfg: Audio2MouthConfig) -> list[nn.Parameter]:
        a2l = models["audio2lip"]
        if cfg.train_audio_encoder:
            return list(a2l.requires_grad_(True).parameters())
        a2l.audio_encoder.requires_grad_(False)
        return list(a2l.mapping.parameters())

    def dataset(self, cfg: TrainConfig, split: str):
        return AudioWindowDataset(cfg.data, split, seed=cfg.seed)

    @staticmethod
    def predict(models: dict, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The window's frames (B*T, 3, H, W), Audio2Lip's mouth coefficients (B*T, 20), the
        teacher's (B*T, 20), and the frames rendered from the predicted mouth with the teacher's
        pose (B*T, 3, H, W)."""
        gen, frames = models["gen"], batch["frames"]  # (B, T, 3, 256, 256)
        b, t = frames.shape[:2]
        flat = frames.flatten(0, 1)
        with torch.no_grad():
            h = gen.encode(flat)
            teacher_lip, teacher_pose = gen.coefficients(h, "lip"), gen.coefficients(h, "pose")
        predicted = models["audio2lip"](batch["mels"]).flatten(0, 1)
        source = gen.encode_source(batch["identity"]).select(torch.arange(b, device=flat.device).repeat_interleave(t))
        return flat, predicted, teacher_lip, gen.animate(source, predicted, teacher_pose)

    def generator_losses(self, models: dict, batch: dict) -> tuple[dict, dict]:
        frames = batch["frames"]
        b, t = frames.shape[:2]
        flat, predicted, teacher_lip, recon = self.predict(models, batch)
        delta = lambda x: x.view(b, t, -1)[:, 1:] - x.view(b, t, -1)[:, :-1]  # noqa: E731
        out = {
            "coef": F.mse_loss(predicted, teacher_lip),
            "smooth": F.mse_loss(delta(predicted), delta(teacher_lip)),
            "l1": losses.l1(recon, flat),
            "vgg": models["vgg"](recon, flat),
            "mouth_l1": mouth_crop_l1(recon, flat, batch["face_boxes"].flatten(0, 1)),
        }
        if "dis" in models:
            out["gan"] = losses.g_nonsaturating(models["dis"](recon))
        if "syncnet" in models:
            faces = lower_halves(recon.view_as(frames), batch["face_boxes"])
            similarity = models["syncnet"](batch["mels"][:, 0], faces)
            out["sync"] = losses.sync_loss(similarity, torch.ones_like(similarity))
        return out, {"rows": [flat[:4], recon[:4]]}

    def validation_metrics(self, models: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Held-out mouth-coefficient error against the teacher (mean square per window) and the
        rendered frames' L1 and PSNR against the real ones."""
        flat, predicted, teacher_lip, recon = self.predict(models, batch)
        coef = (predicted - teacher_lip).square().view(len(batch["frames"]), -1).mean(1)
        return {"coef": coef, **losses.image_metrics(recon, flat)}


STAGES = {
    "E_G": EncoderGeneratorStage,
    "Mouth_Pose_decouple": MouthPoseStage,
    "Expression_decouple": ExpressionStage,
    "syncnet": SyncNetStage,
    "audio2mouth": Audio2MouthStage,
    "fine_tune": FineTuneStage,
    **MOTION_STAGES,  # audio-to-expression and audio-to-pose (motion_stages.py)
}
