"""Finishing one spec: crop the levelled frame, refine the matte, decontaminate once, then composite and
encode per background; and the checks measured on that output (head geometry, matte remnants).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from idphoto_ray import checks, matte_checks
from idphoto_ray.backgrounds import Background
from idphoto_ray.compose import composite
from idphoto_ray.config import ProcessingOptions
from idphoto_ray.crown_colour import crown_ceiling
from idphoto_ray.encode import encode_image
from idphoto_ray.geometry.affine import compose_affine
from idphoto_ray.geometry.crop import CropPlan, crop_layers, plan_crop
from idphoto_ray.geometry.level import Head, find_crown_y
from idphoto_ray.refine import closed_form_alpha, decontaminate, refine_alpha_crop
from idphoto_ray.specs import PhotoSpec
from idphoto_ray.timing import timed
from idphoto_ray.types import Flag, Step

#: Guided-filter radius as a fraction of the face width in output px (≈ 5 px on a 1寸 photo).
REFINE_RADIUS_FRACTION = 0.03


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


def render_spec(
    head: Head,
    spec: PhotoSpec,
    backgrounds: list[Background],
    options: ProcessingOptions,
    timings: dict[str, float],
    outputs: list[RenderedOutput],
) -> tuple[dict[str, Any], list[str]]:
    """Crop, matte, decontaminate once, then composite + encode per background; returns output-space
    checks."""
    with timed(timings, Step.CROP):
        plan = plan_crop(
            spec,
            head.crown_y,
            float(head.chin[1]),
            float(head.eye_mid[1]),
            float(head.eye_mid[0]),
            head.frame.shape,
            head.edges,
        )
        rgb, alpha, valid = crop_layers(head, plan)
    flags = plan.flags()
    affine = compose_affine(plan.matrix, head.frame.matrix)

    face_w_out = (head.box[2] - head.box[0]) * plan.scale
    with timed(timings, Step.MATTING):
        guided = refine_alpha_crop(rgb, alpha, max(2, round(REFINE_RADIUS_FRACTION * face_w_out)))
        matte = closed_form_alpha(rgb, guided, valid=valid) if options.matting == "closed-form" else guided
        if options.crown_colour:  # `alpha` is still the segmenter's matte, cropped: where it was unsure
            eye_row = (float(head.eye_mid[1]) - plan.y0) * plan.scale
            ceiling = crown_ceiling(rgb, matte, alpha, eye_row, face_w_out, valid)
            matte, guided = np.minimum(matte, ceiling), np.minimum(guided, ceiling)
        alpha = (matte * np.clip(valid, 0.0, 1.0)).astype(np.float32)
        guided = (guided * np.clip(valid, 0.0, 1.0)).astype(np.float32)
    with timed(timings, Step.DECONTAMINATE):
        fg = decontaminate(rgb, alpha, options.decontamination) if options.decontaminate else rgb

    for background in backgrounds:
        with timed(timings, Step.COMPOSE):
            pixels = composite(fg, alpha, background)
        with timed(timings, Step.ENCODE):
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
    matte_metrics, matte_flags = _matte_checks(head, plan, rgb, alpha, fg, guided)
    metrics["matte"] = matte_metrics
    check_flags += matte_flags
    metrics["upscale"] = plan.scale
    metrics["placement"] = plan.placement
    metrics["cuts"] = list(plan.cuts)
    metrics["cuts_at_target"] = list(plan.cuts_at_target)
    return metrics, flags + check_flags


def _matte_checks(
    head: Head, plan: CropPlan, rgb: np.ndarray, alpha: np.ndarray, fg: np.ndarray, guided: np.ndarray
) -> tuple[dict[str, float], list[Flag]]:
    """Backdrop remnants, halo and an uncertain crown, measured on this output (matte_checks); `guided` is
    the matte before closed-form matting, where the segmenter's own hard edges still show."""
    (x0, _), (x1, _) = plan.to_output(np.array([[head.box[0], 0.0], [head.box[2], 0.0]]))
    crown = find_crown_y(alpha, x0, x1)
    if crown is None:
        crown = float(plan.to_output(np.array([0.0, head.crown_y]))[1])
    eye_y, chin_y = float(plan.to_output(head.eye_mid)[1]), float(plan.to_output(head.chin)[1])
    return matte_checks.matte_flags(rgb, alpha, fg, (x0, x1), crown, eye_y, chin_y, edge_alpha=guided)


def _output_geometry(
    head: Head, spec: PhotoSpec, plan: CropPlan, alpha: np.ndarray
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
