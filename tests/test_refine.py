"""Alpha refinement: mask clean-up, guided filter, decontamination, closed-form fallback."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from idphoto_ray import matte_metrics, refine
from idphoto_ray.backgrounds import parse_background
from idphoto_ray.compose import composite
from idphoto_ray.refine import (
    _small_enclosed_holes,
    clean_mask,
    closed_form_alpha,
    decontaminate,
    edge_band,
    guided_filter,
    person_alpha,
    refine_alpha_crop,
    upsample_mask,
)


def disc(h: int = 300, w: int = 240, center=(120, 170), axes=(70, 110)) -> np.ndarray:
    out = np.zeros((h, w), np.float32)
    cv2.ellipse(out, center, axes, 0, 0, 360, 1.0, -1)
    return out


def red_excess(rgb: np.ndarray, band: np.ndarray) -> float:
    x = rgb.astype(np.float64)
    return float((x[..., 0] - (x[..., 1] + x[..., 2]) / 2.0)[band].mean())


def test_upsample_covers_the_whole_image_bilinear():
    mask = np.zeros((4, 4), np.float32)
    mask[:, 2:] = 1.0
    up = upsample_mask(mask, (40, 80, 3))
    assert up.shape == (40, 80) and up.dtype == np.float32
    assert up[:, :30].max() == 0.0 and up[:, 50:].min() == 1.0 and abs(up[0, 40] - 0.5) < 0.05


def test_clean_mask_keeps_the_face_component_and_fills_small_holes():
    alpha = disc()
    alpha[150:160, 110:120] = 0.0  # hole inside the person
    cv2.circle(alpha, (215, 30), 12, 1.0, -1)  # stray blob away from the subject
    out = clean_mask(alpha, (80, 90, 160, 200))
    assert out[155, 115] == 1.0
    assert out[30, 215] == 0.0
    assert out[170, 120] == 1.0


def _holes_by_full_labelling(person: np.ndarray, max_area: float) -> np.ndarray:
    """Reference: label the whole background; holes are components off the border, small enough."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((person == 0).astype(np.uint8), connectivity=4)
    border = set(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]).tolist())
    keep = [k for k in range(1, count) if k not in border and stats[k, cv2.CC_STAT_AREA] <= max_area]
    return np.isin(labels, keep)


@pytest.mark.parametrize("seed", range(6))
def test_hole_search_in_the_person_box_equals_labelling_the_whole_image(seed):
    rng = np.random.default_rng(seed)
    person = np.zeros((120, 160), np.uint8)
    y0, x0 = rng.integers(0, 30), rng.integers(0, 40)
    person[y0 : y0 + rng.integers(60, 120), x0 : x0 + rng.integers(60, 120)] = 1  # may touch the border
    for _ in range(25):  # holes of many sizes, some open to the outside, some at the box edge
        y, x, size = rng.integers(0, 120), rng.integers(0, 160), rng.integers(1, 14)
        person[y : y + size, x : x + size] = 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(person, connectivity=8)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    person = (labels == best).astype(np.uint8)
    bbox = tuple(int(v) for v in stats[best, :4])
    for max_area in (4, 40, 10_000):
        expected = _holes_by_full_labelling(person, max_area)
        np.testing.assert_array_equal(_small_enclosed_holes(person, bbox, max_area), expected)
    assert _holes_by_full_labelling(person, 10_000).any()  # the case has holes to find


def test_clean_mask_is_empty_when_nothing_touches_the_face():
    assert clean_mask(disc(), (0, 0, 10, 10)).max() == 0.0


def test_guided_filter_grey_and_colour_keep_constants_and_follow_edges():
    grey = np.zeros((60, 60), np.float32)
    grey[:, 30:] = 1.0
    src = cv2.GaussianBlur(grey, (0, 0), 4)
    out = guided_filter(grey, src, 4, 1e-4)
    assert out[30, 30] - out[30, 29] > 3 * (
        src[30, 30] - src[30, 29]
    )  # the step comes back at the guide's edge
    colour = np.dstack([grey, 1 - grey, np.full_like(grey, 0.5)])
    out_c = guided_filter(colour, src, 4, 1e-4)
    assert out_c.shape == grey.shape and out_c[30, 30] - out_c[30, 29] > 3 * (src[30, 30] - src[30, 29])
    flat = guided_filter(colour, np.full_like(grey, 0.3), 3, 1e-3)
    assert np.allclose(flat, 0.3, atol=1e-4)


