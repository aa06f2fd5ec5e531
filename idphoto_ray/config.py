"""One typed schema for YAML configs, CLI flags and notebooks.

Unknown keys are errors (``extra="forbid"``) so a typo in a scheduled job's YAML fails loudly
instead of silently running with defaults. Every mistake comes back as one line that names the file, the
key and the fix, because these lines are what a person reads on the terminal before Ray starts.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from idphoto_ray.layout import LayoutConfig
from idphoto_ray.types import Device


class Preprocess(BaseModel):
    """How a segmentation model wants its input; declared for models that arrive as a bare ONNX file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_size: int = Field(320, gt=0, description="Square model input side in pixels.")
    scale: Literal["unit", "image_max", "minus_one_one", "raw"] = Field(
        "image_max",
        description="unit: x/255; image_max: x/max(x) as rembg does; minus_one_one: x/127.5-1;"
        " raw: x (0-255).",
    )
    mean: tuple[float, float, float] = Field(
        (0.485, 0.456, 0.406), description="Per-channel mean after scaling."
    )
    std: tuple[float, float, float] = Field(
        (0.229, 0.224, 0.225), description="Per-channel std after scaling."
    )
    layout: Literal["nchw", "nhwc"] = Field("nchw", description="Input tensor layout.")
    output_index: int = Field(0, ge=0, description="Which graph output holds the mask.")
    sigmoid: bool = Field(False, description="Apply a sigmoid to the raw output (BiRefNet family).")
    minmax: bool = Field(True, description="Per-sample min-max normalisation of the output mask.")


