"""The Ray Data job: read → prepare (model-size input) → segment (ONNX actor pool) → finish (decode, detect, refine, compose, write) → manifest.

This is the only library module that imports Ray. Models reach the workers as bytes through the object
store, so no worker ever needs a driver-local path.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

try:  # Ray Data's policy interface is internal: a Ray that moved it runs without the photo bound, with a warning.
    from ray.data._internal.execution.backpressure_policy import (
        ENABLED_BACKPRESSURE_POLICIES,
        ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY,
        BackpressurePolicy,
    )
    from ray.data._internal.execution.operators.input_data_buffer import InputDataBuffer
except ImportError:  # pragma: no cover - depends on the installed Ray
    BackpressurePolicy = object  # type: ignore[assignment,misc]
    InputDataBuffer = None  # type: ignore[assignment,misc]

from idphoto_ray.config import JobConfig
from idphoto_ray.manifest import completed_hashes, empty_row, latest_rows, read_manifest, rows_to_table
from idphoto_ray.read import InputItem, is_local, list_inputs, open_filesystem, protocol_of
from idphoto_ray.write import join, write_bytes

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did; also written to run.json."""

    run_id: str
    output: str
    listed: int
    skipped: int
    processed: int
    wall_s: float
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    manifest_dir: str = ""
    review_html: str = ""
    stats: str = ""

    @property
    def images_per_s(self) -> float:
        return self.processed / self.wall_s if self.wall_s > 0 else 0.0

    def table(self) -> str:
        lines = [
            f"run {self.run_id}: {self.listed} inputs listed, {self.skipped} unchanged (skipped), "
            f"{self.processed} processed in {self.wall_s:.1f} s ({self.images_per_s:.2f} images/s)",
        ]
        if self.processed == 0:
            lines.append("nothing to do: every input already has an ok/needs_review row for this config")
        for status in ("ok", "needs_review", "failed"):
            if self.counts.get(status):
                lines.append(f"  {status:<14}{self.counts[status]:>7}")
        for reason, n in sorted(self.reasons.items(), key=lambda kv: -kv[1]):
            lines.append(f"    failed: {reason:<22}{n:>5}")
        for flag, n in sorted(self.flags.items(), key=lambda kv: -kv[1]):
            lines.append(f"    review: {flag:<22}{n:>5}")
        lines.append(f"manifest: {self.manifest_dir}")
        if self.review_html:
            lines.append(f"review page: {self.review_html}")
        return "\n".join(lines)


def new_run_id() -> str:
    """Sortable by time, unique across concurrent runs."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + os.urandom(3).hex()


def init_ray(num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Connect to RAY_ADDRESS when set (ray job submit), else start or reuse a local Ray."""
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False)


@dataclass(frozen=True)
class PoolPlan:
    """How the segmentation stage is laid out on the cluster."""

    actors: int
    threads: int
    gpus_per_actor: float
    cpus_per_actor: float
    batch_size: int


