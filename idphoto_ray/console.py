"""The CLI's terminal: its log handler (secrets scrubbed) and a quiet exit when stdout's reader has gone."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from idphoto_ray.redact import scrub_handlers

#: What a shell reports for a process ended by SIGPIPE (128 + 13), as `yes | head -1` leaves `yes`.
CLOSED_PIPE_EXIT = 141


class _StderrAtEmit(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted (quiet.py swaps it during a run)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(verbose: bool) -> logging.Handler:
    """One handler on the root logger: WARNING and up (INFO with -v), URL credentials always scrubbed.

    A job adds its storage options' secrets to the same filter when it starts (`run_job`).
    """
    handler = _StderrAtEmit()
    handler.setFormatter(
        logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s")
    )
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    scrub_handlers()
    return handler


def closed_pipe_exit() -> int:
    """`idphoto-ray specs | head -3`: the reader left, which is no error of ours; no traceback.

    Python's recipe (docs, signal module): point stdout at /dev/null so the flush at interpreter exit
    cannot raise BrokenPipeError a second time, and exit as a SIGPIPE-killed tool would.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (a test's capture): nothing to flush
        pass
    return CLOSED_PIPE_EXIT
