"""Every option of the pipeline and of a render, declared once: name, flag, help text and default.

Two dataclasses hold them: `PipelineOptions` (what a pipeline loads and how it runs: checkpoints,
device, precision, cropping, face restoration...) and `RenderOptions` (one clip: source, drivers,
expression and head-motion knobs). Each field's metadata carries its command-line flag (the
official EDTalk names, e.g. `--audio_driving_path`, `--pose_style_path`), the help text and any
argparse settings; the default is the field's own. Everything else is generated from here:

    add_flags(parser, RenderOptions, ["audio", "pose_temperature"])  # argparse flags, by field name
    options = from_args(PipelineOptions, args, model="full")        # parsed flags -> dataclass
    defaults(RenderOptions)["pose_temperature"]                     # {field: default}
    flag_names(RenderOptions)                                       # {field: '--flag'}

A flag's argparse `dest` is its name without dashes (also the key of a render_many.py job). A
flag that negates its field (`--no_crop` for `crop`, `--quiet` for `progress`) is marked
`negate`; `from_args` turns it back.
"""

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import BACKENDS
from .checkpoints import DEFAULT_CKPT_DIR, FULL
from .device import PRECISIONS
from .emotions import EMOTIONS

Pathish = str | Path | None


def option(default: Any, flag: str | None = None, help: str = "", negate: bool = False, **argparse_settings) -> Any:
    """A dataclass field with default `default` and command-line flag `--flag` (None: library only).

    argparse_settings go to `add_argument` (type, action, choices, aliases...); negate: the flag
    stores the opposite of the field (a store_true flag for a field that is True by default)."""
    meta = dict(flag=flag, help=help, negate=negate, argparse=argparse_settings)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class PipelineOptions:
    """How a pipeline is built (see TalkingHeadPipeline): one set per loaded generator."""

    ckpt_dir: Path | str = option(str(DEFAULT_CKPT_DIR), "ckpt_dir", "checkpoint folder (see ckpts/README.md)")
    model: str = option(FULL, help="'full' (EDTalk.pt) or 'lip_pose' (EDTalk_lip_pose.pt): set by each demo")
    generator_path: Pathish = option(
        None,
        "generator_ckpt",
        "generator checkpoint to use instead of the one in --ckpt_dir (e.g. fine-tuned on one person)",
        aliases=("--model_path",),
    )
    audio2lip_path: Pathish = option(
        None, "audio2lip_model_path", "Audio2Lip checkpoint to use instead of the one in --ckpt_dir"
    )
    audio2exp_path: Pathish = option(
        None, "audio2exp_model_path", "Audio2Exp checkpoint to use instead of Audio2Exp.pt in --ckpt_dir"
    )
    audio2pose_path: Pathish = option(
        None, "audio2pose_model_path", "Audio2Pose checkpoint to use instead of Audio2Pose.pt in --ckpt_dir"
    )
    device: str = option("auto", "device", "auto, cpu, cuda, cuda:N or mps")
    batch_size: int | None = option(
        None, "batch_size", "frames per network call (default: 1 on CPU, 16 on a GPU)", type=int
    )
    precision: str = option(
        "auto",
        "precision",
        "network precision: auto is bf16 where the hardware computes bf16 natively (CUDA compute capability "
        ">= 8.0, CPUs with AMX-BF16 or AVX512-BF16), else fp32; fp32 reproduces the official outputs exactly",
        choices=PRECISIONS,
    )
    backend: str = option(
        "auto",
        "backend",
        "generator runtime: torch (PyTorch), openvino (CPU only: exported and compiled once per shape, cached in "
        "~/.cache/edtalk/openvino) or auto: $EDTALK_BACKEND if set, else OpenVINO on the CPU when installed, "
        "else PyTorch",
        choices=BACKENDS,
    )
    compile: bool = option(
        False, "compile", "torch.compile the decoder (PyTorch backend; faster long runs on GPUs)", action="store_true"
    )
    cuda_graphs: bool = option(
        False,
        "cuda_graphs",
        "replay the decoder as a CUDA graph at batch 1 (PyTorch on a CUDA GPU: one launch a frame; checked "
        "against the eager decoder on the first frame, eager again if they differ)",
        action="store_true",
    )
    crop: bool = option(
        True,
        "no_crop",
        "inputs are already aligned square face crops (resized to 256x256)",
        negate=True,
        action="store_true",
    )
    face_index: int | None = option(
        None,
        "face_index",
        "with several faces, use the N-th from the left, counting from 0 (default: the clearest face)",
        type=int,
    )
    face_sr: bool = option(
        False,
        "face_sr",
        "restore the face with GFPGAN (GFPGANv1.4.pth in --ckpt_dir): 512x512 output, sharper mouth and teeth",
        action="store_true",
    )
    sr_blend: float = option(1.0, "sr_blend", "with --face_sr: 1 restored face, 0 only upscaled", type=float)
    progress: bool = option(True, "quiet", "no progress bar, notes or summary", negate=True, action="store_true")


