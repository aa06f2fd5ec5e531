"""Write output files through fsspec: atomic on local disk, one PUT on object stores."""

from __future__ import annotations

import posixpath

import fsspec

from idphoto_ray.atomic import atomic_write_bytes
from idphoto_ray.read import is_local


def join(root: str, *parts: str) -> str:
    return posixpath.join(root.rstrip("/"), *parts)


def write_bytes(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Never leaves a half file: atomic on local disk (see idphoto_ray.atomic), one PUT on object stores."""
    if is_local(fs):
        atomic_write_bytes(path, data)
    else:
        fs.pipe_file(path, data)
