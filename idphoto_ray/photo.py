"""Per-photo orchestration: one segmentation + one detection → every spec × background, plus checks.

This is the boundary where errors become data: `process_photo` never raises. A PhotoError from any
step becomes status=failed with its reason; anything unexpected becomes internal_error with the text.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from idphoto_ray import checks, crop_rules, matte_checks
from idphoto_ray.backgrounds import Background
from idphoto_ray.compose import composite
from idphoto_ray.config import ProcessingOptions
from idphoto_ray.encode import encode_image
from idphoto_ray.geometry import (
    MIN_ROLL_CORRECTION_DEG,
    CropPlan,
    LeveledFrame,
    chin_point,
    compose_affine,
    crown_touches_top,
    expression_flags,
    expression_measures,
    extract_crop,
    eye_centers,
    face_width_px,
    find_crown_y,
    plan_crop,
    roll_deg,
    roll_uncertain,
    select_subject,
    transform_points,
    yaw_estimate_deg,
)
from idphoto_ray.models.base import FaceDetector, FaceLandmarker
from idphoto_ray.refine import closed_form_alpha, decontaminate, person_alpha, refine_alpha_crop
from idphoto_ray.specs import PhotoSpec
from idphoto_ray.types import Face, Flag, PhotoError, Reason, Status, Step

#: Face-mesh results below this presence score are ignored (BlazeFace keypoints are used instead).
MIN_LANDMARK_PRESENCE = 0.5
#: Guided-filter radius as a fraction of the face width in output px (≈ 5 px on a 1寸 photo).
REFINE_RADIUS_FRACTION = 0.03
#: Detector input size assumed for keypoint precision when a detector does not say (full-range BlazeFace).
DETECTOR_INPUT_PX = 192


@dataclass
class RenderedOutput:
    """One encoded photo: spec × background."""

    spec: str
    background: str
    data: bytes
    width: int
    height: int
    ext: str
    #: 2×3 affine, working-image px → output px (the pipeline turns it into input px → output px).
    affine: tuple[float, ...] = ()


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


@dataclass(frozen=True)
class _Head:
    """The subject in the leveled working frame (after roll correction)."""

    frame: LeveledFrame
    right_eye: np.ndarray
    left_eye: np.ndarray
    chin: np.ndarray
    box: tuple[float, float, float, float]
    crown_y: float
    face_width: float
    edges: dict[str, np.ndarray]  # where the person meets the source's edges, levelled frame (crop_rules)

    @property
    def eye_mid(self) -> np.ndarray:
        return (self.right_eye + self.left_eye) / 2.0


@contextmanager
def _timed(timings: dict[str, float], step: Step) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[step.value] = timings.get(step.value, 0.0) + (time.perf_counter() - start) * 1000.0


def process_photo(
    image: np.ndarray,
    mask: np.ndarray,
    detector: FaceDetector,
    landmarker: FaceLandmarker | None,
    specs: list[PhotoSpec],
    backgrounds: list[Background],
    options: ProcessingOptions,
    source_scale: float = 1.0,
) -> PhotoResult:
    """Make every spec × background from one working-resolution image and its model-resolution mask.

    source_scale = working px per original px (decode downscale), so inter-eye distance is reported in
    the original file's pixels.
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
) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise PhotoError(Reason.INTERNAL_ERROR, f"expected HxWx3 uint8 RGB, got {image.dtype} {image.shape}")

    with _timed(timings, Step.DETECT):
        faces = detector([image])[0]
    metrics["face_count"] = len(faces)
    face = select_subject(faces, image.shape, options.multiple_face_ratio)
    metrics["face_box"] = dict(zip(("x0", "y0", "x1", "y1"), (float(v) for v in face.box), strict=False))

    landmarks = None
    if landmarker is not None:
        with _timed(timings, Step.LANDMARKS):
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

    with _timed(timings, Step.MASK):
        alpha = person_alpha(mask, image.shape, face.box)
    if float(alpha.max(initial=0.0)) < 0.5:
        raise PhotoError(Reason.NO_PERSON, "the person mask is empty around the detected face")
    if crown_touches_top(alpha, face.box[0], face.box[2]):
        flags.append(Flag.CROWN_CUT)  # the source cut the hair: the crown is not where it ends

    with _timed(timings, Step.LEVEL):
        head = _level(image, alpha, face, right_eye, left_eye, chin, roll, face_width_px(landmarks, face))

    face_pixels = head.frame.region("image", *_face_bounds(head.box, head.frame.shape))
    face_metrics, face_flags = checks.face_quality(
        face_pixels, float(head.eye_mid[0] - max(0.0, head.box[0]))
    )
    metrics.update(face_metrics)
    flags += face_flags

    per_spec: dict[str, Any] = {}
    for spec in specs:
        spec_metrics, spec_flags = _render_spec(head, spec, backgrounds, options, timings, outputs)
        per_spec[spec.name] = spec_metrics
        flags += spec_flags
    metrics["specs"] = per_spec
    if specs:
        first = per_spec[specs[0].name]
        metrics["head_height_ratio"] = first["head_height_ratio"]
        metrics["upscale"] = first["upscale"]
        flags += checks.resolution(metrics["inter_eye_px"], first["upscale"], options.min_inter_eye_px)


