"""Write output files through fsspec: atomic on local disk, one PUT on object stores."""

from __future__ import annotations

import os
import posixpath
import tempfile

import fsspec

from idphoto_ray.read import is_local


def join(root: str, *parts: str) -> str:
    return posixpath.join(root.rstrip("/"), *parts)


def write_bytes(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Never leaves a half file: local writes go to a temp file in the same folder, then rename."""
    if is_local(fs):
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    else:
        fs.pipe_file(path, data)
