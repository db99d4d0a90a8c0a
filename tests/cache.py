"""Files the tests make once and keep under `.cache/` (synthetic weights): remade when their stamp
changes, and made by one process while the others wait (pytest-xdist runs the suite in several)."""

from collections.abc import Callable
from pathlib import Path

from filelock import FileLock


def made_once(folder: Path, stamp: str, make: Callable[[Path], object]) -> Path:
    """`folder`, filled by `make(folder)` unless it already holds what `stamp` names; returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder.with_name(folder.name + ".lock")):
        mark = folder / f"stamp-{stamp}"
        if not mark.exists():
            for old in folder.glob("stamp-*"):
                old.unlink()
            make(folder)
            mark.touch()
    return folder
