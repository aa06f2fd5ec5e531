"""Top-level mistakes caught before Ray starts: one line naming the value and the fix.

Starting Ray and loading the models costs 10–20 s on a 2-core machine, and a mistake found after that ends in
a 40–67-line traceback. Everything here is cheap (no listing of a whole bucket, no model load). Individual
unreadable files found while listing are not refused here: they become manifest rows.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from idphoto_ray.backgrounds import NAMED_BACKGROUNDS, TRANSPARENT, parse_background
from idphoto_ray.config import JobConfig
from idphoto_ray.read import open_filesystem, protocol_of

_HEXISH = re.compile(r"#?[0-9a-fA-F]*")


class Refused(ValueError):
    """A top-level value that cannot work; the message is one line with the value and the fix."""


def background_names() -> list[str]:
    return [*NAMED_BACKGROUNDS, TRANSPARENT]


def _did_you_mean(value: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(value.strip().lower(), choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_backgrounds(values: list[str]) -> None:
    names = background_names()
    for value in values:
        try:
            parse_background(value)
        except ValueError:
            listed = ", ".join(names)
            if value.strip().startswith("#") or (_HEXISH.fullmatch(value.strip()) and len(value.strip()) > 3):
                raise Refused(
                    f"background {value!r} is not a #RRGGBB colour (6 hex digits, e.g. #438edb);"
                    f" names: {listed}"
                ) from None
            raise Refused(
                f"unknown background {value!r}{_did_you_mean(value, names)}; use one of {listed} or #RRGGBB"
            ) from None


def check_specs(names: list[str], spec_files: list[str]) -> None:
    from idphoto_ray.specs import all_specs

    known = all_specs(spec_files)
    for name in names:
        if name not in known:
            raise Refused(
                f"unknown spec {name!r}{_did_you_mean(name, list(known))}; see `idphoto-ray specs` "
                f"(known: {', '.join(sorted(known))})"
            )


def _local_path(uri: str, storage_options: dict[str, Any]) -> Path | None:
    fs, path = open_filesystem(uri, storage_options)
    return Path(path) if protocol_of(fs) in ("file", "local") else None


def check_inputs(inputs: list[str], input_list: str | None, storage_options: dict[str, Any]) -> None:
    """Local roots must exist; a glob's fixed prefix must exist. Buckets are checked by the listing."""
    for uri in inputs:
        path = _local_path(uri, storage_options)
        if path is None:
            continue
        text = str(path)
        if any(ch in text for ch in "*?["):
            prefix = Path(re.split(r"[*?\[]", text, maxsplit=1)[0])
            root = prefix if text.endswith("/") or prefix.is_dir() else prefix.parent
            if not root.exists():
                raise Refused(f"input {uri!r}: folder {root} does not exist")
        elif not path.exists():
            raise Refused(f"input {uri!r} does not exist; give a folder, a glob or a file")
    if input_list:
        path = _local_path(input_list, storage_options)
        if path is not None and not path.is_file():
            raise Refused(
                f"input list {input_list!r} does not exist; give a CSV or Parquet file with a 'path' column"
            )


def check_output(output: str, inputs: list[str], storage_options: dict[str, Any]) -> None:
    """The output must be a folder we can create and write in: not a file, not under a file, not read-only."""
    path = _local_path(output, storage_options)
    if path is None:
        return
    path = Path(os.path.abspath(path))
    for uri in inputs:
        root = _local_path(uri, storage_options)
        if root is not None and root.is_dir() and os.path.realpath(root) == os.path.realpath(path):
            raise Refused(
                f"output {output!r} is the input folder; give another folder,"
                f" e.g. --output {output.rstrip('/')}-out"
            )
    if path.exists() and not path.is_dir():
        raise Refused(f"output {output!r} is a file; give a folder (it is created if missing)")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise Refused(f"output {output!r} is under {str(existing)!r}, which is a file; give a folder path")
    _probe_writable(output, path, existing)


def _probe_writable(output: str, path: Path, existing: Path) -> None:
    """Create the folder and a probe file: `os.access` says yes to root on read-only mounts and ACLs lie."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".idphoto-ray-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        what = "created" if existing != path else "written"
        reason = exc.strerror or type(exc).__name__
        raise Refused(
            f"output {output!r} cannot be {what} ({reason} at {exc.filename or existing}); "
            "give a folder you can write to"
        ) from None


def preflight(config: JobConfig) -> None:
    """Every check that needs neither Ray nor a model; raises Refused with one line on the first mistake."""
    if not config.input and not config.input_list:
        raise Refused("give --input (folder, glob or URI) or --input-list, or a --config that has them")
    check_specs(config.specs, config.spec_files)
    check_backgrounds(config.backgrounds)
    check_inputs(config.input, config.input_list, config.storage_options)
    check_output(config.output, config.input, config.storage_options)
