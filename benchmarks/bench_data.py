#!/usr/bin/env python3
"""Pre-processing and data-loading speed on this machine.

    python benchmarks/bench_data.py [--minutes 1] [--video talking.mp4] [--batches 20]

Prints seconds of pre-processing per minute of video (face tracking, cropping, landmarks, mel,
lmdb writes) and DataLoader throughput (samples/s) at 0, 2 and 4 workers for the pair and the
audio-window datasets.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
from torch.utils.data import DataLoader, RandomSampler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_preprocess.lmdb_store import LmdbReader  # noqa: E402
from data_preprocess.prepare_dataset import PrepareConfig, prepare  # noqa: E402
from train.datasets import AudioWindowDataset, PairDataset  # noqa: E402

DEFAULT_VIDEO = ROOT / "tests" / "fixtures" / "media" / "pose_source1.mp4"


def make_raw_video(source: Path, audio: Path, seconds: float, out: Path) -> None:
    """Loop a talking clip and a speech file to `seconds` (a stand-in for a long HDTF video)."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source)]
    cmd += ["-stream_loop", "-1", "-i", str(audio), "-t", str(seconds), "-map", "0:v", "-map", "1:a"]
    cmd += ["-c:v", "libx264", "-c:a", "aac", str(out)]
    subprocess.run(cmd, check=True)


def loader_throughput(dataset, workers: int, batches: int, batch_size: int) -> float:
    sampler = RandomSampler(dataset, replacement=True, num_samples=(batches + 1) * batch_size)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers)
    seen, start = 0, None
    for i, batch in enumerate(loader):
        if i == 1:  # the first batch includes worker start-up
            start, seen = time.perf_counter(), 0
        seen += len(next(iter(batch.values())))
        if i == batches:
            break
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=1.0, help="length of the raw video to pre-process")
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="a talking-head clip to loop")
    parser.add_argument("--audio", type=Path, default=ROOT / "test_data" / "speech.wav")
    parser.add_argument("--batches", type=int, default=20, help="batches timed per loader setting")
    parser.add_argument("--batch_size", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "set"
        raw.mkdir()
        make_raw_video(args.video, args.audio, args.minutes * 60, raw / "speaker.mp4")
        start = time.perf_counter()
        counts = prepare(raw, out, PrepareConfig(test_fraction=0.0), progress=False)
        seconds = time.perf_counter() - start
        names = LmdbReader(out / "lmdb").names()
        (out / "lists" / "all.json").write_text(json.dumps(names))
        print(f"pre-processing: {seconds / args.minutes:.1f} s per minute of video ({counts['clips']} clips)")
        print(f"{'dataset':<20} {'workers':>7} {'samples/s':>10}")
        for label, dataset in (
            ("pairs", PairDataset(out, "all")),
            ("audio windows (5)", AudioWindowDataset(out, "all")),
        ):
            for workers in (0, 2, 4):
                rate = loader_throughput(dataset, workers, args.batches, args.batch_size)
                print(f"{label:<20} {workers:>7} {rate:>10.1f}")


if __name__ == "__main__":
    main()
