"""Above the eyes, where the segmenter was unsure, the matte follows colour: backdrop-coloured pixels go.

IS-Net leaves a soft zone where stray hair crosses the backdrop. Refinement snaps what lies beyond its
band to opaque and closed-form matting follows the JPEG's 8-px blocks there, so on a dark curtain the crown
came out with opaque dark blocks (validation img55) and on a blue-grey wall with a blotchy fringe
(calibration img23). Here each such pixel is set against two small palettes, the hair's (k-means of the
solid matte above the eyes) and the backdrop's (of the background above the eyes): a pixel nearer the
backdrop's colours has its alpha lowered, one nearer the hair's keeps it, so strands stay and blocks go.

Only where colour can decide: the pixel's nearest hair and backdrop colours at least `SEPARATION` apart
(a brown wall behind brown hair cut 5–8 % of the crown without this) and a plain backdrop around it
(`TEXTURE`: gravel and brick cut 10–13 %); only where the segmenter's own alpha was below `UNSURE` (a grey
head on a grey wall lost opaque hair without this, calibration img38); never below the eye line, never
raised. Measured on the calibration composites (IS-Net): crown hair loss ≤ 10 % on all as before (p90
3.4 → 3.8 %), SAD 0.51 → 0.52; on the validation composites edge spill −9 % (docs/quality.md).
"""

from __future__ import annotations

import cv2
import numpy as np

#: How far inside the matte's edge a pixel may be changed, in face widths (≈ 12 px of a 1寸 photo).
DEPTH = 0.08
#: Gaussian radius of the backdrop's local texture measure, in face widths.
SIGMA = 0.12
#: Palette sizes: hair, forehead and highlights need more colours than a plain backdrop.
HAIR_COLOURS, BACKDROP_COLOURS = 8, 4
#: Distance ratio to the backdrop's colours (0 = backdrop, 0.5 = halfway) below which alpha is 0; it rises
#: to the input's at 0.5.
BACKDROP_RATIO = 0.2
#: RGB distance between the pixel's nearest hair and backdrop colours: no change below the first, full
#: effect from the second.
SEPARATION = (15.0, 30.0)
#: Local standard deviation of the backdrop (RGB levels): full effect below the first, none above the second.
TEXTURE = (12.0, 24.0)
#: The segmenter's alpha at or above this is its own opaque call, kept.
UNSURE = 0.97
#: Samples per palette (k-means cost) and the smallest sample a palette is built from.
MAX_SAMPLES, MIN_SAMPLES = 3000, 50


def _palette(pixels: np.ndarray, k: int) -> np.ndarray:
    """k representative colours (k-means with OpenCV's process-wide RNG seeded: the same photo gives the same
    output in any process)."""
    if len(pixels) > MAX_SAMPLES:
        pixels = pixels[np.random.default_rng(0).choice(len(pixels), MAX_SAMPLES, replace=False)]
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    _, _, centres = cv2.kmeans(
        np.ascontiguousarray(pixels, np.float32), k, None, criteria, 2, cv2.KMEANS_PP_CENTERS
    )
    return centres


