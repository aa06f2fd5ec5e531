"""A folder holding every kind of entry an input folder can hold, for listing and fault tests."""

from __future__ import annotations

import os
from pathlib import Path

from idphoto_ray.entries import ReadProblem


def make_torture_folder(root: Path) -> dict[str, ReadProblem | None]:
    """Every kind of entry the lister must survive; returns relative name → expected problem."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "good.jpg").write_bytes(b"\xff\xd8 not really")
    (root / "new\nline.jpg").write_bytes(b"x")
    (root / "tab\there.png").write_bytes(b"x")
    (root / "sub").mkdir()
    (root / "sub" / "deep.png").write_bytes(b"x")
    os.symlink("nowhere.jpg", root / "dangling.jpg")
    os.symlink("loop.jpg", root / "loop.jpg")
    os.symlink("good.jpg", root / "alias.jpg")
    os.mkfifo(root / "fifo.jpg")
    os.symlink("/dev/null", root / "device.jpg")
    (root / "folder.jpg").mkdir()
    (root / "folder.jpg" / "inner.webp").write_bytes(b"x")
    os.symlink(".", root / "sub" / "cycle")  # a folder link back up: walked once, not forever
    (root / "doc.pdf").write_bytes(b"%PDF")
    (root / "other.PDF").write_bytes(b"%PDF")
    (root / "logo.svg").write_text("<svg/>")
    (root / "README").write_text("x")
    return {
        "good.jpg": None,
        "new\nline.jpg": None,
        "tab\there.png": None,
        "sub/deep.png": None,
        "alias.jpg": None,
        "folder.jpg/inner.webp": None,
        "dangling.jpg": ReadProblem.DANGLING_LINK,
        "loop.jpg": ReadProblem.LINK_LOOP,
        "fifo.jpg": ReadProblem.NOT_REGULAR,
        "device.jpg": ReadProblem.NOT_REGULAR,
    }
