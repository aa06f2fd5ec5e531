"""The manifest: one row per input per run, typed Arrow schema, readable by pandas and DuckDB.

This module owns the row: field names and types (SCHEMA), how a row is started from an input's identity,
failed, filled from a `PhotoResult` (geometry converted to input pixels), timed (the core's steps folded
into `timings_ms`) and checked against the schema. Search here for where any manifest column comes from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from idphoto_ray.types import OutputKind, Reason, Status, Step, TimingStage

if TYPE_CHECKING:
    from idphoto_ray.layout import RenderedSheet
    from idphoto_ray.photo import PhotoResult
    from idphoto_ray.render import RenderedOutput

#: One file made for an input: an ID photo (kind photo) or a print sheet of its photos (kind layout, with
#: its paper; its spec is the sheet's specs joined by "+"). Contracts note §6.
OUTPUT_TYPE = pa.struct(
    [
        ("kind", pa.string()),
        ("spec", pa.string()),
        ("background", pa.string()),
        ("path", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("bytes", pa.int64()),
        # Six floats [a, b, c, d, e, f]: input pixel (x, y) (EXIF-upright, original resolution) → output
        # (a·x + b·y + c, d·x + e·y + f); null for outputs that are not crops of the input.
        ("affine", pa.list_(pa.float64())),
        ("paper", pa.string()),
    ]
)
BOX_TYPE = pa.struct([("x0", pa.float32()), ("y0", pa.float32()), ("x1", pa.float32()), ("y1", pa.float32())])
EYES_TYPE = pa.struct(
    [("left_x", pa.float32()), ("left_y", pa.float32()), ("right_x", pa.float32()), ("right_y", pa.float32())]
)
TIMING_STAGES = tuple(stage.value for stage in TimingStage)
TIMINGS_TYPE = pa.struct([(name, pa.float32()) for name in TIMING_STAGES])

SCHEMA = pa.schema(
    [
        ("input_path", pa.string()),
        ("input_id", pa.string()),
        ("input_bytes", pa.int64()),
        ("input_sha256", pa.string()),
        ("run_id", pa.string()),
        ("config_hash", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("message", pa.string()),
        ("flags", pa.list_(pa.string())),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("face_count", pa.int32()),
        ("face_box", BOX_TYPE),
        ("eyes", EYES_TYPE),
        ("roll_deg", pa.float32()),
        ("yaw_deg", pa.float32()),
        ("head_height_ratio", pa.float32()),
        ("inter_eye_px", pa.float32()),
        ("sharpness", pa.float32()),
        ("exposure", pa.float32()),
        ("outputs", pa.list_(OUTPUT_TYPE)),
        ("timings_ms", TIMINGS_TYPE),
    ]
)


def empty_row() -> dict[str, Any]:
    """A row with every column present; stages fill what they know."""
    return {name: None for name in SCHEMA.names} | {"flags": [], "outputs": []}


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


#: Identity columns: kept even when the rest of a row is rejected by the schema.
IDENTITY = ("input_path", "input_id", "input_bytes", "input_sha256", "run_id", "config_hash")

#: Which `timings_ms` field each of the core's steps adds to.
STAGE_OF_STEP: dict[Step, TimingStage] = {
    Step.DECODE: TimingStage.DECODE,
    Step.SEGMENT: TimingStage.SEGMENT,
    Step.DETECT: TimingStage.DETECT,
    Step.LANDMARKS: TimingStage.DETECT,
    Step.MASK: TimingStage.REFINE,
    Step.LEVEL: TimingStage.REFINE,
    Step.CROP: TimingStage.REFINE,
    Step.MATTING: TimingStage.REFINE,
    Step.DECONTAMINATE: TimingStage.REFINE,
    Step.COMPOSE: TimingStage.COMPOSE,
    Step.ENCODE: TimingStage.ENCODE,
    Step.WRITE: TimingStage.WRITE,
}

#: PhotoResult metrics copied as plain floats (no pixel unit, or already in input pixels).
_SCALAR_METRICS = ("roll_deg", "yaw_deg", "head_height_ratio", "inter_eye_px", "sharpness", "exposure")
#: The columns `add_result` fills from the checks' metrics (what the service reports as `checks`).
METRIC_COLUMNS = ("face_count", "face_box", "eyes", *_SCALAR_METRICS)


def new_row(
    input_path: str, input_id: str, input_bytes: int, input_sha256: str, run_id: str, config_hash: str
) -> dict[str, Any]:
    """A row for one input of one run: identity filled, status ok until something says otherwise.

    An input that was never read (a read_error: no hash) has neither a size nor a hash.
    """
    row = empty_row()
    row.update(
        input_path=input_path,
        input_id=input_id,
        input_bytes=input_bytes if input_sha256 else None,
        input_sha256=input_sha256 or None,
        run_id=run_id,
        config_hash=config_hash,
        status=Status.OK.value,
        timings_ms={},
    )
    return row


def add_input_size(row: dict[str, Any], size: tuple[int | None, int | None]) -> None:
    """The input's (width, height) in pixels, EXIF-upright; None where it did not decode."""
    row["width"], row["height"] = size


