"""Matte checks on one output, without a truth: what a clerk would see at 100 %.

Run in output space on the crop of the source (`rgb`), the final matte (`alpha`) and the decontaminated
foreground (`fg`). The old background's colour is estimated from the source pixels the matte calls
background, the subject's from its opaque interior; the measures themselves are `matte_metrics`' (one
implementation for the benchmark and the checks). Thresholds were calibrated on the calibration half of
the development portraits and on the matte benchmark's composites (docs/quality.md).
"""

from __future__ import annotations

import cv2
import numpy as np

from idphoto_ray import matte_metrics
from idphoto_ray.types import Flag

BACKGROUND_REMNANT = Flag.BACKGROUND_REMNANT
HALO = Flag.HALO
CROWN_UNCERTAIN = Flag.CROWN_UNCERTAIN
#: Every flag this module can raise (their sentences live in the enum).
MATTE_FLAGS = (BACKGROUND_REMNANT, HALO, CROWN_UNCERTAIN)

#: Radius of the local colour estimates, as a fraction of the output width (≈ 15 px on a 1寸 photo).
COLOUR_RADIUS_FRACTION = 0.05
#: Person pixels this close in RGB to the local backdrop colour look like backdrop (0–255 scale).
BACKDROP_COLOUR_DISTANCE = 28.0
#: …and must lie within this fraction of the width from the matte's edge (bleed sits beside the subject).
REMNANT_REACH_FRACTION = 0.06
#: Backdrop-like person blobs or detached islands larger than this share of the frame are flagged.
MAX_REMNANT_SHARE = 0.003
#: The backdrop's palette: colour cells holding at least this share of the pixels the matte calls background…
PALETTE_SHARE = 0.02
#: …less the subject's: cells holding this share of its interior (deeper than PALETTE_CORE_DEPTH face widths),
#: and the neighbours of those holding PALETTE_SHARE (a neighbour of the lips' cell can be the wall's).
PALETTE_SUBJECT_SHARE = 0.002
PALETTE_CORE_DEPTH = 0.05
#: Beside the head, farther than this many face widths from the face box, the matte should be empty…
SIDE_REACH_FACTOR = 0.25
#: …up to this share of the frame. Calibration composites: a coffee cup or rocket kept beside the head
#: 0.006–0.022, long hair falling past the face 0.016–0.021 (flagged too: the price of catching every cup).
MAX_SIDE_BLOB_SHARE = 0.005
#: Translucent matte (SOFT_MIN_ALPHA ≤ α < 0.9) farther than SOFT_REACH_FACTOR face widths from the
#: opaque subject, above the bottom quarter, whose colour is more than SOFT_COLOUR_DISTANCE (RGB, 0–255) from
#: the opaque subject nearby: letters or shapes of the old backdrop kept as a see-through band above or
#: beside the hair. Stray hair is as far out but keeps the hair's colour, which is why colour is asked too.
SOFT_MIN_ALPHA = 0.15
SOFT_REACH_FACTOR = 0.02
SOFT_COLOUR_DISTANCE = 60.0
#: That band's area over the face width squared. Calibration half, IS-Net, cn-1inch and us-passport
#: (docs/quality.md): outputs judged clean at 100 % ≤ 0.0018; visible translucent remnants or glow
#: 0.0031–0.027 (backdrop letters above the hair 0.012–0.014), one at 0.0010 (caught by the remnant test).
MAX_SOFT_BAND = 0.0025
#: Hard steps in the matte (α ≥ 0.9 beside α ≤ 0.5, one pixel apart) above the eye line, in pixels per face
#: width. Hair's outline is soft after the guided refinement; a solid piece kept from the backdrop (letters,
#: a bar, a fold of a curtain stuck to the crown) keeps a hard edge. Calibration half, IS-Net, cn-1inch
#: (docs/quality.md): outputs judged clean 0.006–0.056, crown remnants 0.094–0.26 (img8's dark bar 0.26).
MAX_CROWN_HARD_EDGE = 0.07
#: Halo: mean old-backdrop share in the edge band above this is flagged. Calibration composites: real
#: halos on brick 0.18–0.21 (edge spill against the truth 0.09–0.12); clean edges up to 0.13.
MAX_HALO = 0.15
#: Edge band for the halo check, px either side of the 0.5 iso-line.
HALO_BAND_PX = 3
#: A crown run flat to ±FLAT_TOLERANCE_PX over this share of the face width is a cut, not hair.
MAX_FLAT_CROWN_SHARE = 0.35
FLAT_TOLERANCE_PX = 0.75
#: Crown-to-chin over eye-to-chin; adult heads with hair measured 1.7–2.6 on the calibration half.
HEAD_RATIO_RANGE = (1.55, 2.9)


