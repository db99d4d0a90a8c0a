#!/usr/bin/env python3
"""EDTalk in the browser: every demo mode on one page (Gradio), models loaded once at start.

Local only by default (no public share link, no analytics). The audio-driven tab is also the API
endpoint `render` (README.md, "Web UI").
"""

import argparse
import sys

from edtalk.checkpoints import DEFAULT_CKPT_DIR
from edtalk.errors import EDTalkError
from edtalk.live.mount import mount_live
from edtalk.webui_page import build_app

EXAMPLE = "python app.py --ckpt_dir ckpts --device auto --port 7860   # then open http://127.0.0.1:7860"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, epilog=f"example:\n  {EXAMPLE}", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--ckpt_dir", default=str(DEFAULT_CKPT_DIR), help="checkpoint folder (default: the repository's ckpts/)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--port", type=int, default=7860, help="port to serve on (default: 7860)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: the local network too)",
    )
    p.add_argument("--share", action="store_true", help="also open a public Gradio link (off by default)")
    args = p.parse_args(argv)
    try:
        demo = build_app(args.ckpt_dir, args.device, live=True)  # the Live tab: mount_live below serves it
    except EDTalkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, prevent_thread_lock=True)
    mount_live(demo.app, args.ckpt_dir, args.device)  # ws://HOST:PORT/live/ws (docs/live.md)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