def _nearest(pixels: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to, and index of, each pixel's nearest palette colour."""
    d = np.sqrt(((pixels[:, None, :] - palette[None]) ** 2).sum(-1))
    index = d.argmin(1)
    return d[np.arange(len(pixels)), index], index


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of h×w×c at a quarter of the size: the full-size blur at σ ≈ 18 px was 20 ms of this
    step's 50 (loaded machine; the step is now ~23 ms quiet), and the measure it feeds is smooth anyway."""
    factor = max(1, int(sigma // 4))
    size = (x.shape[1], x.shape[0])
    small = (max(1, size[0] // factor), max(1, size[1] // factor))
    blurred = [
        cv2.resize(
            cv2.GaussianBlur(
                cv2.resize(x[..., i], small, interpolation=cv2.INTER_AREA), (0, 0), sigma / factor
            ),
            size,
            interpolation=cv2.INTER_LINEAR,
        )
        for i in range(x.shape[2])
    ]
    return np.stack(blurred, axis=2)


def _backdrop_texture(img: np.ndarray, backdrop: np.ndarray, sigma: float, rows: int) -> np.ndarray:
    """Local standard deviation of the backdrop's colour (mean over channels), from backdrop pixels only,
    for the first `rows` rows."""
    end = min(img.shape[0], rows + int(np.ceil(3 * sigma)))
    b = backdrop[:end, :, None].astype(np.float32)
    part = img[:end] * b
    sums = _smooth(np.concatenate([b, part, part * img[:end]], axis=2), sigma)
    weight = np.maximum(sums[..., :1], 1e-6)
    mean, square = sums[..., 1:4] / weight, sums[..., 4:7] / weight
    return np.sqrt(np.maximum(square - mean * mean, 0.0).mean(axis=2))[:rows]


def crown_ceiling(
    rgb: np.ndarray,
    alpha: np.ndarray,
    model_alpha: np.ndarray,
    eye_row: float,
    face_width: float,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """The most alpha each pixel of the crop `rgb` may keep (1 where colour does not decide), from its
    refined matte `alpha`; mattes are lowered with `np.minimum(matte, ceiling)`.

    `model_alpha` is the segmenter's matte warped to the crop (where it was unsure), `eye_row` the eyes'
    row and `face_width` the face's width, in crop px; `valid` < 1 marks padding past the photo, which is
    neither hair nor backdrop.
    """
    h, w = alpha.shape
    ceiling = np.ones((h, w), np.float32)
    top = int(np.clip(np.floor(eye_row), 0, h))
    if top == 0:
        return ceiling
    inside = np.ones((h, w), bool) if valid is None else np.asarray(valid) >= 1.0
    d = max(2, int(round(DEPTH * face_width)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1))
    hair = cv2.erode((alpha >= 0.98).astype(np.uint8), kernel).astype(bool) & inside
    backdrop_all = (alpha < 0.02) & inside
    backdrop = backdrop_all.copy()
    zone = cv2.dilate((alpha < 0.5).astype(np.uint8), kernel).astype(bool) & (alpha > 0.0) & inside
    zone &= np.asarray(model_alpha) < UNSURE
    hair[top:] = backdrop[top:] = zone[top:] = False
    if not zone.any() or hair.sum() < MIN_SAMPLES or backdrop.sum() < MIN_SAMPLES:
        return ceiling

    img = rgb.astype(np.float32)
    hair_palette = _palette(img[hair], HAIR_COLOURS)
    back_palette = _palette(img[backdrop], BACKDROP_COLOURS)
    pixels = img[zone]
    d_hair, i_hair = _nearest(pixels, hair_palette)
    d_back, i_back = _nearest(pixels, back_palette)
    ratio = d_back / np.maximum(d_back + d_hair, 1e-6)
    cap = np.clip((ratio - BACKDROP_RATIO) / (0.5 - BACKDROP_RATIO), 0.0, 1.0)
    separation = np.sqrt(((hair_palette[i_hair] - back_palette[i_back]) ** 2).sum(-1))
    trust = np.clip((separation - SEPARATION[0]) / (SEPARATION[1] - SEPARATION[0]), 0.0, 1.0)
    texture = _backdrop_texture(img, backdrop_all, max(1.0, SIGMA * face_width), top)[zone[:top]]
    trust *= np.clip((TEXTURE[1] - texture) / (TEXTURE[1] - TEXTURE[0]), 0.0, 1.0)

    ceiling[zone] = 1.0 - trust * (1.0 - cap)
    ceiling = cv2.GaussianBlur(ceiling, (0, 0), 1.0)  # one pixel's JPEG noise does not decide alone
    ceiling[~zone] = 1.0
    return ceiling
