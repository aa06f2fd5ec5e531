"""Matte measures on synthetic mattes whose answers are known exactly (or analytically)."""

from __future__ import annotations

import numpy as np
import pytest

from idphoto_ray import matte_metrics as mm


def _disc(shape: tuple[int, int], center: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (((yy - center[0]) ** 2 + (xx - center[1]) ** 2) <= radius**2).astype(np.float64)


def test_sad_and_mse_exact():
    truth = np.zeros((10, 10))
    truth[2:4, 0:5] = 1.0
    pred = np.full((10, 10), 0.5)
    assert mm.sad(truth, truth) == 0.0
    assert mm.sad(np.zeros_like(truth), truth) == 10.0
    assert mm.sad(pred, truth) == pytest.approx(50.0)  # 0.5 on all 100 pixels
    assert mm.mse(pred, truth) == pytest.approx(0.25)


def test_shapes_must_match():
    with pytest.raises(ValueError):
        mm.sad(np.zeros((3, 3)), np.zeros((3, 4)))


def test_gradient_error_of_a_step_matches_the_gaussian_integral():
    """A unit step smoothed by a Gaussian has |∇| = N(x; σ); Σ_x N² = 1 / (2σ√π) per row.

    The sampled derivative kernel at σ = 1.4 sums about 2 % above the continuous integral.
    """
    h, w = 40, 200
    step = np.zeros((h, w))
    step[:, w // 2 :] = 1.0
    flat = np.zeros((h, w))
    assert mm.gradient_error(step, step) == 0.0
    expected = h / (2 * mm.GRADIENT_SIGMA * np.sqrt(np.pi))
    assert mm.gradient_error(flat, step) == pytest.approx(expected, rel=0.03)
    assert mm.gradient_error(step, flat) == pytest.approx(expected, rel=0.03)


def test_connectivity_error_counts_a_detached_island_pixel_for_pixel():
    truth = _disc((60, 60), (30, 20), 12)
    pred = truth.copy()
    pred[5:9, 45:50] = 1.0  # a 4×5 island where the truth is background
    assert mm.connectivity_error(truth, truth) == 0.0
    assert mm.connectivity_error(pred, truth) == pytest.approx(20.0)


def test_connectivity_error_ignores_soft_values_attached_to_the_body():
    truth = _disc((60, 60), (30, 30), 15)
    pred = truth.copy()
    pred[30, 46:50] = 0.1  # faint, but below θ above its connection level: no connectivity error
    assert mm.connectivity_error(pred, truth) == 0.0


def test_bleed_counts_far_pieces_not_edge_shifts():
    truth = np.zeros((100, 100))
    truth[40:100, 30:70] = 1.0
    shifted = np.zeros_like(truth)
    shifted[39:100, 29:71] = 1.0  # the edge one px out: edge error, not bleed
    assert mm.bleed(shifted, truth) == 0.0
    chunk = truth.copy()
    chunk[10:20, 80:90] = 1.0  # a 10×10 backdrop piece
    assert mm.bleed(chunk, truth) == pytest.approx(100 / 10_000)


def test_hair_loss_is_the_lost_share_of_crown_alpha():
    truth = np.zeros((100, 60))
    truth[20:100, 10:50] = 1.0
    truth[10:20, 20:40] = 0.5  # wispy hair above the head: mass 10·20·0.5 = 100
    region = mm.crown_region(truth, depth_px=10)
    assert region[:20].all() and not region[20:].any()
    assert mm.hair_loss(truth, truth, region) == 0.0
    pred = truth.copy()
    pred[10:20, 20:40] = 0.0
    # Region rows 0–19: the wisps (mass 100) only; all lost.
    assert mm.hair_loss(pred, truth, region) == pytest.approx(1.0)
    pred[10:20, 20:40] = 0.25
    assert mm.hair_loss(pred, truth, region) == pytest.approx(0.5)
    assert mm.hair_loss(pred, np.zeros_like(truth), region) == 0.0


def test_contamination_projects_onto_the_old_background():
    true_fg = np.array([[[100.0, 100.0, 100.0]]])
    old_bg = np.array([0.0, 0.0, 255.0])
    fg = 0.75 * true_fg + 0.25 * old_bg
    c, ok = mm.contamination(fg, true_fg, old_bg)
    assert ok.all() and c[0, 0] == pytest.approx(0.25)
    c, ok = mm.contamination(true_fg, true_fg, np.array([110.0, 100.0, 100.0]))
    assert not ok.any()  # backdrop of the subject's own colour: not measurable


def test_edge_spill_is_alpha_weighted_old_colour_in_the_band():
    truth = np.zeros((40, 40))
    truth[:, 20:] = 1.0
    true_fg = np.full((40, 40, 3), 200.0)
    old_bg = np.array([0.0, 0.0, 0.0])
    clean = mm.edge_spill(true_fg, truth, true_fg, old_bg, truth, band_px=3)
    assert clean == 0.0
    soiled = true_fg.copy()
    soiled[:, 20:23] = 0.0  # the three opaque columns at the edge keep the old black
    band = mm.edge_band(truth, 3)
    spill = mm.edge_spill(soiled, truth, true_fg, old_bg, truth, band_px=3)
    cols = np.nonzero(band[0])[0]
    expected = np.isin(cols, [20, 21, 22]).sum() / cols.size
    assert spill == pytest.approx(expected)
    assert 0 < spill < 1


def test_edge_colour_error_counts_overshoot_that_spill_does_not():
    truth = np.zeros((40, 40))
    truth[:, 20:] = 1.0
    true_fg = np.full((40, 40, 3), 100.0)
    old_bg = np.array([255.0, 0.0, 0.0])
    over = true_fg.copy()
    over[:, 20:23] = [0.0, 200.0, 200.0]  # pushed away from red, past the subject: teal
    assert mm.edge_spill(over, truth, true_fg, old_bg, truth, band_px=3) == 0.0
    err = mm.edge_colour_error(over, truth, true_fg, truth, band_px=3)
    cols = np.nonzero(mm.edge_band(truth, 3)[0])[0]
    expected = 3 / cols.size * np.linalg.norm([100.0, 100.0, 100.0]) / 255.0
    assert err == pytest.approx(expected)
