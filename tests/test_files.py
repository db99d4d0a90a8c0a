"""edtalk.files.write_atomically: whole files only, with the permissions of any new file."""

import os
import stat

import pytest

from edtalk.files import write_atomically


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_file_has_umask_permissions(tmp_path, umask):
    old = os.umask(umask)
    try:
        with write_atomically(tmp_path / "report.json") as file:
            file.write(b"{}")
        plain = tmp_path / "plain.txt"
        plain.write_bytes(b"x")  # how any other program's new file comes out
    finally:
        os.umask(old)
    got = stat.S_IMODE((tmp_path / "report.json").stat().st_mode)
    assert got == 0o666 & ~umask == stat.S_IMODE(plain.stat().st_mode)


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), write_atomically(tmp_path / "out.bin") as file:
        file.write(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
