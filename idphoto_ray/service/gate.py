"""Hold a prepared photo while its siblings in the same finisher are still preparing, then send them together.

Serve's `@serve.batch` only batches what reaches the segmenter within its 10 ms window. Photos finish their
CPU preparation (decode, face models) one at a time, hundreds of ms apart on two cores, so without help the
segmenter saw batches of 1 (docs/service.md: 171 of 178 batches at 256 clients). The gate lets a prepared
photo wait only while another photo of the same replica is being prepared — i.e. while the CPU is busy
anyway — so the CPU never idles for it, a lone photo (1 client) never waits, and concurrent photos reach the
segmenter as one burst, which Serve turns into one batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class SegmentGate:
    """`with gate.preparing(): …` around the CPU preparation, then `await gate.wait()` before segmenting."""

    def __init__(self, max_group: int, max_wait_s: float) -> None:
        self.max_group = max_group
        self.max_wait_s = max_wait_s
        self.in_preparation = 0
        self._waiting: list[asyncio.Future[None]] = []

    @contextmanager
    def preparing(self) -> Iterator[None]:
        self.in_preparation += 1
        try:
            yield
        except BaseException:
            self.in_preparation -= 1
            if self.in_preparation == 0:  # a photo that failed to prepare will not come to release the rest
                self._release()
            raise
        self.in_preparation -= 1

    async def wait(self) -> None:
        """Return when this photo should go to the segmenter (at once when nothing else is preparing)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        if self.in_preparation == 0 or len(self._waiting) >= self.max_group:
            self._release()
            return
        try:
            await asyncio.wait_for(asyncio.shield(future), self.max_wait_s)
        except asyncio.TimeoutError:
            self._release()

    def _release(self) -> None:
        waiting, self._waiting = self._waiting, []
        for future in waiting:
            if not future.done():
                future.set_result(None)
