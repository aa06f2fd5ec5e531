"""Benchmark: the pipeline end to end against the model-only bound, the CPU-stage bound and a sequential
baseline.

    python jobs/benchmark.py --n 300                       # the table for both models
    python jobs/benchmark.py --n 60 --batch-sizes 1,4,16,32 --actors 1,2 --model mediapipe-selfie
    python jobs/benchmark.py --n 100 --model isnet         # IS-Net (`idphoto-ray models fetch isnet` first)
    python jobs/benchmark.py --memory-check                # peak RSS / object store at N=200 vs N=2000
    python jobs/benchmark.py --device cuda --n 5000        # on a GPU machine (samples nvidia-smi)

Figures, all photos/s, measured in one process on the same machine and model:

- bound      model only: `session.run` on pre-decoded, pre-resized input tensors in a tight loop, batched
             (`--bound-batch`, default the largest swept batch), intra-op threads = all cores (CPU).
- cpu_stage  prepare + finish without inference, single process (one core): sha256, the model-size decode,
             decode_image, process_photo with a mask precomputed by the same model, thumbnail + outputs
             written. Measured on a sample (`--cpu-sample`) of the set; ×cores is the CPU limit of the
             machine.
- pipeline   `run_job` end to end (list → read → prepare → segment actors → finish → manifest, run.json,
             review.html), wall clock, on all N photos.
- baseline   what a user writes without us: one process, per photo read → decode → the same ONNX session
             (our OnnxSegmenter, batch 1, all cores) → the same process_photo → write; on a sample
             (`--baseline-sample`). rembg.remove is not used: it cannot fetch models here, and it would
             run the same ORT session per image anyway.

Per-stage times come from Ray Data's own `ds.stats()` (`RunSummary.stats`). Peak RSS sums driver + Ray
worker processes (psutil, sampled in a thread); peak object store is the raylet's `object_store_bytes_used`,
sampled likewise.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODELS = ("mediapipe-selfie", "u2net-arch")


# --------------------------------------------------------------------------------------------- sampling
@dataclass
class Peaks:
    rss_mb: float = 0.0
    private_mb: float = 0.0
    driver_private_mb: float = 0.0
    object_store_mb: float = 0.0
    gpu_util_max: float = 0.0
    gpu_util_mean: float = 0.0
    gpu_mem_mb: float = 0.0
    samples: int = 0
    gpu_samples: list[tuple[float, float]] = field(default_factory=list)


def _session_dir() -> str | None:
    with contextlib.suppress(Exception):
        import ray

        return ray._private.worker._global_node.get_session_dir_path()
    return None


def _ray_processes(driver: Any, session_dir: str | None) -> list[Any]:
    """The driver and the Ray worker processes of *this* Ray session (the machine is shared: other
    sessions' workers must not count): children of the raylet whose command line names our session dir."""
    import psutil

    procs = [driver]
    raylets = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, IndexError, TypeError):
            cmd = proc.info["cmdline"] or []
            if cmd and cmd[0].endswith("raylet") and session_dir and any(session_dir in c for c in cmd):
                raylets.append(proc)
    for raylet in raylets:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            for child in raylet.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
                    cmd = child.cmdline()
                    agent = cmd and cmd[0].startswith("ray::") and cmd[0].endswith("Agent")
                    if (
                        cmd
                        and not agent
                        and (cmd[0].startswith("ray::") or any("default_worker.py" in c for c in cmd[:3]))
                    ):
                        procs.append(child)
    return procs


def _session_system_processes(session_dir: str | None) -> list[Any]:
    """Ray's own processes of this session (raylet, GCS, agents, monitors): whose command line names it."""
    import psutil

    found = []
    if not session_dir:
        return found
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, TypeError):
            cmd = proc.info["cmdline"] or []
            if any(session_dir in c for c in cmd) and not (cmd and cmd[0].startswith("ray::")):
                found.append(proc)
    return found


def _object_store_reader() -> Any:
    """A callable returning the object store bytes in use, or None where it cannot be read."""
    try:
        import ray
        from ray._private.internal_api import get_memory_info_reply, get_state_from_address

        state = get_state_from_address(ray.get_runtime_context().gcs_address)

        def read() -> float:
            reply = get_memory_info_reply(state, timeout_seconds=5)
            return float(reply.store_stats.object_store_bytes_used)

        read()
        return read
    except Exception:  # noqa: BLE001 - a private API; the figure is reported as missing instead
        return None


