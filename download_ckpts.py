#!/usr/bin/env python3
"""Fetch the official EDTalk checkpoints from Hugging Face into ckpts/ and check them by loading.

    python download_ckpts.py                 # download what is missing, then verify everything
    python download_ckpts.py --check         # only verify the files already in ckpts/
    python download_ckpts.py --force         # download again even if present
    python download_ckpts.py --face_sr       # also GFPGANv1.4.pth (GitHub release) for --face_sr

Without network access it says in one line what to download by hand and where to put it.
"""

import argparse
import fnmatch
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from edtalk.checkpoints import (
    CHECKPOINTS,
    DEFAULT_CKPT_DIR,
    EXPRESSION_DIR,
    EXPRESSIONS,
    FULL,
    HF_REPO,
    HF_URL,
    LIP_POSE,
    load_audio2lip,
    load_expression_weights,
    load_generator,
)
from edtalk.errors import EDTalkError
from edtalk.gfpgan import GFPGAN_FILE, GFPGAN_URL, gfpgan_where_to_get, load_gfpgan

MANUAL = (
    f"download {', '.join(CHECKPOINTS)} and {EXPRESSION_DIR}/*.npy by hand from {HF_URL} "
    "and put them in {ckpt_dir}/ (layout in ckpts/README.md)"
)


def wanted_files(repo_files: list[str]) -> dict[str, str]:
    """Map repository paths to local paths (relative to the checkpoint folder) for the files we use."""
    out = {}
    for path in repo_files:
        name = path.rsplit("/", 1)[-1]
        if name in CHECKPOINTS:
            out[path] = name
        elif fnmatch.fnmatch(path, f"*{EXPRESSION_DIR}/*.npy"):
            out[path] = f"{EXPRESSION_DIR}/{name}"
    return out


