"""What an operator sets for the online service: models, defaults, limits, auth, retention.

The same typed schema reads the `args:` of a Serve config file (`serve run/deploy configs/serve.yaml`) and the
flags of `idphoto-ray serve`; unknown keys are errors, as in the job config.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from idphoto_ray.config import Device, ProcessingOptions

TOKEN_ENV = "IDPHOTO_RAY_TOKEN"


class ServiceSettings(BaseModel):
    """Everything the ingress, the finishers and the segmenter need to agree on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("mediapipe-selfie", description="Segmentation model (`idphoto-ray models list`).")
    device: Device = Field("auto", description="Segmenter device: auto, cpu or cuda.")
    spec_files: list[str] = Field(default_factory=list, description="Extra YAML spec catalogues.")
    default_specs: list[str] = Field(
        default_factory=lambda: ["cn-1inch"], description="Specs when none asked."
    )
    default_backgrounds: list[str] = Field(
        default_factory=lambda: ["blue"], description="Backgrounds when none."
    )
    processing: ProcessingOptions = Field(
        default_factory=lambda: ProcessingOptions(max_pixels=40_000_000),
        description="Per-photo options; max_pixels is the upload pixel limit (40 MP: a 48 MP phone photo is "
        "refused, a 12 MP one is fine).",
    )
    max_upload_mb: float = Field(20.0, gt=0, description="Largest single photo upload (413 beyond).")
    max_outputs: int = Field(12, ge=1, description="Most specs × backgrounds one photo request may ask for.")
    max_job_mb: float = Field(500.0, gt=0, description="Largest job upload (zip or files together).")
    max_job_files: int = Field(1000, ge=1, description="Most photos in one job.")
    token: str | None = Field(
        None,
        description=f"Bearer token for /v1/*; default: the {TOKEN_ENV} environment variable of the replica.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty: CORS off."
    )
    retention_s: float = Field(
        3600.0, gt=0, description="Uploaded jobs and their results are deleted after this."
    )
    workdir: str = Field(
        default_factory=lambda: str(Path(tempfile.gettempdir()) / "idphoto-ray-service"),
        description="Where job uploads and results live (one node, or a folder every node shares).",
    )
    job_cpus: float = Field(
        0.0, ge=0, description="Logical CPUs the job driver task reserves (it mostly waits)."
    )
    allowed_roots: list[str] = Field(
        default_factory=list,
        description="Folders (/data/photos) or bucket prefixes (s3://bucket/prefix) that jobs may name as "
        "input or output URIs, read and written with the server's rights; empty: URI jobs are refused (403).",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for URI jobs under bucket roots (e.g. {endpoint_url: ...}).",
    )
    gate_wait_s: float = Field(
        0.3,
        ge=0,
        description="Longest a prepared photo waits for photos of the same finisher still preparing, so the "
        "segmenter gets them as one batch (0: off; see service/gate.py).",
    )
    link_ttl_s: float = Field(
        600.0, gt=0, description="How long a download link (`delivery=link`) works; a request may ask less."
    )

    @field_validator("allowed_roots")
    @classmethod
    def _roots_are_plain(cls, roots: list[str]) -> list[str]:
        from idphoto_ray.service.roots import parse_root

        for root in roots:
            parse_root(root)
        return roots

    def bearer_token(self) -> str | None:
        """The configured token, else the replica's environment; None means auth is off."""
        return self.token or os.environ.get(TOKEN_ENV) or None
