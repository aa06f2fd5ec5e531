"""`idphoto-ray review apply`: a decisions file exported by review.html becomes manifest rows.

One row per decision (manifest.decision_row), appended as one Parquet part under a new run_id, so the
decision is each input's latest row and `--resume` keeps it until the input's bytes change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from idphoto_ray.manifest import decision_row, new_run_id, read_manifest, rows_to_table
from idphoto_ray.manifest_store import write_part
from idphoto_ray.read import open_filesystem
from idphoto_ray.write import join

FORMAT = "idphoto-ray-review-decisions"
DECISIONS = ("approved", "rejected")


@dataclass
class Decision:
    input_id: str
    run_id: str
    decision: str
    note: str = ""


@dataclass
class ApplyResult:
    run_id: str
    part: str = ""
    approved: int = 0
    rejected: int = 0
    #: (input_id, why it was not applied)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"review {self.run_id}: {self.approved} approved, {self.rejected} rejected"
            + (f" → {self.part}" if self.part else "")
        ]
        out += [f"  skipped {input_id}: {why}" for input_id, why in self.skipped]
        return out


def parse_decisions(text: str) -> list[Decision]:
    """The page's export (JSON); raises ValueError naming what is wrong (a top-level input: exit 2)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"decisions file is not JSON: {exc}") from exc
    if (
        not isinstance(data, dict)
        or data.get("format") != FORMAT
        or not isinstance(data.get("decisions"), list)
    ):
        raise ValueError(
            f"not a decisions file (expected a JSON object with format {FORMAT!r} and a "
            "'decisions' list, as review.html's 'Export decisions' writes)"
        )
    decisions = []
    for i, item in enumerate(data["decisions"]):
        if (
            not isinstance(item, dict)
            or item.get("decision") not in DECISIONS
            or not item.get("input_id")
            or not item.get("run_id")
        ):
            raise ValueError(f"decision {i}: needs input_id, run_id and decision ({' or '.join(DECISIONS)})")
        decisions.append(
            Decision(
                str(item["input_id"]), str(item["run_id"]), item["decision"], str(item.get("note") or "")
            )
        )
    return decisions


def apply_decisions(
    decisions: list[Decision],
    output: str,
    storage_options: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> ApplyResult:
    """Append one row per decision whose reviewed row is still its input's latest under that config.

    A decision on a row that a later run (or an earlier apply) superseded is skipped and named: the person
    decided on what they saw, not on the newer result.
    """
    fs, root = open_filesystem(output, storage_options)
    manifest_dir = join(root, "manifest")
    table = read_manifest(manifest_dir, filesystem=fs)
    result = ApplyResult(run_id or new_run_id())
    rows = table.to_pylist()
    reviewed = {(r["input_id"], r["run_id"]): r for r in rows}
    newest: dict[tuple[str, str], str] = {}
    for r in rows:
        key = (r["input_id"], r["config_hash"])
        newest[key] = max(newest.get(key, ""), r["run_id"] or "")
    new_rows = []
    for d in decisions:
        row = reviewed.get((d.input_id, d.run_id))
        if row is None:
            result.skipped.append((d.input_id, f"no row of run {d.run_id} in {manifest_dir}"))
            continue
        latest = newest[(d.input_id, row["config_hash"])]
        if latest != d.run_id:
            result.skipped.append((d.input_id, f"run {latest} wrote a newer row; decide on its review page"))
            continue
        new_rows.append(decision_row(row, d.decision == "approved", d.note, result.run_id))
        newest[(d.input_id, row["config_hash"])] = result.run_id  # a second decision on the same row: skipped
        if d.decision == "approved":
            result.approved += 1
        else:
            result.rejected += 1
    if new_rows:  # one part, whole or not at all, like a run's parts
        result.part = write_part(rows_to_table(new_rows), fs, manifest_dir, f"review-{result.run_id}.parquet")
    return result
