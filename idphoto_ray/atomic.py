"""The one atomic file write: readers never see half a file, and the file gets the umask's mode.

Several Ray workers may write the same model file, thumbnail or output at once, and a killed worker must
not leave a truncated photo behind: the bytes go to a temporary name in the target folder and are renamed
into place (atomic on POSIX). The temporary file is created with mode 0666 and the process umask applied
(0644 under umask 022), as `open()` would: `tempfile.mkstemp` forces 0600, which hid models and outputs
from the other users of a shared folder.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

#: Prefix of temporary files; a crash can leave one behind, never a half-written final name.
TEMP_PREFIX = ".tmp-"


@contextmanager
def atomic_writer(path: str | Path, *, fsync: bool = False) -> Iterator[BinaryIO]:
    """A binary file handle whose bytes appear at `path` only when the block ends without an exception.

    For writers that stream (a model copied in chunks, a Parquet part): the handle writes a temporary file
    in the same folder, renamed into place on success and removed on any failure. fsync=True also flushes
    the bytes to disk before the rename (models and manifest parts: rare, costly to lose); photos skip it,
    as a crash re-runs them anyway.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{TEMP_PREFIX}{target.name}.{os.urandom(6).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):  # the write's own error is the one to report
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    """Write `data` to `path` through a temporary file in the same folder, then rename it into place."""
    with atomic_writer(path, fsync=fsync) as handle:
        handle.write(data)
    return Path(path)
