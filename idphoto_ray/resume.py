"""What a run may skip and which output names it may use, decided from the manifest by `input_id`.

Resume used to skip any input whose bytes matched a finished one, so a copy under a new name got no row and
no output; and two ids that sanitised to the same file name in two runs overwrote each other's photo while
both rows pointed at it. Both now key on the input's identity (contracts note §3).
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from idphoto_ray.manifest import finished_for_resume, latest_rows


def done_inputs(table: pa.Table, config_hash: str) -> dict[str, str]:
    """input_id → the sha256 its latest row under this config finished with; a resumed run skips an input
    only when its bytes still hash to that value."""
    if table.num_rows == 0:
        return {}
    same_config = table.filter(pc.equal(table.column("config_hash"), config_hash))
    latest = latest_rows(same_config)
    done = {}
    for input_id, status, reason, sha in zip(
        latest.column("input_id").to_pylist(),
        latest.column("status").to_pylist(),
        latest.column("reason").to_pylist(),
        latest.column("input_sha256").to_pylist(),
        strict=False,
    ):
        if finished_for_resume(status, reason) and sha:
            done[input_id] = sha
    return done


def _output_name(path: str, root_uri: str, spec: str, background: str) -> str | None:
    """The output stem of `root/spec/background/<stem>.<ext>`, or None for a path laid out otherwise."""
    prefix = posixpath.join(root_uri.rstrip("/"), spec, background) + "/"
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix) :]
    stem, dot, _ = rest.rpartition(".")
    return stem if dot else rest


def owned_names(table: pa.Table, root_uri: str) -> dict[str, str]:
    """Output stem → the input_id that last wrote a file under it (rows in run order)."""
    owners: dict[str, str] = {}
    if table.num_rows == 0:
        return owners
    order = pc.sort_indices(table, sort_keys=[("run_id", "ascending")])
    ordered = table.take(order)
    for input_id, outputs in zip(
        ordered.column("input_id").to_pylist(), ordered.column("outputs").to_pylist(), strict=False
    ):
        for out in outputs or []:
            name = _output_name(out["path"], root_uri, out.get("spec") or "", out.get("background") or "")
            if name is not None:
                owners[name] = input_id
    return owners


def assign_names(
    items: Iterable[Any], owners: dict[str, str]
) -> tuple[list[Any], list[tuple[str, str, str]]]:
    """Items whose output name another input owns get a free `<name>__<n>` (or the one they own already).

    Returns the items and (input_id, wanted, given) for each renamed one, so the run can say so. The
    manifest records the final name in every output path, so the choice is stable across runs.
    """
    items = list(items)
    own: dict[str, list[str]] = {}
    for name, input_id in owners.items():
        own.setdefault(input_id, []).append(name)
    used = {it.name for it in items}
    renamed: list[tuple[str, str, str]] = []
    result = []
    for item in items:
        owner = owners.get(item.name)
        if owner is None or owner == item.input_id:
            result.append(item)
            continue
        mine = sorted(n for n in own.get(item.input_id, []) if n.startswith(item.name + "__"))
        if mine:
            name = mine[0]
        else:
            n = 2
            while f"{item.name}__{n}" in owners or f"{item.name}__{n}" in used:
                n += 1
            name = f"{item.name}__{n}"
        used.add(name)
        renamed.append((item.input_id, item.name, name))
        result.append(dataclasses.replace(item, name=name))
    return result, renamed
