"""run.json and runs/<run_id>.json: what each run did, side by side, with no secret in them.

Two runs into one output (the online service starts jobs into shared outputs) used to keep only the last
run's record. Each run now writes its own `runs/<run_id>.json`, then `run.json` as a copy of the latest;
both writes are atomic (temp name + rename locally, one PUT on object stores), so a reader sees one whole
record or the previous one, and no lock is needed.
"""

from __future__ import annotations

import json
from typing import Any

from idphoto_ray.redact import redact, scrub, secret_values
from idphoto_ray.write import join, write_bytes

RUNS_DIR = "runs"


def record_text(info: dict[str, Any], storage_options: dict[str, Any] | None) -> str:
    """The record as JSON with the config's secrets redacted by name and any secret value scrubbed anywhere.

    Only the config is redacted by name: counts keyed by flag names are data, whatever words they hold.
    """
    clean = dict(info)
    if "config" in clean:
        clean["config"] = redact(clean["config"])
    text = json.dumps(clean, indent=2, default=str)
    secrets = secret_values(storage_options or {})
    # JSON escapes quotes and backslashes: scrub the escaped spelling of each secret too.
    return scrub(text, secrets | {json.dumps(s)[1:-1] for s in secrets})


def write_run_record(
    fs: Any, root: str, run_id: str, info: dict[str, Any], storage_options: dict[str, Any] | None
) -> str:
    """Write runs/<run_id>.json, then run.json (the latest); returns the per-run path."""
    data = record_text(info, storage_options).encode()
    per_run = join(root, RUNS_DIR, f"{run_id}.json")
    write_bytes(fs, per_run, data)
    write_bytes(fs, join(root, "run.json"), data)
    return per_run
