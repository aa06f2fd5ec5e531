"""The service's one door to the batch job's photo path: bytes → model input, mask → finished photo.

Every step is the batch job's own (decode_image, model_input, process_photo, the manifest's metric and timing
conversions), called in the same order as its prepare and finish stages, so a photo made online and the same
photo made by a job are the same bytes. Nothing here re-implements a step: this file only adapts, and is the
one place to repoint when those stages become functions of their own.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from idphoto_ray.backgrounds import Background
from idphoto_ray.config import ProcessingOptions
from idphoto_ray.decode import decode_image
from idphoto_ray.layout import RenderedSheet, SheetPlan, make_sheets
from idphoto_ray.models.face_detect import BlazeFaceDetector
from idphoto_ray.models.face_mesh import FaceMeshLandmarker
from idphoto_ray.models.segmenters import model_input
from idphoto_ray.photo import PhotoResult, process_photo
from idphoto_ray.pipeline import FinishStage, _stage_timings, tune_worker_process
from idphoto_ray.specs import PhotoSpec

#: What each review flag means, for people reading the API answer or the page.
FLAG_TEXT: dict[str, str] = {
    "head_size_out_of_range": "The head (chin to crown) is outside the size the spec allows.",
    "crown_margin_out_of_range": "The gap above the head is outside the spec's range.",
    "eye_line_out_of_range": "The eyes are higher or lower than the spec allows.",
    "face_off_center": "The face is not centred left to right.",
    "face_width_out_of_range": "The face is wider or narrower than the spec allows.",
    "roll_exceeds_limit": "The head is tilted sideways more than allowed.",
    "yaw_exceeds_limit": "The head is turned left or right more than allowed.",
    "low_resolution": "The photo has too few pixels across the face (under 90 px between the eyes).",
    "upscaled": "The photo had to be enlarged, so it may look soft.",
    "blurry": "The face looks blurred.",
    "underexposed": "The face is too dark.",
    "overexposed": "The face is too bright.",
    "uneven_lighting": "One side of the face is much darker than the other.",
    "padded_top": "There was too little room above the head; the top was filled with background.",
    "padded_sides": "The photo was too narrow; the sides were filled with background.",
    "missing_body_bottom": "The photo ends above the shoulders; the bottom was filled with background.",
    "crown_cut_by_frame": "The top of the head touches the edge of the original photo.",
    "landmarks_unavailable": "Face landmarks were not found; placement used rougher face points.",
}
#: What each failure reason means (the reasons themselves are `types.Reason`).
REASON_TEXT: dict[str, str] = {
    "not_an_image": "The file is not an image the service reads (JPEG, PNG, WebP, HEIC, TIFF, BMP, GIF).",
    "decode_error": "The image file is damaged or truncated.",
    "too_large": "The image has more pixels than the server allows.",
    "unsupported_mode": "The image's colour mode is not supported.",
    "no_face": "No face was found.",
    "multiple_faces": "More than one face was found; an ID photo shows one person.",
    "no_person": "The person could not be separated from the background.",
    "segmentation_error": "The segmentation model failed on this photo.",
    "encode_error": "The result could not be encoded.",
    "max_kb_unreachable": "The photo cannot be made small enough for the size limit.",
    "internal_error": "An unexpected error; the message says where.",
}


@dataclass
class Prepared:
    """A decoded upload: the working image, the segmenter's input and what the answer reports."""

    rgb: np.ndarray
    scale: float
    model_image: np.ndarray
    width: int
    height: int
    sha256: str
    decode_ms: float


class PhotoPath:
    """Face models and options loaded once per replica; `prepare` and `finish` run one photo each."""

    def __init__(self, blazeface: bytes, face_mesh: bytes, options: ProcessingOptions) -> None:
        tune_worker_process()
        self.detector = BlazeFaceDetector(blazeface, intra_op_num_threads=1)
        self.landmarker = FaceMeshLandmarker(face_mesh, intra_op_num_threads=1)
        self.options = options

    def prepare(self, data: bytes, model_size: int) -> Prepared:
        """Decode once at working size (a request has one photo: no second, reduced decode to save)."""
        started = time.perf_counter()
        decoded = decode_image(
            data, long_side=self.options.working_long_side, max_pixels=self.options.max_pixels
        )
        width, height = decoded.original_size
        return Prepared(
            decoded.rgb,
            decoded.scale,
            model_input(decoded.rgb, model_size),
            width,
            height,
            hashlib.sha256(data).hexdigest(),
            (time.perf_counter() - started) * 1000,
        )

    def finish(
        self,
        prepared: Prepared,
        mask: np.ndarray,
        specs: list[PhotoSpec],
        backgrounds: list[Background],
        sheets: list[tuple[Any, str, SheetPlan]],
    ) -> tuple[PhotoResult, list[RenderedSheet]]:
        """The batch job's finishing step on a uint8 mask, then the print sheets for this person."""
        result = process_photo(
            prepared.rgb,
            mask.astype(np.float32) / 255.0,
            self.detector,
            self.landmarker,
            specs,
            backgrounds,
            self.options,
            source_scale=prepared.scale,
        )
        if result.status.value == "failed" or not sheets:
            return result, []
        photos = {(out.spec, out.background): out.data for out in result.outputs}
        return result, make_sheets(sheets, photos, self.options.jpeg_quality)


def answer(
    prepared: Prepared, result: PhotoResult, sheets: list[RenderedSheet], segment_ms: float, input_bytes: int
) -> dict[str, Any]:
    """The manifest row's fields for one photo, each output inline as base64 (kind photo or layout)."""
    row: dict[str, Any] = {}
    FinishStage._metrics(row, result.metrics, prepared.scale)
    timings = {"decode": prepared.decode_ms, "segment": segment_ms, **_stage_timings(result.timings_ms)}
    timings["total"] = sum(timings.values())
    outputs = [
        _output("photo", out.spec, out.background, None, out.width, out.height, out.ext, out.data)
        for out in result.outputs
    ]
    outputs += [
        _output(
            "layout", s.specs, s.background, s.paper, s.encoded.width, s.encoded.height, s.ext, s.encoded.data
        )
        for s in sheets
    ]
    reason = result.reason.value if result.reason else None
    return {
        "status": result.status.value,
        "reason": reason,
        "reason_text": REASON_TEXT.get(reason or "", None),
        "message": result.message,
        "flags": [{"flag": f, "text": FLAG_TEXT.get(f, f)} for f in result.flags],
        "input": {
            "width": prepared.width,
            "height": prepared.height,
            "bytes": input_bytes,
            "sha256": prepared.sha256,
        },
        "checks": {k: v for k, v in row.items() if v is not None},
        "timings_ms": {k: round(float(v), 2) for k, v in timings.items()},
        "outputs": outputs,
    }


def _output(
    kind: str, spec: str, background: str, paper: str | None, width: int, height: int, ext: str, data: bytes
) -> dict[str, Any]:
    return {
        "kind": kind,
        "spec": spec,
        "background": background,
        "paper": paper,
        "width": width,
        "height": height,
        "bytes": len(data),
        "media_type": "image/jpeg" if ext == "jpg" else "image/png",
        "ext": ext,
        "data_base64": base64.b64encode(data).decode("ascii"),
    }
