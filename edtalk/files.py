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
    a reader sees the old file or the new one, never a mix. The file gets the permissions of any
    new file (0666 less the umask), not the owner-only 0600 of the temporary one."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as file:
            yield file
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask (reading it means setting it: set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
