"""The batch job: list → read → prepare → segment (actor pool) → finish → manifest, review page, run.json.

Models reach the workers as bytes through the object store, so no worker ever needs a driver-local path.
"""

from __future__ import annotations

import errno
import json
import logging
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray

from idphoto_ray.config import JobConfig
from idphoto_ray.entries import skipped_line
from idphoto_ray.job.persist import NO_SPACE, OutputFull, write_manifest
from idphoto_ray.job.pool import photos_in_flight, plan_pool
from idphoto_ray.job.ray_private import job_data_context, start_data_helpers
from idphoto_ray.job.ray_start import init_ray
from idphoto_ray.job.stages import (
    FinishStage,
    PrepareStage,
    SegmentStage,
    as_tasks,
    settle_warm_up,
    warm_workers,
)
from idphoto_ray.manifest import SCHEMA, latest_rows, new_run_id
from idphoto_ray.manifest_store import read_parts
from idphoto_ray.read import InputItem, is_local, list_inputs_detailed, open_filesystem, protocol_of
from idphoto_ray.redact import scrub_handlers, secret_values
from idphoto_ray.resume import assign_names, done_inputs, owned_names
from idphoto_ray.run_record import write_run_record
from idphoto_ray.write import join

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did; also written to run.json. `stats` is Ray Data's `ds.stats()` text."""

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
    skipped_files: dict[str, int] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.processed / self.wall_s if self.wall_s > 0 else 0.0

    def table(self) -> str:
        lines = [
            (
                f"run {self.run_id}: {self.listed} inputs listed, {self.skipped} unchanged (skipped), "
                f"{self.processed} processed in {self.wall_s:.1f} s ({self.images_per_s:.2f} images/s)"
            ),
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
        if self.skipped_files:
            lines.append(skipped_line(Counter(self.skipped_files)))
        lines.append(f"manifest: {self.manifest_dir}")
        if self.review_html:
            lines.append(f"review page: {self.review_html}")
        return "\n".join(lines)


def input_filesystem(items: list[InputItem], protocol: str, storage_options: dict[str, Any]) -> Any:
    """The filesystem the prepare stage reads the photos through: the photos' own, not the input list's.

    None for local paths. An input list on local disk may name photos in a bucket.
    """
    if protocol in ("file", "local") or not items:
        return None
    return open_filesystem(items[0].uri, storage_options)[0]


def _package_versions() -> dict[str, str]:
    names = (
        "idphoto-ray",
        "ray",
        "onnxruntime",
        "onnxruntime-gpu",
        "numpy",
        "pillow",
        "opencv-python-headless",
        "pyarrow",
        "rembg",
    )
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions["python"] = platform.python_version()
    return versions


def run_job(config: JobConfig, *, progress: bool = True, segment_stage: type = SegmentStage) -> RunSummary:
    """Run one batch job end to end and return its summary (also in run.json).

    `segment_stage` replaces the segmentation stage class (same constructor); the fault-tolerance test
    passes one that kills its actor once.
    """
    from idphoto_ray.layout import plan_layouts
    from idphoto_ray.models.face_detect import PIPELINE_DETECTOR
    from idphoto_ray.models.registry import PERSON_MODEL, resolve_job_models
    from idphoto_ray.specs import all_specs

    started = time.perf_counter()
    run_id = new_run_id()
    secrets = secret_values(config.storage_options)
    scrub_handlers(secrets)  # a store's error text may quote a credential into a log line
    out_fs, out_root = open_filesystem(config.output, config.storage_options)
    manifest_dir = join(out_root, "manifest")

    specs = all_specs(config.spec_files)
    unknown = [s for s in config.specs if s not in specs]
    if unknown:
        raise ValueError(f"unknown spec(s) {', '.join(unknown)}; known: {', '.join(sorted(specs))}")
    # Planned once, before Ray starts: a sheet that cannot fit is refused here, not once per photo.
    sheet_plans = plan_layouts(config.layouts, specs, config.specs, config.backgrounds)

    listing = list_inputs_detailed(config.input, config.input_list, config.storage_options, config.output)
    protocol, items = listing.protocol, listing.items
    if not items:
        raise ValueError(
            f"no image files found in {config.input or config.input_list}"
            + (f" ({listing_line})" if (listing_line := skipped_line(listing.skipped)) else "")
        )
    config, models = resolve_job_models(config)  # `auto` → a model name; weights hashed into config_hash
    config_hash = config.config_hash(models.sha256["segmenter"])
    out_uri = out_root if is_local(out_fs) else out_fs.unstrip_protocol(out_root)
    # Every run reads the manifest: torn parts are moved aside here, and output names another input owns
    # are never reused (resume or not).
    previous = read_parts(manifest_dir, SCHEMA, out_fs)
    items, renamed = assign_names(items, owned_names(previous, out_uri))
    for input_id, wanted, given in renamed:
        log.warning("output name %r belongs to another input; %r writes to %r", wanted, input_id, given)
    done = done_inputs(previous, config_hash) if config.resume else {}

    seg_info = models.segmenter

    init_ray()
    start_data_helpers()
    with job_data_context() as job:
        ctx = job.ctx
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
                object_store_memory=config.object_store_limit_mb * 2**20
            )
        else:
            # Ray Data reserves whole CPUs for operators upstream first: on a 2-CPU node reading and preparing
            # held both and finishing could not start until every file was read. The photo bound below keeps
            # memory flat instead.
            ctx.op_resource_reservation_enabled = False
            job.bound_by_photos_only()
        resources = ray.cluster_resources()
        cpus = int(resources.get("CPU", 1))
        pool = plan_pool(config, cpus, int(resources.get("GPU", 0)), seg_info.preprocess.input_size)
        # A heavy CPU model leaves the CPU stages a few processes (pool.py); None: one task per logical CPU.
        tasks = {"compute": ray.data.TaskPoolStrategy(size=pool.cpu_tasks)} if pool.cpu_tasks else {}
        model_refs = {key: ray.put(data) for key, data in models.data.items()}
        if config.limit:
            items = items[: config.limit]
        # ~16 files per read task for a cheap model: one task per file left 105 tiny read tasks queueing for
        # the same CPU slots as decode and finishing (N=300, 2 cores: 8.2 → 8.7 /s); one for a heavy one.
        blocks = max(1, min(len(items), max(2 * cpus, len(items) // pool.photos_per_block)))
        job.bound_photos(photos_in_flight(config, cpus, pool), -(-len(items) // blocks))
        ds = ray.data.from_items(
            [
                {
                    "path": it.path,
                    "input_id": it.input_id,
                    "name": it.name,
                    "uri": it.uri,
                    "problem": it.problem,
                }
                for it in items
            ],
            override_num_blocks=blocks,
        )
        prepare = as_tasks(
            PrepareStage,
            done_ref=ray.put(done),
            options=config.processing,
            model_size=seg_info.preprocess.input_size,
            filesystem=input_filesystem(items, protocol, config.storage_options),
            detector_ref=model_refs[PIPELINE_DETECTOR],
            specs=[specs[name] for name in config.specs],
        )
        ds = ds.map_batches(prepare, batch_size=min(8, pool.photos_per_block), batch_format="numpy", **tasks)
        seg_kwargs: dict[str, Any] = {"num_cpus": pool.cpus_per_actor}
        if pool.gpus_per_actor:
            seg_kwargs["num_gpus"] = pool.gpus_per_actor
        ds = ds.map_batches(
            segment_stage,
            fn_constructor_kwargs={
                "model_ref": model_refs["segmenter"],
                "info": seg_info,
                "device": config.device,
                "threads": pool.threads,
                "tensorrt": config.tensorrt,
            },
            compute=ray.data.ActorPoolStrategy(size=pool.actors, max_tasks_in_flight_per_actor=2),
            batch_size=pool.batch_size,
            batch_format="numpy",
            **seg_kwargs,
        )
        finish = as_tasks(
            FinishStage,
            face_refs=[model_refs[PIPELINE_DETECTOR], model_refs["face-mesh"], model_refs[PERSON_MODEL]],
            segmenter=seg_info.name,
            specs=[specs[name] for name in config.specs],
            backgrounds=list(config.backgrounds),
            options=config.processing,
            output_root=out_root,
            output_protocol=protocol_of(out_fs),
            storage_options=config.storage_options,
            run_id=run_id,
            config_hash=config_hash,
            sheet_plans=sheet_plans,
        )
        ds = ds.map_batches(finish, batch_size=pool.finish_batch, batch_format="numpy", **tasks)
        warming = warm_workers([prepare, finish], min(pool.cpu_tasks or cpus, cpus, len(items)))
        try:
            write_manifest(ds, out_fs, out_root, out_uri, manifest_dir, run_id, config, items, secrets)
        finally:
            settle_warm_up(warming)

    table = read_parts(manifest_dir, SCHEMA, out_fs)
    this_run = table.filter(pc.equal(table.column("run_id"), run_id))
    wall_s = time.perf_counter() - started
    summary = _summarise(
        run_id, config.output, len(items), len(items) - this_run.num_rows, this_run, wall_s, manifest_dir
    )
    summary.skipped_files = dict(listing.skipped)
    summary.stats = ds.stats()
    try:
        summary.review_html = _write_review_page(table, out_fs, out_root, out_uri, items, config)
        run_info = {
            "run_id": run_id,
            "config": json.loads(config.model_dump_json()),
            "config_hash": config_hash,
            "models": models.record(),
            "packages": _package_versions(),
            "pool": {
                "segment_actors": pool.actors,
                "intra_op_threads": pool.threads,
                "gpus_per_actor": pool.gpus_per_actor,
                "cpus_per_actor": pool.cpus_per_actor,
                "batch_size": pool.batch_size,
                "finish_batch": pool.finish_batch,
                "cpu_tasks": pool.cpu_tasks,
            },
            "listed": summary.listed,
            "skipped": summary.skipped,
            "skipped_files": summary.skipped_files,
            "processed": summary.processed,
            "counts": summary.counts,
            "reasons": summary.reasons,
            "flags": summary.flags,
            "renamed_outputs": [{"input_id": i, "wanted": w, "given": g} for i, w, g in renamed],
            "wall_s": round(wall_s, 3),
            "images_per_s": round(summary.images_per_s, 3),
        }
        write_run_record(out_fs, out_root, run_id, run_info, config.storage_options)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise OutputFull(
                f"output disk full: {out_root} ({exc.strerror}); free space and run again with --resume"
            ) from exc
        raise
    full = [m for m in this_run.column("message").to_pylist() if m and NO_SPACE in m]
    if full:
        raise OutputFull(
            f"output disk full: {out_root}; {len(full)} photo(s) could not be written (rows say "
            "write_error); free space and run again with --resume"
        )
    return summary


def _write_review_page(
    table: pa.Table, out_fs: Any, out_root: str, out_uri: str, items: list[InputItem], config: JobConfig
) -> str:
    """review.html from the whole manifest: the latest row of every input of every run into this output.

    Runs side by side (the service starts jobs into shared outputs) each rebuild it from the manifest, so
    the last writer's page still covers every run.
    """
    from idphoto_ray.review import write_review

    current = latest_rows(table)
    names = {input_id: name for name, input_id in owned_names(table, out_uri).items()}
    names.update({it.input_id: it.name for it in items})
    review_path = join(out_root, "review.html")
    write_review(current, out_fs, out_root, review_path, names, ok_sample=config.review_ok_sample)
    return review_path


def _summarise(
    run_id: str, output: str, listed: int, skipped: int, rows: pa.Table, wall_s: float, manifest_dir: str
) -> RunSummary:
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    flags: dict[str, int] = {}
    for status, reason, row_flags in zip(
        *(rows.column(name).to_pylist() for name in ("status", "reason", "flags")), strict=True
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
