"""Hold a prepared photo while its siblings in the same finisher are still preparing, then send them together.

Serve's `@serve.batch` only batches what reaches the segmenter within its 10 ms window. Photos finish their
CPU preparation (decode, face models) one at a time, hundreds of ms apart on two cores, so without help the
segmenter saw batches of 1 (docs/service.md: 171 of 178 batches at 256 clients). The gate lets a prepared
photo wait only while another photo of the same replica is being prepared and every CPU thread of the
replica has work — so no thread idles for it, a lone photo (1 client) never waits, and concurrent photos
reach the segmenter as one burst, which Serve turns into one batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class SegmentGate:
    """`with gate.preparing(): …` around a photo's preparation, `with gate.on_cpu(): …` around every task the
    replica's CPU pool runs, then `await gate.wait()` before segmenting.

    A prepared photo is held only while another photo is preparing *and* every pool thread has work: then
    holding it costs nothing (no thread could run its next step sooner), and it leaves with its siblings.
    """

    def __init__(self, max_group: int, max_wait_s: float, threads: int) -> None:
        self.max_group = max_group
        self.max_wait_s = max_wait_s
        self.threads = threads
        self.in_preparation = 0
        self.cpu_tasks = 0
        self._waiting: list[asyncio.Future[None]] = []

    def _hold(self) -> bool:
        return (
            self.in_preparation > 0 and self.cpu_tasks >= self.threads and len(self._waiting) < self.max_group
        )

    @contextmanager
    def preparing(self) -> Iterator[None]:
        self.in_preparation += 1
        try:
            yield
        except BaseException:
            self.in_preparation -= 1
            if not self._hold():  # a photo that failed to prepare will not come to release the rest
                self._release()
            raise
        self.in_preparation -= 1

    @contextmanager
    def on_cpu(self) -> Iterator[None]:
        """Count a task queued or running on the replica's CPU pool; a thread freed releases the held."""
        self.cpu_tasks += 1
        try:
            yield
        finally:
            self.cpu_tasks -= 1
            if not self._hold():
                self._release()

    async def wait(self) -> None:
        """Return when this photo should go to the segmenter (at once when nothing justifies holding it)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        if not self._hold():
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