def fail(row: dict[str, Any], reason: Reason, message: str) -> None:
    """Mark the row failed; a failed row has no flags and no outputs."""
    row.update(status=Status.FAILED.value, reason=Reason(reason).value, message=message, flags=[], outputs=[])


def add_time(row: dict[str, Any], step: Step | str, ms: float) -> None:
    """Add `ms` to the `timings_ms` field `step` folds into (unknown steps are the core's detail, dropped)."""
    stage = STAGE_OF_STEP.get(Step(step)) if step in Step._value2member_map_ else None
    if stage is not None:
        timings = row["timings_ms"]
        timings[stage.value] = timings.get(stage.value, 0.0) + float(ms)


def add_result(row: dict[str, Any], result: PhotoResult, source_scale: float) -> None:
    """Status, flags, metrics and step timings of the image core's result.

    The core works at the working resolution; manifest geometry is in input pixels, so boxes and eyes are
    divided by `source_scale` (working px per input px).
    """
    for step, ms in result.timings_ms.items():
        add_time(row, step, ms)
    row.update(
        status=Status(result.status).value,
        reason=result.reason.value if result.reason else None,
        message=result.message,
        flags=[flag.value for flag in result.flags],
    )
    metrics = result.metrics
    inv = 1.0 / source_scale if source_scale else 1.0
    row["face_count"] = metrics.get("face_count")
    if metrics.get("face_box"):
        row["face_box"] = {k: float(v) * inv for k, v in metrics["face_box"].items()}
    if metrics.get("eyes"):
        row["eyes"] = {k: float(v) * inv for k, v in metrics["eyes"].items()}
    for key in _SCALAR_METRICS:
        if metrics.get(key) is not None:
            row[key] = float(metrics[key])


def output_entry(
    spec: str,
    background: str,
    path: str | None,
    width: int,
    height: int,
    size: int,
    affine: list[float] | None = None,
    *,
    kind: OutputKind = OutputKind.PHOTO,
    paper: str | None = None,
) -> dict[str, Any]:
    """One element of `outputs`; `affine` maps input px to output px (see SCHEMA). Path None where nothing
    was written (the service returns the bytes)."""
    return {
        "kind": OutputKind(kind).value,
        "spec": spec,
        "background": background,
        "path": path,
        "width": width,
        "height": height,
        "bytes": size,
        "affine": affine,
        "paper": paper,
    }


def entry_for(path: str | None, item: RenderedOutput | RenderedSheet, source_scale: float) -> dict[str, Any]:
    """The `outputs` element for an encoded photo or print sheet (a sheet has a paper and no affine).

    `source_scale` (working px per input px) turns the photo's affine from working to input pixels.
    """
    from idphoto_ray.geometry.affine import input_affine
    from idphoto_ray.layout import RenderedSheet

    if isinstance(item, RenderedSheet):
        return output_entry(
            item.specs,
            item.background,
            path,
            item.encoded.width,
            item.encoded.height,
            len(item.encoded.data),
            kind=OutputKind.LAYOUT,
            paper=item.paper,
        )
    return output_entry(
        item.spec,
        item.background,
        path,
        item.width,
        item.height,
        len(item.data),
        input_affine(item.affine, source_scale),
    )


