"""The service's answer for one photo: the manifest row the batch job would write, plus the files' bytes.

Nothing here makes pixels or rows: `Finisher` runs `PhotoPath.finish_row` (the job's own finish step, which
fills the row through `manifest`); this module adds what a person reading the answer needs: the `Reason`
and `Flag` sentences, and each file inline as base64 where the job would have written a path.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from idphoto_ray import manifest
from idphoto_ray.layout import RenderedSheet
from idphoto_ray.render import RenderedOutput
from idphoto_ray.types import Flag, Reason

#: An upload's `input_path`: the service never names a server-side file.
UPLOAD_PATH = "upload"


def new_row(data: bytes) -> dict[str, Any]:
    """A manifest row for an uploaded photo, keyed by its content hash."""
    sha = hashlib.sha256(data).hexdigest()
    return manifest.new_row(UPLOAD_PATH, sha[:16], len(data), sha, "service", "")


def answer(
    row: dict[str, Any], files: list[RenderedOutput | RenderedSheet], scale: float = 1.0, inline: bool = True
) -> dict[str, Any]:
    """The API's JSON for one photo: the row's fields, sentences for its reason and flags, files inline.

    `scale` is `Finished.scale` (working px per input px), for each photo's affine in input pixels.
    `inline=False` leaves each file's raw bytes under `data` for the ingress to turn into a download link.
    """
    files = files if row["status"] != "failed" else []
    manifest.set_outputs(row, ((None, item) for item in files), scale)
    row = manifest.finish_row(row)
    outputs = []
    for entry, item in zip(row["outputs"], files if row["outputs"] else [], strict=True):  # [] if rejected
        outputs.append({**{k: v for k, v in entry.items() if k != "path"}, **_file(item, inline)})
    reason = row["reason"]
    return {
        "status": row["status"],
        "reason": reason,
        "reason_text": Reason(reason).doc if reason else None,
        "message": row["message"],
        "flags": [{"flag": f, "text": Flag(f).doc} for f in row["flags"] or []],
        "input": None
        if not row["width"]
        else {
            "width": row["width"],
            "height": row["height"],
            "bytes": row["input_bytes"],
            "sha256": row["input_sha256"],
        },
        "checks": {k: row[k] for k in manifest.METRIC_COLUMNS if row[k] is not None},
        "timings_ms": {k: round(float(v), 2) for k, v in (row["timings_ms"] or {}).items()},
        "outputs": outputs,
    }


def failed(data: bytes, reason: Reason, message: str) -> dict[str, Any]:
    """The answer for a photo refused before segmentation (it did not decode, or segmentation raised)."""
    row = new_row(data)
    manifest.fail(row, reason, message)
    return answer(row, [])


def _file(item: RenderedOutput | RenderedSheet, inline: bool) -> dict[str, Any]:
    data = item.data if isinstance(item, RenderedOutput) else item.encoded.data
    encoded = {"data_base64": base64.b64encode(data).decode("ascii")} if inline else {"data": data}
    return {"media_type": "image/jpeg" if item.ext == "jpg" else "image/png", "ext": item.ext, **encoded}