def _colour_guided_filter_by_solve(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Reference: He et al.'s colour guided filter with one linear solve per pixel."""

    def box(x):
        return cv2.boxFilter(x, -1, (2 * radius + 1,) * 2, normalize=True, borderType=cv2.BORDER_REFLECT)

    mean_p, mean_i = box(src), box(guide)
    cov = box(guide * src[..., None]) - mean_i * mean_p[..., None]
    sigma = np.empty(guide.shape[:2] + (3, 3), np.float64)
    for i in range(3):
        for j in range(3):
            sigma[..., i, j] = box(guide[..., i] * guide[..., j]) - mean_i[..., i] * mean_i[..., j]
    sigma += eps * np.eye(3)
    a = np.linalg.solve(sigma, cov[..., None].astype(np.float64))[..., 0].astype(np.float32)
    b = mean_p - np.einsum("hwc,hwc->hw", a, mean_i)
    return np.einsum("hwc,hwc->hw", box(a), guide) + box(b)


@pytest.mark.parametrize("seed", range(3))
def test_colour_guided_filter_matches_a_per_pixel_solve(seed):
    rng = np.random.default_rng(seed)
    guide = rng.random((50, 40, 3), dtype=np.float32)
    guide[:, :20] *= 0.05  # near-flat region: Σ close to εI, where the closed-form inverse must still hold
    src = rng.random((50, 40), dtype=np.float32)
    for radius, eps in ((2, 1e-3), (5, 1e-4)):
        expected = _colour_guided_filter_by_solve(guide, src, radius, eps)
        np.testing.assert_allclose(guided_filter(guide, src, radius, eps), expected, atol=1e-4)


def test_refine_only_changes_the_edge_band():
    truth = disc()
    coarse = cv2.resize(cv2.resize(truth, (64, 64), interpolation=cv2.INTER_AREA), (240, 300))
    rgb = np.where(truth[..., None] > 0.5, [200, 170, 150], [40, 80, 40]).astype(np.uint8)
    refined = refine_alpha_crop(rgb, coarse, 5)
    band = edge_band(coarse, 5)
    assert np.array_equal(refined[~band], (coarse[~band] >= 0.5).astype(np.float32))
    assert np.abs(refined - truth)[band].mean() < np.abs(coarse - truth)[band].mean()


@pytest.mark.parametrize("method", ["blur-fusion", "ml"])
def test_decontamination_removes_red_fringe_on_blue(method):
    """A skin-coloured subject shot against a saturated red wall with a soft (σ=3 blurred) edge, composited
    on blue. Mean red excess R − (G+B)/2 in the 3-px band around the alpha 0.5 iso-line, measured:
    true foreground +alpha: −37.9; observed pixels without decontamination: +6.3; with: −36.9.
    With the alpha re-estimated by refine_alpha_crop from a 64² coarse mask: +5.4 without, −30.9 with.
    """
    alpha = cv2.GaussianBlur(disc(), (0, 0), 3.0)
    rng = np.random.default_rng(0)
    fg = np.clip(np.array([200.0, 170.0, 150.0]) + rng.normal(0, 8, alpha.shape + (3,)), 0, 255)
    red = np.array([255.0, 0.0, 0.0])
    observed = np.rint(fg * alpha[..., None] + red * (1 - alpha[..., None])).astype(np.uint8)
    blue = parse_background("blue")
    band = edge_band(alpha, 3)

    without = red_excess(composite(observed, alpha, blue), band)
    with_ = red_excess(composite(decontaminate(observed, alpha, method), alpha, blue), band)
    assert with_ < without - 30.0
    assert without > 0.0 > with_

    coarse = cv2.resize(cv2.resize(disc(), (64, 64), interpolation=cv2.INTER_AREA), (240, 300))
    refined = refine_alpha_crop(observed, coarse, 5)
    assert (
        red_excess(composite(decontaminate(observed, refined, method), refined, blue), band)
        < red_excess(composite(observed, refined, blue), band) - 20.0
    )


def test_fine_blur_fusion_passes_bring_edge_colours_closer_to_the_true_foreground(monkeypatch):
    """Dark hair over light skin (the local foreground mean changes along the edge) on a red wall, σ=2 soft
    edge, true alpha. Edge spill / colour error (matte_metrics, 6-px band), measured: undecontaminated
    0.0965; one fine pass (6 px) 0.0073 / 0.0078; two fine passes (6, 3 px, the default) 0.0063 / 0.0071."""
    alpha = cv2.GaussianBlur(disc(), (0, 0), 2.0)
    fg = np.zeros(alpha.shape + (3,))
    fg[:] = [200.0, 170.0, 150.0]
    fg[: alpha.shape[0] // 2] = [70.0, 50.0, 40.0]
    fg = np.clip(cv2.GaussianBlur(fg, (0, 0), 4) + np.random.default_rng(0).normal(0, 6, fg.shape), 0, 255)
    wall = np.array([220.0, 30.0, 30.0])
    observed = np.rint(fg * alpha[..., None] + wall * (1 - alpha[..., None])).astype(np.uint8)

    def errors() -> tuple[float, float]:
        out = decontaminate(observed, alpha).astype(np.float64)
        return (
            matte_metrics.edge_spill(out, alpha, fg, wall, alpha, 6),
            matte_metrics.edge_colour_error(out, alpha, fg, alpha, 6),
        )

    spill, colour = errors()
    monkeypatch.setattr(refine, "BLUR_FUSION_FINE_RADII", (6,))
    spill_one_pass, colour_one_pass = errors()
    none = matte_metrics.edge_spill(observed.astype(np.float64), alpha, fg, wall, alpha, 6)
    assert spill < 0.9 * spill_one_pass and colour < 0.95 * colour_one_pass
    assert spill < 0.1 * none


@pytest.mark.parametrize("method", ["blur-fusion", "ml"])
def test_decontaminate_leaves_opaque_and_empty_pixels_alone(method):
    alpha = cv2.GaussianBlur(disc(), (0, 0), 2.0)
    rgb = np.random.default_rng(1).integers(0, 255, alpha.shape + (3,), dtype=np.uint8)
    out = decontaminate(rgb, alpha, method)
    hard = (alpha == 0) | (alpha == 1)
    assert np.array_equal(out[hard], rgb[hard])
    assert np.array_equal(decontaminate(rgb, np.ones_like(alpha)), rgb)


def test_closed_form_improves_or_falls_back():
    truth = cv2.GaussianBlur(disc(120, 100, (50, 70), (30, 45)), (0, 0), 1.5)
    fg, bg = np.array([210.0, 180.0, 160.0]), np.array([30.0, 90.0, 200.0])
    rgb = np.rint(fg * truth[..., None] + bg * (1 - truth[..., None])).astype(np.uint8)
    rough = (truth > 0.5).astype(np.float32)
    cf = closed_form_alpha(rgb, rough, band_px=4)
    band = edge_band(rough, 3)
    assert np.abs(cf - truth)[band].mean() < np.abs(rough - truth)[band].mean()
    assert closed_form_alpha(rgb, np.zeros_like(rough)) is not None  # degenerate trimap: no exception


def test_closed_form_is_regularised_with_cf_epsilon(monkeypatch):
    """The solver gets `CF_EPSILON` (1e-5), not pymatting's 1e-7 that followed JPEG blocks on dark-on-dark
    edges; what it does to real photos is in docs/quality.md (the benchmark), not here."""
    import pymatting

    from idphoto_ray import refine

    seen = {}

    def solver(image, trimap, laplacian_kwargs=None, **kwargs):
        seen.update(laplacian_kwargs or {})
        return np.where(trimap == 0.5, 0.5, trimap)

    monkeypatch.setattr(pymatting, "estimate_alpha_cf", solver)
    rough = cv2.GaussianBlur(disc(), (0, 0), 2.0)
    rgb = np.zeros(rough.shape + (3,), np.uint8)
    closed_form_alpha(rgb, rough, band_px=4)
    assert seen == {"epsilon": refine.CF_EPSILON} and refine.CF_EPSILON == 1e-5


def test_closed_form_keeps_the_alpha_where_the_crop_runs_past_the_photo():
    """A crown cut off by the photo's top edge (rows above it replicated, valid 0, mask 0): the straight
    edge is the photo's, not the subject's. Measured on the 4 rows below it, inside the subject: 1.00
    (min 0.97) with `valid`, 0.61 (down to 0.06) without; the side edges still follow the colours (error
    0.031, rough mask 0.187).
    """
    truth = cv2.GaussianBlur(disc(120, 100, (50, 60), (30, 70)), (0, 0), 1.5)
    fg, bg = np.array([60.0, 45.0, 35.0]), np.array([30.0, 90.0, 200.0])
    rgb = fg * truth[..., None] + bg * (1 - truth[..., None])
    rgb += np.random.default_rng(0).normal(0, 6, rgb.shape)
    rgb[:20] = rgb[20]
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    valid = np.ones(truth.shape, np.float32)
    valid[:20] = 0.0
    rough = ((truth > 0.5) * valid).astype(np.float32)

    kept = closed_form_alpha(rgb, rough, band_px=4, valid=valid)
    cut = closed_form_alpha(rgb, rough, band_px=4)
    inside = truth[30] > 0.99
    assert kept[20:24][:, inside].mean() > 0.99 and kept[20:24][:, inside].min() > 0.95
    assert cut[20:24][:, inside].mean() < 0.9  # what the photo's edge did without `valid`
    sides = edge_band(rough, 3) & (np.arange(120)[:, None] >= 30)
    assert np.abs(kept - truth)[sides].mean() < 0.5 * np.abs(rough - truth)[sides].mean()


def _model_mask_with_blob_and_hole() -> np.ndarray:
    """A 256² model mask with soft edges (as a model gives them): the person, a hole, a stray blob."""
    mask = np.zeros((256, 256), np.float32)
    cv2.ellipse(mask, (128, 150), (60, 95), 0, 0, 360, 1.0, -1)
    mask[140:144, 120:124] = 0.0  # a hole in the torso, 16 of ~18k model pixels
    cv2.circle(mask, (230, 25), 10, 1.0, -1)  # a lamp
    return cv2.GaussianBlur(mask, (5, 5), 1.0)


def test_person_alpha_at_model_resolution_matches_cleaning_after_upsampling():
    mask = _model_mask_with_blob_and_hole()
    shape = (1200, 900, 3)  # working image 900×1200, the mask squeezed to 256² like the model's input
    face_box = (380.0, 280.0, 520.0, 460.0)
    new = person_alpha(mask, shape, face_box)
    old = clean_mask(upsample_mask(mask, shape), face_box)
    assert new.shape == (1200, 900) and new.dtype == np.float32
    ys, xs = 25 * 1200 / 256, 230 * 900 / 256
    assert new[int(ys), int(xs)] == 0.0 and old[int(ys), int(xs)] == 0.0  # the lamp is gone
    hole = (int(142 * 1200 / 256), int(122 * 900 / 256))
    assert new[hole] == 1.0 and old[hole] == 1.0  # the hole is filled
    # Away from the filled hole, wherever cleaning after upsampling kept alpha, both give the upsampled mask
    # itself; the model-resolution clean-up keeps more of the mask's soft ramp (two model pixels against
    # three working pixels) and never adds alpha the model did not give.
    up = upsample_mask(mask, shape)
    rim = np.zeros(up.shape, bool)
    rim[int(135 * 1200 / 256) : int(150 * 1200 / 256), int(115 * 900 / 256) : int(130 * 900 / 256)] = True
    np.testing.assert_array_equal(new[(old > 0) & ~rim], old[(old > 0) & ~rim])
    assert np.all(new[~rim] <= up[~rim])
    assert float(new[(old == 0) & ~rim].max()) < 0.5  # only the outer ramp, below the person threshold


def test_person_alpha_finds_a_face_smaller_than_a_model_pixel():
    mask = np.zeros((16, 16), np.float32)
    mask[6:12, 6:10] = 1.0
    alpha = person_alpha(mask, (1600, 1600), (700.0, 650.0, 705.0, 655.0))  # 5 px of 100 per model pixel
    assert alpha.max() == 1.0


def test_person_alpha_is_empty_when_nothing_touches_the_face():
    assert person_alpha(_model_mask_with_blob_and_hole(), (1200, 900), (0.0, 0.0, 20.0, 20.0)).max() == 0.0


def test_fill_enclosed_holes_fills_what_the_subject_surrounds_only():
    from idphoto_ray.refine import fill_enclosed_holes

    alpha = np.zeros((100, 100), np.float32)
    alpha[20:100, 20:80] = 1.0
    alpha[50:54, 40:44] = 0.1  # an earring punched through: enclosed
    alpha[60:100, 48:52] = 0.0  # a gap reaching the bottom edge: not enclosed
    filled = fill_enclosed_holes(alpha)
    assert filled[50:54, 40:44].min() == 1.0
    assert filled[70, 50] == 0.0 and filled[5, 5] == 0.0
