"""What the demo scripts share: the common flags, and running a pipeline into an mp4 file."""

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .checkpoints import FULL, LIP_POSE
from .errors import EDTalkError
from .motion_template import check_template_path
from .options import PipelineOptions, RenderOptions, add_flags, fields_of, flag_names, from_args
from .output import Written, write_mp4
from .pipeline import TalkingHeadPipeline
from .signals import Interrupted, raise_if_interrupted, stop_on_signals
from .video_io import check_save_path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SPEECH = ROOT / "test_data" / "speech.wav"  # drives the mouth when no audio or mouth video is given
SAMPLE_PHOTO = ROOT / "test_data" / "astronaut.jpg"
SAMPLE_MOUTH_VIDEO = ROOT / "test_data" / "mouth_source.mp4"  # a real talking head (test_data/make_test_data.py)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description and the example as written, and appends each flag's default (if it has one)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "(default" not in text:
            text += " (default: %(default)s)"
        return text


# Flags of the demos' inputs that are not options fields (a demo names them in its INPUTS)
SOUNDTRACK = "soundtrack"  # --audio_driving_path as the soundtrack only (the video-driven demos)
FIX_POSE = "fix_pose"
EXPRESSION_FIELDS = ("exp", "exp_type", "exp_scale", "exp_from_audio", "audio2exp_path")
NO_EXPRESSION = "the lip-pose model keeps the source's expression (expression control: demo_EDTalk_A.py / _V.py)"


