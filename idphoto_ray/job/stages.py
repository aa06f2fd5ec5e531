"""The job's three stages, one shape: a callable class that loads what it needs once, in `__init__`.

prepare (tasks) → segment (actor pool) → finish (tasks). Ray Data runs callable classes on actor pools
only; `as_tasks` runs one as tasks, with one instance per worker process. Each stage checks its input
columns (`record.require`) and turns every per-photo error into data: a manifest row, never an exception
escaping a batch.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from idphoto_ray import manifest
from idphoto_ray.job import record
from idphoto_ray.job.worker import scrub_worker_logs, tune_worker_process
from idphoto_ray.read import is_local
from idphoto_ray.redact import secret_values
from idphoto_ray.types import PhotoError, Reason, Step

log = logging.getLogger(__name__)

#: The `region` column's value for a photo segmented whole.
WHOLE_FRAME = (0.0, 0.0, 1.0, 1.0)

#: Per worker process: the live instance of each stage class run as tasks, and the build it came from.
_LIVE: dict[type, tuple[str, Any]] = {}


def as_tasks(stage: type, **kwargs: Any) -> Callable[[dict[str, np.ndarray]], Any]:
    """A map_batches function that runs `stage(**kwargs)` as tasks, built once per worker process.

    Building per batch would reload the face models (two ONNX sessions) every four photos. A worker that
    served an earlier job rebuilds when it sees a new build (a fresh token). Ray Data names the operator
    after the stage class. `run.build()` builds this process's instance without a batch (`warm_workers`).
    """
    token = os.urandom(8).hex()
    build = functools.partial(_live, stage, token, kwargs)

    def run(batch: dict[str, np.ndarray]) -> Any:
        return build()(batch)

    run.__name__ = run.__qualname__ = stage.__name__
    run.build = build  # type: ignore[attr-defined]
    return run


def _live(stage: type, token: str, kwargs: dict[str, Any]) -> Any:
    live = _LIVE.get(stage)
    if live is None or live[0] != token:
        _LIVE[stage] = live = (token, stage(**kwargs))
    return live[1]


def warm_workers(stages: Sequence[Callable[..., Any]], processes: int) -> list[Any]:
    """Start `processes` task worker processes and build the `as_tasks` stages in each, now.

    Ray Data starts reading only once the segmentation actors are up, and only then asks Ray for task
    worker processes: on 2 busy cores the first prepare task began 10–12 s after the IS-Net actor was
    ready (a worker process imports Ray, Ray Data and our stages, ~3 s of CPU, then loads the face models).
    Started here, the workers import and load while the actors do, and Ray Data's tasks reuse them.
    Returns the tasks' refs for `settle_warm_up`.
    """
    remote = ray.remote(num_cpus=1, max_retries=0)(_build_all)
    builds = [stage.build for stage in stages]  # type: ignore[attr-defined]
    return [remote.remote(builds) for _ in range(processes)]


def _build_all(builds: list[Callable[[], Any]]) -> None:
    for build in builds:
        build()


def settle_warm_up(refs: list[Any]) -> None:
    """Collect the warm-up tasks: a stage that failed to build fails again in its first real task, which
    reports it; here the error is only logged, so Ray never prints it as an unhandled error."""
    done, pending = ray.wait(refs, num_returns=len(refs), timeout=0)
    for ref in pending:
        ray.cancel(ref)
    for ref in done:
        try:
            ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - the real tasks report the same failure as data
            log.debug("warm-up of a task worker failed: %r", exc)


class PrepareStage:
    """Read the input → the segmenter's square input; hash it; mark inputs done under this config skipped.

    The bytes are read here, not by a Ray read task: a file that vanished, a FIFO, a permission error is
    this input's `read_error` row, never a failed read task that ends the job.
    """

    def __init__(
        self,
        done_ref: Any,
        options: Any,
        model_size: int,
        filesystem: Any,
        detector_ref: Any = None,
        specs: list | None = None,
    ) -> None:
        """`filesystem`: the photos' fsspec filesystem (it pickles with its options), None for local files.

        `detector_ref` (BlazeFace's bytes) and `specs` find the region to segment when
        `options.segment_region` is `roi`; without them the whole photo is segmented.
        """
        import fsspec

        tune_worker_process()
        self.done: dict[str, str] = ray.get(done_ref)
        self.options = options
        self.size = model_size
        self.finder = None
        if options.segment_region == "roi" and detector_ref is not None and specs:
            from idphoto_ray.models.registry import build_face_detector
            from idphoto_ray.region import RegionFinder

            detector = build_face_detector(ray.get(detector_ref))
            self.finder = RegionFinder(detector, specs, options.multiple_face_ratio)
        self.local = filesystem is None
        self.fs = filesystem or fsspec.filesystem("file")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from idphoto_ray.entries import UnreadableEntry, read_entry
        from idphoto_ray.photo_path import prepare

        record.require(batch, record.READ, "prepare")
        n = len(batch["path"])
        out: dict[str, np.ndarray] = {
            "input_path": np.empty(n, dtype=object),
            "input_id": np.empty(n, dtype=object),
            "name": np.empty(n, dtype=object),
            "input_bytes": np.zeros(n, dtype=np.int64),
            "input_sha256": np.full(n, "", dtype=object),
            "skip": np.zeros(n, dtype=bool),
            "width": np.zeros(n, dtype=np.int32),
            "height": np.zeros(n, dtype=np.int32),
            "reason": np.full(n, "", dtype=object),
            "message": np.full(n, "", dtype=object),
            "decode_ms": np.zeros(n),
            "data": np.full(n, b"", dtype=object),
            "working": np.empty(n, dtype=object),
            "scale": np.ones(n),
            "model_image": np.zeros((n, self.size, self.size, 3), dtype=np.uint8),
            "region": np.tile(np.array(WHOLE_FRAME, dtype=np.float32), (n, 1)),
        }
        for i in range(n):
            out["input_path"][i] = str(batch["uri"][i])
            out["input_id"][i] = input_id = str(batch["input_id"][i])
            out["name"][i] = str(batch["name"][i])
            out["working"][i] = np.zeros((0, 0, 3), np.uint8)
            try:
                if batch["problem"][i]:
                    out["reason"][i], out["message"][i] = Reason.READ_ERROR.value, str(batch["problem"][i])
                    continue
                data = read_entry(self.fs, str(batch["path"][i]), self.local)
            except UnreadableEntry as exc:
                out["reason"][i], out["message"][i] = Reason.READ_ERROR.value, str(exc)
                continue
            out["input_bytes"][i] = len(data)
            out["input_sha256"][i] = sha = hashlib.sha256(data).hexdigest()
            if self.done.get(input_id) == sha:
                out["skip"][i] = True
                continue
            started = time.perf_counter()
            try:
                prepared = prepare(data, self.options, self.size, self.finder)
                out["model_image"][i] = prepared.model_image
                if prepared.region is not None:
                    out["region"][i] = prepared.region
                out["width"][i], out["height"][i] = prepared.original_size
                out["data"][i] = prepared.data
                if prepared.working is not None:
                    out["working"][i], out["scale"][i] = prepared.working, prepared.scale
            except PhotoError as exc:
                out["reason"][i], out["message"][i] = exc.reason.value, exc.message
            except Exception as exc:  # noqa: BLE001 - one bad photo must not fail the batch
                out["reason"][i], out["message"][i] = Reason.INTERNAL_ERROR.value, f"decode: {exc!r}"
            out["decode_ms"][i] = (time.perf_counter() - started) * 1000
        return out


class SegmentStage:
    """One ONNX Runtime session per actor, loaded once; runs the segmenter on batches of model-size images."""

    def __init__(self, model_ref: Any, info: Any, device: str, threads: int, tensorrt: bool) -> None:
        from idphoto_ray.models.registry import build_segmenter

        self.segmenter = build_segmenter(
            info, ray.get(model_ref), device=device, intra_op_num_threads=threads, tensorrt=tensorrt
        )
        self.size = self.segmenter.input_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from idphoto_ray.photo_path import quantize_masks

        record.require(batch, record.PREPARED, "segment")
        n = len(batch["input_path"])
        images = batch.pop("model_image")
        masks = np.zeros((n, self.size, self.size), dtype=np.uint8)
        todo = [i for i in range(n) if record.ready(batch, i)]
        seconds = np.zeros(n)
        errors = np.full(n, "", dtype=object)
        if todo:
            started = time.perf_counter()
            try:
                masks[todo] = quantize_masks(self.segmenter([images[i] for i in todo]))
            except Exception as exc:  # noqa: BLE001 - isolate the photo that breaks the batch
                for i in todo:
                    try:
                        masks[i] = quantize_masks(self.segmenter([images[i]]))[0]
                    except Exception as single:  # noqa: BLE001
                        errors[i] = f"segmentation: {single!r} (batch error: {exc!r})"
            seconds[todo] = (time.perf_counter() - started) * 1000 / len(todo)
        return {**batch, "mask": masks, "segment_ms": seconds, "segment_error": errors}


class FinishStage:
    """Detect, landmarks, refine, geometry, compose, encode, print sheets, write; one row per input."""

    def __init__(
        self,
        face_refs: list,
        specs: list,
        backgrounds: list[str],
        options: Any,
        output_root: str,
        output_protocol: str,
        storage_options: dict,
        run_id: str,
        config_hash: str,
        sheet_plans: list | None = None,
        segmenter: str | None = None,
    ) -> None:
        import fsspec

        from idphoto_ray.photo_path import PhotoPath

        tune_worker_process()
        scrub_worker_logs(secret_values(storage_options))
        blazeface, face_mesh, person = ray.get(face_refs)  # person: the person gate's model
        self.path = PhotoPath.load(
            specs,
            backgrounds,
            options,
            blazeface=blazeface,
            face_mesh=face_mesh,
            plans=sheet_plans or (),
            person=person,
            segmenter=segmenter,
        )
        self.root = output_root
        local = output_protocol in ("file", "local")
        self.fs = fsspec.filesystem(output_protocol, **({} if local else storage_options))
        self.run_id, self.config_hash = run_id, config_hash

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        record.require(batch, record.SEGMENTED, "finish")
        rows = []
        for i in range(len(batch["input_path"])):
            if batch["skip"][i]:
                continue
            row = manifest.new_row(
                str(batch["input_path"][i]),
                str(batch["input_id"][i]),
                int(batch["input_bytes"][i]),
                str(batch["input_sha256"][i]),
                self.run_id,
                self.config_hash,
            )
            try:
                self._finish(row, batch, i)
            except Exception as exc:  # noqa: BLE001 - the row must be written whatever happened
                manifest.fail(row, Reason.INTERNAL_ERROR, f"finish: {exc!r}")
            rows.append(manifest.finish_row(row))
        return manifest.rows_to_table(rows)

    def _finish(self, row: dict[str, Any], batch: dict[str, np.ndarray], i: int) -> None:
        from idphoto_ray.photo_path import Prepared, write_outputs
        from idphoto_ray.review import write_thumbnail

        width, height = int(batch["width"][i]), int(batch["height"][i])
        prepared = Prepared(
            np.zeros(0, np.uint8),
            (width or None, height or None),
            bytes(batch["data"][i]),
            batch["working"][i],
            float(batch["scale"][i]),
            {Step.DECODE.value: float(batch["decode_ms"][i])},
            _region(batch["region"][i]),
        )
        if batch["reason"][i]:
            manifest.fail(row, Reason(batch["reason"][i]), str(batch["message"][i]))
            manifest.add_time(row, Step.DECODE, prepared.timings_ms[Step.DECODE.value])
            return
        finished = self.path.finish_row(
            row, prepared, batch["mask"][i], float(batch["segment_ms"][i]), str(batch["segment_error"][i])
        )
        name = str(batch["name"][i])
        if finished.image is not None:
            try:
                write_thumbnail(self.fs, self.root, name, finished.image)
            except OSError as exc:  # the preview is for people; it never blocks the ID photos
                log.warning("preview for %s not written: %s", row["input_id"], exc)
        if row["status"] == "failed":
            return
        started = time.perf_counter()
        try:
            written = write_outputs(self.fs, self.root, name, finished.files)
            manifest.set_outputs(row, [(self._uri(path), item) for path, item in written], finished.scale)
        except OSError as exc:  # message names the path (write_outputs): full disk, read-only, name too long
            manifest.fail(row, Reason.WRITE_ERROR, str(exc))
        manifest.add_time(row, Step.WRITE, (time.perf_counter() - started) * 1000)

    def _uri(self, path: str) -> str:
        return path if is_local(self.fs) else self.fs.unstrip_protocol(path)


def _region(value: np.ndarray) -> tuple[float, float, float, float] | None:
    """The `region` column's value as `Prepared.region`: None for the whole frame."""
    x0, y0, x1, y1 = (float(v) for v in value)
    return None if (x0, y0, x1, y1) == WHOLE_FRAME else (x0, y0, x1, y1)