def _weighted_mean(rgb: np.ndarray, weight: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Box-filtered colour mean where `weight` > 0; returns (mean, local weight share)."""
    size = (2 * radius + 1, 2 * radius + 1)
    w = cv2.boxFilter(weight.astype(np.float32), -1, size, borderType=cv2.BORDER_REFLECT)
    s = cv2.boxFilter(rgb.astype(np.float32) * weight[..., None], -1, size, borderType=cv2.BORDER_REFLECT)
    return s / np.maximum(w, 1e-6)[..., None], w


def _radius(alpha: np.ndarray) -> int:
    return max(3, round(COLOUR_RADIUS_FRACTION * alpha.shape[1]))


def remnant_share(rgb: np.ndarray, alpha: np.ndarray) -> float:
    """Share of the frame in matte islands detached from the subject, or in backdrop-coloured blobs the
    matte calls person next to its edge."""
    person = (np.asarray(alpha) >= 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(person, connectivity=8)
    if count <= 1:
        return 0.0
    main = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    # A piece entering from the bottom edge is body (an arm or a shoulder beyond a gap), not backdrop.
    from_below = stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT] >= alpha.shape[0]
    others = [i for i in range(1, count) if i != main and not from_below[i]]
    islands = int(stats[others, cv2.CC_STAT_AREA].sum()) if others else 0
    radius = _radius(alpha)
    backdrop, support = _weighted_mean(rgb, (np.asarray(alpha) < 0.05).astype(np.float32), radius)
    near_edge = cv2.distanceTransform(person, cv2.DIST_L2, 5) <= REMNANT_REACH_FRACTION * alpha.shape[1]
    distance = np.linalg.norm(rgb.astype(np.float32) - backdrop, axis=-1)
    like = (labels == main) & near_edge & (support > 0.15) & (distance < BACKDROP_COLOUR_DISTANCE)
    like = cv2.morphologyEx(like.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, _, blob_stats, _ = cv2.connectedComponentsWithStats(like, connectivity=8)
    min_blob = 0.25 * MAX_REMNANT_SHARE * alpha.size
    blobs = int(sum(a for a in blob_stats[1:, cv2.CC_STAT_AREA] if a >= min_blob)) if n > 1 else 0
    return (islands + blobs) / float(alpha.size)


def colour_bins(rgb: np.ndarray) -> np.ndarray:
    """Each pixel's cell in an 8×8×8 grid of RGB (32 levels a side): cheap, and coarse enough that a plain
    backdrop's noise and JPEG ringing stay in one or two cells."""
    q = np.asarray(rgb, dtype=np.uint8) >> 5
    return (q[..., 0].astype(np.int32) << 6) | (q[..., 1].astype(np.int32) << 3) | q[..., 2]


def _grown(cells: np.ndarray) -> np.ndarray:
    """The cells and some of their neighbours: the grid is dilated as 8 × 64 (red × green·blue), so a cell
    grows to red ± 1 and to blue ± 1 (wrapping into the next green row), plus red ± 1 again with wrap-around
    — not to green ± 1. Measured: a full 26-neighbour growth let the lips' and skin's cells cover the pink
    wall's cell, and img42 and img37 (validation) came out `ok` with their backdrop pieces. The growth the
    thresholds were set with is kept; a colour-distance test would be the principled replacement."""
    grid = cells.reshape(8, 8, 8).astype(np.uint8)
    return cv2.dilate(grid.reshape(8, 64), np.ones((3, 3), np.uint8)).reshape(8, 8, 8).astype(bool) | (
        np.roll(grid, 1, axis=0) | np.roll(grid, -1, axis=0)
    ).astype(bool)


def palette_remnant_share(rgb: np.ndarray, alpha: np.ndarray, face_x: tuple[float, float]) -> float:
    """Share of the frame called person in the old backdrop's own colours — colours the subject does not
    have in the column under the middle half of its face (hair, face, neck, clothes). Catches a plain
    backdrop kept in a corner the matte fills entirely (devset img42: the pink wall beside the neck), where
    no nearby backdrop pixel gives `remnant_share` a local colour."""
    a = np.asarray(alpha)
    bins = colour_bins(rgb)
    background = a < 0.05
    person = a >= 0.5
    width = max(face_x[1] - face_x[0], 1.0)
    depth = cv2.distanceTransform(person.astype(np.uint8), cv2.DIST_L2, 5)
    core = depth > PALETTE_CORE_DEPTH * width
    mid, quarter = (face_x[0] + face_x[1]) / 2.0, width / 4.0
    column = np.zeros_like(core)
    column[:, max(0, int(mid - quarter)) : max(0, int(np.ceil(mid + quarter)))] = True
    core &= column
    if background.sum() < 0.02 * a.size or not core.any():
        return 0.0
    backdrop = np.bincount(bins[background], minlength=512) >= PALETTE_SHARE * background.sum()
    shares = np.bincount(bins[core], minlength=512) / float(core.sum())
    subject = (shares >= PALETTE_SUBJECT_SHARE) | _grown(shares >= PALETTE_SHARE).reshape(-1)
    odd = (backdrop & ~subject)[bins] & person
    odd = cv2.morphologyEx(odd.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(odd, connectivity=8)
    min_blob = 0.25 * MAX_REMNANT_SHARE * a.size
    return float(sum(x for x in stats[1:, cv2.CC_STAT_AREA] if x >= min_blob)) / a.size if n > 1 else 0.0


def side_blob_share(alpha: np.ndarray, face_x: tuple[float, float], crown_y: float, chin_y: float) -> float:
    """Share of the frame called person beside the head, between crown and chin, farther than
    SIDE_REACH_FACTOR face widths from the face box: hair rarely reaches there, a backdrop object does."""
    x0, x1 = face_x
    reach = SIDE_REACH_FACTOR * (x1 - x0)
    h, w = alpha.shape
    r0, r1 = max(0, int(np.floor(crown_y))), min(h, int(np.ceil(chin_y)))
    c0, c1 = max(0, int(np.floor(x0 - reach))), min(w, int(np.ceil(x1 + reach)))
    if r1 <= r0:
        return 0.0
    rows = np.asarray(alpha)[r0:r1] >= 0.5
    return float(rows[:, :c0].sum() + rows[:, c1:].sum()) / float(alpha.size)


def soft_band(alpha: np.ndarray, fg: np.ndarray, face_width: float) -> float:
    """Translucent matte far from the opaque subject and unlike its colour, over the face width squared;
    bottom quarter left out (clothes meet the frame there). See SOFT_REACH_FACTOR."""
    a = np.asarray(alpha, dtype=np.float32)
    core = a >= 0.9
    if not core.any():
        return 0.0
    width = max(face_width, 1.0)
    distance = cv2.distanceTransform((~core).astype(np.uint8), cv2.DIST_L2, 5)
    subject, support = _weighted_mean(fg, core.astype(np.float32), max(3, round(0.08 * width)))
    unlike = np.linalg.norm(np.asarray(fg, dtype=np.float32) - subject, axis=-1) > SOFT_COLOUR_DISTANCE
    band = (a >= SOFT_MIN_ALPHA) & ~core & (distance > SOFT_REACH_FACTOR * width) & (support > 0.02) & unlike
    return float(band[: int(0.75 * a.shape[0])].sum()) / width**2


def crown_hard_edge(alpha: np.ndarray, eye_y: float, face_width: float) -> float:
    """Pixels above the eye line where the matte steps from ≥ 0.9 to ≤ 0.5 within one pixel (4-neighbours),
    over the face width; the frame's own border is left out (a source cut there is `crown_cut`'s)."""
    a = np.asarray(alpha, dtype=np.float32)
    rows = max(0, min(a.shape[0], int(eye_y)))
    if rows < 3 or a.shape[1] < 3:
        return 0.0
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
    lowest = cv2.erode(a[: rows + 1], cross, borderType=cv2.BORDER_REPLICATE)[:rows]
    step = (a[:rows] >= 0.9) & (lowest <= 0.5)
    return float(step[1:, 1:-1].sum()) / max(face_width, 1.0)


def halo_score(rgb: np.ndarray, alpha: np.ndarray, fg: np.ndarray) -> float:
    """Mean old-backdrop share α·c in the edge band, c from `matte_metrics.contamination` with the subject's
    colour taken from its opaque interior nearby and the backdrop's from the source around it."""
    a = np.clip(np.asarray(alpha, dtype=np.float32), 0.0, 1.0)
    radius = _radius(a)
    person = a >= 0.5
    inner = cv2.erode(person.astype(np.uint8), np.ones((2 * HALO_BAND_PX + 3,) * 2, np.uint8)).astype(
        np.float32
    )
    subject, s_support = _weighted_mean(rgb, inner, radius)
    backdrop, b_support = _weighted_mean(rgb, (a < 0.05).astype(np.float32), radius)
    c, measurable = matte_metrics.contamination(fg, subject, backdrop)
    band = matte_metrics.edge_band(a, HALO_BAND_PX) & measurable & (s_support > 0.05) & (b_support > 0.05)
    if not band.any():
        return 0.0
    return float((a * c)[band].mean())


def crown_flat_share(alpha: np.ndarray, x0: float, x1: float) -> float:
    """Longest run of columns in [x0, x1) whose top edge stays within ±FLAT_TOLERANCE_PX, over the span."""
    c0, c1 = max(0, int(np.floor(x0))), min(alpha.shape[1], int(np.ceil(x1)))
    if c1 - c0 < 3:
        return 0.0
    cols = np.asarray(alpha)[:, c0:c1] >= 0.5
    has = cols.any(axis=0)
    tops = np.where(has, cols.argmax(axis=0), -1).astype(np.float64)
    best = run = 1
    for i in range(1, tops.size):
        same = tops[i] >= 0 and tops[i - 1] >= 0 and abs(tops[i] - tops[i - 1]) <= FLAT_TOLERANCE_PX
        run = run + 1 if same else 1
        best = max(best, run)
    return best / float(tops.size)


def matte_flags(
    rgb: np.ndarray,
    alpha: np.ndarray,
    fg: np.ndarray,
    face_x: tuple[float, float],
    crown_y: float,
    eye_y: float,
    chin_y: float,
    edge_alpha: np.ndarray | None = None,
) -> tuple[dict[str, float], list[Flag]]:
    """All the checks on one output (output px). Returns raw measures and the flags they raise.

    `edge_alpha`: the matte before closed-form matting, for the two shape measures calibrated on it,
    `crown_hard_edge` and `soft_band`. The closed-form solve re-draws the edge band from colour and hides
    what the segmenter drew: on its matte clean img14's hard edge measured 0.081 and img8's dark bar 0.070,
    and a rocket's exhaust kept beside a shoulder (composite, bleed 0.9 %) lost its soft band (0.0017).
    The final matte when None."""
    remnant = remnant_share(rgb, alpha)
    palette = palette_remnant_share(rgb, alpha, face_x)
    side = side_blob_share(alpha, face_x, crown_y, chin_y)
    segmented = alpha if edge_alpha is None else edge_alpha
    soft = soft_band(segmented, fg, face_x[1] - face_x[0])
    hard = crown_hard_edge(segmented, eye_y, face_x[1] - face_x[0])
    halo = halo_score(rgb, alpha, fg)
    flat = crown_flat_share(alpha, *face_x)
    ratio = (chin_y - crown_y) / max(chin_y - eye_y, 1e-6)
    metrics = {
        "remnant_share": remnant,
        "palette_remnant_share": palette,
        "side_blob_share": side,
        "soft_band": soft,
        "crown_hard_edge": hard,
        "halo": halo,
        "crown_flat_share": flat,
        "crown_chin_over_eye_chin": ratio,
    }
    flags = []
    remnant_limits = (
        (remnant, MAX_REMNANT_SHARE),
        (palette, MAX_REMNANT_SHARE),
        (side, MAX_SIDE_BLOB_SHARE),
        (soft, MAX_SOFT_BAND),
        (hard, MAX_CROWN_HARD_EDGE),
    )
    if any(value > limit for value, limit in remnant_limits):
        flags.append(BACKGROUND_REMNANT)
    if halo > MAX_HALO:
        flags.append(HALO)
    if flat > MAX_FLAT_CROWN_SHARE or not HEAD_RATIO_RANGE[0] <= ratio <= HEAD_RATIO_RANGE[1]:
        flags.append(CROWN_UNCERTAIN)
    return metrics, flags
