"""Flags shared by `python -m evaluation` and `python -m evaluation.protocol`, and their error handling."""

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from edtalk.errors import EDTalkError

from .runner import SYNC_CROPS, EvalConfig


def parser_from_doc(prog: str, doc: str) -> argparse.ArgumentParser:
    """An argument parser for a module whose docstring is a summary paragraph, then an example."""
    summary, example = doc.split("\n\n")[:2]
    return argparse.ArgumentParser(
        prog=prog,
        description=summary,
        epilog="example: " + example.strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_metric_flags(parser: argparse.ArgumentParser) -> None:
    """The weights and settings of the metrics (each weights file is optional: its metric is then skipped)."""
    group = parser.add_argument_group("metric weights (user-supplied released files; nothing downloads)")
    group.add_argument("--syncnet", help="syncnet_v2.model (joonson/syncnet_python): enables LSE-C and LSE-D")
    group.add_argument("--inception", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth: enables FID")
    group.add_argument("--arcface", help="ArcFace ONNX model (e.g. insightface w600k_r50.onnx): enables CSIM")
    group.add_argument("--sync_expert", help="our lip-sync expert checkpoint (train/train_syncnet.py): expert-* scores")
    parser.add_argument(
        "--sync_crop",
        choices=SYNC_CROPS,
        default=EvalConfig.sync_crop,
        help="SyncNet input: 'resize' the whole frame to 224x224 (aligned face crops, as Wav2Lip's LRS "
        "script) or cut a 'face' track from our landmarks (uncropped videos) (default: %(default)s)",
    )
    parser.add_argument("--no_identity_fallback", action="store_true", help="no ID-dlib score without --arcface")
    parser.add_argument(
        "--sample_stride", type=int, default=1, help="CPBD and identity on every n-th frame (default: %(default)s)"
    )
    parser.add_argument(
        "--device", default=EvalConfig.device, help="cpu or cuda for the metric networks (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    if args.sample_stride < 1:
        raise EDTalkError(f"--sample_stride must be at least 1, got {args.sample_stride}")
    return EvalConfig(
        syncnet=args.syncnet,
        inception=args.inception,
        arcface=args.arcface,
        sync_expert=args.sync_expert,
        sync_crop=args.sync_crop,
        identity_fallback=not args.no_identity_fallback,
        sample_stride=args.sample_stride,
        device=args.device,
    )


def check_out_folder(out: str | Path) -> Path:
    """--out as a Path, checked before any scoring: EDTalkError (one line) when it names a file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EDTalkError(f"--out {out} is a file: give a folder for the results")
    return out


def run(body: Callable[[], int]) -> int:
    """Run a command body: a user error (missing file, wrong weights) is one line on stderr and exit code 1."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return body()
    except EDTalkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. --out names a file, or a folder that cannot be written
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
