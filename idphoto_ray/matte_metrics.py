"""Matte quality measures: one implementation for the benchmark (against a known truth) and the triage checks.

Truth-based errors follow alphamatting.com (Rhemann et al., CVPR 2009) as computed by the Deep Image Matting
evaluation code: SAD and MSE on alpha in [0, 1], the gradient error on Gaussian-derivative magnitudes
(σ = 1.4), the connectivity error with threshold steps of 0.1 and the 0.15 dead zone. SAD, gradient and
connectivity are sums over the frame (alphamatting.com prints them divided by 1000); MSE is a mean.
The ID-photo measures say what a clerk sees: `bleed` (backdrop kept as person), `hair_loss` (hair at the
crown cut away) and `edge_spill` (old background colour left in the edge pixels).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

#: Gaussian σ of the gradient error (alphamatting.com).
GRADIENT_SIGMA = 1.4
#: Threshold step of the connectivity error (alphamatting.com).
CONNECTIVITY_STEP = 0.1
#: Alpha differences below this do not count as disconnected (alphamatting.com's θ).
CONNECTIVITY_THETA = 0.15
#: Pixels within this distance of the truth's person are edge error, not bleed (output px).
BLEED_TOLERANCE_PX = 2
#: Edge spill is measured within this many output px of the truth's 0.5 iso-line: a 1寸 halo is 5–10 px wide.
SPILL_BAND_PX = 8
#: Spill is only measurable where foreground and old background differ by at least this (0–255, RGB norm).
MIN_SPILL_CONTRAST = 40.0


def _pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.clip(np.asarray(pred, dtype=np.float64), 0.0, 1.0)
    t = np.clip(np.asarray(truth, dtype=np.float64), 0.0, 1.0)
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and truth {t.shape} differ in shape")
    return p, t


def sad(pred: np.ndarray, truth: np.ndarray) -> float:
    """Sum of absolute alpha differences over the frame."""
    p, t = _pair(pred, truth)
    return float(np.abs(p - t).sum())


def mse(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean squared alpha difference over the frame."""
    p, t = _pair(pred, truth)
    return float(((p - t) ** 2).mean())


def _gradient_magnitude(alpha: np.ndarray, sigma: float) -> np.ndarray:
    gx = ndimage.gaussian_filter(alpha, sigma, order=(0, 1), mode="nearest")
    gy = ndimage.gaussian_filter(alpha, sigma, order=(1, 0), mode="nearest")
    return np.hypot(gx, gy)


def gradient_error(pred: np.ndarray, truth: np.ndarray, sigma: float = GRADIENT_SIGMA) -> float:
    """Σ (|∇pred| − |∇truth|)², gradients as first derivatives of a Gaussian of width `sigma`."""
    p, t = _pair(pred, truth)
    return float(((_gradient_magnitude(p, sigma) - _gradient_magnitude(t, sigma)) ** 2).sum())