class Sampler:
    """Samples RSS of driver+workers, object store use and (optionally) nvidia-smi in a thread."""

    def __init__(self, interval_s: float = 0.5, gpu: bool = False) -> None:
        import psutil

        self.interval = interval_s
        self.gpu = gpu and shutil.which("nvidia-smi") is not None
        self.peaks = Peaks()
        self._stop = threading.Event()
        self._driver = psutil.Process()
        self._store = _object_store_reader()
        self._session = _session_dir()
        self.workers_seen = 0
        #: pid → (role, cpu seconds at first sight, latest cpu seconds); processes born during the run start
        #: at 0.
        self._cpu: dict[int, list] = {}
        self._system: list[Any] | None = None  # Ray's own processes, found once
        self._started = 0.0
        self.wall_s = 0.0
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self._started = time.perf_counter()
        self._track_cpu(_ray_processes(self._driver, self._session), at_start=True)
        self._thread.start()
        return self

    def _track_cpu(self, procs: list[Any], at_start: bool = False) -> None:
        """Accumulate user+system CPU per process, so a run's core-seconds can be split by role."""
        import psutil

        if self._system is None:
            self._system = _session_system_processes(self._session) if self._session else []
        for proc in [*procs, *self._system]:
            try:
                t = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            used = t.user + t.system
            role = (
                "driver"
                if proc.pid == self._driver.pid
                else ("ray_system" if proc in self._system else "workers")
            )
            entry = self._cpu.setdefault(proc.pid, [role, used if at_start else 0.0, used])
            entry[2] = used

    def cpu_seconds(self) -> dict[str, float]:
        """Core-seconds used during the run by role, and the share of the machine's cores they filled."""
        out: dict[str, float] = {"driver": 0.0, "workers": 0.0, "ray_system": 0.0}
        for role, first, last in self._cpu.values():
            out[role] += max(0.0, last - first)
        out = {k: round(v, 1) for k, v in out.items()}
        out["total"] = round(sum(out.values()), 1)
        available = self.wall_s * (os.cpu_count() or 1)
        out["busy_fraction"] = round(out["total"] / available, 3) if available else 0.0
        return out

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.wall_s = time.perf_counter() - self._started
        if self.peaks.gpu_samples:
            utils = [u for u, _ in self.peaks.gpu_samples]
            self.peaks.gpu_util_max = max(utils)
            self.peaks.gpu_util_mean = sum(utils) / len(utils)
            self.peaks.gpu_mem_mb = max(m for _, m in self.peaks.gpu_samples)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        import psutil

        rss = private = driver_private = 0
        procs = _ray_processes(self._driver, self._session)
        self.workers_seen = max(self.workers_seen, len(procs) - 1)
        self._track_cpu(procs)
        for proc in procs:
            try:
                mem = proc.memory_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rss += mem.rss
            private += mem.rss - getattr(mem, "shared", 0)
            if proc.pid == self._driver.pid:
                driver_private = mem.rss - getattr(mem, "shared", 0)
        p = self.peaks
        p.rss_mb = max(p.rss_mb, rss / 2**20)
        p.private_mb = max(p.private_mb, private / 2**20)
        p.driver_private_mb = max(p.driver_private_mb, driver_private / 2**20)
        if self._store is not None:
            with contextlib.suppress(Exception):
                p.object_store_mb = max(p.object_store_mb, self._store() / 2**20)
        if self.gpu:
            with contextlib.suppress(Exception):
                out = (
                    subprocess.run(
                        [
                            "nvidia-smi",
                            "--query-gpu=utilization.gpu,memory.used",
                            "--format=csv,noheader,nounits",
                        ],
                        capture_output=True,
                        text=True,
                        timeout=5,
                    )
                    .stdout.strip()
                    .splitlines()[0]
                )
                util, mem = (float(v) for v in out.split(","))
                p.gpu_samples.append((util, mem))
        p.samples += 1


# ---------------------------------------------------------------------------------------------- helpers
def _segmenter(device: str, model: str, threads: int | None) -> tuple[Any, Any]:
    from idphoto_ray.models.registry import build_segmenter, resolve_segmenter, segmenter_graph

    info, path = resolve_segmenter(model)
    graph, _ = segmenter_graph(info, path)  # what the job's actors load
    return info, build_segmenter(info, graph, device=device, intra_op_num_threads=threads)


