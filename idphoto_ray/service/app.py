"""The HTTP ingress (FastAPI on Ray Serve): API, upload page, auth, limits; `build_app` for `serve run`.

The ingress only checks and routes: photos go to the finisher replicas, batches to a background batch job.
Overload is refused, never piled up: beyond `max_ongoing_requests` + `max_queued_requests` the proxy answers
429 with Retry-After (Serve's BackpressureConfig), and a full finisher queue is turned into the same 429 here.
The bound is sized as (the wait an accepted request may see, ~20 s) × (the node's photos/s, ~3 with
mediapipe-selfie on 2 cores): 32 ongoing + 32 queued. At 64 + 64, accepted requests waited 45–70 s.
"""

import asyncio
import hmac
import json
import time
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from pydantic import ValidationError
from ray import serve
from ray.serve.config import BackpressureConfig
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from idphoto_ray.backgrounds import NAMED_BACKGROUNDS, TRANSPARENT
from idphoto_ray.layout import PAPERS
from idphoto_ray.service.deployments import Finisher, Segmenter
from idphoto_ray.service.intake import (
    FORM_OVERHEAD,
    choices,
    link_ttl,
    read_photo_request,
    require_length,
    split_list,
)
from idphoto_ray.service.jobs import (
    JobStore,
    Unpacker,
    UploadRejected,
    job_config,
    prepare_uri_job,
    run_service_job,
)
from idphoto_ray.service.links import LinkState, LinkStore
from idphoto_ray.service.openapi import JOB_BODY, PHOTO_BODY, UriJobJson
from idphoto_ray.service.roots import URI_JOBS_OFF, RootRefused, check_uri
from idphoto_ray.service.settings import ServiceSettings

#: Seconds a refused client is told to wait: about two photos' finishing time on one core.
RETRY_AFTER_S = 2
#: Requests the ingress holds: ~20 s of waiting at ~3 photos/s (module docstring, docs/service.md).
INGRESS_ONGOING = 32
INGRESS_QUEUED = 32
#: How often a job's progress is read for the event stream (a bucket output is listed each time), and
#: cleanup runs at most.
EVENT_PERIOD_S = 0.5
CLEANUP_PERIOD_S = 60.0
#: Statuses for failures that are the upload's fault; other failures (no face…) are answers, 200.
_UPLOAD_STATUS = {"too_large": 413, "not_an_image": 422, "decode_error": 422, "unsupported_mode": 422}

app = FastAPI(
    title="idphoto-ray",
    summary="ID photos on demand: the batch job's photo path behind an HTTP API, with print sheets.",
    version="1",
)