@dataclass(frozen=True)
class RenderOptions:
    """One clip (see TalkingHeadPipeline.render for what each input does)."""

    source: Any = option(
        None,
        "source_path",
        "identity photo, or a video to re-dub frame by frame (any size: the face is found and aligned)",
    )
    audio: Any = option(None, "audio_driving_path", "speech that drives the mouth, any audio format")
    lip: Pathish = option(
        None,
        "lip_driving_path",
        "mouth-driving video (or motion template .npz): the output has its length and, unless "
        "--audio_driving_path is given, its audio track as the soundtrack (a template needs --audio_driving_path)",
    )
    pose: Pathish = option(
        None,
        "pose_driving_path",
        "head-pose video, image or motion template .npz (default: the head moves with the speech when "
        "Audio2Pose.pt exists, else it stays still)",
    )
    exp: Pathish = option(None, "exp_driving_path", "expression reference image, video or motion template .npz")
    exp_type: str | None = option(
        None,
        "exp_type",
        f"predefined emotion instead: {', '.join(EMOTIONS)}; or a mix of them with intensities, "
        "e.g. happy:0.7,surprised:0.3",
    )
    exp_scale: float = option(
        1.0,
        "exp_scale",
        "multiply the expression (of --exp_type, --exp_driving_path or the audio): 0 none, above 1 exaggerated",
        type=float,
    )
    exp_from_audio: bool | None = option(
        None,
        "exp_from_audio",
        "the expression follows the speech (Audio2Exp.pt, trained with train/train_audio2exp.py); by default "
        "on when no --exp_type or --exp_driving_path is given and Audio2Exp.pt exists",
        action=argparse.BooleanOptionalAction,
    )
    pose_from_audio: bool | None = option(
        None,
        "pose_from_audio",
        "the head moves with the speech (Audio2Pose.pt, trained with train/train_audio2pose.py); by default "
        "on when the source is a photo, no --pose_driving_path is given and Audio2Pose.pt exists",
        action=argparse.BooleanOptionalAction,
    )
    pose_temperature: float = option(
        0.7,
        "pose_temperature",
        "head motion from the speech: 0 one calm deterministic path, 1 as lively as the training clips",
        type=float,
    )
    seed: int = option(0, "seed", "head motion from the speech: the same seed gives the same motion", type=int)
    pose_style: Pathish = option(
        None,
        "pose_style_path",
        "head motion from the speech takes on this clip's pose statistics (a calm or a lively head): "
        "a video, image or motion template; implies --pose_from_audio",
    )
    paste_back: bool = option(
        False, "paste_back", "put the animated face back into the full original frame", action="store_true"
    )
    face_sr: bool | None = option(
        None, help="restore this clip's faces (None: when the pipeline restores; True needs a restorer)"
    )


def fields_of(cls: type) -> list[str]:
    """The field names of an options class, in declaration order."""
    return [f.name for f in dataclasses.fields(cls)]


def flag_names(cls: type) -> dict[str, str]:
    """{field name: '--flag'} of the fields of `cls` that have a command-line flag."""
    return {f.name: f"--{f.metadata['flag']}" for f in dataclasses.fields(cls) if f.metadata.get("flag")}


def defaults(cls: type) -> dict[str, Any]:
    """{field name: default} of an options class (the one place each default is written)."""
    return {f.name: f.default for f in dataclasses.fields(cls)}


def add_flags(parser: argparse.ArgumentParser, cls: type, names: list[str], **helps: str) -> None:
    """Add the flags of the fields `names` of options class `cls` to `parser` (dest: the flag name
    without dashes), with their help, argparse settings and default; `helps` replaces a field's help.
    Names that are not fields of `cls`, and fields without a flag, are skipped."""
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for f in (by_name[name] for name in names if name in by_name):
        if not f.metadata.get("flag"):
            continue
        settings = dict(f.metadata["argparse"])
        flags = [f"--{f.metadata['flag']}", *settings.pop("aliases", ())]
        default = False if f.metadata["negate"] else f.default
        text = helps.get(f.name, f.metadata["help"])
        parser.add_argument(*flags, dest=f.metadata["flag"], default=default, help=text, **settings)


def from_args(cls: type, args: argparse.Namespace, **values) -> Any:
    """An options object from parsed flags (fields without a parsed flag keep their default;
    `values` set fields directly, e.g. model='lip_pose')."""
    parsed = vars(args)
    for f in dataclasses.fields(cls):
        flag = f.metadata.get("flag")
        if flag and flag in parsed and f.name not in values:
            values[f.name] = not parsed[flag] if f.metadata["negate"] else parsed[flag]
    return cls(**values)
