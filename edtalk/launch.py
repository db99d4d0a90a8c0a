"""Starting the processes of a torch.distributed program on this machine, as torchrun does, without
torchrun's failure report: a program that ends with exit code 1 (render_many.py with a failed job)
ends the launch with exit code 1 and its own message, not with torch elastic's traceback, and no
process is killed because another one finished first."""

import os
import socket
import subprocess
import sys

from .signals import Interrupted, stop_on_signals


def free_port() -> int:
    """A TCP port on this machine that nothing listens on now (for the process group's rendezvous)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(script: str, argv: list[str], processes: int) -> int:
    """Run `python script argv` `processes` times with the environment torchrun gives its workers
    (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and wait for all of
    them; the exit code: 0 if every process ended with 0, else the first other code (rank order).
    SIGINT / SIGTERM are passed on to the processes, then 130 / 143."""
    base = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    base.update(WORLD_SIZE=str(processes), LOCAL_WORLD_SIZE=str(processes))
    children = []
    try:
        with stop_on_signals():
            for rank in range(processes):
                env = dict(base, RANK=str(rank), LOCAL_RANK=str(rank))
                # own process group: a Ctrl-C reaches them once, passed on below, not twice
                children.append(subprocess.Popen([sys.executable, script, *argv], env=env, process_group=0))
            codes = [child.wait() for child in children]
    except Interrupted as stop:
        for child in children:
            if child.poll() is None:
                child.send_signal(stop.exit_code - 128)
        for child in children:
            child.wait()
        return stop.exit_code
    return next((code for code in codes if code != 0), 0)