def _photo_path(specs: list, bgs: list, options: Any) -> Any:
    """The job's photo path (face models loaded once) for specs and background names."""
    from idphoto_ray.photo_path import PhotoPath

    return PhotoPath.load(specs, bgs, options)


def _specs_backgrounds(specs: list[str], backgrounds: list[str]) -> tuple[list, list]:
    from idphoto_ray.specs import all_specs

    catalogue = all_specs()
    return [catalogue[s] for s in specs], list(backgrounds)


def _finish_one(
    data: bytes,
    name: str,
    mask: np.ndarray | None,
    seg: Any,
    path: Any,
    out_root: str,
    steps: dict[str, float],
) -> str:
    """One photo through the job's photo path (photo_path: prepare, working image, finish, write); the
    baseline (mask None) decodes once and segments in line, as a user's loop would."""
    import fsspec

    from idphoto_ray.decode import decode_image
    from idphoto_ray.photo_path import quantize_masks, working_image, write_outputs
    from idphoto_ray.review import write_thumbnail
    from idphoto_ray.types import PhotoError

    fs = fsspec.filesystem("file")
    options = path.options
    t0 = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    region = None
    try:
        if mask is not None:  # the job's prepare: a model-size decode (JPEG) or the only decode (others)
            prepared = path.prepare(data, mask.shape[0])  # and the region around the subject (roi)
            region = prepared.region
            steps["prepare"] = steps.get("prepare", 0.0) + (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            image, scale = working_image(prepared, options)
        else:
            decoded = decode_image(data, long_side=options.working_long_side, max_pixels=options.max_pixels)
            image, scale = decoded.rgb, decoded.scale
    except PhotoError:
        return "failed"
    t1 = time.perf_counter()
    steps["decode"] = steps.get("decode", 0.0) + (t1 - t0) * 1000
    if mask is None:
        mask = quantize_masks(seg([image]))[0]
        steps["segment"] = steps.get("segment", 0.0) + (time.perf_counter() - t1) * 1000
    t2 = time.perf_counter()
    write_thumbnail(fs, out_root, name, image)
    result = path.finish_image(image, scale, mask, region)
    for step, ms in result.timings_ms.items():
        steps[step] = steps.get(step, 0.0) + ms
    t3 = time.perf_counter()
    write_outputs(fs, out_root, name, result.outputs)
    t4 = time.perf_counter()
    steps["write"] = steps.get("write", 0.0) + (t4 - t3) * 1000
    steps["finish_other"] = (
        steps.get("finish_other", 0.0) + (t3 - t2) * 1000 - sum(result.timings_ms.values())
    )
    return result.status.value


# ----------------------------------------------------------------------------------------- measurements
def _warm_up(one: Any, n: int) -> None:
    """Run photos until one goes all the way through (JIT-compiled matting kernels, ORT allocations)."""
    for k in range(min(n, 5)):
        if one(k) != "failed":
            return


def measure_bound(
    model: str, device: str, threads: int, batch: int, files: list[Path], options: Any, min_s: float
) -> dict[str, Any]:
    """Model-only throughput: session.run on ready input tensors, batched, in a tight loop.

    Only the mask output is fetched, as the segment stage does (IS-Net's graph has 11 more side outputs,
    4 MB each per image). A graph exported with a fixed batch of 1 (IS-Net) is made dynamic first, as the
    pipeline does on its first batch; if that fails the bound is batch 1.
    """
    from idphoto_ray.decode import decode_image
    from idphoto_ray.models.segmenters import preprocess_batch

    info, seg = _segmenter(device, model, threads)
    images = [
        decode_image(f.read_bytes(), long_side=options.working_long_side).rgb for f in files[: max(batch, 8)]
    ]
    if batch > 1 and not seg.ensure_batching():
        batch = 1
    x = preprocess_batch(images, info.preprocess)
    while len(x) < batch:
        x = np.concatenate([x, x])[:batch]
    x = np.ascontiguousarray(x[:batch])
    name, fetch = seg.session.get_inputs()[0].name, [seg.output_name]
    seg.session.run(fetch, {name: x})  # warm-up (allocations, kernels)
    done, started = 0, time.perf_counter()
    while True:
        seg.session.run(fetch, {name: x})
        done += batch
        elapsed = time.perf_counter() - started
        if elapsed >= min_s and done >= 2 * batch:
            break
    return {
        "photos_per_s": done / elapsed,
        "batch": batch,
        "threads": threads,
        "images": done,
        "seconds": elapsed,
        "batched_graph": seg.batched,
    }


def measure_cpu_stage(model: str, files: list[Path], options: Any, specs: list, bgs: list) -> dict[str, Any]:
    """Prepare + finish throughput of one core, masks precomputed by `model` (untimed).

    The process is tuned as the pipeline's CPU tasks are (`tune_worker_process`): OpenCV held to one thread
    while timing (its default pool would use every core and overstate what one core does), and glibc's
    malloc reusing freed buffers. The malloc setting lasts for the process, so main() measures every
    baseline before the first cpu_stage.
    """
    import cv2

    from idphoto_ray.job.worker import tune_worker_process
    from idphoto_ray.photo_path import quantize_masks
    from idphoto_ray.types import PhotoError

    _, seg = _segmenter("cpu", model, None)
    path = _photo_path(specs, bgs, options)
    masks = []
    for f in files:
        try:
            prepared = path.prepare(f.read_bytes(), seg.input_size)  # the job's input: whole frame or roi
        except PhotoError:
            prepared = None
        image = prepared.model_image if prepared is not None else np.zeros((8, 8, 3), np.uint8)
        masks.append(quantize_masks(seg([image]))[0])
    del seg
    datas = [f.read_bytes() for f in files]
    steps: dict[str, float] = {}
    statuses: dict[str, int] = {}
    cv2_threads = cv2.getNumThreads()
    tune_worker_process()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cpu-") as out:
            _warm_up(lambda k: _finish_one(datas[k], f"warmup{k}", masks[k], None, path, out, {}), len(datas))
            started = time.perf_counter()
            for i, (data, mask) in enumerate(zip(datas, masks, strict=False)):
                status = _finish_one(data, f"p{i}", mask, None, path, out, steps)
                statuses[status] = statuses.get(status, 0) + 1
            elapsed = time.perf_counter() - started
    finally:
        cv2.setNumThreads(cv2_threads)
    n = len(files)
    return {
        "photos_per_s": n / elapsed,
        "images": n,
        "seconds": elapsed,
        "statuses": statuses,
        "ms_per_photo": {k: round(v / n, 1) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])},
    }


