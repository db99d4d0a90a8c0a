#!/usr/bin/env python3
"""Stream a speech file to a running EDTalk live endpoint and save the frames it sends back.

    python app.py --ckpt_dir ckpts &                                   # serves /live/ws too
    python examples/live_client.py photo.jpg speech.wav --out frames/  # frames/000000.jpg, ...

The audio is sent as 16-bit PCM in 40 ms chunks at its own pace (--fast: as fast as possible, as
a TTS engine would); each frame is written as it arrives, named by its frame number (frame i shows
the audio from i / 25 s to (i + 1) / 25 s). Needs the `websockets` package.
"""

import argparse
import asyncio
import base64
import json
import sys
from pathlib import Path

import numpy as np
import soundfile
import websockets

CHUNK_S = 0.04


async def stream(args: argparse.Namespace) -> int:
    samples, rate = soundfile.read(str(args.audio), dtype="float32", always_2d=True)
    pcm = (np.clip(samples.mean(axis=1), -1, 1) * 32767).astype("<i2")
    hello = {"source": base64.b64encode(args.photo.read_bytes()).decode(), "sample_rate": rate, "format": "s16"}
    args.out.mkdir(parents=True, exist_ok=True)
    async with websockets.connect(args.url, max_size=None) as ws:
        await ws.send(json.dumps({**hello, "latency": args.latency}))
        ready = json.loads(await ws.recv())
        if "error" in ready:
            print(f"error: {ready['error']}", file=sys.stderr)
            return 1
        print(f"connected: look-ahead {ready['lookahead_ms']:.1f} ms")

        async def send() -> None:
            step = int(rate * CHUNK_S)
            for start in range(0, len(pcm), step):
                await ws.send(pcm[start : start + step].tobytes())
                if not args.fast:
                    await asyncio.sleep(CHUNK_S)
            await ws.send(json.dumps({"end": True}))

        sender = asyncio.create_task(send())
        while "done" not in (header := json.loads(await ws.recv())):
            (args.out / f"{header['frame']:06d}.jpg").write_bytes(await ws.recv())
        await sender
        print(json.dumps(header["stats"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photo", type=Path, help="the face to animate (JPEG or PNG)")
    p.add_argument("audio", type=Path, help="speech to stream (WAV, FLAC, ...)")
    p.add_argument("--out", type=Path, default=Path("live_frames"), help="folder for the frames (default: live_frames)")
    p.add_argument("--url", default="ws://127.0.0.1:7860/live/ws", help="the live endpoint")
    p.add_argument("--latency", choices=("exact", "low"), default="exact", help="look-ahead mode (docs/live.md)")
    p.add_argument("--fast", action="store_true", help="send the audio as fast as possible, not at its own pace")
    return asyncio.run(stream(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
