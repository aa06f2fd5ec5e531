"""The manifest: one row per input per run, typed Arrow schema, readable by pandas and DuckDB."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

OUTPUT_TYPE = pa.struct(
    [
        ("spec", pa.string()),
        ("background", pa.string()),
        ("path", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("bytes", pa.int64()),
    ]
)
BOX_TYPE = pa.struct([("x0", pa.float32()), ("y0", pa.float32()), ("x1", pa.float32()), ("y1", pa.float32())])
EYES_TYPE = pa.struct(
    [("left_x", pa.float32()), ("left_y", pa.float32()), ("right_x", pa.float32()), ("right_y", pa.float32())]
)
TIMING_STAGES = ("decode", "segment", "detect", "refine", "compose", "encode", "write", "total")
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

COLUMN_DOCS: dict[str, str] = {
    "input_path": "Input file as listed (URI for object stores).",
    "input_id": "Id from the input list, else the path relative to the input root without extension.",
    "input_bytes": "Size of the input file in bytes.",
    "input_sha256": "SHA-256 of the input bytes; resume keys on it.",
    "run_id": "The run that wrote the row; one row per input per run.",
    "config_hash": "Hash of the options that change pixels or checks.",
    "status": "ok, needs_review (see flags) or failed (see reason).",
    "reason": "Failure code when failed, else null.",
    "message": "Human-readable detail for the reason or the flags.",
    "flags": "Compliance flags that sent the photo to review.",
    "width": "Width of the (EXIF-rotated) input in pixels.",
    "height": "Height of the (EXIF-rotated) input in pixels.",
    "face_count": "Faces detected.",
    "face_box": "Subject face box in input pixels (x0, y0, x1, y1).",
    "eyes": "Subject eye centres in input pixels.",
    "roll_deg": "Head roll before correction, degrees.",
    "yaw_deg": "Yaw estimate from landmarks, degrees.",
    "head_height_ratio": "Chin–crown / photo height, measured on the first spec's output.",
    "inter_eye_px": "Distance between eye centres in input pixels (ICAO: ≥ 90).",
    "sharpness": "Normalised variance of the Laplacian on the face.",
    "exposure": "Mean face luminance, 0–255.",
    "outputs": "Files written: spec, background, path, width, height, bytes.",
    "timings_ms": "Milliseconds per stage for this photo.",
}


def empty_row() -> dict[str, Any]:
    """A row with every column present; stages fill what they know."""
    return {name: None for name in SCHEMA.names} | {"flags": [], "outputs": []}


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def read_manifest(manifest_dir: str, filesystem: Any = None) -> pa.Table:
    """All rows of every run; an absent or empty manifest is an empty table with the schema."""
    try:
        dataset = pads.dataset(manifest_dir, format="parquet", filesystem=filesystem, schema=SCHEMA)
        return dataset.to_table()
    except (FileNotFoundError, OSError):
        return SCHEMA.empty_table()


def latest_rows(table: pa.Table) -> pa.Table:
    """The most recent row per input_path (runs are ordered by run_id, which starts with a UTC timestamp)."""
    if table.num_rows == 0:
        return table
    order = pc.sort_indices(table, sort_keys=[("input_path", "ascending"), ("run_id", "descending")])
    ordered = table.take(order)
    paths = ordered.column("input_path").to_pylist()
    keep = [i for i, p in enumerate(paths) if i == 0 or p != paths[i - 1]]
    return ordered.take(pa.array(keep, type=pa.int64()))


def completed_hashes(table: pa.Table, config_hash: str) -> set[str]:
    """Input hashes already made ok/needs_review under this config: a resumed run skips them."""
    if table.num_rows == 0:
        return set()
    mask = pc.and_(
        pc.equal(table.column("config_hash"), config_hash),
        pc.is_in(table.column("status"), pa.array(["ok", "needs_review"])),
    )
    return set(table.filter(mask).column("input_sha256").to_pylist())
