"""Process settings for the CPU stages' worker processes (OpenCV threads, glibc malloc, log scrubbing)."""

from __future__ import annotations

import functools
from collections.abc import Iterable

#: glibc mallopt parameters: allocations up to 32 MB come from the heap, which keeps up to 64 MB freed.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES, _TRIM_THRESHOLD_BYTES = 32 << 20, 64 << 20


def tune_worker_process() -> None:
    """Process settings for the CPU stages; cheap to repeat (OpenCV's is re-applied, malloc's set once).

    OpenCV: CPU stages run one task per logical CPU, and OpenCV's own pool (one thread per core by default)
    would oversubscribe the node with cores × tasks threads.

    glibc malloc: every decoded image, matte and filter intermediate (0.5–10 MB) was a fresh mmap, unmapped
    when freed, so each photo faulted its pages in again — 520k minor page faults for 40 photos. Served from
    the heap they are reused: 38k faults, `cpu_stage` 11.8 → 15.5 photos/s per core. Other C libraries
    ignore this.
    """
    import cv2

    cv2.setNumThreads(1)
    _reuse_freed_memory()


@functools.cache
def _reuse_freed_memory() -> None:
    """The mallopt half of tune_worker_process: process-wide and permanent, so once per process."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
            libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES)
        except (OSError, AttributeError):  # not glibc
            pass


def scrub_worker_logs(secrets: Iterable[str]) -> None:
    """This worker's log records lose the job's secrets before any handler writes them.

    Worker log lines go to Ray's log folder and, with `log_to_driver`, to the driver's terminal; a warning
    quoting a store's error (a preview not written to a bucket) may carry a credential or a signed URL.
    """
    from idphoto_ray.redact import scrub_handlers

    scrub_handlers(secrets)
