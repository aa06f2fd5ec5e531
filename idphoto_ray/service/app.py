"""The HTTP ingress (FastAPI on Ray Serve): API, upload page, auth, limits; `build_app` for `serve run`.

The ingress only checks and routes: photos go to the finisher replicas, batches to a background batch job.
Overload is refused, never piled up: beyond `max_ongoing_requests` + `max_queued_requests` the proxy answers
429 with Retry-After (Serve's BackpressureConfig), and a full finisher queue is turned into the same 429 here.
"""

import asyncio
import base64
import binascii
import hmac
import json
import time
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from ray import serve
from ray.serve.config import BackpressureConfig
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from idphoto_ray.backgrounds import NAMED_BACKGROUNDS, TRANSPARENT, parse_background
from idphoto_ray.layout import PAPERS, LayoutConfig, plan_layouts
from idphoto_ray.service.deployments import Finisher, Segmenter
from idphoto_ray.service.jobs import JobStore, Unpacker, UploadRejected, run_service_job
from idphoto_ray.service.settings import ServiceSettings
from idphoto_ray.service.sniff import sniff_image

#: Seconds a refused client is told to wait: about two photos' finishing time on one core.
RETRY_AFTER_S = 2
#: Room for multipart boundaries and form fields on top of the image itself.
FORM_OVERHEAD = 64 * 1024
#: How often a job's progress is read for the event stream, and cleanup runs at most.
EVENT_PERIOD_S = 0.5
CLEANUP_PERIOD_S = 60.0
#: Statuses for failures that are the upload's fault; other failures (no face…) are answers, 200.
_UPLOAD_STATUS = {"too_large": 413, "not_an_image": 422, "decode_error": 422, "unsupported_mode": 422}

app = FastAPI(
    title="idphoto-ray",
    summary="ID photos on demand: the batch job's photo path behind an HTTP API, with print sheets.",
    version="1",
)

PHOTO_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "The photo's bytes."},
                        "specs": {
                            "type": "string",
                            "description": "Comma-separated spec names, e.g. cn-1inch.",
                        },
                        "backgrounds": {"type": "string", "description": "Comma-separated, e.g. blue,white."},
                        "layout": {
                            "type": "string",
                            "description": "A paper name (6inch) or a layout as JSON.",
                        },
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["image_base64"],
                    "properties": {
                        "image_base64": {"type": "string"},
                        "specs": {"type": "array", "items": {"type": "string"}},
                        "backgrounds": {"type": "array", "items": {"type": "string"}},
                        "layout": {"description": "A paper name or a layout object"},
                    },
                }
            },
        },
    }
}
JOB_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One zip of photos, or the photos themselves.",
                        },
                        "specs": {"type": "string"},
                        "backgrounds": {"type": "string"},
                        "layout": {"type": "string"},
                    },
                }
            }
        },
    }
}


class PhotoJson(BaseModel):
    """The JSON form of a photo request: the image's bytes as base64, never a path or a URL to fetch."""

    image_base64: str
    specs: list[str] = Field(default_factory=list)
    backgrounds: list[str] = Field(default_factory=list)
    layout: str | dict[str, Any] | None = None


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in str(value).split(",") if v.strip()]


