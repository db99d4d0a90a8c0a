"""A clean stop on Ctrl-C and `kill`: SIGINT and SIGTERM become an exception in the main thread.

Python's default SIGTERM action ends the process at once, so no `finally` block runs: a partial
output file and a re-dubbed video's temporary frames would stay on disk. Inside `stop_on_signals()`
both signals raise `Interrupted` instead, the stack unwinds through the context managers that
remove those files, and the caller exits with the shell's code for the signal (130, 143).
"""

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Raised by SIGINT / SIGTERM inside `stop_on_signals`. A BaseException, like KeyboardInterrupt,
    so that `except Exception` clauses do not swallow it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


def _raise(signum: int, frame) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Interrupted`; the previous handlers come back
    afterwards. Outside the main thread (where handlers cannot be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