@serve.deployment(
    ray_actor_options={"num_cpus": 0.1},
    max_ongoing_requests=INGRESS_ONGOING,
    max_queued_requests=INGRESS_QUEUED,
    backpressure_config=BackpressureConfig(status_code=429, retry_after_s=RETRY_AFTER_S),
)
@serve.ingress(app)
class Ingress:
    """Routes, checks and limits; no image work happens here."""

    def __init__(
        self, finisher: DeploymentHandle, segmenter: DeploymentHandle, settings: dict[str, Any]
    ) -> None:
        from idphoto_ray.specs import all_specs

        self.settings = ServiceSettings.model_validate(settings)
        self.finisher = finisher
        self.segmenter = segmenter
        self.catalogue = all_specs(self.settings.spec_files)
        self.token = self.settings.bearer_token()
        self.store = JobStore(self.settings.workdir, self.settings.storage_options)
        self.links = LinkStore(self.settings.workdir)
        self.running: dict[str, Any] = {}
        self.last_cleanup = 0.0
        self.page = resources.files("idphoto_ray.service").joinpath("static/index.html").read_text("utf-8")
        if self.settings.cors_origins:  # before the first request builds the middleware stack
            app.add_middleware(
                CORSMiddleware,
                allow_origins=self.settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
            )

    # --- checks shared by the routes ---

    def _auth(self, request: Request) -> None:
        if self.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    def _cleanup(self) -> None:
        """Delete ended jobs past `retention_s` and expired links, at most once a period."""
        now = time.time()
        period = min(CLEANUP_PERIOD_S, self.settings.retention_s, self.settings.link_ttl_s)
        if now - self.last_cleanup >= period:
            self.last_cleanup = now
            for job_id in self.store.cleanup(self.settings.retention_s, now):
                self.running.pop(job_id, None)
            self.links.cleanup(now)

    # --- public ---

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(self) -> HTMLResponse:
        return HTMLResponse(self.page)

    @app.get("/healthz", summary="The ingress is up.")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Finishers and segmenter answer: photos can be made.")
    async def readyz(self) -> JSONResponse:
        try:
            await asyncio.wait_for(self.finisher.ready.remote(), timeout=10)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return JSONResponse({"status": "not ready", "detail": repr(exc)}, status_code=503)
        return JSONResponse({"status": "ready", "auth": self.token is not None})

    # --- API ---

    @app.get("/v1/specs", summary="Photo specs: sizes in mm and px, DPI, head rules, usual background.")
    async def specs(self, request: Request) -> list[dict[str, Any]]:
        self._auth(request)
        return [{**spec.model_dump(), "size_px": list(spec.size_px)} for spec in self.catalogue.values()]

    @app.get("/v1/backgrounds", summary="Named backgrounds (any #RRGGBB works too) and print papers.")
    async def backgrounds(self, request: Request) -> dict[str, Any]:
        self._auth(request)
        named = {name: "#{:02x}{:02x}{:02x}".format(*rgb) for name, rgb in NAMED_BACKGROUNDS.items()}
        return {
            "backgrounds": {**named, TRANSPARENT: None},
            "papers": {
                name: {"width_mm": round(w, 1), "height_mm": round(h, 1)} for name, (w, h) in PAPERS.items()
            },
        }

    @app.post(
        "/v1/photos", summary="One photo in, ID photos (and a print sheet) out.", openapi_extra=PHOTO_BODY
    )
    async def photos(self, request: Request) -> JSONResponse:
        self._auth(request)
        asked = await read_photo_request(request, self.settings)
        specs, backgrounds, sheets = choices(
            self.settings, self.catalogue, asked.specs, asked.backgrounds, asked.layout
        )
        ttl_s = link_ttl(self.settings, asked.delivery, asked.link_ttl_s)
        try:
            result = await self.finisher.make.remote(asked.data, specs, backgrounds, sheets, ttl_s is None)
        except BackPressureError:
            raise HTTPException(
                429, "busy: try again shortly", headers={"Retry-After": str(RETRY_AFTER_S)}
            ) from None
        if ttl_s is not None:
            self._cleanup()
            result = await asyncio.to_thread(self.links.deliver, result, ttl_s)
        status = _UPLOAD_STATUS.get(result.get("reason") or "", 200)
        return JSONResponse(result, status_code=status)

    @app.get(
        "/v1/files/{token}/{name}",
        summary="A file behind a short-lived link (`delivery=link`); the link itself is the credential.",
    )
    async def download(self, token: str, name: str) -> FileResponse:
        self._cleanup()
        state, path = await asyncio.to_thread(self.links.get, token, name)
        if state is LinkState.EXPIRED:
            raise HTTPException(410, "this link has expired; ask for the photo again")
        if path is None:
            raise HTTPException(404, "no such file (links expire after link_ttl_s)")
        media = "image/png" if path.suffix == ".png" else "image/jpeg"
        headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        return FileResponse(path, media_type=media, filename=path.name, headers=headers)

    @app.post(
        "/v1/jobs",
        status_code=202,
        summary="A zip (or several photos) → a background batch job.",
        openapi_extra=JOB_BODY,
    )
    async def create_job(self, request: Request) -> JSONResponse:
        self._auth(request)
        self._cleanup()
        if request.headers.get("content-type", "").startswith("application/json"):
            return await self._uri_job(request)
        limit = int(self.settings.max_job_mb * 2**20)
        require_length(request, limit + FORM_OVERHEAD)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise HTTPException(
                415,
                "send multipart/form-data with `files` (a zip or photos), or JSON with input_uri/output_uri",
            )
        form = await request.form(max_files=self.settings.max_job_files, max_fields=16)
        files = [f for f in form.getlist("files") if not isinstance(f, str)]
        if not files:
            raise HTTPException(422, "the form needs `files`: one zip of photos, or the photos")
        specs, backgrounds, sheets = choices(
            self.settings,
            self.catalogue,
            split_list(form.getlist("specs")),
            split_list(form.getlist("backgrounds")),
            form.get("layout") or None,
        )
        job_id, path = self.store.new()
        unpacker = Unpacker(path / "input", self.settings.max_job_files, limit)
        try:
            for upload in files:
                unpacker.add(upload.filename or "photo", await upload.read(limit + 1))
        except UploadRejected as exc:
            JobStore.write_state(path, state="rejected", total=0)
            raise HTTPException(exc.status, str(exc)) from None
        if not unpacker.names:
            JobStore.write_state(path, state="rejected", total=0)
            raise HTTPException(
                422, f"no photos found in the upload (skipped: {', '.join(unpacker.skipped[:10])})"
            )
        config = job_config(
            self.settings, str(path / "input"), str(path / "output"), specs, backgrounds, sheets
        )
        JobStore.write_state(
            path, state="queued", total=len(unpacker.names), skipped=unpacker.skipped, created_at=time.time()
        )
        return self._start(job_id, path, config, len(unpacker.names), unpacker.skipped, zipped=True)

    async def _uri_job(self, request: Request) -> JSONResponse:
        """A job over folders the server reaches itself: only under the settings' `allowed_roots`."""
        roots = self.settings.allowed_roots
        if not roots:
            raise HTTPException(403, URI_JOBS_OFF)
        require_length(request, FORM_OVERHEAD)
        try:
            body = UriJobJson.model_validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(422, f"bad JSON body: {exc}") from None
        try:
            source = check_uri(body.input_uri, roots, "input_uri")
            target = check_uri(body.output_uri, roots, "output_uri")
        except RootRefused as exc:
            raise HTTPException(exc.status, str(exc)) from None
        specs, backgrounds, sheets = choices(
            self.settings, self.catalogue, body.specs, body.backgrounds, body.layout
        )
        config = job_config(self.settings, source, target, specs, backgrounds, sheets, uri_job=True)
        try:
            total = await asyncio.to_thread(prepare_uri_job, config, self.settings.max_job_files)
        except UploadRejected as exc:
            raise HTTPException(exc.status, str(exc)) from None
        job_id, path = self.store.new()
        JobStore.write_state(
            path, state="queued", total=total, skipped=[], output_uri=target, created_at=time.time()
        )
        return self._start(job_id, path, config, total, [], zipped=False)

    def _start(
        self, job_id: str, path: Any, config: Any, total: int, skipped: list[str], zipped: bool
    ) -> JSONResponse:
        """Queue the batch job as a Ray task; answer 202 with where to follow it."""
        self.running[job_id] = run_service_job.options(num_cpus=self.settings.job_cpus).remote(
            str(path), config.model_dump_json()
        )
        urls = {
            "status_url": f"/v1/jobs/{job_id}",
            "events_url": f"/v1/jobs/{job_id}/events",
            "manifest_url": f"/v1/jobs/{job_id}/manifest",
        }
        if zipped:
            urls["results_url"] = f"/v1/jobs/{job_id}/results.zip"
        return JSONResponse({"id": job_id, "total": total, "skipped": skipped, **urls}, status_code=202)

    @app.get("/v1/jobs/{job_id}", summary="A job's state, progress and counts by status.")
    async def job(self, job_id: str, request: Request) -> dict[str, Any]:
        self._auth(request)
        self._cleanup()
        progress = await asyncio.to_thread(self.store.progress, job_id)
        if progress is None:
            raise HTTPException(404, "no such job (finished jobs are deleted after the retention time)")
        return progress

    @app.get("/v1/jobs/{job_id}/events", summary="Server-sent events: progress until the job ends.")
    async def events(self, job_id: str, request: Request) -> StreamingResponse:
        self._auth(request)
        if await asyncio.to_thread(self.store.progress, job_id) is None:
            raise HTTPException(404, "no such job")

        async def stream():
            last = None
            while True:
                progress = await asyncio.to_thread(self.store.progress, job_id)
                if progress is None:
                    yield "event: gone\ndata: {}\n\n"
                    return
                text = json.dumps(progress)
                if text != last:
                    last = text
                    yield f"event: progress\ndata: {text}\n\n"
                if progress.get("state") in ("done", "failed", "rejected"):
                    yield f"event: end\ndata: {text}\n\n"
                    return
                await asyncio.sleep(EVENT_PERIOD_S)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    @app.get("/v1/jobs/{job_id}/results.zip", summary="Photos, sheets, manifest (CSV, Parquet), review page.")
    async def results(self, job_id: str, request: Request) -> FileResponse:
        self._auth(request)
        progress = await asyncio.to_thread(self.store.progress, job_id)
        if progress is None:
            raise HTTPException(404, "no such job")
        if progress.get("output_uri"):
            raise HTTPException(
                409,
                f"this job wrote to {progress['output_uri']}; GET /v1/jobs/{job_id}/manifest lists its files",
            )
        target = await asyncio.to_thread(self.store.results_zip, job_id)
        if target is None:
            raise HTTPException(409, "the job has not finished")
        return FileResponse(target, media_type="application/zip", filename=f"idphoto-{job_id[:8]}.zip")

    @app.get("/v1/jobs/{job_id}/manifest", summary="The job's manifest rows: status, reason, flags, files.")
    async def manifest(self, job_id: str, request: Request) -> dict[str, Any]:
        self._auth(request)
        progress = await asyncio.to_thread(self.store.progress, job_id)
        if progress is None:
            raise HTTPException(404, "no such job")
        if progress.get("state") != "done":
            raise HTTPException(
                409, f"the job is {progress.get('state')}; its manifest is complete once done"
            )
        rows = await asyncio.to_thread(self.store.rows, job_id)
        return {"id": job_id, "output_uri": progress.get("output_uri"), "rows": rows or []}

    @app.get("/v1/stats", summary="Segmenter batch sizes seen so far (proof of dynamic batching).")
    async def stats(self, request: Request) -> dict[str, Any]:
        self._auth(request)
        return await self.segmenter.stats.remote()


def build_app(args: dict[str, Any] | None = None) -> Any:
    """Serve's application builder: `serve run idphoto_ray.service.app:build_app` or configs/serve.yaml."""
    settings = ServiceSettings.model_validate(args or {}).model_dump()
    segmenter = Segmenter.bind(settings)
    finisher = Finisher.bind(segmenter, settings)
    return Ingress.bind(finisher, segmenter, settings)


def serve_forever(host: str, port: int, args: dict[str, Any]) -> None:
    """`idphoto-ray serve`: a local Ray (or RAY_ADDRESS), Serve's proxy on host:port, the app until Ctrl-C."""
    from idphoto_ray.job.run import init_ray

    settings = ServiceSettings.model_validate(args)
    init_ray()
    serve.start(http_options={"host": host, "port": port})
    auth = (
        "on" if settings.bearer_token() else "OFF (set IDPHOTO_RAY_TOKEN before exposing it beyond localhost)"
    )
    print(
        f"idphoto-ray service on http://{host}:{port}/ (API docs at /docs); bearer-token auth {auth}",
        flush=True,
    )
    serve.run(build_app(args), name="idphoto", route_prefix="/", blocking=True)