class ProcessingOptions(BaseModel):
    """Per-photo knobs used by the pure image core (decode → refine → geometry → compose → encode)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    working_long_side: int = Field(1600, ge=256, description="Long side of the decoded working image, px.")
    max_pixels: int = Field(
        80_000_000, gt=0, description="Decompression-bomb guard: larger inputs fail as too_large."
    )
    output_format: Literal["jpeg", "png"] = Field(
        "jpeg", description="Encoding of the ID photos (transparent forces png)."
    )
    jpeg_quality: int = Field(95, ge=1, le=100, description="JPEG quality when max_kb is not set.")
    max_kb: int | None = Field(
        None, gt=0, description="Upper bound on each output file in KiB, met by lowering JPEG quality."
    )
    min_jpeg_quality: int = Field(50, ge=1, le=100, description="Lowest quality tried when meeting max_kb.")
    matting: Literal["guided", "closed-form"] = Field(
        "closed-form",
        description="closed-form: guided filter, then pymatting's closed-form matting in a 6-px band (halves"
        " the benchmark's edge spill); guided: the guided filter alone (faster).",
    )
    segment_region: Literal["roi", "whole"] = Field(
        "roi",
        description="roi: segment a region around the subject holding every frame the specs may choose"
        " (face found on the small decode); whole: the whole photo.",
    )
    person_gate: bool = Field(
        True,
        description="Below the eyes, clear what the segmenter kept away from the person MediaPipe's person"
        " model sees (IS-Net keeps salient backdrop objects: a statue, wall letters beside a shoulder).",
    )
    crown_colour: bool = Field(
        True,
        description="Above the eyes, where the segmenter was unsure, lower the alpha of pixels nearer the"
        " backdrop's colours than the hair's (dark blocks and blotchy fringes at the crown become strands).",
    )
    decontaminate: bool = Field(
        True, description="Estimate true foreground colour at edges to remove background fringes."
    )
    decontamination: Literal["blur-fusion", "ml"] = Field(
        "blur-fusion",
        description="blur-fusion: box-filter estimate; ml: pymatting's multilevel solver (as fast per photo,"
        " ~0.7 s once per process; less edge spill on the benchmark, no visible difference).",
    )
    min_inter_eye_px: float = Field(
        90.0,
        gt=0,
        description="ICAO minimum inter-eye distance in source pixels; flagged only where the output"
        " enlarges the eyes by more than 1.2×.",
    )
    max_roll_deg: float = Field(15.0, gt=0, description="Roll beyond this (before correction) is flagged.")
    max_yaw_deg: float = Field(
        10.0,
        gt=0,
        description="Estimated yaw beyond this is flagged (ISO 19794-5 asks ±5°; the estimate is good to a"
        " few degrees, and frontal development portraits measure up to 7.7°).",
    )
    multiple_face_ratio: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A second face at least this fraction of the largest face's area fails as"
        " multiple_faces.",
    )


class JobConfig(BaseModel):
    """A whole batch job. The same object comes from YAML, from CLI flags, or from a notebook."""

    model_config = ConfigDict(extra="forbid")

    input: list[str] = Field(
        default_factory=list, description="Directories, globs or URIs (s3://, gs://, …) of photos."
    )
    input_list: str | None = Field(
        None, description="CSV or Parquet with a 'path' column and optional 'id' column naming the outputs."
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for bucket inputs/outputs, e.g. {endpoint_url: ...} for s3fs.",
    )
    output: str = Field(
        "idphoto-out", description="Output folder or URI: photos, manifest/, run.json, review.html."
    )
    specs: list[str] = Field(
        default_factory=lambda: ["cn-1inch"], description="Photo specs to make for each input."
    )
    backgrounds: list[str] = Field(
        default_factory=lambda: ["blue"], description="Backgrounds: names, #RRGGBB or transparent."
    )
    spec_files: list[str] = Field(
        default_factory=list, description="Extra YAML spec catalogues merged over the built-ins."
    )
    model: str = Field(
        "auto",
        description="Segmentation model from `idphoto-ray models list`; auto: isnet when it is in the model "
        "home, else mediapipe-selfie (never downloads).",
    )
    model_uri: str | None = Field(
        None, description="Any ONNX segmenter at a path or URI; needs `preprocess`."
    )
    preprocess: Preprocess | None = Field(None, description="Declared preprocessing for model_uri.")
    device: Device = Field(
        "auto", description="auto: CUDA when available else CPU; cuda: fail if CUDA is missing."
    )
    tensorrt: bool = Field(
        False, description="Put TensorRT in front of CUDA (engines cached in the model home)."
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        description="Images per segmentation batch; default 32 on GPU, 1 on CPU"
        " (batching buys nothing there).",
    )
    object_store_limit_mb: int | None = Field(
        None,
        ge=64,
        description="Also enforce Ray Data's own object-store budget (per-operator reservations)"
        " at this cap. "
        "Off by default: the reservations serve upstream operators first and starved finishing"
        " on small nodes; "
        "max_photos_in_flight bounds memory instead.",
    )
    max_photos_in_flight: int | None = Field(
        None,
        ge=1,
        description="Photos read and not yet finished; reading waits beyond it."
        " Bounds memory by a photo count, "
        "so it stays flat whatever the number of inputs. Default: 32 per cluster CPU, at least 64.",
    )
    concurrency: int | None = Field(
        None, ge=1, description="Segmentation actors; default: #GPUs on cuda, else one per 8 cores."
    )
    intra_op_num_threads: int | None = Field(
        None, ge=1, description="ORT threads per actor; default: cores split between actors."
    )
    resume: bool = Field(
        False, description="Skip inputs that already have an ok/needs_review row for this config."
    )
    limit: int | None = Field(None, ge=1, description="Process only the first N listed inputs (for trials).")
    review_ok_sample: int = Field(
        24, ge=0, description="How many ok photos review.html shows beside the problems."
    )
    processing: ProcessingOptions = Field(
        default_factory=ProcessingOptions, description="Per-photo image options."
    )
    layouts: list[LayoutConfig] = Field(
        default_factory=list,
        description="Print sheets per input: copies of its photos on paper (layout/{paper}/).",
    )
    no_progress_timeout_s: float | None = Field(
        None,
        description="Ray Data's no-progress timeout; -1 disables it"
        " (scheduled runs on autoscaling clusters).",
    )

    @field_validator("input", "specs", "backgrounds", "spec_files", mode="before")
    @classmethod
    def _one_string_is_a_list(cls, value: Any) -> Any:
        """`input: photos/` means `input: [photos/]`; refusing it would only teach people YAML list syntax."""
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> JobConfig:
        if self.model_uri and self.preprocess is None:
            raise ValueError(
                "model_uri needs a `preprocess` block (input_size, scale, mean, std) describing the model"
            )
        if not self.specs:
            raise ValueError("specs must name at least one photo spec")
        if not self.backgrounds:
            raise ValueError("backgrounds must name at least one background")
        for layout in self.layouts:
            for item in layout.items:
                if item.spec not in self.specs:
                    raise ValueError(
                        f"layout {layout.paper}: spec {item.spec!r} is not among specs {self.specs}"
                    )
            if layout.background is not None and layout.background not in self.backgrounds:
                raise ValueError(
                    f"layout {layout.paper}: background {layout.background!r}"
                    f" is not among backgrounds {self.backgrounds}"
                )
        return self

    def config_hash(self, model_sha256: str | None = None) -> str:
        """Hash of everything that changes the pixels or the checks; resume keys on it.

        The job passes the config with `model` resolved (never `auto`) and the weights' sha256, so two
        models, or two versions of one file, never share a hash.
        """
        relevant = self.model_dump(
            include={"specs", "backgrounds", "spec_files", "model", "model_uri", "preprocess", "processing"}
        )
        relevant["model_sha256"] = model_sha256
        if self.layouts:  # only when set, so configs without sheets keep the hash their manifests carry
            relevant["layouts"] = [layout.model_dump() for layout in self.layouts]
        blob = json.dumps(relevant, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_config(path: str | Path | None = None, **overrides: Any) -> JobConfig:
    """Read a YAML config and apply overrides (CLI flags win). Errors are one line naming the file and the
    key."""
    data: dict[str, Any] = {}
    if path is not None:
        data.update(_read_yaml_mapping(Path(path)))
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "processing" and isinstance(value, dict):
            merged = dict(data.get("processing") or {})
            merged.update(value)
            data["processing"] = merged
        else:
            data[key] = value
    try:
        return JobConfig.model_validate(data)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        raise ValueError(where + describe_validation_error(exc)) from None


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(
            f"config file {path} does not exist" if not path.exists() else f"config {path} is not a file"
        )
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(_describe_yaml_error(path, exc)) from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    loaded = loaded or {}
    if not isinstance(loaded, dict):
        # ValueError, not TypeError: the CLI turns ValueError into one line and exit 2 (a user mistake)
        raise ValueError(  # noqa: TRY004
            f"{path}: a config must be a YAML mapping (key: value lines), got a {type(loaded).__name__}"
        )
    return loaded


def _describe_yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    """`file:line:column: YAML syntax error: problem`, not PyYAML's `<unicode string>` traceback."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return f"{where}: YAML syntax error: {detail}"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model a validation error location points into."""
    model: type[BaseModel] = JobConfig
    for part in loc[:-1]:
        annotation = model.model_fields.get(str(part))
        inner = getattr(annotation, "annotation", None) if annotation else None
        candidates = [inner, *getattr(inner, "__args__", ())]
        nested = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nested is None:
            return []
        model = nested
    return list(model.model_fields)


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic's multi-line report as one line: each bad key, what is wrong, and a "did you mean" for
    typos."""
    parts = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        key = ".".join(str(p) for p in loc) or "config"
        if err.get("type") == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _fields_at(loc), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            parts.append(f"unknown key {key!r}{hint}")
        else:
            message = err.get("msg", "invalid").removeprefix("Value error, ")
            got = err.get("input")
            shown = f" (got {got!r})" if loc and not isinstance(got, dict) else ""
            parts.append(f"{key}: {message}{shown}")
    return "invalid config: " + "; ".join(parts)
