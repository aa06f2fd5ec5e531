"""Per-photo orchestration: one segmentation + one detection → every spec × background, plus checks.

In order: detect and pick the subject, landmarks, pose and expression (geometry.face), the person's alpha
(refine), levelling and the crown (geometry.level), the face's own checks, then each spec (render.py).

This is the boundary where errors become data: `process_photo` never raises. A PhotoError from any
step becomes status=failed with its reason; anything unexpected becomes internal_error with the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from idphoto_ray import checks
from idphoto_ray.backgrounds import Background
from idphoto_ray.config import ProcessingOptions
from idphoto_ray.geometry.face import (
    chin_point,
    expression_flags,
    expression_measures,
    eye_centers,
    face_width_px,
    select_subject,
    skin_zone_mask,
    yaw_estimate_deg,
)
from idphoto_ray.geometry.level import crown_touches_top, face_bounds, level_head, roll_deg, roll_uncertain
from idphoto_ray.models.base import FaceDetector, FaceLandmarker
from idphoto_ray.person_gate import PersonGate
from idphoto_ray.refine import person_alpha
from idphoto_ray.render import RenderedOutput, render_spec
from idphoto_ray.specs import PhotoSpec
from idphoto_ray.timing import timed
from idphoto_ray.types import Flag, PhotoError, Reason, Status, Step

#: Face-mesh results below this presence score are ignored (BlazeFace keypoints are used instead).
MIN_LANDMARK_PRESENCE = 0.5
#: Detector input size assumed for keypoint precision when a detector does not say (full-range BlazeFace).
DETECTOR_INPUT_PX = 192


@dataclass
class PhotoResult:
    """Everything the manifest records about one input photo."""

    status: Status
    reason: Reason | None
    message: str
    flags: list[Flag] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    outputs: list[RenderedOutput] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


def process_photo(
    image: np.ndarray,
    mask: np.ndarray,
    detector: FaceDetector,
    landmarker: FaceLandmarker | None,
    specs: list[PhotoSpec],
    backgrounds: list[Background],
    options: ProcessingOptions,
    source_scale: float = 1.0,
    mask_region: tuple[float, float, float, float] | None = None,
    person_gate: PersonGate | None = None,
) -> PhotoResult:
    """Make every spec × background from one working-resolution image and its model-resolution mask.

    source_scale = working px per original px (decode downscale), so inter-eye distance is reported in
    the original file's pixels. mask_region: the working-px box the mask covers when it is not the whole
    image (region-of-interest segmentation, region.py). person_gate: clears backdrop objects the segmenter
    kept beside the jaw and shoulders (person_gate.py).
    """
    timings: dict[str, float] = {}
    metrics: dict[str, Any] = {}
    flags: list[str] = []
    outputs: list[RenderedOutput] = []
    try:
        _run(
            image,
            mask,
            detector,
            landmarker,
            specs,
            backgrounds,
            options,
            source_scale,
            timings,
            metrics,
            flags,
            outputs,
            mask_region,
            person_gate,
        )
    except PhotoError as exc:
        return PhotoResult(Status.FAILED, exc.reason, exc.message, [], metrics, [], timings)
    except Exception as exc:  # noqa: BLE001 - the boundary: one bad photo must not crash a batch
        return PhotoResult(
            Status.FAILED, Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", [], metrics, [], timings
        )
    unique = list(dict.fromkeys(Flag(f) for f in flags))  # Flag(): an unknown flag is a bug, caught here
    status = Status.NEEDS_REVIEW if unique else Status.OK
    return PhotoResult(status, None, "", unique, metrics, outputs, timings)


def _run(
    image: np.ndarray,
    mask: np.ndarray,
    detector: FaceDetector,
    landmarker: FaceLandmarker | None,
    specs: list[PhotoSpec],
    backgrounds: list[Background],
    options: ProcessingOptions,
    source_scale: float,
    timings: dict[str, float],
    metrics: dict[str, Any],
    flags: list[str],
    outputs: list[RenderedOutput],
    mask_region: tuple[float, float, float, float] | None = None,
    person_gate: PersonGate | None = None,
) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise PhotoError(Reason.INTERNAL_ERROR, f"expected HxWx3 uint8 RGB, got {image.dtype} {image.shape}")

    with timed(timings, Step.DETECT):
        faces = detector([image])[0]
    metrics["face_count"] = len(faces)
    face = select_subject(faces, image.shape, options.multiple_face_ratio)
    metrics["face_box"] = dict(zip(("x0", "y0", "x1", "y1"), (float(v) for v in face.box), strict=False))

    landmarks = None
    if landmarker is not None:
        with timed(timings, Step.LANDMARKS):
            points, presence = landmarker(image, face)
        metrics["landmark_presence"] = float(presence)
        if presence >= MIN_LANDMARK_PRESENCE:
            landmarks = points
    if landmarks is None:
        flags.append(Flag.LANDMARKS_UNAVAILABLE)

    right_eye, left_eye = eye_centers(landmarks, face)
    chin = chin_point(landmarks, face)
    roll = roll_deg(left_eye, right_eye)
    yaw = yaw_estimate_deg(landmarks, face)
    metrics["eyes"] = {
        "left_x": float(left_eye[0]),
        "left_y": float(left_eye[1]),
        "right_x": float(right_eye[0]),
        "right_y": float(right_eye[1]),
    }
    metrics["roll_deg"] = roll
    metrics["yaw_deg"] = yaw
    metrics["inter_eye_px"] = checks.inter_eye_source_px(right_eye, left_eye, source_scale)
    flags += checks.pose(roll, yaw, options.max_roll_deg, options.max_yaw_deg)
    if landmarks is not None:
        expression = expression_measures(landmarks)
        metrics.update(expression)
        if any(spec.neutral_expression for spec in specs):
            flags += expression_flags(expression)
        model_px = max(image.shape[:2]) / float(getattr(detector, "input_size", DETECTOR_INPUT_PX))
        if roll_uncertain(roll, face, model_px):
            flags.append(Flag.ROLL_UNCERTAIN)
            roll = 0.0  # two models disagree on the eye line: leave the photo as taken, for a person to judge

    with timed(timings, Step.MASK):
        if person_gate is not None:
            eye_y = float(max(right_eye[1], left_eye[1]))
            mask = person_gate(image, mask, mask_region, eye_y, tuple(float(v) for v in face.box))
        alpha = person_alpha(mask, image.shape, face.box, mask_region)
    if float(alpha.max(initial=0.0)) < 0.5:
        raise PhotoError(Reason.NO_PERSON, "the person mask is empty around the detected face")
    if crown_touches_top(alpha, face.box[0], face.box[2]):
        flags.append(Flag.CROWN_CUT)  # the source cut the hair: the crown is not where it ends

    with timed(timings, Step.LEVEL):
        head = level_head(image, alpha, face, right_eye, left_eye, chin, roll, face_width_px(landmarks, face))

    c0, r0, c1, r1 = face_bounds(face.box, image.shape[:2])
    zone = skin_zone_mask(landmarks, face, (c0, r0, c1, r1))
    eye_mid_x = float((right_eye[0] + left_eye[0]) / 2.0) - c0
    face_metrics, face_flags = checks.face_quality(image[r0:r1, c0:c1], eye_mid_x, zone)
    metrics.update(face_metrics)
    flags += face_flags

    per_spec: dict[str, Any] = {}
    for spec in specs:
        spec_metrics, spec_flags = render_spec(head, spec, backgrounds, options, timings, outputs)
        per_spec[spec.name] = spec_metrics
        flags += spec_flags
    metrics["specs"] = per_spec
    if specs:
        first = per_spec[specs[0].name]
        metrics["head_height_ratio"] = first["head_height_ratio"]
        metrics["upscale"] = first["upscale"]
        upscale = max(per_spec[spec.name]["upscale"] for spec in specs)
        output_eyes = float(np.hypot(*(left_eye - right_eye))) * upscale
        flags += checks.resolution(metrics["inter_eye_px"], output_eyes, upscale, options.min_inter_eye_px)
