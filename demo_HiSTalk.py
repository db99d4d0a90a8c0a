#!/usr/bin/env python3
"""HiSTalk: speech -> animated 3D face mesh. Writes a shaded, lit render (H.264 + AAC with the speech,
at the dataset's fps), the vertices beside it (<save_path>.npy, frames x V*3) and, with
--save_meshes, a PLY per frame.

    python demo_HiSTalk.py --model_path RUN/checkpoints/best.pt --audio_path a.wav \\
        --template_path SET/templates.pkl --subject F2 --style F2 --device cpu --save_path out/F2_e05.mp4
"""

import argparse
import sys

from edtalk.cli import run_command
from edtalk.device import resolve_device
from edtalk.video_io import check_save_path
from histalk import MeshAnimator
from histalk.render import DEFAULT_SIZE


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_path", required=True, help="train/train_histalk.py checkpoint (best.pt)")
    parser.add_argument("--audio_path", required=True, help="speech, any audio format and sample rate")
    parser.add_argument("--template_path", required=True, help="templates.pkl (with --subject) or a .ply/.obj mesh")
    parser.add_argument("--subject", help="the template's subject in templates.pkl")
    parser.add_argument("--style", "--condition", dest="style", help="training subject whose speaking style to use")
    parser.add_argument("--save_path", default="res/demo_HiSTalk.mp4", help="output mp4 (the .npy goes beside it)")
    parser.add_argument("--save_meshes", help="folder for one PLY mesh per frame")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--size", type=int, default=DEFAULT_SIZE, help="video width and height in pixels (cost grows with the area)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress, no summary")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"\rrendering {done}/{total} frames", end="\n" if done == total else "", file=sys.stderr, flush=True)

    def work() -> str:
        save_path = check_save_path(args.save_path, create_folder=True)
        animator = MeshAnimator.load(args.model_path, resolve_device(args.device))
        result = animator.render(
            args.audio_path,
            save_path,
            args.template_path,
            subject=args.subject,
            style=args.style,
            save_meshes=args.save_meshes,
            on_progress=progress,
            size=args.size,
        )
        return str(result)

    return run_command(work, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
