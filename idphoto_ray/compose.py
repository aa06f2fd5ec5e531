"""Alpha compositing of the (decontaminated) foreground over a background colour or transparency."""

from __future__ import annotations

import numpy as np

from idphoto_ray.backgrounds import Background


def composite(fg_rgb: np.ndarray, alpha: np.ndarray, background: Background) -> np.ndarray:
    """Straight (non-premultiplied) alpha blend in float32.

    Returns H×W×3 uint8 over a solid colour, or H×W×4 RGBA with straight alpha when background.rgb is
    None (transparent): the RGB there is the decontaminated foreground, so edges stay clean on any
    colour the user later puts behind it.
    """
    a = np.clip(np.asarray(alpha, dtype=np.float32), 0.0, 1.0)
    fg = np.asarray(fg_rgb, dtype=np.float32)
    if background.rgb is None:
        a8 = np.rint(a * 255.0).astype(np.uint8)
        return np.dstack([np.asarray(fg_rgb, dtype=np.uint8), a8])
    bg = np.asarray(background.rgb, dtype=np.float32).reshape(1, 1, 3)
    out = fg * a[..., None] + bg * (1.0 - a[..., None])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
