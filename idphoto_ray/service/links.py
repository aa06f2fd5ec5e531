"""Short-lived download links for a photo request's outputs (`delivery=link`).

Each request that asks for links gets one folder `{workdir}/links/{token}/` holding its files and their
expiry. The token (32 random bytes, 43 URL-safe characters) is the capability: whoever holds the URL may
fetch the files until the expiry, with no bearer token, so that the link can be handed to a browser or an
`<img>` that cannot send headers. After the expiry the files answer 410 once (and are deleted then) and 404
afterwards; the ingress's periodic cleanup deletes links nobody fetched.
"""

from __future__ import annotations

import enum
import json
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

_TOKEN = re.compile(r"[A-Za-z0-9_\-]{43}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_META = ".expires.json"


class LinkState(enum.Enum):
    """What a link lookup found."""

    LIVE = "the file, before its expiry"
    EXPIRED = "the link existed and has expired (410); its files are deleted now"
    UNKNOWN = "no such link or file (404)"


def file_name(*parts: str, ext: str) -> str:
    """'cn-1inch', '#438edb' → 'cn-1inch-_438edb.jpg': a name that needs no quoting in a URL."""
    return _UNSAFE.sub("_", "-".join(p for p in parts if p)) + f".{ext}"


class LinkStore:
    """Link folders under `{workdir}/links`: written by the ingress, read by `/v1/files/{token}/{name}`."""

    def __init__(self, workdir: str | Path) -> None:
        self.root = Path(workdir) / "links"
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, files: dict[str, bytes], ttl_s: float, now: float | None = None) -> tuple[str, float]:
        """Store `files` (name → bytes) under a new token; returns (token, expiry as Unix time)."""
        unsafe = [name for name in files if not _NAME.fullmatch(name)]
        if unsafe:
            raise ValueError(f"unsafe link file names {unsafe}")
        expires_at = (time.time() if now is None else now) + ttl_s
        token = secrets.token_urlsafe(32)
        folder = self.root / token
        folder.mkdir()
        (folder / _META).write_text(json.dumps({"expires_at": expires_at}), encoding="utf-8")
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return token, expires_at

    def deliver(self, result: dict[str, Any], ttl_s: float) -> dict[str, Any]:
        """Move each output's raw bytes (`data`) behind one new link; each output gets `url`, `expires_at`."""
        files: dict[str, bytes] = {}
        names = []
        for output in result["outputs"]:
            parts = [output.get("paper"), output["spec"], output["background"]]
            name = base = file_name(*(p for p in parts if p), ext=output["ext"])
            while name in files:
                name = f"{len(files)}-{base}"
            files[name] = output.pop("data")
            names.append(name)
        if not files:
            return result
        token, expires_at = self.put(files, ttl_s)
        for output, name in zip(result["outputs"], names, strict=True):
            output["url"] = f"/v1/files/{token}/{name}"
            output["expires_at"] = round(expires_at, 3)
        return result

    def get(self, token: str, name: str, now: float | None = None) -> tuple[LinkState, Path | None]:
        """The file behind a link, if the link is live; an expired link is deleted on the way."""
        if not _TOKEN.fullmatch(token) or not _NAME.fullmatch(name):
            return LinkState.UNKNOWN, None
        folder = self.root / token
        expires_at = _expiry(folder)
        if expires_at is None:
            return LinkState.UNKNOWN, None
        if (time.time() if now is None else now) >= expires_at:
            shutil.rmtree(folder, ignore_errors=True)
            return LinkState.EXPIRED, None
        path = folder / name
        return (LinkState.LIVE, path) if path.is_file() else (LinkState.UNKNOWN, None)

    def cleanup(self, now: float | None = None) -> list[str]:
        """Delete expired links (and folders without a readable expiry); returns their tokens."""
        now = time.time() if now is None else now
        removed = []
        for folder in self.root.iterdir():
            expires_at = _expiry(folder)
            if expires_at is None or now >= expires_at:
                if expires_at is None and now - _mtime(folder) < 60:
                    continue  # just made by `put`, which writes the expiry first
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        return removed


def _expiry(folder: Path) -> float | None:
    try:
        return float(json.loads((folder / _META).read_text(encoding="utf-8"))["expires_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _mtime(folder: Path) -> float:
    try:
        return folder.stat().st_mtime
    except OSError:
        return 0.0
