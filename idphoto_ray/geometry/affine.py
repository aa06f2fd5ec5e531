"""Affine bookkeeping: 2×3 matrices composed, applied to points, and carried from working to input pixels.

Every output records where it came from as one input px → output px affine (contracts §6); the steps that
move pixels (levelling, cropping) each contribute one matrix.
"""

from __future__ import annotations

import numpy as np


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> tuple[float, ...]:
    """The 2×3 affine `outer ∘ inner` (apply inner first) as six floats [a, b, c, d, e, f]."""
    o, i = np.asarray(outer, np.float64), np.asarray(inner, np.float64)
    m = o[:, :2] @ i
    m[:, 2] += o[:, 2]
    return tuple(float(v) for v in m.ravel())


def input_affine(working_affine: tuple[float, ...], scale: float) -> list[float]:
    """Input (original resolution, EXIF-upright) px → output px, from working px → output px.

    Working pixel centres sit at (x + 0.5)·scale − 0.5 of the input's (the decoder's resize aligns pixel
    centres), so the input → working step is x·scale + (scale − 1)/2 on both axes.
    """
    offset = (scale - 1.0) / 2.0
    inner = np.array([[scale, 0.0, offset], [0.0, scale, offset]])
    return list(compose_affine(np.asarray(working_affine, np.float64).reshape(2, 3), inner))


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine matrix to (N, 2+) points; extra columns (mesh z) are kept unchanged."""
    pts = np.asarray(points, dtype=np.float64)
    out = pts.copy()
    xy = np.c_[pts[..., :2].reshape(-1, 2), np.ones(pts[..., :2].reshape(-1, 2).shape[0])]
    out[..., :2] = (xy @ np.asarray(matrix, dtype=np.float64).T).reshape(pts[..., :2].shape)
    return out
