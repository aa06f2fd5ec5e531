"""The crop: a plan placing the spec's box in the levelled frame (rules in crop_rules) and the resampling
that turns the plan into output-size pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from idphoto_ray.geometry import crop_rules
from idphoto_ray.geometry.level import Head
from idphoto_ray.specs import PhotoSpec
from idphoto_ray.types import Flag

#: Coverage within this of 1 is 1: INTER_AREA's and warpAffine's float weights sum to 1 − 6e-8 … 2e-7 on
#: some rows, and the `valid >= 1` tests downstream (closed-form matting, the crown colour step) then skipped
#: those rows of the photo's interior, leaving horizontal streaks and blocks in hair edges (calibration
#: img23, validation img7).
COVERAGE_TOLERANCE = 1e-5

#: Downscaling by more than this goes through an INTER_AREA resize first (warpAffine alone aliases).
AREA_PRESCALE_THRESHOLD = 2.0


@dataclass(frozen=True)
class CropPlan:
    """Where the output comes from: a source-space box (x0, y0, w, h) scaled to the output size.

    scale = output px per source px (> 1 means upscaling). `cuts` name where the source's edge cuts the
    person inside the output (crop_rules.EDGE_CUTS); `cuts_at_target` what the middle of the spec's ranges
    would have shown, so a manifest can tell which cuts the crop rules avoided.
    """

    x0: float
    y0: float
    w: float
    h: float
    out_w: int
    out_h: int
    placement: str  # "crown" | "eye" | "default-crown": which rule set the vertical position
    cuts: tuple[Flag, ...] = ()
    head_touches_top: bool = False
    cuts_at_target: tuple[Flag, ...] = ()

    @property
    def scale(self) -> float:
        return self.out_w / self.w

    def flags(self) -> list[Flag]:
        return list(self.cuts) + ([Flag.HEAD_TOUCHES_TOP] if self.head_touches_top else [])

    @property
    def matrix(self) -> np.ndarray:
        """2×3 affine, levelled-frame px → output px."""
        s = self.scale
        return np.array([[s, 0.0, -s * self.x0], [0.0, s, -s * self.y0]])

    def to_output(self, points: np.ndarray) -> np.ndarray:
        """Source (x, y) → output (x, y)."""
        pts = np.asarray(points, dtype=np.float64)
        return (pts - np.array([self.x0, self.y0])) * self.scale


def plan_crop(
    spec: PhotoSpec,
    crown_y: float,
    chin_y: float,
    eye_y: float,
    face_center_x: float,
    image_shape: tuple[int, ...],
    edges: dict[str, np.ndarray] | None = None,
) -> CropPlan:
    """Head size and vertical position within the spec's ranges, chosen so the source's edge cuts no one.

    Position rule: crown margin (both bounds) → eye line (both bounds) → crop_rules.DEFAULT_CROWN_RANGE;
    a one-sided rule is only checked, not used for placement. The crown comes first because head-size
    rules are chin–crown, so pinning the crown keeps both ends of the measured head inside the frame.
    Horizontally the face midline is centred. `edges` (crop_rules.person_edge_points) are where the
    person meets the source's edges; without them every placement is cut-free and the middle of the
    ranges is used. image_shape is kept for callers; the edges carry the source's extent.
    """
    rule, chosen, middle = crop_rules.search(spec, crown_y, chin_y, eye_y, face_center_x, edges or {})
    out_w, out_h = spec.size_px
    order = [Flag.CROWN_CUT, Flag.SIDE_CUT, Flag.BODY_CUT]
    return CropPlan(
        x0=chosen.x0,
        y0=chosen.y0,
        w=chosen.w,
        h=chosen.h,
        out_w=out_w,
        out_h=out_h,
        placement=rule,
        cuts=tuple(c for c in order if c in chosen.cuts),
        head_touches_top=chosen.crown_gap_px < crop_rules.MIN_CROWN_GAP * out_h - 1.0,
        cuts_at_target=tuple(c for c in order if c in middle.cuts),
    )


def extract_crop(array: np.ndarray, plan: CropPlan, border: str = "constant") -> np.ndarray:
    """Resample the plan's box to output size with one warpAffine (INTER_AREA pre-scale when shrinking >2×).

    border: "replicate" for the photo (pixels outside the source get alpha 0 anyway) or "constant" (0)
    for masks.
    """
    src = np.asarray(array)
    if src.dtype == np.float64:
        src = src.astype(np.float32)
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    s = plan.scale
    size = (plan.out_w, plan.out_h)
    if 1.0 / s <= AREA_PRESCALE_THRESHOLD:
        m = np.array([[s, 0.0, -s * plan.x0], [0.0, s, -s * plan.y0]])
        return cv2.warpAffine(src, m, size, flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=0)

    img_h, img_w = src.shape[:2]
    margin = 2.0 / s
    rx0 = int(max(0, math.floor(plan.x0 - margin)))
    ry0 = int(max(0, math.floor(plan.y0 - margin)))
    rx1 = int(min(img_w, math.ceil(plan.x0 + plan.w + margin)))
    ry1 = int(min(img_h, math.ceil(plan.y0 + plan.h + margin)))
    if rx1 - rx0 < 2 or ry1 - ry0 < 2:
        return np.zeros((plan.out_h, plan.out_w) + src.shape[2:], dtype=src.dtype)
    region = src[ry0:ry1, rx0:rx1]
    new_w = max(1, int(round((rx1 - rx0) * s)))
    new_h = max(1, int(round((ry1 - ry0) * s)))
    small = cv2.resize(region, (new_w, new_h), interpolation=cv2.INTER_AREA)
    sx, sy = new_w / (rx1 - rx0), new_h / (ry1 - ry0)
    # INTER_AREA maps pixel centres: small index i sits at region coordinate (i + 0.5) / sx - 0.5.
    tx = (rx0 - plan.x0) * s + 0.5 * (s / sx - s)
    ty = (ry0 - plan.y0) * s + 0.5 * (s / sy - s)
    m = np.array([[s / sx, 0.0, tx], [0.0, s / sy, ty]])
    return cv2.warpAffine(small, m, size, flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=0)


def crop_layers(head: Head, plan: CropPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spec's crop of image, alpha and coverage, warping only the canvas region the crop reads."""
    margin = 2.0 / plan.scale + 2.0  # extract_crop's own margin, plus the bilinear neighbours
    c0, r0, c1, r1 = head.frame.bounds(
        plan.x0 - margin, plan.y0 - margin, plan.x0 + plan.w + margin, plan.y0 + plan.h + margin
    )
    h, w = head.frame.shape
    # A box wholly off the canvas still gets one edge pixel to pad from.
    c0, r0 = min(c0, w - 1), min(r0, h - 1)
    c1, r1 = max(c1, c0 + 1), max(r1, r0 + 1)
    local = replace(plan, x0=plan.x0 - c0, y0=plan.y0 - r0)
    valid = extract_crop(head.frame.region("valid", c0, r0, c1, r1), local)
    valid[valid >= 1.0 - COVERAGE_TOLERANCE] = 1.0
    return (
        extract_crop(head.frame.region("image", c0, r0, c1, r1), local, "replicate"),
        extract_crop(head.frame.region("alpha", c0, r0, c1, r1), local),
        valid,
    )
