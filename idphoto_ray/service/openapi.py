"""Request bodies of the API as the OpenAPI page (`/docs`) shows them, and their JSON forms as models.

The routes read multipart forms by hand (size limits before parsing), so FastAPI cannot infer these schemas;
they are written here once, beside the pydantic models that parse the JSON forms.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_CHOICES: dict[str, Any] = {
    "specs": {"type": "string", "description": "Comma-separated spec names, e.g. cn-1inch."},
    "backgrounds": {"type": "string", "description": "Comma-separated, e.g. blue,white."},
    "layout": {"type": "string", "description": "A paper name (6inch) or a layout as JSON."},
}
_DELIVERY: dict[str, Any] = {
    "delivery": {
        "type": "string",
        "enum": ["inline", "link"],
        "description": "inline: each file as base64 in the answer; link: a short-lived /v1/files/… URL.",
    },
    "link_ttl_s": {
        "type": "number",
        "description": "Seconds a link works (at most the server's link_ttl_s).",
    },
}

#: specs, backgrounds and layout as a JSON body gives them (the multipart form's are `_CHOICES`).
_JSON_CHOICES: dict[str, Any] = {
    "specs": {"type": "array", "items": {"type": "string"}},
    "backgrounds": {"type": "array", "items": {"type": "string"}},
    "layout": {"description": "A paper name or a layout object"},
}


def _object(required: list[str], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"schema": {"type": "object", "required": required, **extra, "properties": properties}}


def _body(multipart: dict[str, Any], json: dict[str, Any]) -> dict[str, Any]:
    """A required request body taken as a multipart form or as JSON."""
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": multipart, "application/json": json},
        }
    }


PHOTO_BODY: dict[str, Any] = _body(
    _object(
        ["image"],
        {
            "image": {"type": "string", "format": "binary", "description": "The photo's bytes."},
            **_CHOICES,
            **_DELIVERY,
        },
    ),
    _object(["image_base64"], {"image_base64": {"type": "string"}, **_JSON_CHOICES, **_DELIVERY}),
)
JOB_BODY: dict[str, Any] = _body(
    _object(
        ["files"],
        {
            "files": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "One zip of photos, or the photos themselves.",
            },
            **_CHOICES,
        },
    ),
    _object(
        ["input_uri", "output_uri"],
        {
            "input_uri": {"type": "string", "description": "A folder under an allowed root."},
            "output_uri": {"type": "string", "description": "A folder under an allowed root."},
            **_JSON_CHOICES,
        },
        description="Only when the server's settings list allowed_roots (else 403).",
    ),
)


class PhotoJson(BaseModel):
    """The JSON form of a photo request: the image's bytes as base64, never a path or a URL to fetch."""

    model_config = ConfigDict(extra="forbid")

    image_base64: str
    specs: list[str] = Field(default_factory=list)
    backgrounds: list[str] = Field(default_factory=list)
    layout: str | dict[str, Any] | None = None
    delivery: Literal["inline", "link"] = "inline"
    link_ttl_s: float | None = Field(None, gt=0)


class UriJobJson(BaseModel):
    """A job over URIs the server may reach: both must lie under one of the settings' `allowed_roots`."""

    model_config = ConfigDict(extra="forbid")

    input_uri: str
    output_uri: str
    specs: list[str] = Field(default_factory=list)
    backgrounds: list[str] = Field(default_factory=list)
    layout: str | dict[str, Any] | None = None