def measure_baseline(
    model: str, device: str, threads: int, files: list[Path], options: Any, specs: list, bgs: list
) -> dict[str, Any]:
    """Sequential per-photo loop with one reused session, batch 1."""
    _, seg = _segmenter(device, model, threads)
    path = _photo_path(specs, bgs, options)
    steps: dict[str, float] = {}
    statuses: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-base-") as out:
        _warm_up(
            lambda k: _finish_one(files[k].read_bytes(), f"warmup{k}", None, seg, path, out, {}), len(files)
        )
        started = time.perf_counter()
        for i, f in enumerate(files):
            status = _finish_one(f.read_bytes(), f"p{i}", None, seg, path, out, steps)
            statuses[status] = statuses.get(status, 0) + 1
        elapsed = time.perf_counter() - started
    n = len(files)
    return {
        "photos_per_s": n / elapsed,
        "images": n,
        "seconds": elapsed,
        "statuses": statuses,
        "threads": threads,
        "ms_per_photo": {k: round(v / n, 1) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])},
    }


_OP_RE = re.compile(r"^Operator \d+ (?P<name>.+?): (?P<tasks>\d+) tasks executed")
_WALL_RE = re.compile(
    r"Remote wall time: .*?, (?P<mean>[\d.]+)(?P<mu>us|ms|s) mean, (?P<total>[\d.]+)(?P<tu>us|ms|s) total"
)
_CPU_RE = re.compile(r"Remote cpu time: .*?, (?P<total>[\d.]+)(?P<tu>us|ms|s) total")
_ROWS_RE = re.compile(r"Output num rows per task: .*?, (?P<total>\d+) total")
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_stats(text: str) -> list[dict[str, Any]]:
    """Per operator: tasks, summed remote wall/CPU seconds, rows — from Ray Data's ds.stats() text."""
    ops: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        m = _OP_RE.match(line)
        if m:
            ops.append({"operator": m["name"], "tasks": int(m["tasks"])})
            continue
        if not ops:
            continue
        if (m := _WALL_RE.search(line)) and "wall_s" not in ops[-1]:
            ops[-1]["wall_s"] = round(float(m["total"]) * _UNIT[m["tu"]], 3)
        elif (m := _CPU_RE.search(line)) and "cpu_s" not in ops[-1]:
            ops[-1]["cpu_s"] = round(float(m["total"]) * _UNIT[m["tu"]], 3)
        elif (m := _ROWS_RE.search(line)) and "rows" not in ops[-1]:
            ops[-1]["rows"] = int(m["total"])
    return ops


