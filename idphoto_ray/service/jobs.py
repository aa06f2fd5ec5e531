"""Batch jobs from the service: uploads unpacked safely, the batch job run as a Ray task, state on disk.

A class of 500 photos does not belong inside one HTTP request: the request unpacks the upload (or checks the
URIs it names against the allowed roots) and returns a job id; the batch job itself (Ray Data, the same
`run_job` as the CLI) runs as a background task. State lives in `{workdir}/jobs/{id}/job.json`, so every
ingress replica can answer for every job, and progress is read from the files the job writes (one review
thumbnail per decoded photo), so the job needs no reporting hook.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import ray

from idphoto_ray.read import REVIEW_DIR, is_local, open_filesystem
from idphoto_ray.service.sniff import is_zip, sniff_image
from idphoto_ray.write import join

_JOB_ID = re.compile(r"[0-9a-f]{32}")
_SAFE = re.compile(r"[^\w.\-]", re.UNICODE)
#: Files the results zip stores as they are (already compressed); everything else is deflated.
_STORED = {".jpg", ".png", ".parquet"}


class UploadRejected(ValueError):
    """An upload the service refuses as a whole; `status` is the HTTP code (413 too big, 422 unusable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Unpacker:
    """Writes the images of an upload (single files or zips) into a folder under limits; skips the rest.

    Names are reduced to safe components (no absolute paths, no '..'), zip members are read with a byte cap
    whatever their header claims (zip bombs), and each file's type comes from its bytes.
    """

    def __init__(self, dest: Path, max_files: int, max_bytes: int) -> None:
        self.dest = dest
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.total = 0
        self.names: list[str] = []
        self.skipped: list[str] = []
        dest.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, data: bytes) -> None:
        if is_zip(data):
            self._add_zip(name, data)
        else:
            self._add_file(name, data)

    def _add_zip(self, name: str, data: bytes) -> None:
        import io

        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise UploadRejected(422, f"{name}: not a readable zip ({exc})") from None
        with archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                budget = self.max_bytes - self.total
                with archive.open(info) as member:
                    content = member.read(budget + 1)
                if len(content) > budget:
                    raise UploadRejected(413, f"unpacked upload exceeds {self.max_bytes // 2**20} MiB")
                self._add_file(info.filename, content)

    def _add_file(self, name: str, data: bytes) -> None:
        ext = sniff_image(data)
        stem = _safe_stem(name)
        if ext is None or stem is None:
            self.skipped.append(name)
            return
        if len(self.names) >= self.max_files:
            raise UploadRejected(413, f"more than {self.max_files} photos in one job")
        self.total += len(data)
        if self.total > self.max_bytes:
            raise UploadRejected(413, f"upload exceeds {self.max_bytes // 2**20} MiB")
        stem = stem or "photo"
        candidate, n = stem, 1
        while (self.dest / f"{candidate}.{ext}").exists():
            n += 1
            candidate = f"{stem}-{n}"
        (self.dest / f"{candidate}.{ext}").write_bytes(data)
        self.names.append(f"{candidate}.{ext}")


