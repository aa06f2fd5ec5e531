"""Start or join Ray for a job, and say in one line what to do when a local node cannot start."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import ray

log = logging.getLogger(__name__)


class RayStartError(RuntimeError):
    """A local Ray node did not come up; the message says why and what to try (the CLI prints it)."""


def init_ray(num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Connect to RAY_ADDRESS when set (ray job submit), else start or reuse a local Ray.

    Ray gives a local node 30 s to register with its GCS and then raises a bare `Exception` with a
    traceback of Ray internals; on this project's 2-core machine at load 20-40 it did, twice in an hour.
    That becomes one line naming the cause; `--verbose` still logs Ray's traceback.
    """
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return
    try:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False)
    except Exception as exc:  # noqa: BLE001 - Ray raises bare Exception, RuntimeError, TimeoutError here
        log.info("ray.init failed", exc_info=True)
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise RayStartError(
            f"could not start a local Ray node ({cause}); the machine may be too busy for Ray's startup "
            "deadline: retry when it is quieter, set RAY_TMPDIR to a short folder on a local disk, or "
            "set RAY_ADDRESS to a running cluster (`ray start --head`)"
        ) from exc


@contextmanager
def ray_for_this_command() -> Iterator[None]:
    """Stop the Ray this block started (or disconnect from the cluster it joined) when the block ends.

    For a one-shot command: Ray's own exit hook first sleeps 0.5 s for late worker log lines and then stops
    the node as the interpreter tears down; stopping it explicitly made start + one task + exit 5.3 s
    instead of 6.6 s (medians of 3, 2 cores). A Ray that was up before the block (a notebook, a test
    session) is left running.
    """
    started_here = not ray.is_initialized()
    try:
        yield
    finally:
        if started_here and ray.is_initialized():
            ray.shutdown()