def _level(
    image: np.ndarray,
    alpha: np.ndarray,
    face: Face,
    right_eye: np.ndarray,
    left_eye: np.ndarray,
    chin: np.ndarray,
    roll: float,
    face_width: float,
) -> _Head:
    """Rotate about the eye midpoint when the roll is worth correcting; find the crown in the leveled
    frame."""
    box = face.box
    frame = LeveledFrame.unrotated(image, alpha)
    if abs(roll) > MIN_ROLL_CORRECTION_DEG:
        mid = (right_eye + left_eye) / 2.0
        frame = LeveledFrame.level(image, alpha, (mid[0], mid[1]), roll)
        right_eye, left_eye, chin = transform_points(np.stack([right_eye, left_eye, chin]), frame.matrix)
        cx, cy = transform_points(np.array([face.center]), frame.matrix)[0]
        box = (cx - face.width / 2, cy - face.height / 2, cx + face.width / 2, cy + face.height / 2)
    c0, _, c1, _ = frame.bounds(box[0], 0, box[2], 0)
    crown = find_crown_y(frame.region("alpha", c0, 0, c1, frame.shape[0]), box[0] - c0, box[2] - c0)
    if crown is None or crown >= min(right_eye[1], left_eye[1]):
        raise PhotoError(Reason.NO_PERSON, "no person mask above the eyes: cannot find the crown")
    edges = crop_rules.person_edge_points(alpha, frame.matrix)
    return _Head(frame, right_eye, left_eye, chin, box, float(crown), face_width, edges)


