"""Writing files so that a reader never sees half of one: the one place for atomic writes."""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def write_atomically(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to fill that appears at `path` only when the block ends without an error: it is
    written under a temporary name in the same folder and renamed, so an interrupted write (a
    signal, a full disk, a crash) leaves neither a partial file nor the temporary one behind, and
    a reader sees the old file or the new one, never a mix."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
