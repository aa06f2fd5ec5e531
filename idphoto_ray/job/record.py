"""The record between the job's stages: declared columns, checked at each stage's entry.

A photo travels between Ray Data operators as one row of a numpy batch. The columns are declared here,
once; every stage calls `require` on its input, so a stage that stops producing a column fails the job at
the next stage's entry with the missing names, instead of a KeyError deep in a batch (Ray's batch
inference stages check their expected input keys the same way).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: What the listing gives the prepare stage, one row per input (the prepare stage reads the bytes itself, so
#: an entry that cannot be read is a row, not a failed read task).
READ: dict[str, str] = {
    "path": "The file as the filesystem opens it (no protocol).",
    "input_id": "Row identity: the input list's id, else the path relative to the input root.",
    "name": "Output stem (posix, relative, safe).",
    "uri": "The input as the manifest shows it (URI for object stores).",
    "problem": "Why listing found the entry unreadable (`cause: detail`), else ''.",
}

#: Identity of the input and the prepare stage's outcome, carried to the manifest row.
_IDENTITY: dict[str, str] = {
    "input_path": "The input as the manifest shows it (URI for object stores).",
    "input_id": "Row identity: the input list's id, else the path relative to the input root.",
    "name": "Output stem (posix, relative, safe).",
    "input_bytes": "Size of the input file.",
    "input_sha256": "SHA-256 of the input bytes (resume keys on it).",
    "skip": "True when resume found the input done: no row is written.",
    "width": "Input width in pixels; 0 when the file did not decode.",
    "height": "Input height in pixels; 0 when the file did not decode.",
    "reason": "A Reason value when preparing failed, else ''.",
    "message": "The failure's detail, else ''.",
    "decode_ms": "Milliseconds spent decoding so far.",
    "data": "The file's bytes when finishing must decode again (JPEG), else b''.",
    "working": "The working image when preparing decoded it (PNG, HEIC, TIFF), else an empty array.",
    "scale": "Working px per input px of `working`.",
    "region": "What the segmenter sees: fractions (x0, y0, x1, y1) of the upright image; (0, 0, 1, 1): all.",
}

#: The prepare stage's output: the segment stage's input.
PREPARED: dict[str, str] = {
    **_IDENTITY,
    "model_image": "The segmenter's square uint8 input (size²×3); zeros when not ready.",
}

#: The segment stage's output: the finish stage's input (model_image is dropped, it has served).
SEGMENTED: dict[str, str] = {
    **_IDENTITY,
    "mask": "The segmenter's mask, uint8 at model size.",
    "segment_ms": "Milliseconds of segmentation, this photo's share of its batch.",
    "segment_error": "Why segmentation failed for this photo, else ''.",
}


class RecordError(KeyError):
    """A stage received a batch without the columns it needs: a bug in the job, not in a photo."""


def require(batch: Mapping[str, Any], columns: Mapping[str, str], stage: str) -> None:
    """Raise RecordError naming the declared columns `batch` lacks."""
    missing = [name for name in columns if name not in batch]
    if missing:
        raise RecordError(
            f"{stage} stage: batch lacks column(s) {', '.join(missing)} "
            f"(has: {', '.join(sorted(batch))}); see idphoto_ray/job/record.py"
        )


def ready(batch: Mapping[str, Any], i: int) -> bool:
    """Row i goes to the segmenter: not skipped and prepared without failure."""
    return not batch["skip"][i] and not batch["reason"][i]
