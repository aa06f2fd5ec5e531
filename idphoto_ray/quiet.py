"""Keep Ray's own chatter off the terminal unless `--verbose`: the terminal shows one progress bar and the
summary.

Without this a one-photo run printed 8–25 lines of Ray log on stderr: the auth-token warning, "Started a local
Ray instance", Ray Data's execution plan, and an error-level line from Ray's C++ core (actor constructor
arguments in the object store) that is harmless here but reads like a failure. Nothing is lost: Ray Data still
writes `ray-data.log`, and whatever Ray writes to the process's stderr goes to `idphoto-ray-driver.err` in the
session's log folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

RAY_CONSOLE_LOGGERS = ("ray", "ray.data")
DRIVER_LOG_NAME = "idphoto-ray-driver.err"


class _ErrorsOnly(logging.Filter):
    """On Ray's console handlers only: the file handlers keep every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def _console_handlers() -> list[logging.Handler]:
    handlers = []
    for name in RAY_CONSOLE_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handlers.append(handler)
    return handlers


def ray_log_dir() -> str | None:
    """This process's Ray session log folder, or None before Ray starts."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    return node.get_logs_dir_path() if ray.is_initialized() and node is not None else None


@contextmanager
def quiet_ray(verbose: bool = False) -> Iterator[None]:
    """Run a job with Ray's INFO/WARNING console lines and native stderr off the terminal (unless verbose)."""
    import ray.data  # its console handler exists only once it is imported

    ctx = ray.data.DataContext.get_current()
    operator_bars = ctx.enable_operator_progress_bars
    if verbose:
        yield
        return
    ctx.enable_operator_progress_bars = False  # one bar for the whole dataset, not one per stage
    errors_only = _ErrorsOnly()
    handlers = _console_handlers()
    for handler in handlers:
        handler.addFilter(errors_only)
    sys.stderr.flush()
    capture_fd, capture_path = tempfile.mkstemp(prefix="idphoto-ray-", suffix=".err")
    saved_fd = os.dup(2)
    os.dup2(capture_fd, 2)  # Ray's C++ core and child processes write straight to fd 2
    python_stderr = sys.stderr
    # Python-level writes (the progress bar, our messages) still reach the terminal.
    sys.stderr = os.fdopen(
        os.dup(saved_fd), "w", buffering=1, encoding=python_stderr.encoding, errors="replace"
    )
    try:
        yield
    finally:
        sys.stderr.flush()
        terminal, sys.stderr = sys.stderr, python_stderr
        terminal.close()
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        os.close(capture_fd)
        for handler in handlers:
            handler.removeFilter(errors_only)
        ctx.enable_operator_progress_bars = operator_bars
        _keep_captured(capture_path)


def _keep_captured(path: str) -> None:
    """Move what Ray wrote into its log folder; before Ray started there is no such folder, so show it."""
    log_dir = ray_log_dir()
    if log_dir and os.path.isdir(log_dir):
        with open(path, "rb") as src, open(os.path.join(log_dir, DRIVER_LOG_NAME), "ab") as dst:
            shutil.copyfileobj(src, dst)
    elif os.path.getsize(path):
        with open(path, encoding="utf-8", errors="replace") as src:
            sys.stderr.write(src.read())
        sys.stderr.flush()
    os.unlink(path)
