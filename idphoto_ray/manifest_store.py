"""Manifest parts on disk or in a bucket: written whole or not at all, read past any part that is not.

A full disk used to leave a part with no footer (or 0 bytes) and every later run failed on it until someone
deleted it by hand. Parts are now written under a dot-name (which Arrow's dataset discovery, pandas and the
reader below all ignore) and renamed when complete; an object store's single PUT is already all-or-nothing.
A part that still cannot be read (torn by an older version, damaged by hand) is moved aside to
`quarantine/manifest/` with a one-line warning, and the run goes on.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import time
from collections.abc import Callable
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from idphoto_ray.atomic import atomic_writer

log = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine/manifest"


class ManifestWriteError(OSError):
    """A manifest part could not be written (full disk, read-only output): the run must stop."""


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def write_part(table: pa.Table, fs: fsspec.AbstractFileSystem, manifest_dir: str, name: str) -> str:
    """Write one part as `manifest_dir/name`, whole or not at all; returns its path.

    Locally: idphoto_ray.atomic's temp file in the same folder, fsync, rename (a crash or ENOSPC leaves at
    most a dot-file, which is removed when possible). Object stores: one PUT of the finished bytes.
    """
    path = posixpath.join(manifest_dir.rstrip("/"), name)
    try:
        if _is_local(fs):
            with atomic_writer(path, fsync=True) as handle:
                pq.write_table(table, handle)
        else:
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            fs.pipe_file(path, buffer.getvalue())
    except OSError as exc:
        raise ManifestWriteError(
            exc.errno, f"cannot write the manifest in {manifest_dir}: {exc.strerror or exc}"
        ) from exc
    return path


def _parts(fs: Any, manifest_dir: str) -> list[str]:
    try:
        found = fs.find(manifest_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    keep = []
    for path in found:
        rel = posixpath.relpath(path, manifest_dir.rstrip("/"))
        if any(part.startswith((".", "_")) for part in rel.split("/")):
            continue  # temp files and Arrow/Spark metadata, as Arrow's own discovery ignores them
        keep.append(path)
    return sorted(keep)


def quarantine(fs: Any, manifest_dir: str, path: str) -> str:
    """Move an unreadable part to `<output>/quarantine/manifest/`; returns where it went."""
    root = posixpath.dirname(manifest_dir.rstrip("/"))
    target_dir = posixpath.join(root, QUARANTINE_DIR)
    rel = posixpath.relpath(path, manifest_dir.rstrip("/")).replace("/", "__")
    target = posixpath.join(target_dir, rel)
    if _is_local(fs):
        os.makedirs(target_dir, exist_ok=True)
    fs.mv(path, target)
    return target


def read_parts(
    manifest_dir: str, schema: pa.Schema, filesystem: Any = None, *, move_aside: bool = True
) -> pa.Table:
    """All rows of every readable part, in `schema`; unreadable parts are quarantined with a warning.

    Each part is read in full (not just its footer) so a part with a good footer and a damaged page is
    caught here rather than by a reader later. `move_aside=False` only skips them (readers in notebooks).
    """
    fs = filesystem or fsspec.filesystem("file")
    tables = []
    for path in _parts(fs, manifest_dir):
        try:
            with fs.open(path, "rb") as handle:
                data = handle.read()
            part = pq.read_table(pa.BufferReader(data), schema=schema)
        except (pa.ArrowException, OSError, ValueError) as exc:
            if not move_aside:
                log.warning(
                    "manifest part %s is unreadable (%s); skipped", path, str(exc).splitlines()[0][:200]
                )
                continue
            try:
                moved = quarantine(fs, manifest_dir, path)
                log.warning(
                    "manifest part %s is unreadable (%s); moved to %s, the run goes on",
                    path,
                    str(exc).splitlines()[0][:200],
                    moved,
                )
            except OSError as move_exc:
                log.warning(
                    "manifest part %s is unreadable (%s) and could not be moved aside (%s); ignored",
                    path,
                    str(exc).splitlines()[0][:200],
                    move_exc,
                )
            continue
        tables.append(part)
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables)


class PartWriter:
    """Collects a run's rows on the driver and writes them as numbered parts, whole or not at all.

    A part is written every `rows_per_part` rows or `seconds` seconds, whichever comes first, so an
    interrupted run keeps the rows of the photos it finished (the next `--resume` skips them) without a
    file per photo. `on_failed_rows` receives the rows of a part that could not be written, so the job can
    remove the outputs they point at before it stops.
    """

    def __init__(
        self,
        fs: Any,
        manifest_dir: str,
        run_id: str,
        schema: pa.Schema,
        *,
        rows_per_part: int = 256,
        seconds: float = 30.0,
        on_failed_rows: Callable[[pa.Table], None] | None = None,
    ) -> None:
        self.fs, self.dir, self.run_id, self.schema = fs, manifest_dir, run_id, schema
        self.rows_per_part, self.seconds = rows_per_part, seconds
        self.on_failed_rows = on_failed_rows
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.parts = 0
        self.written_rows = 0
        self.last_flush = time.monotonic()

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.pending.append(table.select(self.schema.names).cast(self.schema))
            self.pending_rows += table.num_rows
        if self.pending_rows >= self.rows_per_part or time.monotonic() - self.last_flush >= self.seconds:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.pending_rows:
            return
        table = pa.concat_tables(self.pending)
        self.pending, self.pending_rows = [], 0
        try:
            write_part(table, self.fs, self.dir, f"{self.run_id}-{self.parts:05d}.parquet")
        except ManifestWriteError:
            if self.on_failed_rows is not None:
                self.on_failed_rows(table)
            raise
        self.parts += 1
        self.written_rows += table.num_rows
