"""The two working deployments: a segmenter that batches requests onto one ONNX session, and CPU finishers.

The segmenter is the part a GPU speeds up, and the part that gains from batching (one `session.run` for
many photos); everything else (decode, face models, matting, compositing, encoding) is CPU work that scales
by adding finisher replicas. Both hold their models from `__init__` on, one set per replica.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from idphoto_ray.layout import SheetPlan
from idphoto_ray.photo_path import PhotoPath, quantize_masks
from idphoto_ray.service.answer import answer, failed, new_row
from idphoto_ray.service.gate import SegmentGate
from idphoto_ray.service.settings import ServiceSettings
from idphoto_ray.types import PhotoError

#: Batching waits at most 10 ms for company: the finishers' gate sends concurrent photos as one burst, so
#: the window only has to catch a burst; alone a photo loses 10 of ~300 ms.
BATCH_WAIT_S = 0.01
MAX_BATCH = 8
#: Photos one finisher replica holds at once. One thread per core works on them; the rest wait for a thread
#: or at the gate, which is what lets the segmenter see several at once (with 4, 171 of 178 batches had one
#: photo). The three replicas' summed RSS went 0.9 → 1.2 GB at 32 clients (docs/service.md).
FINISHER_ONGOING = 16


#: On a CPU, a model input this large or larger runs one photo at a time: IS-Net (1024²) in batches of 2–3
#: cut the service's throughput from 0.16 to 0.11 photos/s and doubled the segmenter's memory (3.3 → 6.1 GB)
#: on 2 cores (serve_benchmark, 2026-12-02), while mediapipe-selfie (256²) batches at no cost. A GPU batches
#: whatever the size.
CPU_BATCH_LIMIT_PX = 512


def batch_limit(device: str, input_size: int) -> int:
    """Largest segmenter batch for this device and model input side."""
    if device == "cpu" and input_size >= CPU_BATCH_LIMIT_PX:
        return 1
    return MAX_BATCH


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=32)
class Segmenter:
    """One ONNX Runtime session per replica; concurrent callers' photos are run as one batch."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from idphoto_ray.models.registry import build_segmenter, resolve_segmenter, segmenter_graph
        from idphoto_ray.models.session import cuda_available

        config = ServiceSettings.model_validate(settings)
        info, path = resolve_segmenter(config.model)
        device = config.device
        if device == "auto":
            device = "cuda" if cuda_available() else "cpu"
        threads = 1 if device == "cuda" else max(1, (os.cpu_count() or 2) // 2)
        graph, _ = segmenter_graph(info, path)
        self.segmenter = build_segmenter(info, graph, device=device, intra_op_num_threads=threads)
        limit = batch_limit(device, self.segmenter.input_size)
        self.segment.set_max_batch_size(limit)
        self.info = {
            "model": info.name,
            "device": device,
            "threads": threads,
            "max_batch": limit,
            "batching": self.segmenter.info,
        }
        self.batch_sizes: Counter[int] = Counter()

    def model_size(self) -> int:
        return self.segmenter.input_size

    def stats(self) -> dict[str, Any]:
        """How many batches of each size ran: the proof that concurrent requests were batched."""
        return {**self.info, "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())}}

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=BATCH_WAIT_S)
    async def segment(self, images: list[np.ndarray]) -> list[tuple[np.ndarray | None, float, str]]:
        """(uint8 mask, ms per photo, error) per image; a photo that breaks the batch fails alone."""
        self.batch_sizes[len(images)] += 1
        started = time.perf_counter()
        try:
            masks = await asyncio.to_thread(self.segmenter, images)
            results = [(m, "") for m in quantize_masks(masks)]
        except Exception as exc:  # noqa: BLE001 - isolate the photo that breaks the batch
            results = []
            for image in images:
                try:
                    results.append((quantize_masks(self.segmenter([image]))[0], ""))
                except Exception as single:  # noqa: BLE001
                    results.append((None, f"segmentation: {single!r} (batch error: {exc!r})"))
        ms = (time.perf_counter() - started) * 1000 / len(images)
        return [(mask, ms, error) for mask, error in results]


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=FINISHER_ONGOING)
class Finisher:
    """Decode, face models, matting, compositing, encoding and print sheets for one photo per call.

    The CPU work runs on a pool of one thread per core of the node (more threads only slice the same cores
    and make every photo slower); the event loop holds the other requests, at the pool or the segmenter.
    """

    def __init__(self, segmenter: DeploymentHandle, settings: dict[str, Any]) -> None:
        from idphoto_ray.job.worker import tune_worker_process
        from idphoto_ray.specs import all_specs

        tune_worker_process()
        config = ServiceSettings.model_validate(settings)
        # Face models (and the person gate's) once; each request chooses its outputs.
        self.path = PhotoPath.load([], [], config.processing, segmenter=config.model)
        self.catalogue = all_specs(config.spec_files)
        self.segmenter = segmenter
        self.model_size: int | None = None
        threads = max(1, os.cpu_count() or 1)
        self.cpu = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="finish")
        self.gate = SegmentGate(MAX_BATCH, config.gate_wait_s, threads)

    async def _on_cpu(self, fn: Any, *args: Any) -> Any:
        with self.gate.on_cpu():
            return await asyncio.get_running_loop().run_in_executor(self.cpu, fn, *args)

    async def ready(self) -> bool:
        """True once the segmenter answers too: what /readyz reports."""
        if self.model_size is None:
            self.model_size = await self.segmenter.model_size.remote()
        return True

    async def make(
        self,
        data: bytes,
        specs: list[str],
        backgrounds: list[str],
        sheets: list[tuple[Any, str, SheetPlan]],
        inline: bool = True,
    ) -> dict[str, Any]:
        """One photo through the job's photo path; a failed photo is an answer too, with its reason.

        `inline=False`: each output's raw bytes under `data`, for the ingress to store behind a link.
        """
        await self.ready()
        path = self.path.with_outputs([self.catalogue[s] for s in specs], backgrounds, sheets)
        try:
            with self.gate.preparing():
                prepared = await self._on_cpu(path.prepare, data, self.model_size)
        except PhotoError as exc:
            return failed(data, exc.reason, exc.message)
        await self.gate.wait()
        mask, segment_ms, error = await self.segmenter.segment.remote(prepared.model_image)
        row = new_row(data)
        finished = await self._on_cpu(path.finish_row, row, prepared, mask, segment_ms, error)
        return await self._on_cpu(answer, row, finished.files, finished.scale, inline)
