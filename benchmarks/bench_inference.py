#!/usr/bin/env python3
"""Inference speed and memory, ours against the official way of working, side by side.

    python benchmarks/bench_inference.py --seconds 2 --baseline --json res/bench.json
    python benchmarks/bench_inference.py --seconds 600 --max_frames 50 --modes lip_pose   # memory, 10-min clip

For each mode (audio-driven full model, video-driven full model, lip-pose model) it reports
generator frames/s at batch 1 and at the best batch, end-to-end seconds of compute per second of
output video (audio features, driver decoding, generation, H.264 encoding; model loading
excluded) and peak memory (RSS sampled during the run). `--baseline` also runs the official way
of working in the same process: one frame per generator call, the source re-encoded for every
frame, every driver frame encoded again for each output frame, all frames held until the end and
min-max rescaled, then written. Inputs are synthetic 256x256 crops (as the official scripts
require) and a speech clip looped to `--seconds`; by default driving videos are as long as the output, the
least favourable case for our caching (`--driver_seconds` makes the pose and expression videos
shorter; both runs then play them back and forth). Without checkpoints in --ckpt_dir, random weights of the
official shapes are used (speed does not depend on the values). `--face_sr` renders with GFPGAN
face restoration (512x512 output; random GFPGAN weights without ckpts/GFPGANv1.4.pth) and also
reports the restoration's own cost per frame (landmarks, alignment, network, paste-back). With
the audio_full mode, `pose_from_audio` and `exp_from_audio` rows time predicting the head pose
(Audio2Pose sampling) and the expression (Audio2Exp) from the audio, streamed as the pipeline does
(random weights without ckpts/Audio2Pose.pt / Audio2Exp.pt), per frame and as a share of that
mode's end-to-end time.

Each mode runs on every backend of `--backend` (torch, openvino, torch+compile: PyTorch with the
decoder torch.compile'd, torch+graphs: PyTorch at batch 1 with the decoder replayed as a CUDA graph;
default torch,openvino where OpenVINO is installed and the device is the CPU)
at every precision of `--precision` (default fp32 and auto, the pipeline's default: bf16 where the
hardware computes bf16 natively); a row per backend and precision gives its speed and the PSNR of its
rendered frames (the first `--psnr_frames`, 8-bit, before H.264 encoding) against the first backend's
fp32 ones. OpenVINO exports and compiles its models on first use (then reads its cache): the warm-up
before each timing absorbs that, and the end-to-end rows run after it. Peak RSS is the process's, so
a later row includes what earlier ones left loaded. The official way of working always runs in
PyTorch fp32, once per mode.
"""

import argparse
import gc
import itertools
import json
import math
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import soundfile
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import edtalk  # noqa: E402
from edtalk import audio as audio_io  # noqa: E402
from edtalk.backends import openvino_available  # noqa: E402
from edtalk.device import PRECISIONS, precision_name, synchronize  # noqa: E402
from edtalk.gfpgan import GFPGAN_FILE  # noqa: E402
from edtalk.images import to_tensor  # noqa: E402
from edtalk.memory import release_free_memory  # noqa: E402
from edtalk.motion import pose_track  # noqa: E402
from edtalk.pipeline import TalkingHeadPipeline  # noqa: E402
from edtalk.rendering import pingpong  # noqa: E402
from edtalk.video_io import VideoWriter, iter_frames, read_image  # noqa: E402
from networks import EDTALK, LIP_POSE, Audio2Lip, Generator  # noqa: E402
from networks.audio2exp import Audio2Exp  # noqa: E402
from networks.audio2pose import Audio2Pose  # noqa: E402
from networks.gfpgan import GFPGANv1Clean  # noqa: E402

MODES = {  # mode -> (model, inputs)
    "audio_full": ("full", ("audio", "pose", "exp")),
    "video_full": ("full", ("lip", "pose", "exp")),
    "lip_pose": ("lip_pose", ("audio", "pose")),
}
BACKENDS = {  # benchmark backend -> the pipeline's options
    "torch": {"backend": "torch"},
    "openvino": {"backend": "openvino"},
    "torch+compile": {"backend": "torch", "compile": True},  # the decoder torch.compile'd
    "torch+graphs": {"backend": "torch", "cuda_graphs": True, "batch_size": 1},  # CUDA graphs decode at batch 1
}


