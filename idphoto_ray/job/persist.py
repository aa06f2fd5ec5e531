"""Writing the finished rows: whole manifest parts on the driver, and clean-up when the output is full.

Split from `job.run` because it is the one place that decides what a failed part means for the photos
already written (a torn part used to block every later run).
"""

from __future__ import annotations

import contextlib
import errno
from typing import Any

import pyarrow as pa

from idphoto_ray.config import JobConfig
from idphoto_ray.manifest import SCHEMA
from idphoto_ray.manifest_store import ManifestWriteError, PartWriter, read_parts
from idphoto_ray.read import InputItem, is_local
from idphoto_ray.redact import scrub
from idphoto_ray.write import join


class OutputFull(RuntimeError):
    """The output filesystem is full: the run ends with exit 1 and this one line; --resume completes it."""


#: How an OSError for a full disk reads in a row's message (`[Errno 28] No space left on device`).
NO_SPACE = f"[Errno {errno.ENOSPC}]"


def write_manifest(
    ds: Any,
    out_fs: Any,
    out_root: str,
    out_uri: str,
    manifest_dir: str,
    run_id: str,
    config: JobConfig,
    items: list[InputItem],
    secrets: set[str],
) -> None:
    """Stream the finished rows to whole parts on the driver (rows are small: no pixels).

    Ray's write_parquet left a torn part on a full disk and no row for photos already written. Here a part
    that cannot be written stops the run: the outputs of its rows are removed, and so is any output of
    this run that no readable row points at, so the next run with room makes them again. An interrupted
    run (Ctrl-C) writes the rows it holds before it stops.
    """
    writer = PartWriter(
        out_fs, manifest_dir, run_id, SCHEMA, on_failed_rows=lambda rows: _remove_outputs(out_fs, rows)
    )
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            writer.add(_scrub_messages(batch, secrets))
        writer.flush()
    except ManifestWriteError as exc:
        _remove_unrecorded(out_fs, out_root, out_uri, manifest_dir, config, items)
        if exc.errno == errno.ENOSPC:
            raise OutputFull(
                f"output disk full: {out_root} (manifest part not written; outputs without a "
                "row removed); free space and run again with --resume"
            ) from exc
        raise OutputFull(f"{exc}; outputs without a row removed; fix it and run again with --resume") from exc
    except BaseException:  # Ctrl-C, a failed stage: keep the rows of the photos already made
        with contextlib.suppress(Exception):
            writer.flush()
        raise


def _scrub_messages(table: pa.Table, secrets: set[str]) -> pa.Table:
    """An error text from a store may quote a credential: messages never carry one into the manifest."""
    if not secrets or "message" not in table.column_names:
        return table
    messages = [None if m is None else scrub(m, secrets) for m in table.column("message").to_pylist()]
    index = table.column_names.index("message")
    return table.set_column(index, "message", pa.array(messages, type=pa.string()))


def _remove_outputs(fs: Any, rows: pa.Table) -> None:
    for outputs in rows.column("outputs").to_pylist():
        for out in outputs or []:
            try:
                fs.rm(out["path"])
            except OSError:
                pass


def _remove_unrecorded(
    fs: Any, out_root: str, out_uri: str, manifest_dir: str, config: JobConfig, items: list[InputItem]
) -> None:
    """Remove this run's outputs that no readable manifest row points at (best effort)."""
    try:
        recorded = {
            o["path"]
            for outs in read_parts(manifest_dir, SCHEMA, fs).column("outputs").to_pylist()
            for o in outs or []
        }
    except OSError:
        return
    names = {it.name for it in items}
    for spec in config.specs:
        for background in config.backgrounds:
            folder = join(out_root, spec, background)
            try:
                found = fs.find(folder)
            except (FileNotFoundError, OSError):
                continue
            for path in found:
                rel = path[len(folder) + 1 :]
                stem = rel.rpartition(".")[0] or rel
                uri = path if is_local(fs) else fs.unstrip_protocol(path)
                if stem in names and uri not in recorded:
                    try:
                        fs.rm(path)
                    except OSError:
                        pass
