"""What the demo scripts share: the common flags, and running a pipeline into an mp4 file."""

import argparse
import logging
import sys
from pathlib import Path

from .checkpoints import DEFAULT_CKPT_DIR, EXPRESSIONS
from .device import PRECISIONS
from .errors import EDTalkError
from .motion_template import check_template_path
from .output import Written, write_mp4
from .pipeline import TalkingHeadPipeline
from .signals import Interrupted, raise_if_interrupted, stop_on_signals
from .video_io import check_save_path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SPEECH = ROOT / "test_data" / "speech.wav"  # drives the mouth when no audio or mouth video is given
SAMPLE_PHOTO = ROOT / "test_data" / "astronaut.jpg"
SAMPLE_MOUTH_VIDEO = ROOT / "test_data" / "mouth_source.mp4"  # a real talking head (test_data/make_test_data.py)

# Input flags (official names) -> argparse settings; each demo picks the ones its mode takes.
INPUT_FLAGS = {
    "audio_driving_path": dict(help="speech that drives the mouth, any audio format (default: test_data/speech.wav)"),
    "soundtrack": dict(dest="audio_driving_path", help="soundtrack (default: the mouth video's own audio, if any)"),
    "lip_driving_path": dict(
        help="mouth-driving video (or motion template .npz): the output has its length and, unless "
        "--audio_driving_path is given, its audio track as the soundtrack (none: a silent video)"
    ),
    "pose_driving_path": dict(
        help="head-pose video, image or motion template .npz (default: the head moves with the speech when "
        "Audio2Pose.pt exists, else it stays still)"
    ),
    "fix_pose": dict(action="store_true", help="keep the source's head pose (ignore --pose_driving_path)"),
    "exp_driving_path": dict(help="expression reference image, video or motion template .npz"),
    "exp_type": dict(
        help=f"predefined emotion instead: {', '.join(EXPRESSIONS)}; or a mix of them with intensities, "
        "e.g. happy:0.7,surprised:0.3"
    ),
    "exp_scale": dict(
        type=float,
        default=1.0,
        help="multiply the expression (of --exp_type, --exp_driving_path or the audio): 0 none, above 1 exaggerated",
    ),
    "exp_from_audio": dict(
        action=argparse.BooleanOptionalAction,
        help="the expression follows the speech (Audio2Exp.pt, trained with train/train_audio2exp.py); by default "
        "on when no --exp_type or --exp_driving_path is given and Audio2Exp.pt exists",
    ),
    "pose_from_audio": dict(
        action=argparse.BooleanOptionalAction,
        help="the head moves with the speech (Audio2Pose.pt, trained with train/train_audio2pose.py); by default "
        "on when the source is a photo, no --pose_driving_path is given and Audio2Pose.pt exists",
    ),
    "pose_temperature": dict(
        type=float,
        default=0.7,
        help="head motion from the speech: 0 one calm deterministic path, 1 as lively as the training clips",
    ),
    "seed": dict(type=int, default=0, help="head motion from the speech: the same seed gives the same motion"),
    "pose_style_path": dict(
        help="head motion from the speech takes on this clip's pose statistics (a calm or a lively head): "
        "a video, image or motion template; implies --pose_from_audio"
    ),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description and the example as written, and appends each flag's default (if it has one)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "(default" not in text:
            text += " (default: %(default)s)"
        return text


def parser(description: str, example: str, save_default: str, inputs: list[str]) -> argparse.ArgumentParser:
    """An argument parser with the flags every demo has plus the named INPUT_FLAGS. Default paths
    (the samples in test_data/, ckpts/, res/...) are the repository's, from any working directory."""
    save_default = str(ROOT / save_default)
    p = argparse.ArgumentParser(description=description, epilog=f"example:\n  {example}", formatter_class=HelpFormatter)
    p.add_argument(
        "--source_path",
        default=str(SAMPLE_PHOTO),
        help="identity photo, or a video to re-dub frame by frame (any size: the face is found and aligned)",
    )
    p.add_argument("--save_path", default=save_default, help="output .mp4 (H.264 + AAC, 25 fps)")
    p.set_defaults(default_save_path=save_default)  # its folder is made if missing; a given path's must exist
    p.add_argument("--ckpt_dir", default=str(DEFAULT_CKPT_DIR), help="checkpoint folder (see ckpts/README.md)")
    p.add_argument(
        "--generator_ckpt",
        "--model_path",
        dest="generator_ckpt",
        help="generator checkpoint to use instead of the one in --ckpt_dir (e.g. fine-tuned on one person)",
    )
    p.add_argument("--audio2lip_model_path", help="Audio2Lip checkpoint to use instead of the one in --ckpt_dir")
    p.add_argument("--audio2exp_model_path", help="Audio2Exp checkpoint to use instead of Audio2Exp.pt in --ckpt_dir")
    p.add_argument(
        "--audio2pose_model_path", help="Audio2Pose checkpoint to use instead of Audio2Pose.pt in --ckpt_dir"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--batch_size", type=int, help="frames per network call (default: 1 on CPU, 16 on a GPU)")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="network precision: auto is bf16 where the hardware computes bf16 natively (CUDA compute capability "
        ">= 8.0, CPUs with AMX-BF16 or AVX512-BF16), else fp32; fp32 reproduces the official outputs exactly",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the decoder (faster long runs on GPUs)")
    p.add_argument(
        "--no_crop", action="store_true", help="inputs are already aligned square face crops (resized to 256x256)"
    )
    p.add_argument(
        "--face_index",
        type=int,
        default=None,
        help="with several faces, use the N-th from the left, counting from 0 (default: the clearest face)",
    )
    p.add_argument("--paste_back", action="store_true", help="put the animated face back into the full original frame")
    p.add_argument(
        "--face_sr",
        action="store_true",
        help="restore the face with GFPGAN (GFPGANv1.4.pth in --ckpt_dir): 512x512 output, sharper mouth and teeth",
    )
    p.add_argument("--sr_blend", type=float, default=1.0, help="with --face_sr: 1 restored face, 0 only upscaled")
    if {"pose_driving_path", "exp_driving_path", "lip_driving_path"} & set(inputs):  # a mode with driving clips
        p.add_argument(
            "--save_motion",
            metavar="PATH",
            help="instead of rendering, save the motion of the --pose_driving_path clip (else of the expression, "
            "else of the mouth clip) as a motion template PATH.npz: mouth, pose and (full model) expression of every "
            "frame. Any --*_driving_path accepts the template in place of the clip: no decoding, detection, encoding",
        )
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    official = p.add_argument_group("flags of the official EDTalk scripts, accepted so that their commands run")
    for flag, what in (("--need_crop_source_img", "the source is"), ("--need_crop_pose_video", "driving videos are")):
        official.add_argument(flag, action="store_true", help=f"no-op: {what} always cropped unless --no_crop")
    for name in inputs:
        settings = dict(INPUT_FLAGS[name])
        flag = "--audio_driving_path" if name == "soundtrack" else f"--{name}"
        p.add_argument(flag, **settings)
    return p


def pipeline_settings(args: argparse.Namespace, model: str) -> dict:
    """TalkingHeadPipeline keyword arguments for a `model` ('full' or 'lip_pose') from parsed flags.
    Jobs with equal settings can share one pipeline (render_many.py)."""
    return dict(
        ckpt_dir=args.ckpt_dir,
        model=model,
        device=args.device,
        batch_size=args.batch_size,
        crop=not args.no_crop,
        progress=not args.quiet,
        precision=args.precision,
        compile=args.compile,
        generator_path=args.generator_ckpt,
        face_index=args.face_index,
        audio2lip_path=args.audio2lip_model_path,
        audio2exp_path=args.audio2exp_model_path,
        audio2pose_path=args.audio2pose_model_path,
        face_sr=args.face_sr,
        sr_blend=args.sr_blend,
    )


def render_inputs(args: argparse.Namespace) -> dict:
    """The driving inputs named in parsed flags, as keyword arguments of TalkingHeadPipeline.render."""
    lip = getattr(args, "lip_driving_path", None)
    return {
        "audio": args.audio_driving_path or (None if lip else SAMPLE_SPEECH),
        "lip": lip,
        "pose": None if getattr(args, "fix_pose", False) else getattr(args, "pose_driving_path", None),
        "exp": getattr(args, "exp_driving_path", None),
        "exp_type": getattr(args, "exp_type", None),
        "exp_scale": getattr(args, "exp_scale", 1.0),
        "exp_from_audio": getattr(args, "exp_from_audio", None),
        "pose_from_audio": False if getattr(args, "fix_pose", False) else getattr(args, "pose_from_audio", None),
        "pose_temperature": getattr(args, "pose_temperature", 0.7),
        "seed": getattr(args, "seed", 0),
        "pose_style": getattr(args, "pose_style_path", None),
    }


def render_file(pipe: TalkingHeadPipeline, args: argparse.Namespace, save_path: Path) -> Written:
    """Render the inputs named in parsed flags `args` with `pipe` into `save_path` (already checked
    by check_save_path). Run it inside `stop_on_signals()`: a signal stops it between batches and
    the writer removes its unfinished file."""
    inputs = dict(source=args.source_path, paste_back=args.paste_back, **render_inputs(args))
    return write_mp4(pipe, save_path, lambda done, total: raise_if_interrupted(), **inputs)


def save_motion_file(args: argparse.Namespace, model: str) -> str:
    """--save_motion: save the motion of the pose driving clip (else the expression clip, else the
    mouth clip) as a motion template; the line to report."""
    inputs = render_inputs(args)
    driver = inputs["pose"] or inputs["exp"] or inputs["lip"]
    if driver is None:
        raise EDTalkError("--save_motion saves a driving clip's motion: give --pose_driving_path (or another clip)")
    path = check_template_path(args.save_motion)
    template = TalkingHeadPipeline(**pipeline_settings(args, model)).save_motion(driver, path)
    parts = ", ".join(template.coefficients)
    return f"wrote {path}: motion of {template.source} ({parts}), {template.frames} frames, {template.fps:g} fps"


def render_to_file(args: argparse.Namespace, model: str) -> int:
    """Render the inputs named in `args` with a `model` ('full' or 'lip_pose') pipeline into
    args.save_path (or, with --save_motion, save a driving clip's motion); 0 on success.

    User mistakes end with a one-line message on stderr and exit code 1; SIGINT / SIGTERM end with
    "interrupted" and 130 / 143. In either case nothing is left behind: no output file, no
    temporary files.
    """
    logging.basicConfig(format="%(message)s", level=logging.ERROR if args.quiet else logging.WARNING)
    try:
        with stop_on_signals():
            if getattr(args, "save_motion", None):
                summary = save_motion_file(args, model)
            else:
                save_path = check_save_path(args.save_path, create_folder=args.save_path == args.default_save_path)
                summary = str(render_file(TalkingHeadPipeline(**pipeline_settings(args, model)), args, save_path))
    except Interrupted as stop:
        print("interrupted", file=sys.stderr)
        return stop.exit_code
    except (EDTalkError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(summary)
    return 0


def run_demo(
    description: str, example: str, argv: list[str] | None, model: str, save_default: str, inputs: list[str], **defaults
) -> int:
    """A demo script's whole work: parse `argv` (`defaults` replace flag defaults, e.g. a sample mouth
    video or an emotion) and render with a `model` ('full' or 'lip_pose') pipeline; the exit code."""
    p = parser(description, example, save_default, inputs)
    p.set_defaults(**defaults)
    return render_to_file(p.parse_args(argv), model)