@serve.deployment(
    ray_actor_options={"num_cpus": 0.1},
    max_ongoing_requests=64,
    max_queued_requests=64,
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
        self.store = JobStore(self.settings.workdir)
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

    @staticmethod
    def _length(request: Request, limit: int) -> None:
        """Refuse before reading: a body must say its size (411) and fit the limit (413)."""
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            raise HTTPException(411, "a Content-Length header is required")
        if int(length) > limit:
            raise HTTPException(
                413, f"request body of {int(length):,} bytes exceeds the {limit:,} byte limit"
            )

    def _choices(self, specs: list[str], backgrounds: list[str], layout: Any) -> tuple[list, list, list]:
        specs = specs or list(self.settings.default_specs)
        backgrounds = backgrounds or list(self.settings.default_backgrounds)
        unknown = [s for s in specs if s not in self.catalogue]
        if unknown:
            raise HTTPException(422, f"unknown spec(s) {', '.join(unknown)}; GET /v1/specs lists them")
        try:
            backgrounds = [parse_background(b).name for b in backgrounds]
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if len(specs) * len(backgrounds) > self.settings.max_outputs:
            raise HTTPException(
                422,
                f"{len(specs)} specs × {len(backgrounds)} backgrounds is more than "
                f"{self.settings.max_outputs} photos per request",
            )
        layouts = []
        if layout:
            try:
                if isinstance(layout, str) and layout.lstrip().startswith("{"):
                    layout = json.loads(layout)
                config = LayoutConfig(paper=layout) if isinstance(layout, str) else LayoutConfig(**layout)
                layouts = plan_layouts([config], self.catalogue, specs, backgrounds)
            except (ValueError, TypeError, ValidationError) as exc:
                raise HTTPException(422, f"layout: {exc}") from None
        return specs, backgrounds, layouts

    def _cleanup(self) -> None:
        now = time.time()
        if now - self.last_cleanup >= min(CLEANUP_PERIOD_S, self.settings.retention_s):
            self.last_cleanup = now
            for job_id in self.store.cleanup(self.settings.retention_s, now):
                self.running.pop(job_id, None)

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
        limit = int(self.settings.max_upload_mb * 2**20)
        kind = request.headers.get("content-type", "")
        if kind.startswith("multipart/form-data"):
            self._length(request, limit + FORM_OVERHEAD)
            form = await request.form(max_files=1, max_fields=16)
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise HTTPException(422, "the form needs an `image` file field")
            data = await upload.read(limit + 1)
            specs, backgrounds = _split(form.getlist("specs")), _split(form.getlist("backgrounds"))
            layout = form.get("layout") or None
        elif kind.startswith("application/json"):
            self._length(request, limit * 4 // 3 + FORM_OVERHEAD)
            try:
                body = PhotoJson.model_validate_json(await request.body())
                data = base64.b64decode(body.image_base64, validate=True)
            except (ValidationError, binascii.Error, ValueError) as exc:
                raise HTTPException(422, f"bad JSON body: {exc}") from None
            specs, backgrounds, layout = body.specs, body.backgrounds, body.layout
        else:
            raise HTTPException(
                415, "send multipart/form-data with an `image` file, or JSON with image_base64"
            )
        if len(data) > limit:
            raise HTTPException(413, f"image exceeds {self.settings.max_upload_mb:g} MiB")
        if sniff_image(data) is None:
            raise HTTPException(
                422, "not_an_image: the bytes are not JPEG, PNG, WebP, HEIC, TIFF, BMP or GIF"
            )
        specs, backgrounds, sheets = self._choices(specs, backgrounds, layout)
        try:
            result = await self.finisher.make.remote(data, specs, backgrounds, sheets)
        except BackPressureError:
            raise HTTPException(
                429, "busy: try again shortly", headers={"Retry-After": str(RETRY_AFTER_S)}
            ) from None
        status = _UPLOAD_STATUS.get(result.get("reason") or "", 200)
        return JSONResponse(result, status_code=status)

    @app.post(
        "/v1/jobs",
        status_code=202,
        summary="A zip (or several photos) → a background batch job.",
        openapi_extra=JOB_BODY,
    )
    async def create_job(self, request: Request) -> JSONResponse:
        self._auth(request)
        self._cleanup()
        limit = int(self.settings.max_job_mb * 2**20)
        self._length(request, limit + FORM_OVERHEAD)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise HTTPException(415, "send multipart/form-data with `files` (a zip or photos)")
        form = await request.form(max_files=self.settings.max_job_files, max_fields=16)
        files = [f for f in form.getlist("files") if not isinstance(f, str)]
        if not files:
            raise HTTPException(422, "the form needs `files`: one zip of photos, or the photos")
        specs, backgrounds, sheets = self._choices(
            _split(form.getlist("specs")), _split(form.getlist("backgrounds")), form.get("layout") or None
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
        config = self._job_config(path, specs, backgrounds, [layout for layout, _, _ in sheets])
        JobStore.write_state(
            path, state="queued", total=len(unpacker.names), skipped=unpacker.skipped, created_at=time.time()
        )
        self.running[job_id] = run_service_job.options(num_cpus=self.settings.job_cpus).remote(
            str(path), config
        )
        return JSONResponse(
            {
                "id": job_id,
                "total": len(unpacker.names),
                "skipped": unpacker.skipped,
                "status_url": f"/v1/jobs/{job_id}",
                "events_url": f"/v1/jobs/{job_id}/events",
                "results_url": f"/v1/jobs/{job_id}/results.zip",
            },
            status_code=202,
        )

    def _job_config(self, path: Any, specs: list[str], backgrounds: list[str], layouts: list) -> str:
        from idphoto_ray.config import JobConfig

        config = JobConfig(
            input=[str(path / "input")],
            output=str(path / "output"),
            specs=specs,
            backgrounds=backgrounds,
            spec_files=self.settings.spec_files,
            model=self.settings.model,
            device=self.settings.device,
            processing=self.settings.processing,
            layouts=layouts,
        )
        return config.model_dump_json()

    @app.get("/v1/jobs/{job_id}", summary="A job's state, progress and counts by status.")
    async def job(self, job_id: str, request: Request) -> dict[str, Any]:
        self._auth(request)
        self._cleanup()
        progress = self.store.progress(job_id)
        if progress is None:
            raise HTTPException(404, "no such job (finished jobs are deleted after the retention time)")
        return progress

    @app.get("/v1/jobs/{job_id}/events", summary="Server-sent events: progress until the job ends.")
    async def events(self, job_id: str, request: Request) -> StreamingResponse:
        self._auth(request)
        if self.store.progress(job_id) is None:
            raise HTTPException(404, "no such job")

        async def stream():
            last = None
            while True:
                progress = self.store.progress(job_id)
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
        if self.store.progress(job_id) is None:
            raise HTTPException(404, "no such job")
        target = await asyncio.to_thread(self.store.results_zip, job_id)
        if target is None:
            raise HTTPException(409, "the job has not finished")
        return FileResponse(target, media_type="application/zip", filename=f"idphoto-{job_id[:8]}.zip")

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
