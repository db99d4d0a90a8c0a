"""Returning freed memory to the operating system during long streamed runs.

glibc's allocator raises its mmap threshold as large blocks are freed, after which blocks of a
few MB (mel chunks, activations) come from the heap; small objects that outlive them then pin
the freed pages, so a process streaming a long clip grows with the clip although it holds
nothing more. `release_free_memory()` hands those free pages back (glibc's malloc_trim); it is a
no-op where that call does not exist (macOS, Windows, musl).
"""

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
