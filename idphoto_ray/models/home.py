"""Where converted and downloaded model files live, and how they get there safely.

Several Ray workers on one node may fetch the same model at once, so every file is written through
`idphoto_ray.atomic` (fsync'd, renamed into place): readers never see half a file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from idphoto_ray.atomic import atomic_write_bytes

ENV_HOME = "IDPHOTO_RAY_HOME"


class ModelUnavailable(RuntimeError):
    """A model file is not cached and could not be obtained or verified."""


def model_home() -> Path:
    """The model cache directory: $IDPHOTO_RAY_HOME, else ~/.cache/idphoto-ray; created on demand."""
    home = Path(os.environ.get(ENV_HOME) or Path.home() / ".cache" / "idphoto-ray").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def checksum_path(path: Path) -> Path:
    """Where the sha256 of a cached file is recorded when it is written: `<file>.sha256` beside it."""
    return path.with_name(path.name + ".sha256")


def record_sha256(path: Path, digest: str) -> None:
    """Record `digest` as the sha256 of the file just cached at `path` (written after the file: a file left
    without its record is fetched or made again, never trusted)."""
    atomic_write_bytes(checksum_path(path), f"{digest}\n".encode(), fsync=True)


def recorded_sha256(path: Path) -> str | None:
    """The sha256 recorded beside `path` when it was cached, or None when there is no record."""
    try:
        return checksum_path(path).read_text().strip() or None
    except OSError:
        return None


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large ONNX files don't need to fit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
