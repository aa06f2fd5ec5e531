"""The crown's unsure edge decided by colour (crown_colour.py): synthetic crops with a known answer."""

from __future__ import annotations

import numpy as np

from idphoto_ray.crown_colour import crown_ceiling

H, W = 200, 160
EYE_ROW = 120.0
FACE_W = 100.0
HAIR = np.array([150, 95, 45], np.float32)
BACKDROP = np.array([20, 40, 30], np.float32)


def crop(backdrop=BACKDROP, noise: float = 3.0, seed: int = 0):
    """A hair dome on a plain backdrop: rgb, the refined matte, the segmenter's matte (sure inside)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    dome = ((xx - W / 2) / 60.0) ** 2 + ((yy - 130) / 90.0) ** 2 <= 1.0
    rgb = np.where(dome[..., None], HAIR, backdrop) + rng.normal(0, noise, (H, W, 3))
    alpha = dome.astype(np.float32)
    return rgb, alpha, alpha.copy()


def finish(rgb):
    return np.clip(rgb, 0, 255).astype(np.uint8)


def crown_colour_alpha(rgb, alpha, model, eye_row, face_width, valid=None):
    return np.minimum(alpha, crown_ceiling(rgb, alpha, model, eye_row, face_width, valid))


def add_block(rgb, alpha, model, rows, cols, colour, model_value=0.8):
    """An opaque piece on top of the dome in `colour`, where the segmenter was unsure."""
    rgb[rows, cols] = colour
    alpha[rows, cols] = 1.0
    model[rows, cols] = model_value


def test_a_backdrop_coloured_block_at_the_crown_goes_and_hair_coloured_strands_stay():
    rgb, alpha, model = crop()
    block = (slice(30, 42), slice(60, 74))
    strand = (slice(26, 42), slice(90, 95))
    add_block(rgb, alpha, model, *block, BACKDROP)
    add_block(rgb, alpha, model, *strand, HAIR, model_value=0.6)
    out = crown_colour_alpha(finish(rgb), alpha, model, EYE_ROW, FACE_W)
    assert out[block].mean() < 0.2
    assert out[30:40, 92].min() > 0.7
    assert np.array_equal(out[80:, :], alpha[80:, :])  # hair deep inside and below: untouched
    assert (out <= alpha).all()


def test_nothing_changes_below_the_eye_line():
    rgb, alpha, model = crop()
    block = (slice(125, 137), slice(12, 24))
    add_block(rgb, alpha, model, *block, BACKDROP)
    out = crown_colour_alpha(finish(rgb), alpha, model, EYE_ROW, FACE_W)
    assert np.array_equal(out[int(EYE_ROW) :], alpha[int(EYE_ROW) :])


def test_what_the_segmenter_called_opaque_is_kept():
    rgb, alpha, model = crop()
    block = (slice(30, 42), slice(60, 74))
    add_block(rgb, alpha, model, *block, BACKDROP, model_value=1.0)
    out = crown_colour_alpha(finish(rgb), alpha, model, EYE_ROW, FACE_W)
    assert np.array_equal(out, alpha)


def test_a_backdrop_close_to_the_hair_colour_changes_nothing():
    """Brown hair on a brown wall: colour cannot tell them apart, so the matte stays as it was."""
    near = HAIR + np.array([8, 6, 6], np.float32)
    rgb, alpha, model = crop(backdrop=near)
    block = (slice(30, 42), slice(60, 74))
    add_block(rgb, alpha, model, *block, near)
    out = crown_colour_alpha(finish(rgb), alpha, model, EYE_ROW, FACE_W)
    assert np.allclose(out[block], 1.0)


def test_a_textured_backdrop_changes_nothing():
    rgb, alpha, model = crop(noise=45.0)
    block = (slice(30, 42), slice(60, 74))
    add_block(rgb, alpha, model, *block, BACKDROP)
    out = crown_colour_alpha(finish(rgb), alpha, model, EYE_ROW, FACE_W)
    assert out[block].mean() > 0.95


def test_padding_past_the_photo_is_not_taken_for_backdrop():
    """Rows the crop padded past the photo (valid 0) repeat the photo's edge with alpha 0. Taken for
    backdrop they would make it look textured next to them, and a block there would stay."""
    rgb, alpha, model = crop()
    valid = np.ones((H, W), np.float32)
    valid[:24] = 0.0
    rgb[:24] = HAIR
    block = (slice(30, 42), slice(60, 74))
    add_block(rgb, alpha, model, *block, BACKDROP)
    out = crown_colour_alpha(finish(rgb), alpha, model, EYE_ROW, FACE_W, valid)
    assert out[block].mean() < 0.2
    assert np.array_equal(out[:24], alpha[:24])


def test_degenerate_crops_leave_the_matte_alone():
    rgb, alpha, model = crop()
    ones = np.ones((H, W), np.float32)
    assert np.array_equal(crown_ceiling(finish(rgb), alpha, model, 0.0, FACE_W), ones)  # eyes at the top
    empty = np.zeros((H, W), np.float32)
    assert np.array_equal(crown_ceiling(finish(rgb), empty, empty, EYE_ROW, FACE_W), ones)
    full = np.ones((H, W), np.float32)  # no backdrop to learn colours from
    assert np.array_equal(crown_ceiling(finish(rgb), full, full * 0.5, EYE_ROW, FACE_W), ones)