def _safe_stem(name: str) -> str | None:
    """'class 3/Ann.JPG' → 'class_3_Ann'; parents and roots are dropped, never followed; None for macOS's
    resource-fork copies (`__MACOSX/._x.jpg`), which are not photos."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    if any(p.startswith("__MACOSX") for p in parts):
        return None
    if not parts:
        return ""
    parts[-1] = parts[-1].rsplit(".", 1)[0]
    return _SAFE.sub("_", "_".join(p for p in parts if p))[:120]


class JobStore:
    """Jobs as folders: `input/`, `output/` (the batch job's), `job.json`, `results.zip` once asked for.

    A URI job's folder holds only `job.json`: its state names `output_uri`, where the job writes.
    """

    def __init__(self, workdir: str | Path, storage_options: dict[str, Any] | None = None) -> None:
        self.root = Path(workdir) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.storage_options = storage_options or {}

    def new(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        path = self.root / job_id
        path.mkdir()
        return job_id, path

    def path(self, job_id: str) -> Path | None:
        """The job's folder, or None for an unknown or malformed id (never a path outside the store)."""
        if not _JOB_ID.fullmatch(job_id):
            return None
        path = self.root / job_id
        return path if (path / "job.json").exists() else None

    @staticmethod
    def write_state(path: Path, **fields: Any) -> dict[str, Any]:
        state = read_state(path) if (path / "job.json").exists() else {}
        state.update(fields, updated_at=time.time())
        tmp = path / f".job.json.{os.getpid()}"
        tmp.write_text(json.dumps(state), encoding="utf-8")
        tmp.replace(path / "job.json")
        return state

    def progress(self, job_id: str) -> dict[str, Any] | None:
        path = self.path(job_id)
        if path is None:
            return None
        state = read_state(path)
        total = int(state.get("total", 0))
        if state.get("state") in ("done", "failed"):
            done = total if state.get("state") == "done" else state.get("done", 0)
        elif state.get("output_uri"):
            made = review_count(state["output_uri"], self.storage_options) - state.get("review_before", 0)
            done = max(0, min(total, made)) if state.get("state") == "running" else 0
        else:
            review = path / "output" / REVIEW_DIR
            done = min(total, sum(1 for _ in review.glob("*.jpg"))) if review.exists() else 0
        percent = 100.0 if state.get("state") == "done" else (100.0 * done / total if total else 0.0)
        public = {k: v for k, v in state.items() if k not in ("review_before", "run_id")}
        return {**public, "id": job_id, "done": done, "percent": round(percent, 1)}

    def rows(self, job_id: str) -> list[dict[str, Any]] | None:
        """The job's manifest rows (its own run only), paths relative to its output; None if unknown."""
        path = self.path(job_id)
        if path is None:
            return None
        state = read_state(path)
        output = state.get("output_uri") or str(path / "output")
        return manifest_rows(output, self.storage_options, state.get("run_id"))

    def results_zip(self, job_id: str) -> Path | None:
        """Photos, manifest (Parquet and CSV), review page, run.json; built once, after the job is done."""
        path = self.path(job_id)
        if path is None or read_state(path).get("state") != "done" or read_state(path).get("output_uri"):
            return None
        target = path / "results.zip"
        if not target.exists():
            tmp = path / f".results.zip.{os.getpid()}"
            output = path / "output"
            with zipfile.ZipFile(tmp, "w") as archive:
                for file in sorted(output.rglob("*")):
                    if file.is_file():
                        method = zipfile.ZIP_STORED if file.suffix in _STORED else zipfile.ZIP_DEFLATED
                        archive.write(file, file.relative_to(output).as_posix(), compress_type=method)
            tmp.replace(target)
        return target

    def cleanup(self, retention_s: float, now: float | None = None) -> list[str]:
        """Delete ended jobs whose last change is older than the retention time; returns their ids.

        A queued or running job is kept whatever its age: its state changes only when it ends.
        """
        now = time.time() if now is None else now
        removed = []
        for path in self.root.iterdir():
            try:
                state = read_state(path)
            except (OSError, ValueError):
                state = {}
            if state.get("state") in ("queued", "running"):
                continue
            changed = state.get("updated_at") or path.stat().st_mtime
            if now - changed > retention_s:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed


def read_state(path: Path) -> dict[str, Any]:
    return json.loads((path / "job.json").read_text(encoding="utf-8"))


def review_count(output: str, storage_options: dict[str, Any]) -> int:
    """Review thumbnails under an output (one per decoded photo): a job's progress without a hook."""
    fs, root = open_filesystem(output, storage_options)
    try:
        return len(fs.glob(join(root, REVIEW_DIR, "*.jpg")))
    except OSError:
        return 0


#: The manifest columns a job's results listing shows; the rest is in the Parquet manifest itself.
_ROW_COLUMNS = ["input_id", "status", "reason", "message", "flags", "outputs"]


def manifest_rows(output: str, storage_options: dict[str, Any], run_id: str | None) -> list[dict[str, Any]]:
    """Rows of one run (all runs when `run_id` is None), sorted by input id; output paths made relative."""
    from idphoto_ray.manifest import read_manifest

    fs, root = open_filesystem(output, storage_options)
    table = read_manifest(join(root, "manifest"), fs)
    if run_id and table.num_rows:
        table = table.filter(pc.equal(table.column("run_id"), run_id))
    base = (root if is_local(fs) else fs.unstrip_protocol(root)).rstrip("/") + "/"
    rows = sorted(table.select(_ROW_COLUMNS).to_pylist(), key=lambda row: row["input_id"])
    for row in rows:
        for entry in row["outputs"] or []:
            entry.pop("affine", None)
            if (entry.get("path") or "").startswith(base):
                entry["path"] = entry["path"][len(base) :]
    return rows


def job_config(
    settings: Any,
    source: str,
    target: str,
    specs: list[str],
    backgrounds: list[str],
    sheets: list,
    uri_job: bool = False,
) -> Any:
    """The batch job's config for a service job: the settings' model and options, the request's choices.

    Only a URI job gets the settings' `storage_options` (credentials for the allowed bucket roots).
    """
    from idphoto_ray.config import JobConfig

    return JobConfig(
        input=[source],
        output=target,
        storage_options=settings.storage_options if uri_job else {},
        specs=specs,
        backgrounds=backgrounds,
        spec_files=settings.spec_files,
        model=settings.model,
        device=settings.device,
        processing=settings.processing,
        layouts=[layout for layout, _, _ in sheets],
    )


def prepare_uri_job(config: Any, max_files: int) -> int:
    """Check a URI job before it is queued (the CLI's preflight, then one listing); returns its photo count.

    Raises UploadRejected: 422 for a preflight refusal or no photos, 413 for more than `max_files`.
    """
    from idphoto_ray.preflight import Refused, preflight
    from idphoto_ray.read import list_inputs_detailed

    try:
        preflight(config)
        listing = list_inputs_detailed(config.input, None, config.storage_options, config.output)
    except (Refused, OSError, ValueError) as exc:
        raise UploadRejected(422, str(exc)) from None
    if not listing.items:
        raise UploadRejected(422, f"no photos found under {config.input[0]}")
    if len(listing.items) > max_files:
        raise UploadRejected(413, f"{len(listing.items)} photos is more than {max_files} in one job")
    return len(listing.items)


def write_manifest_csv(output: Path) -> Path:
    """The manifest of the job's run as CSV for spreadsheets: nested columns (lists, structs) as JSON text."""
    from idphoto_ray.manifest import read_manifest

    table = read_manifest(str(output / "manifest"))
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_nested(column.type):
            column = pa.array([None if v is None else json.dumps(v) for v in column.to_pylist()], pa.string())
        columns[name] = column
    flat = pa.table(columns) if columns else table
    if "input_id" in flat.column_names and flat.num_rows:
        flat = flat.take(pc.sort_indices(flat, [("input_id", "ascending")]))
    target = output / "manifest.csv"
    pacsv.write_csv(flat, target)
    return target


@ray.remote(max_retries=0)
def run_service_job(job_dir: str, config_json: str) -> None:
    """The batch job for one upload, then its CSV; every outcome ends in job.json (done or failed)."""
    from idphoto_ray.config import JobConfig
    from idphoto_ray.job.run import run_job

    path = Path(job_dir)
    config = JobConfig.model_validate_json(config_json)
    uri_job = bool(read_state(path).get("output_uri"))
    try:
        before = review_count(config.output, config.storage_options) if uri_job else 0
        JobStore.write_state(path, state="running", started_at=time.time(), review_before=before)
        summary = run_job(config, progress=False)
        if not uri_job:  # a URI job's output is the client's folder: nothing is added to it
            write_manifest_csv(path / "output")
        JobStore.write_state(
            path,
            state="done",
            run_id=summary.run_id,
            counts=summary.counts,
            reasons=summary.reasons,
            flags=summary.flags,
            wall_s=round(summary.wall_s, 2),
        )
    except Exception as exc:  # noqa: BLE001 - a failed job is reported, never lost
        JobStore.write_state(path, state="failed", error=f"{type(exc).__name__}: {exc}")