def _largest_component(binary: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros(binary.shape, dtype=bool)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == best


def connectivity_error(pred: np.ndarray, truth: np.ndarray, step: float = CONNECTIVITY_STEP) -> float:
    """Σ |φ(pred) − φ(truth)|, φ = 1 − d·[d ≥ θ], d = alpha minus the level up to which the pixel stays
    4-connected to the largest region both mattes call opaque at that level."""
    p, t = _pair(pred, truth)
    levels = np.arange(0.0, 1.0 + step / 2, step)
    connected_to = np.full(p.shape, -1.0)
    for i in range(1, len(levels)):
        omega = _largest_component((p >= levels[i]) & (t >= levels[i]))
        newly_lost = (connected_to == -1.0) & ~omega
        connected_to[newly_lost] = levels[i - 1]
    connected_to[connected_to == -1.0] = 1.0
    dp, dt = p - connected_to, t - connected_to
    phi_p = 1.0 - dp * (dp >= CONNECTIVITY_THETA)
    phi_t = 1.0 - dt * (dt >= CONNECTIVITY_THETA)
    return float(np.abs(phi_p - phi_t).sum())


def _near(mask: np.ndarray, distance_px: float) -> np.ndarray:
    """Pixels within `distance_px` (Euclidean) of `mask`."""
    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    return dist <= distance_px


def bleed(pred: np.ndarray, truth: np.ndarray, tolerance_px: float = BLEED_TOLERANCE_PX) -> float:
    """Share of the frame the prediction calls person (≥ 0.5) where the truth is background (< 0.5), beyond
    `tolerance_px` of the truth's person: backdrop pieces, not a 1-px shift of the edge."""
    p, t = _pair(pred, truth)
    wrong = (p >= 0.5) & ~_near(t >= 0.5, tolerance_px)
    return float(wrong.mean())


def crown_region(truth: np.ndarray, depth_px: float) -> np.ndarray:
    """Rows from the top of the truth's person down `depth_px` below its crown (the hair above the
    forehead)."""
    rows = np.nonzero((np.asarray(truth) >= 0.5).any(axis=1))[0]
    region = np.zeros(np.asarray(truth).shape, dtype=bool)
    if rows.size:
        region[: int(np.ceil(rows[0] + depth_px))] = True
    return region


def hair_loss(pred: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Share of the truth's alpha mass inside `region` (the crown) that the prediction lost; 0 when empty."""
    p, t = _pair(pred, truth)
    mass = float(t[region].sum())
    if mass <= 0.0:
        return 0.0
    return float(np.clip(t - p, 0.0, None)[region].sum() / mass)


def contamination(fg: np.ndarray, true_fg: np.ndarray, old_bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, how far an estimated foreground colour moved from the true one towards the old background.

    fg ≈ (1 − c)·true_fg + c·old_bg, c from the projection on (old_bg − true_fg), clipped to [0, 1]. Returns
    (c, measurable): c is unreliable where the two colours are close (hair on a backdrop of its own colour).
    """
    f = np.asarray(fg, dtype=np.float64)
    t = np.asarray(true_fg, dtype=np.float64)
    b = np.broadcast_to(np.asarray(old_bg, dtype=np.float64), t.shape)
    direction = b - t
    norm2 = (direction**2).sum(axis=-1)
    measurable = norm2 >= MIN_SPILL_CONTRAST**2
    c = ((f - t) * direction).sum(axis=-1) / np.maximum(norm2, 1e-9)
    return np.clip(c, 0.0, 1.0), measurable


def edge_band(truth: np.ndarray, band_px: float = SPILL_BAND_PX) -> np.ndarray:
    """Pixels within `band_px` of the truth's 0.5 iso-line, on either side."""
    person = np.asarray(truth) >= 0.5
    return _near(person, band_px) & _near(~person, band_px)


def edge_spill(
    fg: np.ndarray,
    alpha: np.ndarray,
    true_fg: np.ndarray,
    old_bg: np.ndarray,
    truth: np.ndarray,
    band_px: float = SPILL_BAND_PX,
) -> float:
    """Mean share of old-background colour in the composited edge pixels: α·c over the truth's edge band.

    α·c is the part of each output pixel (over any new background) that is the old backdrop's colour, so a
    halo of backdrop colour, a too-wide transition or undecontaminated edge colours all raise it.
    """
    c, measurable = contamination(fg, true_fg, old_bg)
    a = np.clip(np.asarray(alpha, dtype=np.float64), 0.0, 1.0)
    band = edge_band(truth, band_px) & measurable
    if not band.any():
        return 0.0
    return float((a * c)[band].mean())


def edge_colour_error(
    fg: np.ndarray, alpha: np.ndarray, true_fg: np.ndarray, truth: np.ndarray, band_px: float = SPILL_BAND_PX
) -> float:
    """Mean α·|fg − true_fg| / 255 (RGB norm) over the truth's edge band: any visible colour error at the
    edge, including decontamination that overshoots past the subject's colour (which edge_spill does not
    count)."""
    a = np.clip(np.asarray(alpha, dtype=np.float64), 0.0, 1.0)
    diff = np.linalg.norm(np.asarray(fg, dtype=np.float64) - np.asarray(true_fg, dtype=np.float64), axis=-1)
    band = edge_band(truth, band_px)
    if not band.any():
        return 0.0
    return float((a * diff)[band].mean() / 255.0)