def measure_pipeline(
    model: str,
    device: str,
    files: list[Path],
    out_dir: Path,
    batch: int,
    actors: int | None,
    threads: int | None,
    options: Any,
    specs: list[str],
    bgs: list[str],
    object_store_limit_mb: int | None = None,
    sample_interval_s: float = 0.5,
) -> dict[str, Any]:
    """run_job end to end on `files` (listed through an input-list CSV so any subset can be run)."""
    from idphoto_ray.config import JobConfig
    from idphoto_ray.job.run import run_job

    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    listing = out_dir.parent / f"{out_dir.name}-inputs.csv"
    listing.write_text("path\n" + "".join(f"{f}\n" for f in files))
    config = JobConfig(
        input_list=str(listing),
        output=str(out_dir / "out"),
        model=model,
        device=device,
        batch_size=batch,
        concurrency=actors,
        intra_op_num_threads=threads,
        specs=specs,
        backgrounds=bgs,
        processing=options,
        object_store_limit_mb=object_store_limit_mb,
    )
    with Sampler(sample_interval_s, gpu=device == "cuda") as sampler:
        summary = run_job(config, progress=False)
    stats_text = summary.stats
    run_info = json.loads((out_dir / "out" / "run.json").read_text())
    p = sampler.peaks
    result = {
        "photos_per_s": summary.processed / summary.wall_s,
        "images": summary.processed,
        "seconds": summary.wall_s,
        "counts": summary.counts,
        "reasons": summary.reasons,
        "pool": run_info.get("pool"),
        "batch": batch,
        "object_store_limit_mb": object_store_limit_mb,
        "stages": parse_stats(stats_text),
        "peak_rss_mb": round(p.rss_mb, 1),
        "peak_private_mb": round(p.private_mb, 1),
        "peak_driver_private_mb": round(p.driver_private_mb, 1),
        "peak_object_store_mb": round(p.object_store_mb, 1),
        "samples": p.samples,
        "worker_processes": sampler.workers_seen,
        "cpu_seconds": sampler.cpu_seconds(),
    }
    if device == "cuda":
        result["gpu"] = (
            {
                "util_max": p.gpu_util_max,
                "util_mean": round(p.gpu_util_mean, 1),
                "mem_mb": p.gpu_mem_mb,
                "samples": len(p.gpu_samples),
            }
            if p.gpu_samples
            else "nvidia-smi unavailable"
        )
    result["_stats_text"] = stats_text
    return result


# ------------------------------------------------------------------------------------------------ report
def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


def summarise(row: dict[str, Any], cores: int) -> dict[str, float]:
    pipe = row["pipeline"]["photos_per_s"]
    bound = row["bound"]["photos_per_s"]
    cpu = row["cpu_stage"]["photos_per_s"]
    base = row["baseline"]["photos_per_s"]
    limit = min(bound, cpu * cores)
    # On a CPU-only machine the model and the CPU stage run on the *same* cores, so their core-seconds
    # per photo add up: 1/cpu_stage (one core) + cores/bound (bound uses every core).
    shared = 1.0 / (1.0 / (cpu * cores) + 1.0 / bound) if cpu > 0 and bound > 0 else 0.0
    out = {
        "pipeline/bound": _ratio(pipe, bound),
        "limit": limit,
        "pipeline/limit": _ratio(pipe, limit),
        "pipeline/baseline": _ratio(pipe, base),
    }
    if row.get("device", "cpu") == "cpu":
        out["limit_shared_cores"] = shared
        out["pipeline/limit_shared_cores"] = _ratio(pipe, shared)
    return out


