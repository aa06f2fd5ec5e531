"""List the inputs of a job: directories, globs, URIs or an input list, with stable output names.

Listing happens on the driver through fsspec, so local folders and buckets behave the same; the
bytes themselves are read by Ray on the workers.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

#: Thumbnails of an earlier run's review page (review.REVIEW_DIR): never inputs.
REVIEW_DIR = "_review"
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif", "heic", "heif")
_UNSAFE = re.compile(r"[^\w.\-/ ]", re.UNICODE)


@dataclass(frozen=True)
class InputItem:
    """One photo to process.

    `path` is what the filesystem opens (no protocol, as Ray reports it), `uri` is what the manifest shows,
    `name` is the output stem (posix, relative, safe).
    """

    path: str
    input_id: str
    name: str
    uri: str


def open_filesystem(uri: str, storage_options: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """fsspec filesystem + protocol-less path for a local path or URI."""
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    return fs, path


def protocol_of(fs: fsspec.AbstractFileSystem) -> str:
    """fsspec filesystems report one protocol or a tuple of aliases; the first names it."""
    return fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return protocol_of(fs) in ("file", "local")


def _is_image(path: str) -> bool:
    return path.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS if "." in posixpath.basename(path) else False


def _stem(rel: str) -> str:
    base, dot, ext = rel.rpartition(".")
    return base if dot and "/" not in ext else rel


def _safe_name(name: str) -> str:
    """Keep output names inside the output folder whatever an id or path contains."""
    parts = [p for p in _UNSAFE.sub("_", name.replace("\\", "/")).split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "_"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _left_out(rel: str, path: str, excluded: list[str]) -> bool:
    """An output folder inside the input (and its `_review/` thumbnails) would feed a run its own results."""
    return REVIEW_DIR in rel.split("/")[:-1] or any(_inside(path, root) for root in excluded)


def _expand(
    uri: str, storage_options: dict[str, Any] | None, excluded: list[str] | None = None
) -> list[tuple[str, str]]:
    """(path, path relative to its root) for every image under a directory, glob or single file."""
    fs, path = open_filesystem(uri, storage_options)
    if any(ch in path for ch in "*?["):
        root = path.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0].rsplit("/", 1)[0]
        found = sorted(p for p in fs.glob(path) if fs.isfile(p))
    elif fs.isdir(path):
        root = path.rstrip("/")
        found = sorted(fs.find(path))
    elif fs.exists(path):
        root = posixpath.dirname(path)
        found = [path]
    else:
        raise FileNotFoundError(f"input {uri!r} does not exist")
    pairs = [(p, posixpath.relpath(p, root) if root else p) for p in found if _is_image(p)]
    kept = [(p, rel) for p, rel in pairs if not _left_out(rel, p, excluded or [])]
    if len(kept) < len(pairs):
        log.warning("note: left %d file(s) out of %s: they lie in the output folder or a %s/ folder of an earlier run",
                    len(pairs) - len(kept), uri, REVIEW_DIR)
    return kept


def _read_input_list(uri: str, storage_options: dict[str, Any] | None) -> list[tuple[str, str | None]]:
    fs, path = open_filesystem(uri, storage_options)
    with fs.open(path, "rb") as handle:
        table = pq.read_table(handle) if path.endswith(".parquet") else pacsv.read_csv(handle)
    if "path" not in table.column_names:
        raise ValueError(f"input list {uri!r} needs a 'path' column (has: {', '.join(table.column_names)})")
    paths = [str(p) for p in table.column("path").to_pylist()]
    ids = [None if i is None else str(i) for i in table.column("id").to_pylist()] if "id" in table.column_names else [None] * len(paths)
    duplicated = [i for i, n in Counter(i for i in ids if i is not None).items() if n > 1]
    if duplicated:
        raise ValueError(f"input list {uri!r} repeats ids: {', '.join(sorted(duplicated)[:10])}")
    return list(zip(paths, ids))


def list_inputs(
    inputs: list[str],
    input_list: str | None = None,
    storage_options: dict[str, Any] | None = None,
    output: str | None = None,
) -> tuple[str, list[InputItem]]:
    """All inputs with unique output names, plus the fsspec protocol they share.

    Folders and globs leave out `output` when it lies inside them (with a note); an input list is taken as given.
    """
    candidates: list[tuple[str, str, str | None]] = []
    protocols: set[str] = set()
    fs = None
    excluded: list[str] = []
    if output:
        out_fs, out_path = open_filesystem(output, storage_options)
        excluded.append(posixpath.normpath(os.path.abspath(out_path)) if is_local(out_fs) else out_path.rstrip("/"))
    for uri in inputs:
        fs, _ = open_filesystem(uri, storage_options)
        protocols.add(protocol_of(fs))
        candidates.extend((p, rel, None) for p, rel in _expand(uri, storage_options, excluded))
    if input_list:
        for path, ident in _read_input_list(input_list, storage_options):
            fs, p = open_filesystem(path, storage_options)
            protocols.add(protocol_of(fs))
            candidates.append((p, posixpath.basename(p), ident))
    if len(protocols) > 1:
        raise ValueError(f"all inputs must live on one filesystem, got: {', '.join(sorted(protocols))}")
    protocol = protocols.pop() if protocols else "file"

    seen_paths: set[str] = set()
    used_names: set[str] = set()
    items: list[InputItem] = []
    stems = Counter(_safe_name(ident if ident else _stem(rel)) for _, rel, ident in candidates)
    for path, rel, ident in candidates:
        if path in seen_paths:
            continue
        seen_paths.add(path)
        name = _safe_name(ident if ident else _stem(rel))
        if stems[name] > 1 and not ident:
            name = _safe_name(rel.replace(".", "_"))
        base, n = name, 1
        while name in used_names:
            n += 1
            name = f"{base}__{n}"
        used_names.add(name)
        uri = path if protocol in ("file", "local") or fs is None else fs.unstrip_protocol(path)
        items.append(InputItem(path=path, input_id=ident if ident else _stem(rel), name=name, uri=uri))
    return protocol, items
