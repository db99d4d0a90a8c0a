#!/usr/bin/env python3
"""Where a generator frame's time goes: per decoder layer and per operator, PyTorch backend.

    python benchmarks/profile_generator.py [--model lip_pose|full] [--device cpu] [--precision fp32]

Renders `--frames` frames at batch `--batch` from coefficients (as the audio-driven modes do: no
driver encoding) through the renderer the pipeline uses (edtalk.torch_backend.TorchGenerator),
after `--warmup` frames, and prints two tables: the share of each decoder layer of the mean frame
time (forward hooks around every StyledConv, EEM, ToFlow (flow, mask, warp) and ToRGB), and the
operators torch.profiler finds most costly. Random weights of the official shapes (the cost does
not depend on the values).
"""

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edtalk.device import resolve_device, resolve_precision, synchronize  # noqa: E402
from edtalk.torch_backend import TorchGenerator  # noqa: E402
from networks import EDTALK, LIP_POSE, Generator  # noqa: E402

CONFIGS = {"lip_pose": LIP_POSE, "full": EDTALK}


def layer_names(generator: Generator) -> dict[str, torch.nn.Module]:
    """{'16x16 conv up': module, ...}: the decoder's timed layers, named by resolution and role."""
    dec = generator.dec
    layers = {"4x4 conv": dec.conv1}
    for level in range(len(dec.to_flows)):
        res = f"{8 << level}x{8 << level}"
        layers[f"{res} conv up"] = dec.convs[2 * level]
        layers[f"{res} conv"] = dec.convs[2 * level + 1]
        if dec.fineadainresblock is not None:
            layers[f"{res} EEM"] = dec.fineadainresblock[level]
        layers[f"{res} flow+warp"] = dec.to_flows[level]
        layers[f"{res} rgb"] = dec.to_rgbs[level]
    return layers


def timed_layers(layers: dict[str, torch.nn.Module], device: torch.device) -> dict[str, list[float]]:
    """Attach hooks that add each layer's forward time (seconds) to the returned lists."""
    times: dict[str, list[float]] = defaultdict(list)
    for name, module in layers.items():
        started = []

        def before(_module, _inputs, started=started):
            synchronize(device)
            started.append(time.perf_counter())

        def after(_module, _inputs, _output, name=name, started=started):
            synchronize(device)
            times[name].append(time.perf_counter() - started.pop())

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(CONFIGS), default="lip_pose")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", help="auto, fp32, bf16 or fp16")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--frames", type=int, default=8, help="frames timed (default 8)")
    p.add_argument("--warmup", type=int, default=2, help="frames rendered before timing (default 2)")
    p.add_argument("--ops", type=int, default=12, help="operators listed (default 12)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    torch.manual_seed(0)
    generator = Generator(CONFIGS[args.model]).eval().to(device)
    renderer = TorchGenerator(generator, args.model, device, precision)
    source = np.random.default_rng(0).integers(0, 256, (1, 256, 256, 3), np.uint8)
    encoded = renderer.encode_source(source)
    lip, pose = torch.randn(args.batch, 20, device=device), torch.randn(args.batch, 6, device=device)
    exp = torch.randn(args.batch, 10, device=device) if args.model == "full" else None

    for _ in range(args.warmup):
        renderer.animate(encoded, lip, pose, exp)
    layers = layer_names(generator)
    times = timed_layers(layers, device)
    start = time.perf_counter()
    for _ in range(args.frames):
        renderer.animate(encoded, lip, pose, exp)
    frame = (time.perf_counter() - start) / (args.frames * args.batch)

    print(f"{args.model}, {device}, {args.precision}, batch {args.batch}, threads {torch.get_num_threads()}:")
    print(f"{1000 * frame:.1f} ms per frame ({1 / frame:.2f} frames/s)\n")
    print(f"{'layer':<22}{'ms/frame':>10}{'share':>8}")
    for name in layers:
        ms = 1000 * sum(times[name]) / (args.frames * args.batch)
        print(f"{name:<22}{ms:>10.1f}{ms / (10 * frame):>7.0f}%")
    accounted = sum(sum(t) for t in times.values()) / (args.frames * args.batch)
    print(f"{'rest (outside layers)':<22}{1000 * (frame - accounted):>10.1f}{100 * (1 - accounted / frame):>7.0f}%\n")

    with torch.profiler.profile() as prof:
        for _ in range(2):
            renderer.animate(encoded, lip, pose, exp)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.ops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
