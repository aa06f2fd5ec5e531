"""Where to crop: head size and position chosen inside the spec's tolerances so the body is not cut.

A source photo ends somewhere. Where the person reaches the source's edge (shoulders at the bottom of a
tightly framed portrait, hair at the top), a crop box that extends past that edge shows the person cut by a
straight line inside the output, and after roll correction a diagonal one: a "floating head". Padding with
plain background where the source had background is harmless and is not reported.

The standards give ranges, not points (head height, crown margin or eye line), so the crop is searched over
those ranges: the placement closest to the middle of every range that shows no cut wins; when every
placement within the rules shows one, the one with the shallowest cut is used and the cut is flagged.
All coordinates are in the levelled working frame (level.LeveledFrame's canvas) unless a name says output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from idphoto_ray.specs import PhotoSpec
from idphoto_ray.types import Flag, PhotoError, Reason

#: Crown margin range, as fractions of the height, for specs that state neither a crown nor an eye rule
#: (ICAO-style head-size-only specs): the Chinese convention's 8–12 % (HivisionIDPhotos' top_distance
#: 0.10–0.12).
DEFAULT_CROWN_RANGE = (0.08, 0.12)
#: The hair must stay this far below the top edge (fraction of the height; 1 mm on a 2×2 in photo). US rules
#: combine a head of up to 69 % with eyes 31–45 % from the top, which can push the crown above the photo.
MIN_CROWN_GAP = 0.02
#: Candidates per range (head size × position): 21 × 21.
STEPS = 21
#: Share of each range searched, centred: the output is re-measured against the full range afterwards, and a
#: placement at the very bound reads out of range on a pixel of measurement noise.
SEARCHED_SHARE = 0.9
#: A cut less than this far inside the output (output px) is rounding: even a one-pixel strip of padding under
#: a shirt shows as a line, so nothing larger is forgiven.
CUT_MARGIN_PX = 0.25


#: The flag for the person cut by each edge of the source inside an output.
EDGE_CUTS = {"top": Flag.CROWN_CUT, "bottom": Flag.BODY_CUT, "left": Flag.SIDE_CUT, "right": Flag.SIDE_CUT}


def person_edge_points(
    alpha: np.ndarray, matrix: np.ndarray, threshold: float = 0.5
) -> dict[str, np.ndarray]:
    """Where the person touches each edge of the source, as (N, 2) points on that edge in the levelled frame.

    alpha: the person mask over the whole working image; matrix: 2×3 working → levelled frame.
    Points lie on the outer border of the edge pixels (x = −0.5, …), so a box that stops at the source's
    edge does not contain them.
    """
    a = np.asarray(alpha)
    h, w = a.shape[:2]
    xs = np.nonzero(a[0] >= threshold)[0], np.nonzero(a[-1] >= threshold)[0]
    ys = np.nonzero(a[:, 0] >= threshold)[0], np.nonzero(a[:, -1] >= threshold)[0]
    raw = {
        "top": np.c_[xs[0], np.full(xs[0].size, -0.5)],
        "bottom": np.c_[xs[1], np.full(xs[1].size, h - 0.5)],
        "left": np.c_[np.full(ys[0].size, -0.5), ys[0]],
        "right": np.c_[np.full(ys[1].size, w - 0.5), ys[1]],
    }
    m = np.asarray(matrix, dtype=np.float64)
    return {edge: pts.astype(np.float64) @ m[:, :2].T + m[:, 2] for edge, pts in raw.items()}


@dataclass(frozen=True)
class Placement:
    """One candidate crop: the levelled-frame box that becomes the output, and what it shows."""

    x0: float
    y0: float
    w: float
    h: float
    cuts: frozenset[Flag]
    cut_px: float  # how far inside the output the person is cut by the source's edge (output px)
    crown_gap_px: float  # output px from the top edge down to the crown
    deviation: float  # 0 at the middle of every range, 1 at a corner


def _cut_depth(
    points: dict[str, np.ndarray], x0: np.ndarray, y0: np.ndarray, w: float, h: float, margin: float
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per candidate box (x0[i], y0[i], w, h): how deep inside the box the cut reaches, and which edges cut.

    Depth of a person edge point inside the box = its distance to the nearest box border; the box's depth
    is the largest one (source px): for shoulders cut by the source's bottom, the height of the strip
    between the cut and the output's bottom edge.
    """
    per_edge = {}
    depth = np.zeros(x0.shape, np.float64)
    for edge, pts in points.items():
        if not pts.size:
            per_edge[edge] = np.zeros(x0.shape, bool)
            continue
        px, py = pts[None, :, 0], pts[None, :, 1]
        inside = np.minimum.reduce(
            [px - x0[:, None], x0[:, None] + w - px, py - y0[:, None], y0[:, None] + h - py]
        )
        deepest = inside.max(axis=1)
        per_edge[edge] = deepest > margin
        depth = np.maximum(depth, np.where(per_edge[edge], deepest, 0.0))
    return depth, per_edge