class RssMonitor:
    """Peak resident memory (MB) of this process while the block runs, sampled every 10 ms."""

    def __enter__(self):
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _watch(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20


def make_inputs(folder: Path, seconds: float, driver_seconds: float, with_lip: bool) -> dict[str, Path]:
    """A 256x256 source crop, speech looped to `seconds`, a mouth video as long, and pose and
    expression videos of `driver_seconds` (moving 256x256 crops)."""
    face = edtalk.face_align.FaceAligner().align(read_image(ROOT / "test_data" / "astronaut.jpg")).crop
    cv2.imwrite(str(folder / "source.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    speech, sr = soundfile.read(ROOT / "test_data" / "speech.wav", dtype="float32")
    n = int(seconds * sr)
    soundfile.write(folder / "speech.wav", np.resize(speech, n), sr)
    for name, speed, length in (("lip", 1.0, seconds), ("pose", 0.6, driver_seconds), ("exp", 0.3, driver_seconds)):
        if name == "lip" and not with_lip:
            continue
        with VideoWriter(folder / f"{name}.mp4") as writer:
            for t in range(max(1, int(length * 25))):
                angle, shift = 6 * np.sin(speed * t / 8), 8 * np.cos(speed * t / 11)
                m = cv2.getRotationMatrix2D((128, 128), angle, 1.0 + 0.03 * np.sin(speed * t / 5))
                m[0, 2] += shift
                writer.write(cv2.warpAffine(face, m, (256, 256), borderMode=cv2.BORDER_REFLECT))
    return {"source": folder / "source.png", "audio": folder / "speech.wav"} | {
        k: folder / f"{k}.mp4" for k in ("lip", "pose", "exp") if k != "lip" or with_lip
    }


def checkpoints(ckpt_dir: Path, tmp: Path, face_sr: bool) -> tuple[Path, bool]:
    """The user's checkpoint folder if complete, else one with random weights of the official shapes."""
    needed = [*edtalk.CHECKPOINTS, *([GFPGAN_FILE] if face_sr else [])]
    if all((ckpt_dir / name).is_file() for name in needed):
        return ckpt_dir, False
    folder = tmp / "random_ckpts"
    folder.mkdir()
    torch.save({"gen": Generator(EDTALK).state_dict()}, folder / "EDTalk.pt")
    torch.save({"gen": Generator(LIP_POSE).state_dict()}, folder / "EDTalk_lip_pose.pt")
    torch.save({"audio2lip": Audio2Lip().state_dict()}, folder / "Audio2Lip.pt")
    if face_sr:
        torch.save({"params_ema": GFPGANv1Clean().state_dict()}, folder / GFPGAN_FILE)
    return folder, True


def restoration_ms(pipe: TalkingHeadPipeline, repeats: int = 2) -> float:
    """Milliseconds per 256x256 frame of --face_sr alone (landmarks, alignment, GFPGAN, paste-back)."""
    crop = cv2.resize(read_image(ROOT / "tests" / "fixtures" / "media" / "identity_source.jpg"), (256, 256))
    frames = np.repeat(crop[None], pipe.batch_size, axis=0)
    pipe.restorer.restore(frames)  # warm-up
    synchronize(pipe.device)
    start = time.perf_counter()
    for _ in range(repeats):
        pipe.restorer.restore(frames)
    synchronize(pipe.device)
    return 1000 * (time.perf_counter() - start) / (repeats * len(frames))


def generator_fps(pipe: TalkingHeadPipeline, batch: int, repeats: int = 2) -> float:
    """Frames/s of the generator backend alone (coefficients in, uint8 frames out), source encoded once."""
    backend, dev = pipe.backend, pipe.device
    config = backend.config
    exp = torch.zeros(1, config.exp_dim, device=dev) if config.has_expression else None
    lip, pose = torch.zeros(batch, config.lip_dim, device=dev), torch.zeros(batch, config.pose_dim, device=dev)
    src = backend.encode_source(np.zeros((1, 256, 256, 3), np.uint8))
    backend.animate(src, lip, pose, exp)  # warm-up (OpenVINO: export and compile for this batch)
    synchronize(dev)
    start = time.perf_counter()
    for _ in range(repeats):
        backend.animate(src, lip, pose, exp)
    synchronize(dev)
    return batch * repeats / (time.perf_counter() - start)


def _motion_model(name: str, ckpt_dir: Path, device: torch.device, tmp: Path) -> tuple[torch.nn.Module, bool]:
    """The Audio2Pose or Audio2Exp network of ckpt_dir (else random weights: the cost does not
    depend on them), and whether it is random."""
    file, network, load = {
        "pose": (edtalk.checkpoints.AUDIO2POSE_FILE, Audio2Pose, edtalk.load_audio2pose),
        "exp": (edtalk.checkpoints.AUDIO2EXP_FILE, Audio2Exp, edtalk.load_audio2exp),
    }[name]
    path = ckpt_dir / file
    if path.is_file():
        return load(path, device), False
    path = tmp / file
    torch.save({f"audio2{name}": network().state_dict()}, path)
    return load(path, device), True


def motion_from_audio_cost(name: str, ckpt_dir: Path, device: torch.device, audio: Path, tmp: Path) -> tuple:
    """(ms per output frame, peak RSS MB, whether random weights) of predicting the head pose
    (`name` 'pose': Audio2Pose sampling) or the expression ('exp': Audio2Exp) from `audio`, as the
    pipeline does (streamed a chunk of mel windows at a time)."""
    model, random_weights = _motion_model(name, ckpt_dir, device, tmp)
    wav, frames = audio_io.load_for_video(audio)
    with RssMonitor() as rss, torch.inference_mode():
        start = time.perf_counter()
        if name == "pose":
            pose_track(model, audio, frames, torch.zeros(6))
        else:
            chunks = (torch.from_numpy(w).to(device) for w in audio_io.mel_window_chunks(wav, frames, 25))
            model.predict_chunks(chunks)
        synchronize(device)
        seconds = time.perf_counter() - start
    return 1000 * seconds / frames, rss.peak, random_weights


def psnr(frames: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of uint8 frames against reference frames of the same shape (inf when equal)."""
    mse = np.mean((frames.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return 10 * math.log10(255**2 / mse) if mse else math.inf


def run_ours(
    pipe: TalkingHeadPipeline, inputs: dict, names: tuple, out: Path, max_frames: int | None, keep: int = 0
) -> tuple:
    """End-to-end render + encode with the pipeline; (seconds, frames, peak RSS MB, the first `keep`
    rendered frames as (n, H, W, 3) uint8)."""
    with RssMonitor() as rss:
        start = time.perf_counter()
        kwargs = {k: inputs[k] for k in names}
        if "lip" in kwargs:
            kwargs["audio"] = inputs["audio"]
        with (
            pipe.render(inputs["source"], **kwargs) as result,
            VideoWriter(out, result.fps, result.audio_path, num_frames=result.num_frames) as writer,
        ):
            kept = []
            for batch in result.frames:
                writer.write(batch)
                if writer.frames_written - len(batch) < keep:
                    kept.append(batch[: keep - writer.frames_written + len(batch)])
                if max_frames and writer.frames_written >= max_frames:
                    break
        seconds = time.perf_counter() - start
    return seconds, writer.frames_written, rss.peak, np.concatenate(kept) if kept else None


def run_baseline(pipe: TalkingHeadPipeline, inputs: dict, names: tuple, out: Path, max_frames: int | None) -> tuple:
    """The official demos' way: per frame, everything re-encoded, all frames kept, then written."""
    gen, dev = pipe.generator, pipe.device
    with RssMonitor() as rss, torch.no_grad():
        start = time.perf_counter()
        source = to_tensor(read_image(inputs["source"])[None], dev)
        drivers = {k: to_tensor(np.stack(list(iter_frames(inputs[k]))), dev) for k in names if k != "audio"}
        if "audio" in names:
            audio2lip = pipe.motion.model("lip")
            lip = audio2lip.predict(torch.from_numpy(audio_io.mel_windows(inputs["audio"])).to(dev))
        else:
            lip = drivers["lip"]
        total = min(len(lip), max_frames or len(lip))
        frames = []
        for i in range(total):
            pose = drivers["pose"][int(pingpong(i, len(drivers["pose"])))][None]
            exp = drivers["exp"][int(pingpong(i, len(drivers["exp"])))][None] if "exp" in drivers else None
            frames.append(gen.animate(source, lip[i : i + 1], pose, exp))
        video = torch.cat(frames).clamp(-1, 1)
        video = ((video - video.min()) / (video.max() - video.min()) * 255).byte().permute(0, 2, 3, 1).cpu().numpy()
        with VideoWriter(out, fps=25, audio_path=inputs["audio"]) as writer:
            writer.write(video)
        seconds = time.perf_counter() - start
    return seconds, total, rss.peak


def measure_row(pipe: TalkingHeadPipeline, mode: str, inputs: dict, out: Path, batches: list[int], args) -> dict:
    """One row: generator frames/s per batch, then the end-to-end render (its first frames kept
    under "kept" for the PSNR)."""
    fps = {b: generator_fps(pipe, b) for b in batches}
    best = max(fps, key=fps.get)
    seconds, frames, rss, kept = run_ours(pipe, inputs, MODES[mode][1], out, args.max_frames, args.psnr_frames)
    return {
        "mode": mode,
        "backend": pipe.backend.name,
        "precision": precision_name(pipe.precision),
        "generator_fps_batch1": fps.get(1),
        "generator_fps_best": fps[best],
        "best_batch": best,
        "generator_fps": fps,
        "frames": frames,
        "seconds_per_output_second": seconds / (frames / 25),
        "peak_rss_mb": rss,
        "kept": kept,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt_dir", type=Path, default=ROOT / "ckpts")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the synthetic audio / videos")
    parser.add_argument(
        "--driver_seconds", type=float, help="length of the pose/expression videos (default: --seconds)"
    )
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {', '.join(MODES)}")
    parser.add_argument("--batches", default=None, help="generator batch sizes to time (default 1,2,4 CPU; 1..64 GPU)")
    parser.add_argument(
        "--backend",
        default=None,
        help=f"comma-separated backends, rows each (of {', '.join(BACKENDS)}; default torch,openvino on the CPU "
        "where OpenVINO is installed, else torch)",
    )
    parser.add_argument(
        "--precision",
        default="fp32,auto",
        help=f"comma-separated precisions, a row each (of {', '.join(PRECISIONS)}; auto: the pipeline's default)",
    )
    parser.add_argument("--psnr_frames", type=int, default=50, help="frames compared with fp32 for the PSNR")
    parser.add_argument("--baseline", action="store_true", help="also run the official way of working")
    parser.add_argument("--max_frames", type=int, help="render only this many frames (memory checks on long clips)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--face_sr", action="store_true", help="render with GFPGAN face restoration (512x512)")
    args = parser.parse_args()
    modes = args.modes.split(",")
    device = edtalk.resolve_device(args.device)
    batches = [int(b) for b in (args.batches or ("1,2,4" if device.type == "cpu" else "1,4,16,32,64")).split(",")]
    with_openvino = device.type == "cpu" and openvino_available()
    backends = (args.backend or ("torch,openvino" if with_openvino else "torch")).split(",")
    if unknown := set(backends) - set(BACKENDS):
        parser.error(f"unknown --backend {', '.join(sorted(unknown))}: use {', '.join(BACKENDS)}")
    # fp32 first: the reference of the PSNR
    precisions = sorted(dict.fromkeys(args.precision.split(",")), key=lambda p: p != "fp32")
    report = {"device": str(device), "backends": backends, "precisions": precisions, "seconds": args.seconds}
    report["modes"] = {}
    report["driver_seconds"] = args.driver_seconds or args.seconds
    report["threads"] = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with_lip = any("lip" in MODES[m][1] for m in modes)
        inputs = make_inputs(tmp, args.seconds, args.driver_seconds or args.seconds, with_lip)
        ckpt_dir, random_weights = checkpoints(args.ckpt_dir, tmp, args.face_sr)
        report["random_weights"] = random_weights
        report["face_sr"] = args.face_sr
        for mode in modes:
            baseline, reference = None, None
            for name, requested in itertools.product(backends, precisions):
                options = dict(crop=False, progress=False, precision=requested, face_sr=args.face_sr)
                pipe = TalkingHeadPipeline(ckpt_dir, MODES[mode][0], device, **BACKENDS[name], **options)
                row = f"{mode}@{name}-{precision_name(pipe.precision)}"
                if row in report["modes"]:  # auto resolved to a precision already run
                    continue
                if args.face_sr:
                    report["face_sr_ms_per_frame"] = restoration_ms(pipe)
                    print(f"face_sr    restoration {report['face_sr_ms_per_frame']:.0f} ms per frame", flush=True)
                entry = measure_row(pipe, mode, inputs, tmp / f"{mode}.mp4", batches, args)
                entry |= {"benchmark_backend": name, "requested_precision": requested}
                kept = entry.pop("kept")
                if reference is None:
                    reference = kept
                    entry["psnr_vs_fp32_db"] = None
                else:
                    entry["psnr_vs_fp32_db"] = psnr(kept, reference)
                if args.baseline and baseline is None:
                    b_seconds, b_frames, b_rss = run_baseline(
                        pipe, inputs, MODES[mode][1], tmp / f"{mode}_base.mp4", args.max_frames
                    )
                    baseline = (b_seconds / (b_frames / 25), b_rss)
                if baseline is not None:
                    entry |= {
                        "baseline_seconds_per_output_second": baseline[0],
                        "baseline_peak_rss_mb": baseline[1],
                        "speedup": baseline[0] / entry["seconds_per_output_second"],
                    }
                report["modes"][row] = entry
                print_row(row, entry, args.baseline)
                del pipe  # and hand its memory back, so that the next row's peak is its own
                gc.collect()
                release_free_memory()
        if "audio_full" in modes:
            row, rendering = next((k, e) for k, e in report["modes"].items() if e["mode"] == "audio_full")
            render_ms = 1000 * rendering["seconds_per_output_second"] / 25
            for name, network in (("pose", "Audio2Pose sampling"), ("exp", "Audio2Exp")):
                ms, peak, random_weights = motion_from_audio_cost(name, args.ckpt_dir, device, inputs["audio"], tmp)
                report[f"{name}_from_audio"] = {
                    "ms_per_frame": ms,
                    "share_of_rendering": ms / render_ms,
                    "rendering_row": row,
                    "peak_rss_mb": peak,
                    "random_weights": random_weights,
                }
                print(
                    f"{name + '_from_audio':<16} {network} {ms:.2f} ms per frame = "
                    f"{100 * ms / render_ms:.2f} % of {row}'s end-to-end time | peak {peak:.0f} MB",
                    flush=True,
                )
    report["peak_rss_mb"] = max(e["peak_rss_mb"] for e in report["modes"].values())
    if args.baseline:
        report["speedup_vs_baseline"] = {}
        settings = dict.fromkeys(f"{e['benchmark_backend']}-{e['precision']}" for e in report["modes"].values())
        for setting in settings:
            rows = [e for k, e in report["modes"].items() if k.endswith(f"@{setting}")]
            ours = sum(e["seconds_per_output_second"] for e in rows)
            base = sum(e["baseline_seconds_per_output_second"] for e in rows)
            report["speedup_vs_baseline"][setting] = base / ours
            print(f"end-to-end speed-up over the official way (PyTorch fp32), ours on {setting}: {base / ours:.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


def print_row(row: str, e: dict, baseline: bool) -> None:
    quality = "" if e["psnr_vs_fp32_db"] is None else f" | PSNR vs the first fp32 row {e['psnr_vs_fp32_db']:.1f} dB"
    line = (
        f"{row:<28} gen {e['generator_fps_batch1']:.2f} fps @1, {e['generator_fps_best']:.2f} fps @{e['best_batch']}"
        f" | end-to-end {e['seconds_per_output_second']:.2f} s per output s | peak {e['peak_rss_mb']:.0f} MB{quality}"
    )
    if baseline:
        line += (
            f" || official way {e['baseline_seconds_per_output_second']:.2f} s/s,"
            f" peak {e['baseline_peak_rss_mb']:.0f} MB -> {e['speedup']:.2f}x"
        )
    print(line, flush=True)


if __name__ == "__main__":
    main()