def _face_bounds(box: tuple[float, float, float, float], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The face box rounded to whole pixels and clipped to the canvas (may be empty)."""
    h, w = shape
    x0, y0, x1, y1 = box
    c0, c1 = max(0, int(round(x0))), min(w, int(round(x1)))
    r0, r1 = max(0, int(round(y0))), min(h, int(round(y1)))
    return c0, r0, max(c0, c1), max(r0, r1)


def _crop_layers(head: _Head, plan: CropPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spec's crop of image, alpha and coverage, warping only the canvas region the crop reads."""
    margin = 2.0 / plan.scale + 2.0  # extract_crop's own margin, plus the bilinear neighbours
    c0, r0, c1, r1 = head.frame.bounds(
        plan.x0 - margin, plan.y0 - margin, plan.x0 + plan.w + margin, plan.y0 + plan.h + margin
    )
    h, w = head.frame.shape
    c0, r0 = (
        min(c0, w - 1),
        min(r0, h - 1),
    )  # a box wholly off the canvas still gets one edge pixel to pad from
    c1, r1 = max(c1, c0 + 1), max(r1, r0 + 1)
    local = replace(plan, x0=plan.x0 - c0, y0=plan.y0 - r0)
    return (
        extract_crop(head.frame.region("image", c0, r0, c1, r1), local, "replicate"),
        extract_crop(head.frame.region("alpha", c0, r0, c1, r1), local),
        extract_crop(head.frame.region("valid", c0, r0, c1, r1), local),
    )


def _render_spec(
    head: _Head,
    spec: PhotoSpec,
    backgrounds: list[Background],
    options: ProcessingOptions,
    timings: dict[str, float],
    outputs: list[RenderedOutput],
) -> tuple[dict[str, Any], list[str]]:
    """Crop, matte, decontaminate once, then composite + encode per background; returns output-space
    checks."""
    with _timed(timings, Step.CROP):
        plan = plan_crop(
            spec,
            head.crown_y,
            float(head.chin[1]),
            float(head.eye_mid[1]),
            float(head.eye_mid[0]),
            head.frame.shape,
            head.edges,
        )
        rgb, alpha, valid = _crop_layers(head, plan)
    flags = plan.flags()
    affine = compose_affine(plan.matrix, head.frame.matrix)

    face_w_out = (head.box[2] - head.box[0]) * plan.scale
    with _timed(timings, Step.MATTING):
        alpha = refine_alpha_crop(rgb, alpha, max(2, round(REFINE_RADIUS_FRACTION * face_w_out)))
        if options.matting == "closed-form":
            alpha = closed_form_alpha(rgb, alpha)
        alpha = (alpha * np.clip(valid, 0.0, 1.0)).astype(np.float32)
    with _timed(timings, Step.DECONTAMINATE):
        fg = decontaminate(rgb, alpha, options.decontamination) if options.decontaminate else rgb

    for background in backgrounds:
        with _timed(timings, Step.COMPOSE):
            pixels = composite(fg, alpha, background)
        with _timed(timings, Step.ENCODE):
            encoded = encode_image(
                pixels,
                options.output_format,
                spec.dpi,
                options.jpeg_quality,
                options.max_kb,
                options.min_jpeg_quality,
            )
        ext = "jpg" if encoded.format == "jpeg" else "png"
        outputs.append(
            RenderedOutput(
                spec.name, background.name, encoded.data, encoded.width, encoded.height, ext, affine
            )
        )

    metrics, check_flags = _output_geometry(head, spec, plan, alpha)
    matte_metrics, matte_flags = _matte_checks(head, plan, rgb, alpha, fg)
    metrics["matte"] = matte_metrics
    check_flags += matte_flags
    metrics["upscale"] = plan.scale
    metrics["placement"] = plan.placement
    metrics["cuts"] = list(plan.cuts)
    metrics["cuts_at_target"] = list(plan.cuts_at_target)
    return metrics, flags + check_flags


def _matte_checks(
    head: _Head, plan: CropPlan, rgb: np.ndarray, alpha: np.ndarray, fg: np.ndarray
) -> tuple[dict[str, float], list[Flag]]:
    """Backdrop remnants, halo and an uncertain crown, measured on this output (matte_checks)."""
    (x0, _), (x1, _) = plan.to_output(np.array([[head.box[0], 0.0], [head.box[2], 0.0]]))
    crown = find_crown_y(alpha, x0, x1)
    if crown is None:
        crown = float(plan.to_output(np.array([0.0, head.crown_y]))[1])
    eye_y, chin_y = float(plan.to_output(head.eye_mid)[1]), float(plan.to_output(head.chin)[1])
    return matte_checks.matte_flags(rgb, alpha, fg, (x0, x1), crown, eye_y, chin_y)


def _output_geometry(
    head: _Head, spec: PhotoSpec, plan: CropPlan, alpha: np.ndarray
) -> tuple[dict[str, Any], list[str]]:
    """Measure the head in the output itself: crown from the output's alpha, chin/eyes mapped through the
    plan."""
    (x0, _), (x1, _) = plan.to_output(np.array([[head.box[0], 0.0], [head.box[2], 0.0]]))
    chin = plan.to_output(head.chin)
    eye_mid = plan.to_output(head.eye_mid)
    crown = find_crown_y(alpha, x0, x1)
    if crown is None:
        crown = float(plan.to_output(np.array([0.0, head.crown_y]))[1])
    return checks.spec_geometry(
        spec, crown, float(chin[1]), float(eye_mid[1]), float(eye_mid[0]), head.face_width * plan.scale
    )
