"""List the inputs of a job: directories, globs, URIs or an input list, with stable output names.

Listing happens on the driver through fsspec, so local folders and buckets behave the same; the
bytes themselves are read by Ray on the workers.
"""

from __future__ import annotations

import glob as pyglob
import logging
import os
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from idphoto_ray.entries import check_local, extension_of, is_image_name, walk_local

log = logging.getLogger(__name__)

#: Thumbnails of an earlier run's review page (review.REVIEW_DIR): never inputs.
REVIEW_DIR = "_review"

_UNSAFE = re.compile(r"[^\w.\-/ ]", re.UNICODE)


@dataclass(frozen=True)
class InputItem:
    """One photo to process.

    `path` is what the filesystem opens (no protocol, as Ray reports it), `uri` is what the manifest shows,
    `name` is the output stem (posix, relative, safe). `problem` is set (`cause: detail`) for an entry that
    was found but cannot be read: it becomes a `read_error` row instead of stopping the job.
    """

    path: str
    input_id: str
    name: str
    uri: str
    problem: str = ""


@dataclass
class InputListing:
    """What listing found: the inputs (readable or not) and the files skipped for their extension."""

    protocol: str
    items: list[InputItem]
    skipped: Counter = field(default_factory=Counter)


def open_filesystem(
    uri: str, storage_options: dict[str, Any] | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """fsspec filesystem + protocol-less path for a local path or URI."""
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    return fs, path


def protocol_of(fs: fsspec.AbstractFileSystem) -> str:
    """fsspec filesystems report one protocol or a tuple of aliases; the first names it."""
    return fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return protocol_of(fs) in ("file", "local")


def _stem(rel: str) -> str:
    base, dot, ext = rel.rpartition(".")
    return base if dot and "/" not in ext else rel


def _safe_name(name: str) -> str:
    """Keep output names inside the output folder whatever an id or path contains."""
    parts = [p for p in _UNSAFE.sub("_", name.replace("\\", "/")).split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "_"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _left_out(rel: str, path: str, excluded: list[str], local: bool) -> bool:
    """An output folder inside the input (and its `_review/` thumbnails) would feed a run its own results."""
    where = posixpath.normpath(os.path.abspath(path)) if local else path
    return REVIEW_DIR in rel.split("/")[:-1] or any(_inside(where, root) for root in excluded)


def _problem(found: tuple[Any, str] | None) -> str:
    return f"{found[0].value}: {found[1]}" if found else ""


def _expand(uri: str, storage_options: dict[str, Any] | None, skipped: Counter) -> list[tuple[str, str, str]]:
    """(path, path relative to its root, problem) for every image entry under a directory, glob or file.

    Local entries are stat'ed, never opened (a FIFO blocks forever); other extensions are counted in
    `skipped`.
    """
    fs, path = open_filesystem(uri, storage_options)
    local = is_local(fs)
    if any(ch in path for ch in "*?["):
        root = path.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0].rsplit("/", 1)[0]
        if local:
            found = sorted(p for p in pyglob.glob(path, recursive=True) if not posixpath.isdir(p))
        else:
            found = sorted(p for p in fs.glob(path) if fs.isfile(p))
    elif local and posixpath.isdir(path):
        listing = walk_local(path)
        skipped.update(listing.skipped)
        return [
            (e.path, e.rel, _problem((e.problem, e.detail)) if e.problem else "") for e in listing.entries
        ]
    elif not local and fs.isdir(path):
        root = path.rstrip("/")
        found = sorted(fs.find(path))
    elif posixpath.lexists(path) if local else fs.exists(path):
        root = posixpath.dirname(path)
        found = [path]
    else:
        raise FileNotFoundError(f"input {uri!r} does not exist")
    entries = []
    for p in found:
        if not is_image_name(p):
            skipped[extension_of(p)] += 1
            continue
        problem = _problem(check_local(p)) if local else ""
        entries.append((p, posixpath.relpath(p, root) if root else p, problem))
    return entries


def _read_input_list(uri: str, storage_options: dict[str, Any] | None) -> list[tuple[str, str | None]]:
    fs, path = open_filesystem(uri, storage_options)
    with fs.open(path, "rb") as handle:
        table = pq.read_table(handle) if path.endswith(".parquet") else pacsv.read_csv(handle)
    if "path" not in table.column_names:
        raise ValueError(f"input list {uri!r} needs a 'path' column (has: {', '.join(table.column_names)})")
    paths = [str(p) for p in table.column("path").to_pylist()]
    ids = (
        [None if i is None else str(i) for i in table.column("id").to_pylist()]
        if "id" in table.column_names
        else [None] * len(paths)
    )
    duplicated = [i for i, n in Counter(i for i in ids if i is not None).items() if n > 1]
    if duplicated:
        raise ValueError(f"input list {uri!r} repeats ids: {', '.join(sorted(duplicated)[:10])}")
    return list(zip(paths, ids, strict=False))


def list_inputs(
    inputs: list[str],
    input_list: str | None = None,
    storage_options: dict[str, Any] | None = None,
    output: str | None = None,
) -> tuple[str, list[InputItem]]:
    """All inputs with unique output names, plus the fsspec protocol they share."""
    listing = list_inputs_detailed(inputs, input_list, storage_options, output)
    return listing.protocol, listing.items


def list_inputs_detailed(
    inputs: list[str],
    input_list: str | None = None,
    storage_options: dict[str, Any] | None = None,
    output: str | None = None,
) -> InputListing:
    """All inputs (unreadable ones carry their problem) with unique output names, and what was skipped.

    One path listed under two ids in an input list is two inputs; a path found twice while scanning
    (overlapping roots) is one. Folders and globs leave out `output` when it lies inside them (with a
    note); an input list is taken as given.
    """
    excluded: list[str] = []
    local_out = False
    if output:
        out_fs, out_path = open_filesystem(output, storage_options)
        local_out = is_local(out_fs)
        excluded.append(posixpath.normpath(os.path.abspath(out_path)) if local_out else out_path.rstrip("/"))
    candidates: list[tuple[str, str, str | None, str]] = []
    protocols: set[str] = set()
    skipped: Counter = Counter()
    fs = None
    for uri in inputs:
        fs, _ = open_filesystem(uri, storage_options)
        protocols.add(protocol_of(fs))
        found = _expand(uri, storage_options, skipped)
        expanded = [
            (p, rel, problem) for p, rel, problem in found if not _left_out(rel, p, excluded, local_out)
        ]
        if len(expanded) < len(found):
            log.warning(
                "note: left %d file(s) out of %s: they lie in the output folder"
                " or a %s/ folder of an earlier run",
                len(found) - len(expanded),
                uri,
                REVIEW_DIR,
            )
        candidates.extend((p, rel, None, problem) for p, rel, problem in expanded)
    if input_list:
        for path, ident in _read_input_list(input_list, storage_options):
            fs, p = open_filesystem(path, storage_options)
            protocols.add(protocol_of(fs))
            problem = _problem(check_local(p)) if is_local(fs) else ""
            candidates.append((p, posixpath.basename(p), ident, problem))
    if len(protocols) > 1:
        raise ValueError(f"all inputs must live on one filesystem, got: {', '.join(sorted(protocols))}")
    protocol = protocols.pop() if protocols else "file"

    seen: set[tuple[str, str | None]] = set()
    used_names: set[str] = set()
    items: list[InputItem] = []
    stems = Counter(_safe_name(ident if ident else _stem(rel)) for _, rel, ident, _ in candidates)
    for path, rel, ident, problem in candidates:
        if (path, ident) in seen:
            continue
        seen.add((path, ident))
        name = _safe_name(ident if ident else _stem(rel))
        if stems[name] > 1 and not ident:
            name = _safe_name(rel.replace(".", "_"))
        base, n = name, 1
        while name in used_names:
            n += 1
            name = f"{base}__{n}"
        used_names.add(name)
        uri = path if protocol in ("file", "local") or fs is None else fs.unstrip_protocol(path)
        items.append(
            InputItem(path=path, input_id=ident if ident else _stem(rel), name=name, uri=uri, problem=problem)
        )
    return InputListing(protocol, items, skipped)
