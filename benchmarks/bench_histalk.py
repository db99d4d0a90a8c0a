#!/usr/bin/env python3
"""HiSTalk inference speed: a 10-s clip, speech -> vertices (mel encoder) -> shaded render -> mp4.

    python benchmarks/bench_histalk.py [--seconds 10] [--size 256] [--threads 2]

Untrained networks of the paper's size on meshes of BIWI's and VOCASET's vertex counts (flat grid
faces with the same number of vertices and about twice as many triangles: the cost depends on the
counts, not on the shapes). Prints one row per topology: seconds per stage and the real-time factor
(clip seconds / total seconds; above 1 is faster than real time). Timed after a warm-up call: a
process's first mel spectrogram costs a few seconds once (librosa's start-up), as in the 2D demos.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edtalk.video_io import VideoWriter  # noqa: E402
from histalk.inference import MeshAnimator, build_model  # noqa: E402
from histalk.landmarks import sampled_landmarks  # noqa: E402
from histalk.render import MeshRenderer  # noqa: E402
from histalk.speech import load_speech  # noqa: E402
from histalk.synthetic import grid_face  # noqa: E402
from networks.histalk import HiSTalkConfig  # noqa: E402

TOPOLOGIES = {"biwi": ((150, 156), 25.0), "vocaset": ((71, 71), 30.0)}  # 23400 / 5041 vertices


def bench(name: str, seconds: float, size: int, folder: Path) -> dict:
    (rows, cols), fps = TOPOLOGIES[name]
    vertices, faces = grid_face(rows, cols)
    cfg = HiSTalkConfig(num_vertices=len(vertices), num_styles=6, fps=fps, period=round(fps))
    model = build_model(cfg, sampled_landmarks(vertices, cfg.num_landmarks, None))
    animator = MeshAnimator(model, [f"S{i}" for i in range(6)], faces, torch.device("cpu"))
    t = np.arange(int(seconds * 16000)) / 16000
    wav_path = folder / "speech.wav"
    soundfile.write(
        wav_path, (0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(3 * t))).astype(np.float32), 16000
    )
    animator.predict(np.zeros(16000, np.float32), vertices, "S0")  # warm-up (librosa's first call: seconds)
    start = time.perf_counter()
    frames = animator.predict(load_speech(wav_path), vertices, "S0")
    network = time.perf_counter() - start
    renderer = MeshRenderer(faces, vertices, size)
    render = write = 0.0
    with VideoWriter(folder / f"{name}.mp4", fps=fps, audio_path=wav_path, num_frames=len(frames)) as writer:
        for frame in frames:
            t0 = time.perf_counter()
            image = renderer.render(frame)
            t1 = time.perf_counter()
            writer.write(image)
            render, write = render + t1 - t0, write + time.perf_counter() - t1
    total = time.perf_counter() - start
    return {"mesh": name, "vertices": len(vertices), "triangles": len(faces), "frames": len(frames),
            "network_s": network, "render_s": render, "encode_s": write, "total_s": total,
            "realtime_x": seconds / total}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=256, help="video width and height")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.seconds:g}-s clip, {args.size}x{args.size} px, {args.threads} threads")
    print("| mesh | vertices | triangles | frames | network s | render s | mp4 s | total s | x real time |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name in TOPOLOGIES:
            r = bench(name, args.seconds, args.size, Path(tmp))
            cells = [r["mesh"], r["vertices"], r["triangles"], r["frames"]]
            cells += [f"{r[k]:.2f}" for k in ("network_s", "render_s", "encode_s", "total_s", "realtime_x")]
            print("| " + " | ".join(map(str, cells)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