class Refused(argparse.Action):
    """A flag that this demo does not use: giving it ends the run with one line saying why."""

    def __init__(self, option_strings, dest, why: str, **kwargs):
        super().__init__(option_strings, dest, nargs="?", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        self.why = why

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(1, f"error: {option_string} does nothing in {parser.prog}: {self.why}\n")


def offered_fields(inputs: list[str]) -> set[str]:
    """The RenderOptions / PipelineOptions fields a demo with INPUTS `inputs` (flag names) uses."""
    by_flag = {flag.lstrip("-"): name for name, flag in flag_names(RenderOptions).items()}
    fields = {by_flag[name] for name in inputs if name in by_flag} | {"source", "paste_back"}
    if SOUNDTRACK in inputs:
        fields.add("audio")
    pipeline = set(fields_of(PipelineOptions)) - {"audio2lip_path", "audio2exp_path", "audio2pose_path"}
    if "audio_driving_path" in inputs:
        pipeline.add("audio2lip_path")
    if "exp_from_audio" in fields:
        pipeline.add("audio2exp_path")
    if "pose_from_audio" in fields:
        pipeline.add("audio2pose_path")
    return fields | pipeline


def parser(
    description: str, example: str, save_default: str, inputs: list[str], model: str = FULL
) -> argparse.ArgumentParser:
    """The argument parser of a demo: the flags every demo has plus its `inputs` (flag names without
    dashes: RenderOptions flags, 'soundtrack', 'fix_pose'), generated from edtalk/options.py. Flags of
    options the demo does not use are refused with one line. Default paths (the samples in test_data/,
    ckpts/, res/...) are the repository's, from any working directory."""
    save_default = str(ROOT / save_default)
    p = argparse.ArgumentParser(description=description, epilog=f"example:\n  {example}", formatter_class=HelpFormatter)
    offered = offered_fields(inputs)
    add_flags(p, RenderOptions, ["source"])
    p.set_defaults(source_path=str(SAMPLE_PHOTO))
    p.add_argument("--save_path", default=save_default, help="output .mp4 (H.264 + AAC, 25 fps)")
    p.set_defaults(default_save_path=save_default)  # its folder is made if missing; a given path's must exist
    add_flags(p, PipelineOptions, sorted(offered & set(fields_of(PipelineOptions))))
    if {"pose_driving_path", "exp_driving_path", "lip_driving_path"} & set(inputs):  # a mode with driving clips
        p.add_argument(
            "--save_motion",
            metavar="PATH",
            help="instead of rendering, save the motion of the --pose_driving_path clip (else of the expression, "
            "else of the mouth clip) as a motion template PATH.npz: mouth, pose and (full model) expression of every "
            "frame. Any --*_driving_path accepts the template in place of the clip: no decoding, detection, encoding",
        )
    official = p.add_argument_group("flags of the official EDTalk scripts, accepted so that their commands run")
    for flag, what in (("--need_crop_source_img", "the source is"), ("--need_crop_pose_video", "driving videos are")):
        official.add_argument(flag, action="store_true", help=f"no-op: {what} always cropped unless --no_crop")
    soundtrack = "soundtrack (default: the mouth video's own audio, if any)"
    add_flags(p, RenderOptions, sorted(offered - {"source"}), **({"audio": soundtrack} if SOUNDTRACK in inputs else {}))
    if FIX_POSE in inputs:
        p.add_argument(
            "--fix_pose", action="store_true", help="keep the source's head pose (ignore --pose_driving_path)"
        )
    for options in (RenderOptions, PipelineOptions):
        for name, flag in flag_names(options).items():
            if name not in offered:
                why = NO_EXPRESSION if model == LIP_POSE and name in EXPRESSION_FIELDS else "this demo does not use it"
                p.add_argument(flag, action=Refused, why=why)
    return p


def pipeline_options(args: argparse.Namespace, model: str) -> PipelineOptions:
    """The options of a `model` ('full' or 'lip_pose') pipeline from parsed flags. Jobs with equal
    options can share one pipeline (render_many.py)."""
    return from_args(PipelineOptions, args, model=model)


def render_options(args: argparse.Namespace) -> RenderOptions:
    """The clip named in parsed flags (an absent audio drives the mouth with the sample speech unless
    a mouth video does; --fix_pose keeps the source's pose)."""
    options = from_args(RenderOptions, args)
    fixed = getattr(args, FIX_POSE, False)
    audio = options.audio or (None if options.lip else SAMPLE_SPEECH)
    pose_from_audio = False if fixed else options.pose_from_audio
    return dataclasses.replace(
        options, audio=audio, pose=None if fixed else options.pose, pose_from_audio=pose_from_audio
    )


def render_file(pipe: TalkingHeadPipeline, args: argparse.Namespace, save_path: Path) -> Written:
    """Render the clip named in parsed flags `args` with `pipe` into `save_path` (already checked
    by check_save_path). Run it inside `stop_on_signals()`: a signal stops it between batches and
    the writer removes its unfinished file."""
    return write_mp4(pipe, save_path, lambda done, total: raise_if_interrupted(), render_options(args))


def save_motion_file(args: argparse.Namespace, model: str) -> str:
    """--save_motion: save the motion of the pose driving clip (else the expression clip, else the
    mouth clip) as a motion template; the line to report."""
    options = render_options(args)
    driver = options.pose or options.exp or options.lip
    if driver is None:
        raise EDTalkError("--save_motion saves a driving clip's motion: give --pose_driving_path (or another clip)")
    path = check_template_path(args.save_motion)
    template = TalkingHeadPipeline.from_options(pipeline_options(args, model)).save_motion(driver, path)
    parts = ", ".join(template.coefficients)
    return f"wrote {path}: motion of {template.source} ({parts}), {template.frames} frames, {template.fps:g} fps"


def render_to_file(args: argparse.Namespace, model: str) -> int:
    """Render the clip named in `args` with a `model` ('full' or 'lip_pose') pipeline into
    args.save_path (or, with --save_motion, save a driving clip's motion); 0 on success.

    Notes (e.g. about an optional checkpoint not found) are logged at info level, shown unless
    --quiet; warnings (e.g. a silent output) are shown either way. User mistakes end with a one-line
    message on stderr and exit code 1; SIGINT / SIGTERM end with "interrupted" and 130 / 143. In
    either case nothing is left behind: no output file, no temporary files.
    """
    quiet = args.quiet
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    logger = logging.getLogger("edtalk")
    level = logger.level
    logger.setLevel(logging.WARNING if quiet else logging.INFO)  # for this run only (a library caller's stays)

    def work() -> str:
        if getattr(args, "save_motion", None):
            return save_motion_file(args, model)
        save_path = check_save_path(args.save_path, create_folder=args.save_path == args.default_save_path)
        pipe = TalkingHeadPipeline.from_options(pipeline_options(args, model))
        return str(render_file(pipe, args, save_path))

    try:
        return run_command(work, quiet)
    finally:
        logger.setLevel(level)


def run_command(work: Callable[[], str], quiet: bool) -> int:
    """Run a command-line program's `work` (it returns the summary line) inside `stop_on_signals()`:
    the exit code. A user mistake prints `error: ...` (1), SIGINT / SIGTERM print `interrupted`
    (130 / 143); otherwise the summary is printed unless `quiet` (0)."""
    try:
        with stop_on_signals():
            summary = work()
    except Interrupted as stop:
        print("interrupted", file=sys.stderr)
        return stop.exit_code
    except (EDTalkError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not quiet:
        print(summary)
    return 0


def run_demo(
    description: str, example: str, argv: list[str] | None, model: str, save_default: str, inputs: list[str], **defaults
) -> int:
    """A demo script's whole work: parse `argv` (`defaults` replace flag defaults, e.g. a sample mouth
    video or an emotion) and render with a `model` ('full' or 'lip_pose') pipeline; the exit code."""
    p = parser(description, example, save_default, inputs, model)
    p.set_defaults(**defaults)
    return render_to_file(p.parse_args(argv), model)
