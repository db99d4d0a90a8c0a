"""What the demo scripts share: the common flags, and running a pipeline into an mp4 file."""

import argparse
import logging
import sys
from pathlib import Path

from .checkpoints import EXPRESSIONS
from .errors import EDTalkError
from .pipeline import TalkingHeadPipeline
from .video_io import VideoWriter

# Input flags (official names) -> argparse settings; each demo picks the ones its mode takes.
INPUT_FLAGS = {
    "audio_driving_path": dict(default="test_data/speech.wav", help="speech that drives the mouth (any audio format)"),
    "soundtrack": dict(dest="audio_driving_path", help="soundtrack (default: the mouth video's own audio, if any)"),
    "lip_driving_path": dict(help="mouth-driving video (the output then has its length)"),
    "pose_driving_path": dict(help="head-pose video or image (default: the head stays still)"),
    "fix_pose": dict(action="store_true", help="keep the source's head pose (ignore --pose_driving_path)"),
    "exp_driving_path": dict(help="expression reference image or video"),
    "exp_type": dict(help=f"predefined emotion instead: {', '.join(EXPRESSIONS)}"),
}


def parser(description: str, example: str, save_default: str, inputs: list[str]) -> argparse.ArgumentParser:
    """An argument parser with the flags every demo has plus the named INPUT_FLAGS."""
    p = argparse.ArgumentParser(
        description=description,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--source_path",
        default="test_data/astronaut.jpg",
        help="identity photo, or a video to re-dub frame by frame (any size: the face is found and aligned)",
    )
    p.add_argument("--save_path", default=save_default, help="output .mp4 (H.264 + AAC, 25 fps)")
    p.add_argument("--ckpt_dir", default="ckpts", help="folder with the checkpoints (see ckpts/README.md)")
    p.add_argument(
        "--generator_ckpt",
        help="generator checkpoint to use instead of the one in --ckpt_dir (e.g. fine-tuned on one person)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--batch_size", type=int, help="frames per network call (default: 1 on CPU, 16 on a GPU)")
    p.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="network precision (default fp32)"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the decoder (faster long runs on GPUs)")
    p.add_argument("--no_crop", action="store_true", help="inputs are already aligned 256x256 face crops")
    p.add_argument("--paste_back", action="store_true", help="put the animated face back into the full original frame")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    for name in inputs:
        settings = dict(INPUT_FLAGS[name])
        flag = "--audio_driving_path" if name == "soundtrack" else f"--{name}"
        p.add_argument(flag, **settings)
    return p


def render_to_file(args: argparse.Namespace, model: str) -> int:
    """Render the inputs named in `args` with a `model` ('full' or 'lip_pose') pipeline into
    args.save_path; 0 on success.

    User mistakes end with a one-line message on stderr and exit code 1; nothing is written then.
    """
    logging.basicConfig(format="%(message)s", level=logging.ERROR if args.quiet else logging.WARNING)
    save_path = Path(args.save_path)
    inputs = {
        "audio": args.audio_driving_path,
        "lip": getattr(args, "lip_driving_path", None),
        "pose": None if getattr(args, "fix_pose", False) else args.pose_driving_path,
        "exp": getattr(args, "exp_driving_path", None),
        "exp_type": getattr(args, "exp_type", None),
    }
    try:
        if save_path.suffix.lower() != ".mp4":
            raise EDTalkError(f"--save_path must end in .mp4, got {save_path}")
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
        )
        result = pipe.render(args.source_path, paste_back=args.paste_back, **inputs)
        with VideoWriter(save_path, fps=result.fps, audio_path=result.audio_path) as writer:
            for frames in result.frames:
                writer.write(frames)
    except (EDTalkError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        h, w = result.size
        print(
            f"wrote {save_path}: {writer.frames_written} frames ({writer.frames_written / result.fps:.2f} s), {w}x{h}"
        )
    return 0
