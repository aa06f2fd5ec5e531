"""What a request asks for, checked before any work: body size, the photo's bytes, specs, backgrounds,
print sheet and delivery. Every mistake is an HTTPException with the status and a sentence to fix it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from pydantic import ValidationError

from idphoto_ray.backgrounds import parse_background
from idphoto_ray.layout import LayoutConfig, plan_layouts
from idphoto_ray.service.openapi import PhotoJson
from idphoto_ray.service.settings import ServiceSettings
from idphoto_ray.service.sniff import sniff_image

#: Room for multipart boundaries and form fields on top of the image itself.
FORM_OVERHEAD = 64 * 1024


@dataclass
class PhotoRequest:
    """One photo request as asked, in either body form; choices not yet checked against the catalogue."""

    data: bytes
    specs: list[str]
    backgrounds: list[str]
    layout: Any
    delivery: Any
    link_ttl_s: Any


def split_list(values: list[str]) -> list[str]:
    """Form fields repeated or comma-separated ('cn-1inch,cn-2inch') → one list."""
    return [v.strip() for value in values for v in str(value).split(",") if v.strip()]


def require_length(request: Request, limit: int) -> None:
    """Refuse before reading: a body must say its size (411) and fit the limit (413)."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise HTTPException(411, "a Content-Length header is required")
    if int(length) > limit:
        raise HTTPException(413, f"request body of {int(length):,} bytes exceeds the {limit:,} byte limit")


async def read_photo_request(request: Request, settings: ServiceSettings) -> PhotoRequest:
    """The photo and its options from a multipart form or a base64 JSON body, under the upload limit."""
    limit = int(settings.max_upload_mb * 2**20)
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        require_length(request, limit + FORM_OVERHEAD)
        form = await request.form(max_files=1, max_fields=16)
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise HTTPException(422, "the form needs an `image` file field")
        asked = PhotoRequest(
            await upload.read(limit + 1),
            split_list(form.getlist("specs")),
            split_list(form.getlist("backgrounds")),
            form.get("layout") or None,
            form.get("delivery") or "inline",
            form.get("link_ttl_s") or None,
        )
    elif kind.startswith("application/json"):
        require_length(request, limit * 4 // 3 + FORM_OVERHEAD)
        try:
            body = PhotoJson.model_validate_json(await request.body())
            data = base64.b64decode(body.image_base64, validate=True)
        except (ValidationError, binascii.Error, ValueError) as exc:
            raise HTTPException(422, f"bad JSON body: {exc}") from None
        asked = PhotoRequest(data, body.specs, body.backgrounds, body.layout, body.delivery, body.link_ttl_s)
    else:
        raise HTTPException(415, "send multipart/form-data with an `image` file, or JSON with image_base64")
    if len(asked.data) > limit:
        raise HTTPException(413, f"image exceeds {settings.max_upload_mb:g} MiB")
    if sniff_image(asked.data) is None:
        raise HTTPException(422, "not_an_image: the bytes are not JPEG, PNG, WebP, HEIC, TIFF, BMP or GIF")
    return asked


def choices(
    settings: ServiceSettings,
    catalogue: dict[str, Any],
    specs: list[str],
    backgrounds: list[str],
    layout: Any,
) -> tuple[list[str], list[str], list]:
    """Specs, background names and planned print sheets; defaults from the settings when none asked."""
    specs = specs or list(settings.default_specs)
    backgrounds = backgrounds or list(settings.default_backgrounds)
    unknown = [s for s in specs if s not in catalogue]
    if unknown:
        raise HTTPException(422, f"unknown spec(s) {', '.join(unknown)}; GET /v1/specs lists them")
    try:
        backgrounds = [parse_background(b).name for b in backgrounds]
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if len(specs) * len(backgrounds) > settings.max_outputs:
        raise HTTPException(
            422,
            f"{len(specs)} specs × {len(backgrounds)} backgrounds is more than "
            f"{settings.max_outputs} photos per request",
        )
    layouts = []
    if layout:
        try:
            if isinstance(layout, str) and layout.lstrip().startswith("{"):
                layout = json.loads(layout)
            config = LayoutConfig(paper=layout) if isinstance(layout, str) else LayoutConfig(**layout)
            layouts = plan_layouts([config], catalogue, specs, backgrounds)
        except (ValueError, TypeError, ValidationError) as exc:
            raise HTTPException(422, f"layout: {exc}") from None
    return specs, backgrounds, layouts


def link_ttl(settings: ServiceSettings, delivery: Any, ttl: Any) -> float | None:
    """None for inline delivery; else the link's lifetime in seconds, at most the server's `link_ttl_s`."""
    if delivery == "inline":
        return None
    if delivery != "link":
        raise HTTPException(422, f"delivery must be inline or link, not {delivery!r}")
    try:
        asked = float(ttl) if ttl is not None else settings.link_ttl_s
    except (TypeError, ValueError):
        raise HTTPException(422, f"link_ttl_s must be a number of seconds, not {ttl!r}") from None
    if not asked > 0:
        raise HTTPException(422, "link_ttl_s must be more than 0")
    return min(asked, settings.link_ttl_s)