def format_table(results: dict[str, Any]) -> str:
    cores = results["machine"]["cores"]
    lines = [
        f"machine: {results['machine']['cpu']} · {cores} cores · device {results['device']}"
        f" · N={results['n']}",
        "photos/s; limit = min(bound, cpu_stage × cores);"
        " shared = 1/(1/(cpu_stage × cores) + 1/bound), the CPU-only"
        " limit when model and CPU stage share the cores; pipeline = run_job wall clock incl. manifest",
        f"{'model':<18}{'batch':>6}{'actors':>7}{'wls':>6}{'bound':>9}{'cpu_st':>8}{'pipeline':>10}{'baseline':>10}"
        f"{'p/bound':>9}{'p/limit':>9}{'p/shared':>9}{'p/base':>8}{'RSS MB':>8}{'store MB':>9}",
    ]
    for row in results["runs"]:
        r = row["ratios"]
        lines.append(
            f"{row['model']:<18}{row['batch']:>6}{row['actors_label']:>7}{row['working_long_side']:>6}"
            f"{row['bound']['photos_per_s']:>9.2f}{row['cpu_stage']['photos_per_s']:>8.2f}"
            f"{row['pipeline']['photos_per_s']:>10.2f}{row['baseline']['photos_per_s']:>10.2f}"
            f"{r['pipeline/bound']:>9.3f}{r['pipeline/limit']:>9.2f}"
            f"{r.get('pipeline/limit_shared_cores', 0):>9.2f}"
            f"{r['pipeline/baseline']:>8.2f}"
            f"{row['pipeline']['peak_rss_mb']:>8.0f}{row['pipeline']['peak_object_store_mb']:>9.0f}"
        )
    lines.append("")
    lines.append("Ray Data per-operator time (ds.stats(): summed remote wall / CPU seconds, tasks):")
    for row in results["runs"]:
        lines.append(
            f"  {row['model']} batch {row['batch']} actors {row['actors_label']}"
            f" wls {row['working_long_side']}:"
        )
        for op in row["pipeline"]["stages"]:
            lines.append(
                f"    {op['operator'][:70]:<70} wall {op.get('wall_s', 0):>8.1f}s"
                f" cpu {op.get('cpu_s', 0):>8.1f}s"
                f" tasks {op['tasks']}"
            )
        cpu = row["pipeline"].get("cpu_seconds")
        if cpu:
            lines.append(
                f"    core-seconds during the pipeline run: workers {cpu['workers']},"
                f" driver {cpu['driver']}, "
                f"Ray's own processes {cpu['ray_system']} = {cpu['total']} "
                f"({cpu['busy_fraction']:.0%} of wall × cores)"
            )
        lines.append(f"    cpu_stage ms/photo: {row['cpu_stage']['ms_per_photo']}")
        if "gpu" in row["pipeline"]:
            lines.append(f"    GPU: {row['pipeline']['gpu']}")
    if "memory_check" in results:
        mc = results["memory_check"]
        lines.append("")
        lines.append(
            f"memory check ({mc['model']}): "
            + " · ".join(
                f"N={r['n']}: RSS {r['peak_rss_mb']:.0f} MB (private {r['peak_private_mb']:.0f}, "
                f"of it the driver {r.get('peak_driver_private_mb', 0):.0f}), "
                f"store {r['peak_object_store_mb']:.0f} MB, {r['photos_per_s']:.2f}/s"
                for r in mc["runs"]
            )
        )
        if mc.get("means") and len(mc["runs"]) > len(mc["means"]):
            lines.append(
                "  mean of the runs' peaks: "
                + " · ".join(
                    f"N={n}: RSS {m['peak_rss_mb']:.0f} MB, store {m['peak_object_store_mb']:.0f} MB"
                    for n, m in mc["means"].items()
                )
            )
        lines.append(
            f"  growth: RSS {mc['rss_growth']:+.1%}, private {mc['private_growth']:+.1%}, "
            f"store {mc['store_growth']:+.1%} → {'PASS' if mc['pass'] else 'FAIL'} (limit ±10%)"
        )
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(Exception):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import onnxruntime as ort
    import ray

    commit = ""
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "commit": commit,
        "ray": ray.__version__,
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "load_avg_start": os.getloadavg(),
    }


