"""A clean stop on Ctrl-C and `kill`: SIGINT and SIGTERM become an exception in the main thread.

Python's default SIGTERM action ends the process at once, so no `finally` block runs: a partial
output file and a re-dubbed video's temporary frames would stay on disk. Inside `stop_on_signals()`
both signals raise `Interrupted` instead, the stack unwinds through the context managers that
remove those files, and the caller exits with the shell's code for the signal (130, 143).

Python drops an exception raised while it runs an at-fork callback, a finalizer or a `__del__`
method ("Exception ignored in ..."): a signal that lands while a subprocess starts (logging releases
its lock after every fork) would be lost. The handler therefore also records the signal, and
`raise_if_interrupted()` (called by long loops) and the end of the block raise it again; the
dropped one is not reported (Python would print its traceback).
"""

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Raised by SIGINT / SIGTERM inside `stop_on_signals`. A BaseException, like KeyboardInterrupt,
    so that `except Exception` clauses do not swallow it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


_caught: list[int] = []  # signals received inside the current `stop_on_signals` block


def _raise(signum: int, frame) -> None:
    _caught.append(signum)
    raise Interrupted(signum)


def raise_if_interrupted() -> None:
    """Raise `Interrupted` if a signal arrived in the current block, even where its first
    exception was dropped by Python (see the module docstring). Cheap: call it once per batch."""
    if _caught:
        raise Interrupted(_caught[0])


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Interrupted`; the previous handlers come back
    afterwards. A signal whose exception was dropped is raised when the block ends. Outside the
    main thread (where handlers cannot be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _caught.clear()
    previous = {signum: signal.signal(signum, _raise) for signum in SIGNALS}
    report_unraisable = sys.unraisablehook

    def drop_interrupted(unraisable) -> None:
        if not isinstance(unraisable.exc_value, Interrupted):
            report_unraisable(unraisable)

    sys.unraisablehook = drop_interrupted
    try:
        yield
        raise_if_interrupted()
    finally:
        sys.unraisablehook = report_unraisable
        for signum, handler in previous.items():
            signal.signal(signum, handler)