def position_range(spec: PhotoSpec) -> tuple[str, float, float]:
    """Which rule sets the vertical position and its range in output px: crown margin or eye line."""
    out_h = spec.size_px[1]
    if spec.crown_top_min_mm is not None and spec.crown_top_max_mm is not None:
        return "crown", spec.mm_to_px(spec.crown_top_min_mm), spec.mm_to_px(spec.crown_top_max_mm)
    if spec.eye_bottom_min_mm is not None and spec.eye_bottom_max_mm is not None:
        return "eye", spec.mm_to_px(spec.eye_bottom_min_mm), spec.mm_to_px(spec.eye_bottom_max_mm)
    return "default-crown", DEFAULT_CROWN_RANGE[0] * out_h, DEFAULT_CROWN_RANGE[1] * out_h


def search(
    spec: PhotoSpec,
    crown_y: float,
    chin_y: float,
    eye_y: float,
    face_center_x: float,
    edges: dict[str, np.ndarray],
    steps: int = STEPS,
) -> tuple[str, Placement, Placement]:
    """(rule, chosen placement, placement at the middle of every range) for one spec.

    Order of preference: no cut and the crown clear of the top; then the shallowest cut plus crown
    overlap (both in output px); then closeness to the middle of the ranges.
    """
    out_w, out_h = spec.size_px
    head_src = chin_y - crown_y
    if head_src <= 1.0:
        raise PhotoError(Reason.NO_PERSON, f"head height {head_src:.1f}px: crown not above the chin")
    head_lo, head_hi = spec.mm_to_px(spec.head_min_mm), spec.mm_to_px(spec.head_max_mm)
    rule, pos_lo, pos_hi = position_range(spec)
    half = SEARCHED_SHARE / 2.0
    unit = np.linspace(-half, half, steps if steps % 2 else steps + 1)  # odd: the middle is a candidate
    scales = ((head_lo + head_hi) / 2 + unit * (head_hi - head_lo)) / head_src
    positions = (pos_lo + pos_hi) / 2 + unit * (pos_hi - pos_lo)
    min_gap = MIN_CROWN_GAP * out_h
    best: tuple[tuple[float, float], Placement] | None = None
    middle: Placement | None = None
    for i, s in enumerate(scales):
        w, h = out_w / s, out_h / s
        if rule == "eye":
            y0 = eye_y - (out_h - positions) / s
        else:
            y0 = crown_y - positions / s
        x0 = np.full(y0.shape, face_center_x - w / 2.0)
        # Output pixel i's centre sits at x0 + i / s, so the output covers [x0 − 0.5 / s, x0 + w − 0.5 / s).
        depth, per_edge = _cut_depth(edges, x0 - 0.5 / s, y0 - 0.5 / s, w, h, CUT_MARGIN_PX / s)
        cut_px = depth * s
        gap = (crown_y - y0) * s
        overlap = np.clip(min_gap - gap, 0.0, None)
        deviation = np.hypot(unit[i], unit) / (half * math.sqrt(2.0))
        for j in range(y0.size):
            cuts = frozenset(EDGE_CUTS[e] for e, c in per_edge.items() if c[j] > 0)
            cand = Placement(
                float(x0[j]), float(y0[j]), w, h, cuts, float(cut_px[j]), float(gap[j]), float(deviation[j])
            )
            key = (float(cut_px[j] + overlap[j]), float(deviation[j]))
            if best is None or key < best[0]:
                best = (key, cand)
            if i == j == unit.size // 2:
                middle = cand
    assert best is not None and middle is not None
    return rule, best[1], middle
