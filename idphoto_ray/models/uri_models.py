"""Any ONNX segmenter at a path or fsspec URI, copied once into the model home.

This is how clusters without internet run u2net: put the file on shared storage (s3://, gs://, NFS)
and point `model_uri` at it. The copy is keyed by the URI and checked against a sidecar sha256 on
every reuse, so a truncated or corrupted cache is noticed instead of crashing ONNX Runtime later.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import fsspec

from idphoto_ray.models.home import ModelUnavailable, atomic_write_bytes, model_home, sha256_file

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def cached_path(uri: str, home: Path | None = None) -> Path:
    """`<home>/uri/<sha256(uri)[:16]>-<basename>`: one cache entry per distinct URI."""
    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    base = uri.rstrip("/").split("?")[0].rsplit("/", 1)[-1] or "model.onnx"
    return (home or model_home()) / "uri" / f"{key}-{base}"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _copy(uri: str, dest: Path) -> str:
    """Stream `uri` to `dest` through a temp file + rename; returns the sha256 of what was written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, fsspec.open(uri, "rb") as src:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the model from other users of a shared home
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def is_intact(path: Path) -> bool:
    """The copy and its sha256 sidecar are there and agree."""
    sidecar = _sidecar(path)
    if not (path.is_file() and sidecar.is_file()):
        return False
    return sidecar.read_text().strip() == sha256_file(path)


def fetch_uri(uri: str, home: Path | None = None) -> Path:
    """Local path of the cached copy of `uri`, copying (again) only when missing or corrupted."""
    dest = cached_path(uri, home)
    if is_intact(dest):
        return dest
    if dest.exists():
        log.warning("cached copy %s of %s fails its sha256 check; copying it again", dest, uri)
    try:
        checksum = _copy(uri, dest)
    except (ImportError, ValueError) as exc:
        raise ModelUnavailable(
            f"cannot open model_uri {uri!r}: {exc}. For s3:// or gs:// install the matching extra "
            "(`pip install 'idphoto-ray[s3]'` or `[gcs]`)."
        ) from exc
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise ModelUnavailable(f"cannot copy model_uri {uri!r} to {dest}: {reason}") from exc
    atomic_write_bytes(_sidecar(dest), f"{checksum}\n".encode())
    log.info("copied %s to %s (sha256 %s)", uri, dest, checksum)
    return dest
