"""Straight alpha compositing."""

from __future__ import annotations

import numpy as np

from idphoto_ray.backgrounds import parse_background
from idphoto_ray.compose import composite


def test_solid_background_blend_is_straight_alpha():
    fg = np.full((2, 3, 3), [200, 100, 50], np.uint8)
    alpha = np.array([[0.0, 0.5, 1.0], [0.25, 0.75, 1.0]], np.float32)
    out = composite(fg, alpha, parse_background("#000000"))
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [100, 50, 25]
    assert out[0, 2].tolist() == [200, 100, 50]
    white = composite(fg, alpha, parse_background("white"))
    assert white[1, 0].tolist() == [241, 216, 204]  # 0.25·fg + 0.75·255


def test_transparent_gives_rgba_with_unpremultiplied_colour():
    fg = np.full((2, 2, 3), [10, 20, 30], np.uint8)
    alpha = np.array([[0.0, 0.5], [1.0, 1.2]], np.float32)
    out = composite(fg, alpha, parse_background("transparent"))
    assert out.shape == (2, 2, 4)
    assert out[..., 3].tolist() == [[0, 128], [255, 255]]
    assert (out[..., :3] == [10, 20, 30]).all()
