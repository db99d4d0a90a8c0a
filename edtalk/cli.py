"""What the demo scripts share: the common flags, and running a pipeline into an mp4 file."""

import argparse
import logging
import sys
from pathlib import Path

from .checkpoints import DEFAULT_CKPT_DIR, EXPRESSIONS
from .errors import EDTalkError
from .pipeline import TalkingHeadPipeline
from .signals import Interrupted, raise_if_interrupted, stop_on_signals
from .video_io import VideoWriter, check_save_path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SPEECH = ROOT / "test_data" / "speech.wav"  # drives the mouth when no audio or mouth video is given
SAMPLE_PHOTO = ROOT / "test_data" / "astronaut.jpg"
SAMPLE_MOUTH_VIDEO = ROOT / "test_data" / "mouth_source.mp4"  # a real talking head (test_data/make_test_data.py)

# Input flags (official names) -> argparse settings; each demo picks the ones its mode takes.
INPUT_FLAGS = {
    "audio_driving_path": dict(help="speech that drives the mouth, any audio format (default: test_data/speech.wav)"),
    "soundtrack": dict(dest="audio_driving_path", help="soundtrack (default: the mouth video's own audio, if any)"),
    "lip_driving_path": dict(
        help="mouth-driving video: the output has its length and, unless --audio_driving_path is given, its "
        "audio track as the soundtrack (none: a silent video)"
    ),
    "pose_driving_path": dict(help="head-pose video or image (default: the head stays still)"),
    "fix_pose": dict(action="store_true", help="keep the source's head pose (ignore --pose_driving_path)"),
    "exp_driving_path": dict(help="expression reference image or video"),
    "exp_type": dict(
        help=f"predefined emotion instead: {', '.join(EXPRESSIONS)}; or a mix of them with intensities, "
        "e.g. happy:0.7,surprised:0.3"
    ),
    "exp_scale": dict(
        type=float,
        default=1.0,
        help="multiply the expression (of --exp_type or --exp_driving_path): 0 none, above 1 exaggerated",
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
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--batch_size", type=int, help="frames per network call (default: 1 on CPU, 16 on a GPU)")
    p.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="network precision (default fp32)"
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
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    official = p.add_argument_group("flags of the official EDTalk scripts, accepted so that their commands run")
    for flag, what in (("--need_crop_source_img", "the source is"), ("--need_crop_pose_video", "driving videos are")):
        official.add_argument(flag, action="store_true", help=f"no-op: {what} always cropped unless --no_crop")
    for name in inputs:
        settings = dict(INPUT_FLAGS[name])
        flag = "--audio_driving_path" if name == "soundtrack" else f"--{name}"
        p.add_argument(flag, **settings)
    return p


def render_to_file(args: argparse.Namespace, model: str) -> int:
    """Render the inputs named in `args` with a `model` ('full' or 'lip_pose') pipeline into
    args.save_path; 0 on success.

    User mistakes end with a one-line message on stderr and exit code 1; SIGINT / SIGTERM end with
    "interrupted" and 130 / 143. In either case nothing is left behind: no output file, no
    temporary files.
    """
    logging.basicConfig(format="%(message)s", level=logging.ERROR if args.quiet else logging.WARNING)
    lip = getattr(args, "lip_driving_path", None)
    inputs = {
        "audio": args.audio_driving_path or (None if lip else SAMPLE_SPEECH),
        "lip": lip,
        "pose": None if getattr(args, "fix_pose", False) else getattr(args, "pose_driving_path", None),
        "exp": getattr(args, "exp_driving_path", None),
        "exp_type": getattr(args, "exp_type", None),
        "exp_scale": getattr(args, "exp_scale", 1.0),
    }
    try:
        with stop_on_signals():
            save_path = check_save_path(args.save_path, create_folder=args.save_path == args.default_save_path)
            pipe = TalkingHeadPipeline(
                args.ckpt_dir,
                model,
                args.device,
                args.batch_size,
                crop=not args.no_crop,
                progress=not args.quiet,
                precision=args.precision,
                compile=args.compile,
                generator_path=args.generator_ckpt,
                face_index=args.face_index,
                audio2lip_path=args.audio2lip_model_path,
                face_sr=args.face_sr,
                sr_blend=args.sr_blend,
            )
            with (
                pipe.render(args.source_path, paste_back=args.paste_back, **inputs) as result,
                VideoWriter(save_path, result.fps, result.audio_path, num_frames=result.num_frames) as writer,
            ):
                for frames in result.frames:
                    raise_if_interrupted()
                    writer.write(frames)
                raise_if_interrupted()  # before the writer publishes the file
    except Interrupted as stop:
        print("interrupted", file=sys.stderr)
        return stop.exit_code
    except (EDTalkError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        (h, w), n, fps = result.size, writer.frames_written, result.fps
        sound = result.audio_path.name if result.audio_path else "none"
        print(f"wrote {save_path}: {n} frames, {n / fps:.2f} s, {w}x{h}, {fps:g} fps, soundtrack: {sound}")
    return 0


def run_demo(
    description: str, example: str, argv: list[str] | None, model: str, save_default: str, inputs: list[str], **defaults
) -> int:
    """A demo script's whole work: parse `argv` (`defaults` replace flag defaults, e.g. a sample mouth
    video or an emotion) and render with a `model` ('full' or 'lip_pose') pipeline; the exit code."""
    p = parser(description, example, save_default, inputs)
    p.set_defaults(**defaults)
    return render_to_file(p.parse_args(argv), model)