def set_outputs(
    row: dict[str, Any],
    files: Iterable[tuple[str | None, RenderedOutput | RenderedSheet]],
    source_scale: float,
) -> None:
    """`outputs` from (where it was written or None, photo or sheet) pairs, in input pixels (`entry_for`)."""
    row["outputs"] = [entry_for(path, item, source_scale) for path, item in files]


def finish_row(row: dict[str, Any]) -> dict[str, Any]:
    """Total the timings and check the row against the schema.

    A row that does not fit must not take its batch down: it keeps its identity and reports the bug as
    internal_error, naming the columns that did not fit.
    """
    timings = row["timings_ms"]
    timings[TimingStage.TOTAL.value] = sum(v for k, v in timings.items() if k != TimingStage.TOTAL.value)
    try:
        rows_to_table([row])
        return row
    except (pa.ArrowException, TypeError, ValueError) as exc:
        bad = [f.name for f in SCHEMA if not _fits(f, row.get(f.name))]
        safe = empty_row()
        for key in IDENTITY:
            safe[key] = row.get(key)
        fail(safe, Reason.INTERNAL_ERROR, f"manifest row rejected ({', '.join(bad)}): {exc}")
        return safe


def _fits(field: pa.Field, value: Any) -> bool:
    try:
        pa.array([value], type=field.type)
        return True
    except (pa.ArrowException, TypeError, ValueError):
        return False


def read_manifest(manifest_dir: str, filesystem: Any = None) -> pa.Table:
    """All rows of every run; an absent or empty manifest is an empty table with the schema.

    A part that cannot be read is skipped with a warning (the job moves such parts aside, see
    manifest_store), so one torn file never hides the others.
    """
    from idphoto_ray.manifest_store import read_parts

    return read_parts(manifest_dir, SCHEMA, filesystem, move_aside=False)


def latest_rows(table: pa.Table) -> pa.Table:
    """The most recent row per input_id (runs are ordered by run_id, which starts with a UTC timestamp).

    Keyed on identity, not path: one path listed under two ids is two inputs with two rows.
    """
    if table.num_rows == 0:
        return table
    order = pc.sort_indices(table, sort_keys=[("input_id", "ascending"), ("run_id", "descending")])
    ordered = table.take(order)
    ids = ordered.column("input_id").to_pylist()
    keep = [i for i, key in enumerate(ids) if i == 0 or key != ids[i - 1]]
    return ordered.take(pa.array(keep, type=pa.int64()))


def finished_for_resume(status: str | None, reason: str | None) -> bool:
    """A row that finishes its input for `--resume` (with the same config and the same input bytes).

    Made (ok, needs_review) or decided on the review page: approved rows are ok, rejected ones are failed
    with `rejected_in_review`. A decision is final until the input's bytes change (contracts §3); other
    failures are retried.
    """
    return status in (Status.OK, Status.NEEDS_REVIEW) or (
        status == Status.FAILED and reason == Reason.REJECTED_IN_REVIEW
    )


def new_run_id() -> str:
    """Sortable by time, unique across concurrent runs (and review decisions)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + os.urandom(3).hex()


def decision_row(reviewed: dict[str, Any], approved: bool, note: str, run_id: str) -> dict[str, Any]:
    """The row a review decision appends: the reviewed row's identity, config, flags, metrics and outputs
    (the files stay where they are), under a new run_id so it is the input's latest row.

    Approved → ok; rejected → failed with `rejected_in_review`. The outputs are kept on a rejected row too
    (unlike `fail`): the files exist, and the row says which ones a person turned down.
    """
    row = empty_row() | {key: reviewed.get(key) for key in SCHEMA.names}
    verdict = "approved" if approved else "rejected"
    message = f"{verdict} in review" + (f": {note.strip()}" if note and note.strip() else "")
    row.update(
        run_id=run_id,
        message=message,
        timings_ms=None,
        status=(Status.OK if approved else Status.FAILED).value,
        reason=None if approved else Reason.REJECTED_IN_REVIEW.value,
    )
    return row
