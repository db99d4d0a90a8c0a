#!/usr/bin/env python3
"""Live-mode benchmark: stream speech through a LiveSession in real time and time the frames.

    python benchmarks/bench_live.py --ckpt_dir ckpts --device cpu --seconds 20 --json out.json

The speech sample (test_data/speech.wav, looped) arrives at its own pace: every `--chunk_ms` of
audio becomes available when the wall clock reaches its end, and the session is given all audio
that has arrived whenever it is free (so a slow session receives bigger chunks, as a live one
would). Written figures:

  fps              frames delivered per second of audio
  latency_p50_ms,  for every chunk: from its arrival to the delivery of the first frame that shows
  latency_p95_ms   it (its first video frame, or the next delivered one when that was dropped);
                   includes the look-ahead (lookahead_ms) and the compute
  max_drift_ms     the spread (max - min) of the video's lag behind the live audio over the run
                   (each frame's delivery minus the arrival of its last sample): a session falling
                   behind makes it grow without bound; frames' timestamps are the audio's own
  dropped_frames   frames the pacer skipped to keep up

--ckpt_dir without the checkpoints and --synthetic: synthetic weights (as the tests make them)
are written under .cache/bench_live_weights (random networks: the timings hold, the faces do not).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edtalk import audio as audio_io  # noqa: E402
from edtalk.checkpoints import LIP_POSE  # noqa: E402
from edtalk.device import precision_name  # noqa: E402
from edtalk.errors import EDTalkError  # noqa: E402
from edtalk.live import LiveOptions, LiveSession  # noqa: E402
from edtalk.live.features import EXACT_LOOKAHEAD, FRAME_SAMPLES  # noqa: E402
from edtalk.options import PipelineOptions, add_flags, from_args  # noqa: E402
from edtalk.video_io import read_image  # noqa: E402

SPEECH = ROOT / "test_data" / "speech.wav"
PHOTO = ROOT / "tests" / "fixtures" / "media" / "identity_source.jpg"  # an aligned 256x256 face crop
SYNTHETIC = ROOT / ".cache" / "bench_live_weights"
RATE = audio_io.DEFAULT.sample_rate


def synthetic_weights() -> Path:
    """Synthetic official-format checkpoints (tests/synthetic_weights.py), written once."""
    from tests.synthetic_weights import write_checkpoints

    if not (SYNTHETIC / "Audio2Lip.pt").is_file():
        write_checkpoints(SYNTHETIC)
    return SYNTHETIC


def run(session: LiveSession, speech: np.ndarray, chunk: int) -> dict:
    """Stream `speech` in real time; -> the figures (see the module docstring)."""
    delivered: dict[int, float] = {}
    sent, start = 0, time.perf_counter()
    while sent < len(speech):
        now = time.perf_counter() - start
        arrived = min(len(speech), int(now * RATE) // chunk * chunk)
        if arrived <= sent:
            time.sleep((sent + chunk) / RATE - now)
            continue
        frames = session.push(speech[sent:arrived], RATE)
        sent = arrived
        done = time.perf_counter() - start
        delivered.update((f.index, done) for f in frames)
    frames = session.close()
    delivered.update((f.index, time.perf_counter() - start) for f in frames)
    indices = np.array(sorted(delivered))
    times = np.array([delivered[i] for i in indices])
    latencies = []
    for end in range(chunk, len(speech) + 1, chunk):  # chunk [end - chunk, end) arrives at end / RATE
        first = np.searchsorted(indices, (end - chunk) // FRAME_SAMPLES)
        if first < len(indices):
            latencies.append(times[first] - end / RATE)
    lag = times - (indices + 1) * FRAME_SAMPLES / RATE
    stats = session.stats
    return {
        "fps": len(indices) / (len(speech) / RATE),
        "latency_p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "latency_p95_ms": 1000 * float(np.percentile(latencies, 95)),
        "max_drift_ms": 1000 * float(lag.max() - lag.min()),
        "dropped_frames": stats["dropped"],
        "frames": stats["frames"],
        "rendered": stats["rendered"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p, PipelineOptions, ["ckpt_dir", "device", "precision", "backend"])
    add_flags(p, LiveOptions, ["latency", "silence_db", "pose", "pose_temperature"])
    p.add_argument("--seconds", type=float, default=20.0, help="seconds of speech to stream (default: 20)")
    p.add_argument("--chunk_ms", type=int, default=20, help="audio arrives in chunks of this many ms (default: 20)")
    p.add_argument("--synthetic", action="store_true", help="use synthetic weights when --ckpt_dir lacks them")
    p.add_argument("--json", type=Path, help="write the figures to this file")
    args = p.parse_args(argv)
    try:
        if args.seconds <= 0 or args.chunk_ms <= 0:
            raise EDTalkError("--seconds and --chunk_ms must be positive")
        ckpt_dir = Path(args.ckpt_dir)
        if args.synthetic and not (ckpt_dir / "EDTalk_lip_pose.pt").is_file():
            ckpt_dir = synthetic_weights()
        pipeline = from_args(PipelineOptions, args, ckpt_dir=ckpt_dir, model=LIP_POSE, crop=False)
        live = from_args(LiveOptions, args)
        speech = audio_io.load_wav(SPEECH)
        speech = np.tile(speech, int(np.ceil(args.seconds * RATE / len(speech))))[: int(args.seconds * RATE)]
        session = LiveSession(read_image(PHOTO), pipeline, live)
        figures = run(session, speech, args.chunk_ms * RATE // 1000)
    except EDTalkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    exact = live.latency == "exact"
    figures.update(
        lookahead_ms=1000 * ((EXACT_LOOKAHEAD + FRAME_SAMPLES) if exact else 0) / RATE,
        latency=live.latency,
        device=str(session.device),
        precision=precision_name(session.renderer.precision),
        backend=session.renderer.name,
        seconds=args.seconds,
        chunk_ms=args.chunk_ms,
        threads=torch.get_num_threads(),
        load_average=os.getloadavg()[0],
    )
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