def check_reachable(host: str = "huggingface.co") -> None:
    """Fail fast (instead of the hub client's minute of retries) when the host name does not resolve."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        raise ConnectionError("HF_HUB_OFFLINE is set")
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # a proxy resolves names for us
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        raise ConnectionError(f"{host}: {exc.strerror or exc}") from None


def missing_files(ckpt_dir: Path) -> list[str]:
    """The expected files (relative paths) that are not in the checkpoint folder yet."""
    expected = [*CHECKPOINTS, *(f"{EXPRESSION_DIR}/{name}.npy" for name in EXPRESSIONS)]
    return [name for name in expected if not (ckpt_dir / name).exists()]


def download(ckpt_dir: Path, force: bool) -> None:
    """Download the missing files (all with `force`); raises when the hub is unreachable."""
    if not force and not missing_files(ckpt_dir):
        return
    check_reachable()
    from huggingface_hub import hf_hub_download, list_repo_files
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

    files = wanted_files(list_repo_files(HF_REPO))
    if not files:
        raise RuntimeError(f"no EDTalk checkpoints found in {HF_URL}")
    with tempfile.TemporaryDirectory(dir=ckpt_dir, prefix=".download-") as tmp:
        for repo_path, local in sorted(files.items()):
            target = ckpt_dir / local
            if target.exists() and not force:
                continue
            print(f"downloading {repo_path} -> {target}")
            fetched = Path(hf_hub_download(HF_REPO, repo_path, local_dir=tmp))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(fetched), target)  # whole file only: never a half-written checkpoint


def download_gfpgan(ckpt_dir: Path, force: bool) -> None:
    """Fetch GFPGANv1.4.pth from its GitHub release into ckpt_dir (atomically), unless present."""
    import urllib.request

    path = ckpt_dir / GFPGAN_FILE
    if path.exists() and not force:
        return
    print(f"Downloading {GFPGAN_URL} ...")
    with tempfile.TemporaryDirectory(dir=ckpt_dir) as tmp:
        part = Path(tmp) / GFPGAN_FILE
        urllib.request.urlretrieve(GFPGAN_URL, part)
        os.replace(part, path)


def verify(ckpt_dir: Path, face_sr: bool = False) -> tuple[list[str], list[str]]:
    """Load every checkpoint that is there (and GFPGAN with face_sr); print one line per file;
    return (the problems found, the files that are not there)."""
    problems, missing = [], []
    checks = [
        ("EDTalk.pt", lambda p: load_generator(p, kind=FULL)),
        ("EDTalk_lip_pose.pt", lambda p: load_generator(p, kind=LIP_POSE)),
        ("Audio2Lip.pt", load_audio2lip),
    ]
    if face_sr:
        checks.append((GFPGAN_FILE, load_gfpgan))
    descriptions = CHECKPOINTS | {GFPGAN_FILE: "GFPGAN face restoration (--face_sr)"}
    for name, load in checks:
        path = ckpt_dir / name
        if not path.exists():
            print(f"  missing  {path}: {descriptions[name]}")
            missing.append(name)
            continue
        try:
            load(path)
            print(f"  ok       {path} ({path.stat().st_size / 2**20:.0f} MB): {descriptions[name]}")
        except EDTalkError as exc:
            print(f"  problem  {exc}")
            problems.append(str(exc))
    absent = [f"{EXPRESSION_DIR}/{e}.npy" for e in EXPRESSIONS if not (ckpt_dir / EXPRESSION_DIR / f"{e}.npy").exists()]
    for name in absent:
        print(f"  missing  {ckpt_dir / name}: predefined emotion (--exp_type)")
    missing += absent
    if len(absent) < len(EXPRESSIONS):
        try:
            found = load_expression_weights(ckpt_dir / EXPRESSION_DIR)
            print(f"  ok       {ckpt_dir / EXPRESSION_DIR}: {', '.join(found)}")
        except EDTalkError as exc:
            print(f"  problem  {exc}")
            problems.append(str(exc))
    return problems, missing


def summary(problems: list[str], missing: list[str], ckpt_dir: Path) -> str:
    """The last line of a check: all good, or which files do not load and which are not there."""
    if not problems and not missing:
        return "all checkpoints load"
    parts = [f"{len(problems)} file(s) do not load (see above)"] if problems else []
    if missing:
        parts.append(
            f"missing {', '.join(missing)}: run python download_ckpts.py, or download them by hand from "
            f"{HF_URL} into {ckpt_dir}/ (layout in ckpts/README.md)"
        )
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--ckpt_dir", default=str(DEFAULT_CKPT_DIR), help="where the checkpoints go (default: the repository's ckpts/)"
    )
    parser.add_argument("--check", action="store_true", help="only verify the files already there")
    parser.add_argument("--force", action="store_true", help="download even the files already present")
    parser.add_argument("--face_sr", action="store_true", help=f"also fetch and check {GFPGAN_FILE} (for --face_sr)")
    args = parser.parse_args(argv)
    ckpt_dir = Path(args.ckpt_dir)
    if not args.check:
        created = not ckpt_dir.exists()
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        try:
            download(ckpt_dir, args.force)
        except Exception as exc:  # any hub/network failure ends in the same one-line instruction
            if created and not any(ckpt_dir.iterdir()):
                ckpt_dir.rmdir()  # an offline run leaves no empty folder behind
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            print(f"Cannot reach Hugging Face ({reason}): " + MANUAL.format(ckpt_dir=ckpt_dir), file=sys.stderr)
            return 1
        if args.face_sr:
            try:
                download_gfpgan(ckpt_dir, args.force)
            except Exception as exc:  # network or HTTP failure: say what to do by hand
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
                print(
                    f"Cannot fetch {GFPGAN_FILE} ({reason}): {gfpgan_where_to_get(ckpt_dir / GFPGAN_FILE)}",
                    file=sys.stderr,
                )
                return 1
    print(f"Checking {ckpt_dir}/:")
    problems, missing = verify(ckpt_dir, args.face_sr)
    print(summary(problems, missing, ckpt_dir))
    return 1 if problems or missing else 0


if __name__ == "__main__":
    sys.exit(main())
