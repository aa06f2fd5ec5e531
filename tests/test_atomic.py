"""The one atomic write: whole files only, with the mode the umask gives (not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat

import pytest

from idphoto_ray.atomic import TEMP_PREFIX, atomic_write_bytes


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_file_gets_the_umask_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = atomic_write_bytes(tmp_path / "sub" / "a.bin", b"photo", fsync=True)
    finally:
        os.umask(old)
    assert path.read_bytes() == b"photo"
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert not [p for p in path.parent.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_failed_write_leaves_neither_temp_nor_target(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "a.bin", "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_replaces_an_existing_file_whole(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"new bytes")
    assert target.read_bytes() == b"new bytes"
