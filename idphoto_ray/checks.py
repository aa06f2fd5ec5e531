"""Cheap, OFIQ-inspired compliance measures. Each function measures one thing; flags come from constants.

Values are stored raw (ratios, mm, px, degrees) so a reviewer can re-threshold the manifest later.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from idphoto_ray.specs import PhotoSpec
from idphoto_ray.types import Flag

#: Face centre may sit this fraction of the width off the middle (ISO 19794-5: 0.45–0.55 W).
MAX_CENTER_OFFSET = 0.05
#: Output px per working px above this means visibly soft, invented detail.
MAX_UPSCALE = 1.5
#: Enlargement at the eyes from which a face below ICAO's inter-eye minimum looks soft at 100 %. Development
#: portraits, cn-1inch: 1.01 (test0), 1.10 (img14), 1.17 (img46) look as sharp as their sources; 1.32
#: (img27) and 1.60 (img43) look soft. The absolute 90-px rule alone flagged 14 of 35 sharp 1寸 outputs.
MIN_SOFT_ENLARGEMENT = 1.2
#: Faces are resized to this width before the Laplacian, so the variance does not grow with face size
#: (a 600 px face has more high-frequency energy per pixel than a 120 px one of the same photo otherwise).
SHARPNESS_FACE_WIDTH = 128
#: Variance of the Laplacian (grey 0–255) on the normalised face below which it is called blurry.
#: Measured on skimage astronaut's face (90 px wide): 251 as is, 22 after Gaussian σ=1, 4 after σ=2.
MIN_SHARPNESS = 15.0
#: OFIQ under/over-exposure bands on luminance (0–255).
UNDER_LUMA = 25
OVER_LUMA = 247
#: Flag when more than this fraction of face pixels sits in an exposure band.
MAX_EXPOSED_FRACTION = 0.10
#: Mean face luminance outside [MIN_MEAN_LUMA, MAX_MEAN_LUMA] is flagged too (dark skin in good light is
#: ~70+).
MIN_MEAN_LUMA = 50.0
MAX_MEAN_LUMA = 225.0
#: Darker/brighter face-half mean ratio below this is uneven lighting (ICAOcheck uses 0.5 on zones).
MIN_ILLUMINATION_RATIO = 0.6


def luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma, float32 0–255."""
    rgb = np.asarray(rgb, dtype=np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def in_range(value: float, lo: float | None, hi: float | None) -> bool:
    """Open bounds (None) always pass."""
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def head_height_ratio(crown_y: float, chin_y: float, height: int) -> float:
    """Chin–crown as a fraction of the output height."""
    return (chin_y - crown_y) / float(height)


def head_ratio_range(spec: PhotoSpec) -> tuple[float, float]:
    """The spec's head rule as height fractions."""
    return spec.head_min_mm / spec.height_mm, spec.head_max_mm / spec.height_mm


def px_per_mm(spec: PhotoSpec) -> float:
    return spec.mm_to_px(1.0)


def crown_margin_mm(crown_y: float, spec: PhotoSpec) -> float:
    """Gap from the top edge to the crown."""
    return crown_y / px_per_mm(spec)


def eye_from_bottom_mm(eye_y: float, spec: PhotoSpec) -> float:
    """Eye-line height above the bottom edge."""
    return (spec.size_px[1] - eye_y) / px_per_mm(spec)


def center_offset(face_mid_x: float, width: int) -> float:
    """Signed horizontal offset of the face midline as a fraction of the width."""
    return face_mid_x / float(width) - 0.5


def inter_eye_source_px(right_eye: np.ndarray, left_eye: np.ndarray, source_scale: float) -> float:
    """Inter-eye distance in the ORIGINAL file's pixels; source_scale = working px per original px."""
    return float(np.hypot(*(np.asarray(left_eye) - np.asarray(right_eye)))) / source_scale


def sharpness(face_rgb: np.ndarray) -> float:
    """Variance of the Laplacian on the face resized to SHARPNESS_FACE_WIDTH (size-normalised)."""
    if face_rgb.shape[0] < 4 or face_rgb.shape[1] < 4:
        return 0.0
    grey = luminance(face_rgb)
    height = max(4, round(grey.shape[0] * SHARPNESS_FACE_WIDTH / grey.shape[1]))
    interp = cv2.INTER_AREA if grey.shape[1] > SHARPNESS_FACE_WIDTH else cv2.INTER_CUBIC
    norm = cv2.resize(grey, (SHARPNESS_FACE_WIDTH, height), interpolation=interp)
    return float(cv2.Laplacian(norm, cv2.CV_32F, ksize=1).var())


def exposure(face_rgb: np.ndarray) -> dict[str, float]:
    """Mean face luminance and the fractions of under-/over-exposed face pixels."""
    y = luminance(face_rgb)
    if y.size == 0:
        return {"mean": 0.0, "under": 0.0, "over": 0.0}
    return {
        "mean": float(y.mean()),
        "under": float((y < UNDER_LUMA).mean()),
        "over": float((y > OVER_LUMA).mean()),
    }


def illumination_ratio(face_rgb: np.ndarray, mid_x: float, zone: np.ndarray | None = None) -> float:
    """Darker half / brighter half mean luminance, split at the face midline (1.0 = even); only the pixels
    of `zone` (a boolean mask of the crop) when given."""
    y = luminance(face_rgb)
    split = int(round(mid_x))
    if y.size == 0 or split <= 0 or split >= y.shape[1]:
        return 1.0
    inside = np.ones(y.shape, bool) if zone is None else np.asarray(zone, bool)
    halves = (y[:, :split][inside[:, :split]], y[:, split:][inside[:, split:]])
    if min(h.size for h in halves) == 0:
        return 1.0
    left, right = float(halves[0].mean()), float(halves[1].mean())
    hi = max(left, right)
    return 1.0 if hi <= 0 else min(left, right) / hi


def spec_geometry(
    spec: PhotoSpec,
    crown_y: float,
    chin_y: float,
    eye_y: float,
    face_mid_x: float,
    face_width: float | None = None,
) -> tuple[dict[str, Any], list[Flag]]:
    """Output-space head geometry against the spec's rules (all inputs in output px)."""
    w, h = spec.size_px
    ratio = head_height_ratio(crown_y, chin_y, h)
    lo, hi = head_ratio_range(spec)
    crown_mm = crown_margin_mm(crown_y, spec)
    eye_mm = eye_from_bottom_mm(eye_y, spec)
    offset = center_offset(face_mid_x, w)
    metrics = {
        "head_height_ratio": ratio,
        "head_height_range": [lo, hi],
        "head_height_mm": (chin_y - crown_y) / px_per_mm(spec),
        "crown_margin_mm": crown_mm,
        "eye_from_bottom_mm": eye_mm,
        "center_offset": offset,
    }
    flags = []
    if not in_range(ratio, lo, hi):
        flags.append(Flag.HEAD_SIZE_OUT_OF_RANGE)
    if not in_range(crown_mm, spec.crown_top_min_mm, spec.crown_top_max_mm):
        flags.append(Flag.CROWN_MARGIN_OUT_OF_RANGE)
    if not in_range(eye_mm, spec.eye_bottom_min_mm, spec.eye_bottom_max_mm):
        flags.append(Flag.EYE_LINE_OUT_OF_RANGE)
    if abs(offset) > MAX_CENTER_OFFSET:
        flags.append(Flag.FACE_OFF_CENTER)
    if face_width is not None:
        width_mm = face_width / px_per_mm(spec)
        metrics["face_width_mm"] = width_mm
        if not in_range(width_mm, spec.face_width_min_mm, spec.face_width_max_mm):
            flags.append(Flag.FACE_WIDTH_OUT_OF_RANGE)
    return metrics, flags


def pose(roll: float, yaw: float, max_roll: float, max_yaw: float) -> list[Flag]:
    """Roll is measured before correction (it is corrected anyway, but a big tilt deserves a look)."""
    flags = []
    if abs(roll) > max_roll:
        flags.append(Flag.ROLL_EXCEEDS_LIMIT)
    if abs(yaw) > max_yaw:
        flags.append(Flag.YAW_EXCEEDS_LIMIT)
    return flags


def resolution(
    inter_eye_px: float, output_inter_eye_px: float, upscale: float, min_inter_eye_px: float
) -> list[Flag]:
    """`low_resolution` when the source has fewer px between the eyes than ICAO's minimum AND the output
    enlarges them by more than MIN_SOFT_ENLARGEMENT: a 1寸 print shows ~70 px between the eyes, so a
    70-px source loses nothing there, while a 600-px US passport file shows ~110."""
    flags = []
    if inter_eye_px < min_inter_eye_px and output_inter_eye_px > MIN_SOFT_ENLARGEMENT * inter_eye_px:
        flags.append(Flag.LOW_RESOLUTION)
    if upscale > MAX_UPSCALE:
        flags.append(Flag.UPSCALED)
    return flags


def face_quality(
    face_rgb: np.ndarray, mid_x: float, zone: np.ndarray | None = None
) -> tuple[dict[str, Any], list[Flag]]:
    """Sharpness of the face crop; exposure and illumination uniformity of its skin (`zone`, a boolean mask
    of the crop: the cheek–nose zone, `geometry.face.skin_zone`; the whole crop when None). mid_x is in
    crop coordinates.

    Metrics are flat floats (exposure = mean skin luminance) so they drop straight into manifest columns.
    """
    sharp = sharpness(face_rgb)
    skin = face_rgb if zone is None or not np.any(zone) else np.asarray(face_rgb)[np.asarray(zone, bool)]
    expo = exposure(skin)
    illum = illumination_ratio(face_rgb, mid_x, zone)
    flags = []
    if sharp < MIN_SHARPNESS:
        flags.append(Flag.BLURRY)
    if expo["under"] > MAX_EXPOSED_FRACTION or expo["mean"] < MIN_MEAN_LUMA:
        flags.append(Flag.UNDEREXPOSED)
    if expo["over"] > MAX_EXPOSED_FRACTION or expo["mean"] > MAX_MEAN_LUMA:
        flags.append(Flag.OVEREXPOSED)
    if illum < MIN_ILLUMINATION_RATIO:
        flags.append(Flag.UNEVEN_LIGHTING)
    metrics = {
        "sharpness": sharp,
        "exposure": expo["mean"],
        "underexposed_fraction": expo["under"],
        "overexposed_fraction": expo["over"],
        "illumination_ratio": illum,
    }
    return metrics, flags
