"""Does an output's `affine` say where its pixels came from? Warp the input with it, compare the subject."""

from __future__ import annotations

import cv2
import numpy as np


def subject_error(
    input_rgb: np.ndarray,
    output_rgb: np.ndarray,
    affine,
    background: tuple[int, int, int],
    shift: float = 0.0,
) -> float:
    """Mean |warped input − output| (0–255) over the output's subject pixels, away from the matte's edge.

    Subject = pixels far from the plain background colour, eroded by 5 px so matting and JPEG at the
    outline do not count. `shift` moves the affine right by that many output px (a control that must fail).
    """
    m = np.asarray(affine, np.float64).reshape(2, 3).copy()
    m[0, 2] += shift
    h, w = output_rgb.shape[:2]
    warped = cv2.warpAffine(
        input_rgb,
        m,
        (w, h),
        flags=cv2.INTER_AREA if m[0, 0] < 0.5 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    far = np.abs(output_rgb.astype(int) - np.array(background)).sum(axis=2) > 120
    subject = cv2.erode(far.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
    assert subject.mean() > 0.2, "too little subject to compare"
    diff = np.abs(warped.astype(int) - output_rgb.astype(int)).mean(axis=2)
    return float(diff[subject].mean())
