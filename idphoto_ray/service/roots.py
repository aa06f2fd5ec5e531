"""Which input/output URIs a service job may name: only those under a root the operator listed.

A URI job reads and writes with the server's own credentials and filesystem rights, so a client must never
reach past what the operator opened up: the scheme and bucket must be a listed root's, the path must lie
under the root's path after normalisation, `..` is refused outright (not normalised away), local paths are
resolved through their symlinks before the check, and everything fsspec would read as more than a path
(`::` chains, `?endpoint_override=…` queries, `user@host`, `%` escapes, globs) is refused. Nothing here does
I/O beyond `os.path.realpath`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

URI_JOBS_OFF = "URI jobs are off: the service settings list no allowed_roots; upload a zip instead"
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")
#: fsspec reads these as chains, queries, credentials, escapes or globs: never part of a plain path.
_NOT_A_PATH = ("::", "?", "#", "%", "*", "[", "]", "\\")


class RootRefused(ValueError):
    """A URI a job may not use; `status` is the HTTP code (403 outside every root, 422 malformed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Root:
    """`scheme` is `file` for local paths; `bucket` is empty for them; `path` has no trailing slash."""

    scheme: str
    bucket: str
    path: str

    def __str__(self) -> str:
        return (
            self.path if self.scheme == "file" else f"{self.scheme}://{self.bucket}/{self.path}".rstrip("/")
        )


def _split(uri: str) -> Root:
    """Scheme, bucket and path of a URI or absolute local path, refusing anything but a plain path."""
    text = uri.strip()
    if not text or any(ord(ch) < 32 for ch in text):
        raise RootRefused(422, f"{uri!r} is not a URI or an absolute path")
    bad = next((token for token in _NOT_A_PATH if token in text), None)
    if bad:
        raise RootRefused(422, f"{uri!r}: {bad!r} is not allowed in a job URI (plain paths only)")
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "file", text
    elif not _SCHEME.fullmatch(scheme.lower()):
        raise RootRefused(422, f"{uri!r}: {scheme!r} is not a URI scheme")
    scheme = scheme.lower()
    if scheme in ("file", "local"):
        if not rest.startswith("/"):
            raise RootRefused(422, f"{uri!r}: a local path must be absolute (file:///… or /…)")
        scheme, bucket, path = "file", "", rest
    else:
        bucket, _, path = rest.partition("/")
        if not bucket or "@" in bucket or ":" in bucket:
            raise RootRefused(422, f"{uri!r}: give {scheme}://BUCKET/PATH (no user, password or port)")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise RootRefused(422, f"{uri!r}: '..' is not allowed in a job URI")
    joined = "/".join(parts)
    return Root(scheme, bucket, "/" + joined if scheme == "file" else joined)


def parse_root(text: str) -> Root:
    """A root from the settings: an absolute local path or `scheme://bucket[/prefix]` (ValueError if not)."""
    try:
        return _split(text)
    except RootRefused as exc:
        raise ValueError(f"allowed_roots: {exc}") from None


def _under(path: str, root: str) -> bool:
    return root in ("", "/") or path == root or path.startswith(root + "/")


def check_uri(uri: str, roots: list[str], what: str = "URI") -> str:
    """The normalised URI (local: the symlink-resolved path) if it lies under one of `roots`.

    Raises RootRefused: 403 when URI jobs are off (no roots) or the URI is under none of them (another
    scheme, another bucket, a path outside, or a symlink leading out), 422 when it is malformed.
    """
    if not roots:
        raise RootRefused(403, URI_JOBS_OFF)
    wanted = _split(uri)
    if wanted.scheme == "file":
        real = os.path.realpath(wanted.path)
        for root in (parse_root(r) for r in roots):
            if root.scheme == "file" and _under(real, os.path.realpath(root.path)):
                return real
    else:
        for root in (parse_root(r) for r in roots):
            if (root.scheme, root.bucket) == (wanted.scheme, wanted.bucket) and _under(
                wanted.path, root.path
            ):
                return str(wanted)
    listed = ", ".join(roots)
    raise RootRefused(403, f"{what} {uri!r} is not under an allowed root (allowed: {listed})")
