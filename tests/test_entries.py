"""Every listed entry is an input or a counted skip; unreadable ones are named, special ones never opened."""

from __future__ import annotations

import os
import socket
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from torture import make_torture_folder

from idphoto_ray.entries import (
    ReadProblem,
    UnreadableEntry,
    check_local,
    read_entry,
    skipped_line,
    walk_local,
)

pytestmark = pytest.mark.timeout(60)  # a FIFO opened by mistake blocks forever: fail instead


def test_walk_classifies_every_entry_without_opening_special_files(tmp_path):
    expected = make_torture_folder(tmp_path / "in")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "in" / "sock.png"))
    expected["sock.png"] = ReadProblem.NOT_REGULAR
    try:
        listing = walk_local(str(tmp_path / "in"))
    finally:
        sock.close()
    assert {e.rel: e.problem for e in listing.entries} == expected
    assert "FIFO" in next(e.detail for e in listing.entries if e.rel == "fifo.jpg")
    assert "character device" in next(e.detail for e in listing.entries if e.rel == "device.jpg")
    assert listing.skipped == Counter({".pdf": 2, ".svg": 1, "(none)": 1})
    assert listing.skipped_line() == "4 files skipped: .pdf ×2, (none), .svg"


def test_skipped_line_wording():
    assert skipped_line(Counter()) == ""
    assert skipped_line(Counter({".pdf": 2, ".svg": 1})) == "3 files skipped: .pdf ×2, .svg"
    assert skipped_line(Counter({".txt": 1})) == "1 file skipped: .txt"


def test_read_entry_refuses_what_changed_since_listing(tmp_path):
    import fsspec

    fs = fsspec.filesystem("file")
    path = tmp_path / "a.jpg"
    path.write_bytes(b"bytes")
    assert read_entry(fs, str(path), local=True) == b"bytes"
    path.unlink()
    with pytest.raises(UnreadableEntry) as gone:
        read_entry(fs, str(path), local=True)
    assert gone.value.problem is ReadProblem.VANISHED
    os.mkfifo(path)  # swapped for a FIFO: refused, not waited on
    with pytest.raises(UnreadableEntry) as fifo:
        read_entry(fs, str(path), local=True)
    assert fifo.value.problem is ReadProblem.NOT_REGULAR
    assert check_local(str(tmp_path / "missing.jpg"))[0] is ReadProblem.MISSING


def _as_nobody(fn, *args) -> list[str]:
    """Run fn in a forked child that dropped to uid/gid 65534 (root reads everything); its printed words."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, " ".join(fn(*args)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as handle:
        words = handle.read().decode().split()
    os.waitpid(pid, 0)
    return words


def _problems(path: str) -> list[str]:
    import fsspec

    found = [check_local(path)[0].value]
    try:
        read_entry(fsspec.filesystem("file"), path, local=True)
    except UnreadableEntry as exc:
        found.append(exc.problem.value)
    return found


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to act as another user"
)
def test_permission_denied_is_named():
    folder = Path(tempfile.mkdtemp(prefix="idphoto-perm-"))
    try:
        folder.chmod(0o755)
        locked = folder / "locked.jpg"
        locked.write_bytes(b"x")
        locked.chmod(0o000)
        assert _as_nobody(_problems, str(locked)) == ["permission_denied", "permission_denied"]
    finally:
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