def plan_pool(config: JobConfig, cpus: int, gpus: int) -> PoolPlan:
    """Size the segmentation actor pool from the config and the cluster's resources.

    GPU: one actor per GPU. CPU: the actors reserve no logical CPU, so decode and finishing tasks keep
    every core; the ORT threads (cores split between actors, spin-waiting off) share the cores with
    them. Benchmarks showed a CPU actor pinning a whole core idles it when the model is cheap
    (mediapipe-selfie: 10 ms/photo against 126 ms of finishing).
    """
    use_gpu = config.device == "cuda" or (config.device == "auto" and gpus > 0)
    if use_gpu:
        actors = config.concurrency or max(1, gpus)
        return PoolPlan(actors, config.intra_op_num_threads or 1, 1.0, 1.0, config.batch_size or 32)
    actors = config.concurrency or max(1, cpus // 8)
    threads = config.intra_op_num_threads or max(1, cpus // actors)
    # On CPU, batch 1 ran u2net-arch 28 % faster than batch 4 (1.65 vs 1.29 /s, model only) in half the memory.
    return PoolPlan(actors, threads, 0.0, 0.0, config.batch_size or 1)


def photos_in_flight(config: JobConfig, cpus: int, pool: PoolPlan) -> int:
    """The photo-count bound on the queue between reading and finishing.

    Never below four segmentation batches per actor: the actors wait for full batches, and a bound smaller
    than what they hold would stop the reader before a batch could fill.
    """
    wanted = config.max_photos_in_flight or max(64, 32 * cpus)
    return max(wanted, 4 * pool.batch_size * pool.actors)


_IN_FLIGHT_KEY = "idphoto_ray.max_photos_in_flight"


class PhotoQueueBackpressure(BackpressurePolicy):
    """Holds back the reading operator while too many photos are read but not yet finished.

    Ray Data bounds its queues in bytes, split into per-operator reservations that go to upstream
    operators first: on a 2-CPU node reading and preparing held both CPUs, finishing could not start until
    every file was read, and the object store grew with the dataset (130 MB at 200 photos, 874 MB at 2000).
    A budget small enough to stop that starved the fast operators instead (6 against 10 photos/s at 64 MB).
    Counting photos bounds the queue at full speed. Runs in the driver's executor loop.
    """

    def __init__(self, data_context: Any, topology: Any, resource_manager: Any) -> None:
        super().__init__(data_context, topology, resource_manager)
        self._cap, self._per_read = data_context.get_config(_IN_FLIGHT_KEY) or (0, 0)
        ops = list(topology)
        self._readers = [op for op in ops if any(isinstance(dep, InputDataBuffer) for dep in op.input_dependencies)]
        self._sinks = [op for op in ops if not op.output_dependencies]

    @property
    def name(self) -> str:
        return "PhotoQueue"

    def in_flight(self) -> float:
        """Photos read or being read whose finishing task has not completed."""
        read = 0.0
        for op in self._readers:
            metrics = op.metrics
            # A running read counts in full until it finishes: its rows may already be generated.
            read += metrics.rows_outputs_of_finished_tasks + self._per_read * metrics.num_tasks_running
        finished = 0.0
        for op in self._sinks:
            metrics = op.metrics
            pending = getattr(metrics, "_pending_task_inputs", None)
            finished += metrics.rows_inputs_of_submitted_tasks - (pending.num_rows() if pending is not None else 0)
        return read - finished

    def can_add_input(self, op: Any) -> bool:
        if not self._cap or op not in self._readers:
            return True
        return self.in_flight() < self._cap


def _use_photo_queue(ctx: Any, cap: int, photos_per_read: int) -> None:
    """Adds the photo-count policy to Ray Data's own (they all must agree before a read starts)."""
    if InputDataBuffer is None:
        log.warning("this Ray has no backpressure-policy interface where idphoto-ray expects it: memory is "
                    "bounded by Ray Data's object-store budget only (set object_store_limit_mb)")
        return
    policies = list(ctx.get_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, ENABLED_BACKPRESSURE_POLICIES))
    if PhotoQueueBackpressure not in policies:
        policies.append(PhotoQueueBackpressure)
    ctx.set_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, policies)
    ctx.set_config(_IN_FLIGHT_KEY, (cap, photos_per_read))


_JOB_SETTINGS = ("enable_progress_bars", "execution_no_progress_timeout_s", "wait_for_min_actors_s",
                 "op_resource_reservation_enabled")


def _save_context(ctx: Any) -> dict[str, Any]:
    """What run_job changes on the process's DataContext, so a notebook's other datasets get it back."""
    saved = {name: getattr(ctx, name) for name in _JOB_SETTINGS}
    saved["resource_limits"] = ctx.execution_options.resource_limits
    saved["policies"] = ctx.get_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY) if InputDataBuffer is not None else None
    return saved


def _restore_context(ctx: Any, saved: dict[str, Any]) -> None:
    for name in _JOB_SETTINGS:
        setattr(ctx, name, saved[name])
    ctx.execution_options.resource_limits = saved["resource_limits"]
    ctx.remove_config(_IN_FLIGHT_KEY)
    if InputDataBuffer is not None:
        if saved["policies"] is None:
            ctx.remove_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY)
        else:
            ctx.set_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, saved["policies"])


def _fault_injection() -> dict[str, Any] | None:
    """`IDPHOTO_RAY_FAULT_INJECT=segment:<batch>:<marker-file>` kills one segmentation actor once (tests)."""
    spec = os.environ.get("IDPHOTO_RAY_FAULT_INJECT")
    if not spec:
        return None
    stage, batch, marker = spec.split(":", 2)
    return {"stage": stage, "batch": int(batch), "marker": marker}


