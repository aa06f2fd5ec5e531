"""The image core's step timer: milliseconds per `Step`, added up in a plain dict the manifest folds in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from idphoto_ray.types import Step


@contextmanager
def timed(timings: dict[str, float], step: Step) -> Iterator[None]:
    """Add the time spent inside the block to `timings[step]` (a step may run once per spec or background)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[step.value] = timings.get(step.value, 0.0) + (time.perf_counter() - start) * 1000.0
