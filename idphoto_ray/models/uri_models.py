"""Any ONNX segmenter at a path or fsspec URI, copied once into the model home.

This is how clusters without internet run u2net: put the file on shared storage (s3://, gs://, NFS)
and point `model_uri` at it. The copy is keyed by the URI and checked against a sidecar sha256 on
every reuse, so a truncated or corrupted cache is noticed instead of crashing ONNX Runtime later.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import fsspec

from idphoto_ray.atomic import atomic_writer
from idphoto_ray.models.home import ModelUnavailable, model_home, record_sha256, recorded_sha256, sha256_file

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def cached_path(uri: str, home: Path | None = None) -> Path:
    """`<home>/uri/<sha256(uri)[:16]>-<basename>`: one cache entry per distinct URI."""
    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    base = uri.rstrip("/").split("?")[0].rsplit("/", 1)[-1] or "model.onnx"
    return (home or model_home()) / "uri" / f"{key}-{base}"


def _copy(uri: str, dest: Path) -> str:
    """Stream `uri` to `dest` (idphoto_ray.atomic: whole or not at all); returns the sha256 of what was
    written."""
    digest = hashlib.sha256()
    with atomic_writer(dest, fsync=True) as out, fsspec.open(uri, "rb") as src:
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def is_intact(path: Path) -> bool:
    """The copy and its sha256 sidecar are there and agree."""
    recorded = recorded_sha256(path)
    return recorded is not None and path.is_file() and recorded == sha256_file(path)


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
    record_sha256(dest, checksum)
    log.info("copied %s to %s (sha256 %s)", uri, dest, checksum)
    return dest