def _package_versions() -> dict[str, str]:
    names = ("idphoto-ray", "ray", "onnxruntime", "onnxruntime-gpu", "numpy", "pillow", "opencv-python-headless", "pyarrow", "rembg")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions["python"] = platform.python_version()
    return versions


def run_job(config: JobConfig, *, progress: bool = True) -> RunSummary:
    """Run one batch job end to end and return its summary (also in run.json)."""
    from idphoto_ray.models.mediapipe_fetch import ensure as ensure_mediapipe
    from idphoto_ray.models.registry import resolve_segmenter
    from idphoto_ray.review import write_review
    from idphoto_ray.specs import all_specs

    started = time.perf_counter()
    run_id = new_run_id()
    config_hash = config.config_hash()
    out_fs, out_root = open_filesystem(config.output, config.storage_options)
    manifest_dir = join(out_root, "manifest")

    specs = all_specs(config.spec_files)
    unknown = [s for s in config.specs if s not in specs]
    if unknown:
        raise ValueError(f"unknown spec(s) {', '.join(unknown)}; known: {', '.join(sorted(specs))}")

    protocol, items = list_inputs(config.input, config.input_list, config.storage_options)
    if not items:
        raise ValueError(f"no image files found in {config.input or config.input_list}")
    done: set[str] = set()
    if config.resume and out_fs.exists(manifest_dir):
        done = completed_hashes(read_manifest(manifest_dir, filesystem=out_fs), config_hash)

    seg_info, seg_path = resolve_segmenter(config.model, config.model_uri, config.preprocess)
    face_paths = {name: ensure_mediapipe(name) for name in ("blazeface", "face-mesh")}
    model_bytes = {key: path.read_bytes() for key, path in {"segmenter": seg_path, **face_paths}.items()}
    model_sha = {key: hashlib.sha256(data).hexdigest() for key, data in model_bytes.items()}

    init_ray()
    ctx = ray.data.DataContext.get_current()
    saved_context = _save_context(ctx)
    try:
        ctx.enable_progress_bars = progress
        if config.no_progress_timeout_s is not None:
            ctx.execution_no_progress_timeout_s = config.no_progress_timeout_s
        # Reading starts once the segmentation actors are up: before that no task is active, and Ray Data's
        # liveness rule lets reads through whatever any policy says. Same patience as the no-progress timeout.
        patience = ctx.execution_no_progress_timeout_s
        ctx.wait_for_min_actors_s = int(patience) if patience and patience > 0 else 7 * 24 * 3600
        if config.object_store_limit_mb:
            ctx.op_resource_reservation_enabled = True
            ctx.execution_options.resource_limits = ctx.execution_options.resource_limits.copy(
                object_store_memory=config.object_store_limit_mb * 2**20)
        else:
            # Ray Data reserves whole CPUs for operators upstream first: on a 2-CPU node reading and preparing
            # held both and finishing could not start until every file was read. The photo bound below keeps
            # memory flat instead.
            ctx.op_resource_reservation_enabled = False
        resources = ray.cluster_resources()
        cpus = int(resources.get("CPU", 1))
        pool = plan_pool(config, cpus, int(resources.get("GPU", 0)))
        model_refs = {key: ray.put(data) for key, data in model_bytes.items()}
        del model_bytes
        items_ref = ray.put({it.path: it for it in items})

        if config.limit:
            items = items[: config.limit]
        paths = [it.path for it in items]
        filesystem = None if protocol in ("file", "local") else open_filesystem(config.input[0] if config.input else config.input_list, config.storage_options)[0]
        # ~16 files per read task: one task per file left 105 tiny read tasks queueing for the same CPU slots
        # as decode and finishing (N=300, 2 cores: 8.2 → 8.7 photos/s with fewer, larger reads).
        blocks = max(2 * cpus, len(paths) // 16)
        _use_photo_queue(ctx, photos_in_flight(config, cpus, pool), -(-len(paths) // blocks))
        ds = ray.data.read_binary_files(paths, include_paths=True, filesystem=filesystem, override_num_blocks=blocks)
        ds = ds.map_batches(
            prepare_batch,
            fn_kwargs={
                "holder": [items_ref, ray.put(done)],
                "run_id": run_id,
                "config_hash": config_hash,
                "options": config.processing,
                "model_size": seg_info.preprocess.input_size,
            },
            batch_size=8,
            batch_format="numpy",
        )
        seg_kwargs: dict[str, Any] = {"num_cpus": pool.cpus_per_actor}
        if pool.gpus_per_actor:
            seg_kwargs["num_gpus"] = pool.gpus_per_actor
        ds = ds.map_batches(
            SegmentStage,
            fn_constructor_kwargs={
                "model_holder": [model_refs["segmenter"]],
                "info": seg_info,
                "device": config.device,
                "threads": pool.threads,
                "tensorrt": config.tensorrt,
                "fault": _fault_injection(),
            },
            compute=ray.data.ActorPoolStrategy(size=pool.actors, max_tasks_in_flight_per_actor=2),
            batch_size=pool.batch_size,
            batch_format="numpy",
            **seg_kwargs,
        )
        ds = ds.map_batches(
            finish_batch,
            fn_kwargs={
                "key": run_id,
                "face_holder": [model_refs["blazeface"], model_refs["face-mesh"]],
                "specs": [specs[name] for name in config.specs],
                "backgrounds": list(config.backgrounds),
                "options": config.processing,
                "output_root": out_root,
                "output_protocol": protocol_of(out_fs),
                "storage_options": config.storage_options,
            },
            batch_size=4,
            batch_format="numpy",
        )
        ds.write_parquet(manifest_dir, filesystem=None if is_local(out_fs) else out_fs)
    finally:
        _restore_context(ctx, saved_context)

    table = read_manifest(manifest_dir, filesystem=out_fs)
    this_run = table.filter(pc.equal(table.column("run_id"), run_id))
    wall_s = time.perf_counter() - started
    summary = _summarise(run_id, config.output, len(items), len(items) - this_run.num_rows, this_run, wall_s, manifest_dir)
    review_path = join(out_root, "review.html")
    # The page shows the latest result of every listed input under this config, so a resumed run that
    # skipped most photos still shows the whole batch.
    current = latest_rows(table.filter(pc.equal(table.column("config_hash"), config_hash)))
    current = current.filter(pc.is_in(current.column("input_path"), value_set=pa.array([it.uri for it in items])))
    write_review(current, out_fs, out_root, review_path, {it.uri: it.name for it in items}, ok_sample=config.review_ok_sample)
    summary.review_html = review_path
    summary.stats = ds.stats()
    run_info = {
        "run_id": run_id,
        "config": json.loads(config.model_dump_json()),
        "config_hash": config_hash,
        "models": {key: {"name": (seg_info.name if key == "segmenter" else key), "sha256": sha} for key, sha in model_sha.items()},
        "packages": _package_versions(),
        "pool": {"segment_actors": pool.actors, "intra_op_threads": pool.threads, "gpus_per_actor": pool.gpus_per_actor,
                 "cpus_per_actor": pool.cpus_per_actor, "batch_size": pool.batch_size},
        "listed": summary.listed,
        "skipped": summary.skipped,
        "processed": summary.processed,
        "counts": summary.counts,
        "reasons": summary.reasons,
        "flags": summary.flags,
        "wall_s": round(wall_s, 3),
        "images_per_s": round(summary.images_per_s, 3),
    }
    write_bytes(out_fs, join(out_root, "run.json"), json.dumps(run_info, indent=2).encode())
    return summary


def _summarise(run_id: str, output: str, listed: int, skipped: int, rows: pa.Table, wall_s: float, manifest_dir: str) -> RunSummary:
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    flags: dict[str, int] = {}
    for status, reason, row_flags in zip(
        rows.column("status").to_pylist(), rows.column("reason").to_pylist(), rows.column("flags").to_pylist()
    ):
        counts[status] = counts.get(status, 0) + 1
        if reason:
            reasons[reason] = reasons.get(reason, 0) + 1
        for flag in row_flags or []:
            flags[flag] = flags.get(flag, 0) + 1
    return RunSummary(
        run_id=run_id,
        output=output,
        listed=listed,
        skipped=skipped,
        processed=rows.num_rows,
        wall_s=wall_s,
        counts=counts,
        reasons=reasons,
        flags=flags,
        manifest_dir=manifest_dir,
    )


_RESOLVED: dict[str, Any] = {}
_STAGE_OF_STEP = {
    "detect": "detect", "landmarks": "detect",
    "mask": "refine", "level": "refine", "crop": "refine", "matting": "refine", "decontaminate": "refine",
    "compose": "compose", "encode": "encode",
}


def _checked_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row that does not fit the schema must not take its batch down: keep identity, report the bug."""
    try:
        rows_to_table([row])
        return row
    except (pa.ArrowException, TypeError, ValueError) as exc:
        from idphoto_ray.manifest import SCHEMA
        from idphoto_ray.types import Reason

        bad = [f.name for f in SCHEMA if not _fits(f, row.get(f.name))]

        safe = empty_row()
        for key in ("input_path", "input_id", "input_bytes", "input_sha256", "run_id", "config_hash"):
            safe[key] = row.get(key)
        safe.update(status="failed", reason=Reason.INTERNAL_ERROR.value, message=f"manifest row rejected ({', '.join(bad)}): {exc}")
        return safe


def _fits(field: pa.Field, value: Any) -> bool:
    try:
        pa.array([value], type=field.type)
        return True
    except (pa.ArrowException, TypeError, ValueError):
        return False


def _stage_timings(steps: dict[str, float]) -> dict[str, float]:
    """The core's fine-grained step timings folded into the manifest's per-stage struct."""
    stages: dict[str, float] = {}
    for step, ms in steps.items():
        stage = _STAGE_OF_STEP.get(step)
        if stage:
            stages[stage] = stages.get(stage, 0.0) + float(ms)
    return stages


def _get(ref: Any) -> Any:
    """ray.get with a per-process cache: large shared objects are fetched once per worker."""
    key = ref.hex()
    if key not in _RESOLVED:
        if len(_RESOLVED) >= 8:  # long-lived workers serve many runs: keep only recent ones
            _RESOLVED.clear()
        _RESOLVED[key] = ray.get(ref)
    return _RESOLVED[key]


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


def _base_row(item: InputItem | None, path: str, run_id: str, config_hash: str) -> dict[str, Any]:
    row = empty_row()
    row.update(
        input_path=path,
        input_id=item.input_id if item else path,
        run_id=run_id,
        config_hash=config_hash,
        timings_ms={},
    )
    return row


def prepare_batch(
    batch: dict[str, np.ndarray], *, holder: list, run_id: str, config_hash: str, options: Any, model_size: int
) -> dict[str, np.ndarray]:
    """bytes → the segmenter's square input; hashes the input; marks unchanged inputs for skipping.

    For JPEGs only the model-size image (size²×3 bytes) and the original file bytes travel on, and the
    finishing stage decodes the working image itself: shipping 1600-px working images (5.8 MB each) between
    the stages made the object store grow 10× faster while the slower finishing stage caught up. Formats
    that cannot decode at a reduced scale (PNG, HEIC, TIFF) are decoded once, here, at working size, and
    that image travels instead of the bytes.
    """
    from idphoto_ray.decode import decode_image
    from idphoto_ray.models.segmenters import model_input
    from idphoto_ray.types import PhotoError, Reason

    tune_worker_process()
    items: dict[str, InputItem] = _get(holder[0])
    done: set[str] = _get(holder[1])
    n = len(batch["path"])
    model_images = np.zeros((n, model_size, model_size, 3), dtype=np.uint8)
    payload = np.empty(n, dtype=object)
    working = np.empty(n, dtype=object)
    scales = np.ones(n, dtype=np.float64)
    rows = np.empty(n, dtype=object)
    names = np.empty(n, dtype=object)
    ready = np.zeros(n, dtype=bool)
    skip = np.zeros(n, dtype=bool)
    for i in range(n):
        path = str(batch["path"][i])
        data = bytes(batch["bytes"][i])
        item = items.get(path) or items.get(path.lstrip("/"))
        row = _base_row(item, path if item is None else item.uri, run_id, config_hash)
        row["input_bytes"] = len(data)
        row["input_sha256"] = hashlib.sha256(data).hexdigest()
        names[i] = item.name if item else path.rsplit("/", 1)[-1]
        payload[i] = b""
        working[i] = np.zeros((0, 0, 3), np.uint8)
        if row["input_sha256"] in done:
            skip[i] = True
        else:
            started = time.perf_counter()
            try:
                decoded = decode_image(data, long_side=options.working_long_side, max_pixels=options.max_pixels,
                                       cover=model_size)
                model_images[i] = model_input(decoded.rgb, model_size)
                row["width"], row["height"] = decoded.original_size
                if decoded.reduced:
                    payload[i] = data
                else:
                    working[i], scales[i] = decoded.rgb, decoded.scale
                ready[i] = True
            except PhotoError as exc:
                row.update(status="failed", reason=exc.reason.value, message=exc.message)
            except Exception as exc:  # noqa: BLE001 - one bad photo must not fail the batch
                row.update(status="failed", reason=Reason.INTERNAL_ERROR.value, message=f"decode: {exc!r}")
            row["timings_ms"]["decode"] = (time.perf_counter() - started) * 1000
        rows[i] = json.dumps(row)
    return {"row": rows, "name": names, "data": payload, "working": working, "scale": scales,
            "model_image": model_images, "ready": ready, "skip": skip}


class SegmentStage:
    """One ONNX Runtime session per actor, loaded once; runs the segmenter on batches of model-size images."""

    def __init__(self, model_holder: list, info: Any, device: str, threads: int, tensorrt: bool, fault: dict | None) -> None:
        from idphoto_ray.models.registry import build_segmenter

        self.segmenter = build_segmenter(
            info, ray.get(model_holder[0]), device=device, intra_op_num_threads=threads, tensorrt=tensorrt
        )
        self.size = self.segmenter.input_size
        self.fault = fault
        self.calls = 0

    def _maybe_crash(self) -> None:
        self.calls += 1
        if self.fault and self.fault["stage"] == "segment" and self.calls == self.fault["batch"]:
            if not os.path.exists(self.fault["marker"]):
                with open(self.fault["marker"], "w") as handle:
                    handle.write(str(os.getpid()))
                os._exit(1)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._maybe_crash()
        n = len(batch["row"])
        images = batch.pop("model_image")
        masks = np.zeros((n, self.size, self.size), dtype=np.uint8)
        todo = [i for i in range(n) if batch["ready"][i]]
        seconds = np.zeros(n)
        errors = np.full(n, "", dtype=object)
        if todo:
            started = time.perf_counter()
            try:
                out = self.segmenter([images[i] for i in todo])
                masks[todo] = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
            except Exception as exc:  # noqa: BLE001 - isolate the photo that breaks the batch
                for i in todo:
                    try:
                        masks[i] = np.clip(self.segmenter([images[i]])[0] * 255.0 + 0.5, 0, 255).astype(np.uint8)
                    except Exception as single:  # noqa: BLE001
                        errors[i] = f"segmentation: {single!r} (batch error: {exc!r})"
            seconds[todo] = (time.perf_counter() - started) * 1000 / len(todo)
        return {**batch, "mask": masks, "segment_ms": seconds, "segment_error": errors}


class FinishStage:
    """Face detection + landmarks, refine, geometry, compose, encode, write; one manifest row per input, no pixels.

    Runs as plain Ray tasks; `finish_batch` keeps one instance (and its ONNX sessions) per worker process.
    """

    def __init__(
        self,
        face_holder: list,
        specs: list,
        backgrounds: list[str],
        options: Any,
        output_root: str,
        output_protocol: str,
        storage_options: dict,
    ) -> None:
        import fsspec

        from idphoto_ray.backgrounds import parse_background
        from idphoto_ray.models.face_detect import BlazeFaceDetector
        from idphoto_ray.models.face_mesh import FaceMeshLandmarker

        tune_worker_process()
        self.detector = BlazeFaceDetector(_get(face_holder[0]), intra_op_num_threads=1)
        self.landmarker = FaceMeshLandmarker(_get(face_holder[1]), intra_op_num_threads=1)
        self.specs = specs
        self.backgrounds = [parse_background(b) for b in backgrounds]
        self.options = options
        self.root = output_root
        self.fs = fsspec.filesystem(output_protocol, **(storage_options if output_protocol not in ("file", "local") else {}))

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        rows = []
        for i in range(len(batch["row"])):
            if batch["skip"][i]:
                continue
            row = json.loads(batch["row"][i])
            try:
                self._finish(row, batch, i)
            except Exception as exc:  # noqa: BLE001 - the row must be written whatever happened
                from idphoto_ray.types import Reason

                row.update(status="failed", reason=Reason.INTERNAL_ERROR.value, message=f"finish: {exc!r}")
            timings = row["timings_ms"]
            timings["total"] = sum(v for k, v in timings.items() if k != "total")
            rows.append(_checked_row(row))
        return rows_to_table(rows)

    def _finish(self, row: dict[str, Any], batch: dict[str, np.ndarray], i: int) -> None:
        from idphoto_ray.decode import decode_image
        from idphoto_ray.photo import process_photo
        from idphoto_ray.review import write_thumbnail
        from idphoto_ray.types import PhotoError, Reason

        row["timings_ms"]["segment"] = float(batch["segment_ms"][i])
        if row["status"] == "failed":
            return
        image, scale = batch["working"][i], float(batch["scale"][i])
        if not image.size:
            started = time.perf_counter()
            try:
                decoded = decode_image(bytes(batch["data"][i]), long_side=self.options.working_long_side,
                                       max_pixels=self.options.max_pixels)
            except PhotoError as exc:
                row.update(status="failed", reason=exc.reason.value, message=exc.message)
                return
            finally:
                row["timings_ms"]["decode"] += (time.perf_counter() - started) * 1000
            image, scale = decoded.rgb, decoded.scale
        write_thumbnail(self.fs, self.root, batch["name"][i], image)
        if batch["segment_error"][i]:
            row.update(status="failed", reason=Reason.SEGMENTATION_ERROR.value, message=batch["segment_error"][i])
            return
        mask = batch["mask"][i].astype(np.float32) / 255.0
        result = process_photo(
            image, mask, self.detector, self.landmarker, self.specs, self.backgrounds, self.options,
            source_scale=scale,
        )
        row["timings_ms"].update(_stage_timings(result.timings_ms))
        row.update(status=result.status.value, reason=result.reason.value if result.reason else None,
                   message=result.message, flags=list(result.flags))
        self._metrics(row, result.metrics, scale)
        if result.status.value == "failed":
            return
        started = time.perf_counter()
        outputs = []
        try:
            for out in result.outputs:
                path = join(self.root, out.spec, out.background, f"{batch['name'][i]}.{out.ext}")
                write_bytes(self.fs, path, out.data)
                outputs.append({"spec": out.spec, "background": out.background, "path": self._uri(path),
                                "width": out.width, "height": out.height, "bytes": len(out.data)})
        except OSError as exc:
            row.update(status="failed", reason=Reason.WRITE_ERROR.value, message=f"writing {path}: {exc}", flags=[])
            for written in outputs:
                self.fs.rm(written["path"])
            outputs = []
        row["outputs"] = outputs
        row["timings_ms"]["write"] = (time.perf_counter() - started) * 1000

    def _uri(self, path: str) -> str:
        return path if is_local(self.fs) else self.fs.unstrip_protocol(path)

    @staticmethod
    def _metrics(row: dict[str, Any], metrics: dict[str, Any], scale: float) -> None:
        """Manifest geometry is in input pixels; the core works at the working resolution."""
        inv = 1.0 / scale if scale else 1.0
        row["face_count"] = metrics.get("face_count")
        if metrics.get("face_box"):
            row["face_box"] = {k: float(v) * inv for k, v in metrics["face_box"].items()}
        if metrics.get("eyes"):
            row["eyes"] = {k: float(v) * inv for k, v in metrics["eyes"].items()}
        for key in ("roll_deg", "yaw_deg", "head_height_ratio", "inter_eye_px", "sharpness", "exposure"):
            if metrics.get(key) is not None:
                row[key] = float(metrics[key])


_FINISHERS: dict[str, FinishStage] = {}


def finish_batch(batch: dict[str, np.ndarray], *, key: str, **kwargs: Any) -> pa.Table:
    """Task-pool entry for the finishing stage: build the stage once per worker process, then reuse it."""
    if key not in _FINISHERS:
        _FINISHERS.clear()
        _FINISHERS[key] = FinishStage(**kwargs)
    return _FINISHERS[key](batch)