def _ints(text: str) -> list[int]:
    return [int(v) for v in str(text).split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="photos in the pipeline run (default 300)")
    ap.add_argument("--model", action="append", help="segmentation model (repeatable); default both")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument(
        "--batch-sizes",
        default="",
        help="comma list swept for pipeline and bound, e.g. 1,4,16,32;"
        " default: the pipeline's (1 CPU, 32 CUDA)",
    )
    ap.add_argument(
        "--actors", default="", help="comma list of segmentation actor counts; default: the pipeline's own"
    )
    ap.add_argument(
        "--threads", type=int, default=None, help="ORT threads per pipeline actor; default: the pipeline's"
    )
    ap.add_argument("--working-long-side", default="1600", help="comma list swept")
    ap.add_argument("--cpu-sample", type=int, default=30, help="photos in the cpu_stage measurement")
    ap.add_argument("--baseline-sample", type=int, default=30, help="photos in the baseline measurement")
    ap.add_argument("--bound-seconds", type=float, default=5.0, help="minimum time of the bound loop")
    ap.add_argument(
        "--memory-check", action="store_true", help="peak RSS and object store at N=200 vs N=2000"
    )
    ap.add_argument("--memory-ns", default="200,2000", help="the N values of the memory check")
    ap.add_argument(
        "--memory-sample-s",
        type=float,
        default=0.1,
        help="sampling interval of the memory check (the main table samples every 0.5 s)",
    )
    ap.add_argument(
        "--memory-repeats",
        type=int,
        default=1,
        help="runs per N; growth compares the mean of each N's peaks (one peak of ~80 photos of mixed "
        "sizes varies ±15 %% between runs)",
    )
    ap.add_argument(
        "--memory-decontaminate",
        action="store_true",
        help="keep decontamination on in the memory check (off by default: it only costs time)",
    )
    ap.add_argument(
        "--object-store-limit-mb",
        type=int,
        default=None,
        help="cap Ray Data's object-store budget (ExecutionResources) for the pipeline runs",
    )
    ap.add_argument("--skip-main", action="store_true", help="only the memory check")
    ap.add_argument("--spec", action="append", help="photo spec (repeatable); default cn-1inch")
    ap.add_argument("--background", action="append", help="background (repeatable); default blue")
    ap.add_argument(
        "--data-dir", default=os.path.expanduser("~/.cache/idphoto-ray/bench"), help="photo cache"
    )
    ap.add_argument("--work-dir", default=None, help="pipeline outputs (default: a temp dir, removed)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray started here")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--report", default=None, help="only print the table of a results JSON written by --out")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from idphoto_ray.install_check import require_onnxruntime

    require_onnxruntime()
    args = parse_args(argv)
    if args.report:
        results = json.loads(Path(args.report).read_text())
        for row in results["runs"]:
            row.setdefault("device", results.get("device", "cpu"))
            row["ratios"] = summarise(row, results["machine"]["cores"])
        print(format_table(results))
        return results
    from idphoto_ray.benchdata import ensure_dataset, replicate
    from idphoto_ray.config import ProcessingOptions
    from idphoto_ray.job.run import init_ray

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    models = args.model or list(DEFAULT_MODELS)
    batches = _ints(args.batch_sizes or ("32" if args.device == "cuda" else "1"))
    actor_list: list[int | None] = list(_ints(args.actors)) or [None]
    sides = _ints(args.working_long_side)
    specs = args.spec or ["cn-1inch"]
    bgs = args.background or ["blue"]
    cores = os.cpu_count() or 1
    init_ray(num_cpus=args.num_cpus)
    import ray

    cores = int(ray.cluster_resources().get("CPU", cores))
    machine = _machine()
    machine["cores"] = cores
    files = ensure_dataset(args.data_dir, args.n, seed=args.seed, workers=min(cores, 4))
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="idphoto-bench-"))
    results: dict[str, Any] = {
        "n": args.n,
        "device": args.device,
        "machine": machine,
        "runs": [],
        "args": {k: v for k, v in vars(args).items()},
    }
    bound_threads = cores if args.device == "cpu" else None
    try:
        if not args.skip_main:
            spec_objs, bg_objs = _specs_backgrounds(specs, bgs)
            baselines = {}  # first: a user's loop runs in an untuned process (see measure_cpu_stage)
            for model, wls in itertools.product(models, sides):
                print(
                    f"[{model} wls={wls}] baseline on {min(args.baseline_sample, len(files))} photos …",
                    flush=True,
                )
                baselines[model, wls] = measure_baseline(
                    model,
                    args.device,
                    bound_threads,
                    files[: args.baseline_sample],
                    ProcessingOptions(working_long_side=wls),
                    spec_objs,
                    bg_objs,
                )
            for model, wls in itertools.product(models, sides):
                options = ProcessingOptions(working_long_side=wls)
                print(
                    f"[{model} wls={wls}] cpu_stage on {min(args.cpu_sample, len(files))} photos …",
                    flush=True,
                )
                cpu = measure_cpu_stage(model, files[: args.cpu_sample], options, spec_objs, bg_objs)
                base = baselines[model, wls]
                bounds = {}
                for batch in batches:
                    print(f"[{model} wls={wls}] bound batch {batch} …", flush=True)
                    bounds[batch] = measure_bound(
                        model, args.device, bound_threads, batch, files, options, args.bound_seconds
                    )
                best_bound = max(bounds.values(), key=lambda b: b["photos_per_s"])
                for batch, actors in itertools.product(batches, actor_list):
                    print(
                        f"[{model} wls={wls}] pipeline batch {batch} actors {actors or 'default'}"
                        f" on {len(files)} photos …",
                        flush=True,
                    )
                    pipe = measure_pipeline(
                        model,
                        args.device,
                        files,
                        work / f"{model}-{wls}-{batch}-{actors}",
                        batch,
                        actors,
                        args.threads,
                        options,
                        specs,
                        bgs,
                        args.object_store_limit_mb,
                    )
                    stats_text = pipe.pop("_stats_text")
                    row = {
                        "model": model,
                        "device": args.device,
                        "batch": batch,
                        "actors": actors,
                        "actors_label": str(actors or (pipe["pool"] or {}).get("segment_actors", "?")),
                        "working_long_side": wls,
                        "bound": best_bound,
                        "bound_by_batch": bounds,
                        "cpu_stage": cpu,
                        "baseline": base,
                        "pipeline": pipe,
                    }
                    row["ratios"] = summarise(row, cores)
                    row["ds_stats"] = stats_text
                    results["runs"].append(row)
        if args.memory_check:
            results["memory_check"] = memory_check(args, files, work, specs, bgs, replicate)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_avg_end"] = os.getloadavg()
    print(format_table(results), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    return results


def memory_check(
    args: argparse.Namespace, files: list[Path], work: Path, specs: list[str], bgs: list[str], replicate: Any
) -> dict[str, Any]:
    """Pipeline at each N of --memory-ns over the same photo mix (hard links round-robin over the set)."""
    from idphoto_ray.config import ProcessingOptions

    model = (args.model or [DEFAULT_MODELS[0]])[0]
    options = ProcessingOptions(
        working_long_side=_ints(args.working_long_side)[0], decontaminate=args.memory_decontaminate
    )
    runs = []
    keys = ("peak_rss_mb", "peak_private_mb", "peak_driver_private_mb", "peak_object_store_mb")
    for repeat in range(max(1, args.memory_repeats)):
        for n in _ints(args.memory_ns):
            inputs = replicate(files, n, Path(args.data_dir) / f"replicated-seed{args.seed}")
            print(f"[memory] pipeline on {n} photos ({model}), run {repeat + 1} …", flush=True)
            pipe = measure_pipeline(
                model,
                args.device,
                inputs,
                work / f"memory-{n}",
                _ints(args.batch_sizes or ("32" if args.device == "cuda" else "1"))[0],
                (_ints(args.actors) or [None])[0],
                args.threads,
                options,
                specs,
                bgs,
                args.object_store_limit_mb,
                args.memory_sample_s,
            )
            pipe.pop("_stats_text")
            runs.append(
                {
                    "n": n,
                    "repeat": repeat,
                    **{k: pipe[k] for k in (*keys, "photos_per_s", "seconds", "counts", "samples")},
                }
            )
            shutil.rmtree(work / f"memory-{n}", ignore_errors=True)
    ns = _ints(args.memory_ns)
    means = {n: {k: float(np.mean([r[k] for r in runs if r["n"] == n])) for k in keys} for n in ns}
    lo, hi = means[ns[0]], means[ns[-1]]

    def growth(key: str) -> float:
        return _ratio(hi[key], lo[key]) - 1.0 if lo[key] else 0.0

    result = {
        "model": model,
        "decontaminate": args.memory_decontaminate,
        "runs": runs,
        "means": means,
        "object_store_limit_mb": args.object_store_limit_mb,
        "rss_growth": growth("peak_rss_mb"),
        "private_growth": growth("peak_private_mb"),
        "store_growth": growth("peak_object_store_mb"),
    }
    result["pass"] = all(abs(result[k]) <= 0.10 for k in ("rss_growth", "store_growth"))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
