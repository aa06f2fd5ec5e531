"""Crop rules on exact synthetic geometry: head size and position inside the spec's ranges, cuts found."""

from __future__ import annotations

import numpy as np
import pytest

from idphoto_ray.geometry import crop_rules
from idphoto_ray.geometry.affine import transform_points
from idphoto_ray.geometry.crop import plan_crop
from idphoto_ray.geometry.level import LeveledFrame
from idphoto_ray.specs import get_spec

# A head 260 px tall (crown 200, chin 460), eyes at 336.5, face midline x = 350, in a 700 px wide source.
CROWN, CHIN, EYE, MID_X = 200.0, 460.0, 336.5, 350.0


def shoulders_at_bottom(height: float, x0: float = 150.0, x1: float = 550.0) -> dict[str, np.ndarray]:
    """The person's shoulders meet the source's bottom edge (y = height − 0.5) between x0 and x1."""
    xs = np.arange(x0, x1)
    return {"bottom": np.c_[xs, np.full(xs.size, height - 0.5)]}


def _ranges(spec_name: str, plan) -> tuple[float, float]:
    spec = get_spec(spec_name)
    head_mm = (CHIN - CROWN) * plan.scale / spec.mm_to_px(1.0)
    crown_mm = (CROWN - plan.y0) * plan.scale / spec.mm_to_px(1.0)
    return head_mm, crown_mm


def test_middle_of_the_ranges_when_nothing_is_cut():
    spec = get_spec("cn-1inch")
    plan = plan_crop(spec, CROWN, CHIN, EYE, MID_X, (900, 700), shoulders_at_bottom(900))
    head_mm, crown_mm = _ranges("cn-1inch", plan)
    assert head_mm == pytest.approx((spec.head_min_mm + spec.head_max_mm) / 2)
    assert crown_mm == pytest.approx((spec.crown_top_min_mm + spec.crown_top_max_mm) / 2)
    assert plan.flags() == [] and plan.cuts_at_target == ()


def test_tight_source_gets_a_bigger_head_placed_higher_instead_of_a_floating_head():
    """Middle placement ends 546.7 px down a 540 px source; the largest head, placed lowest (the largest crown
    margin), ends at ~507: the search picks a cut-free placement, inside both ranges."""
    spec = get_spec("cn-1inch")
    plan = plan_crop(spec, CROWN, CHIN, EYE, MID_X, (540, 700), shoulders_at_bottom(540))
    assert plan.cuts_at_target == ("body_cut",)
    assert plan.flags() == []
    assert plan.y0 + plan.h - 0.5 / plan.scale <= 540 - 0.5 + crop_rules.CUT_MARGIN_PX / plan.scale
    head_mm, crown_mm = _ranges("cn-1inch", plan)
    assert spec.head_min_mm - 1e-6 <= head_mm <= spec.head_max_mm + 1e-6
    assert spec.crown_top_min_mm - 1e-6 <= crown_mm <= spec.crown_top_max_mm + 1e-6


def test_source_too_short_for_any_placement_is_flagged_body_cut_with_the_shortest_cut():
    spec = get_spec("cn-1inch")
    plan = plan_crop(spec, CROWN, CHIN, EYE, MID_X, (480, 700), shoulders_at_bottom(480))
    assert plan.flags() == ["body_cut"]
    head_mm, crown_mm = _ranges("cn-1inch", plan)
    # The output's bottom edge reaches least far down the source with the largest head placed lowest
    # (the searched share of each range ends 5 % inside its bounds).
    inset = (1 - crop_rules.SEARCHED_SHARE) / 2
    assert head_mm == pytest.approx(spec.head_max_mm - inset * (spec.head_max_mm - spec.head_min_mm))
    crown_range = spec.crown_top_max_mm - spec.crown_top_min_mm
    assert crown_mm == pytest.approx(spec.crown_top_max_mm - inset * crown_range)


def test_us_passport_keeps_tall_hair_off_the_top_edge():
    """Crown 64 % of the head above the eyes: eyes mid-range put the hair 1.7 px from the top; lower eyes and
    a smaller head (still inside the rules) leave room."""
    spec = get_spec("us-passport")
    crown, chin = EYE - 0.64 * (CHIN - CROWN), EYE + 0.36 * (CHIN - CROWN)  # crown-to-eye 64 % of the head
    plan = plan_crop(spec, crown, chin, EYE, MID_X, (900, 700), {})
    assert not plan.head_touches_top
    assert (crown - plan.y0) * plan.scale >= crop_rules.MIN_CROWN_GAP * spec.size_px[1] - 1e-6
    eye_from_bottom_mm = (spec.size_px[1] - (EYE - plan.y0) * plan.scale) / spec.mm_to_px(1.0)
    assert spec.eye_bottom_min_mm - 1e-6 <= eye_from_bottom_mm <= spec.eye_bottom_max_mm + 1e-6


def test_us_passport_flags_hair_at_the_top_when_no_placement_leaves_room():
    spec = get_spec("us-passport")
    crown, chin = EYE - 0.9 * 260.0, EYE + 0.1 * 260.0  # eyes almost at the chin: no legal placement fits
    plan = plan_crop(spec, crown, chin, EYE, MID_X, (900, 700), {})
    assert plan.head_touches_top and "head_touches_top" in plan.flags()


def test_edge_points_follow_the_source_edges_through_a_rotation():
    alpha = np.zeros((100, 80), np.float32)
    alpha[-1, 20:40] = 1.0  # shoulders on the bottom edge
    alpha[30:50, 0] = 1.0  # an arm on the left edge
    identity = LeveledFrame.unrotated(np.zeros((100, 80, 3), np.uint8), alpha).matrix
    points = crop_rules.person_edge_points(alpha, identity)
    assert np.array_equal(points["bottom"][:, 0], np.arange(20, 40))
    assert np.all(points["bottom"][:, 1] == 99.5)
    assert np.all(points["left"][:, 0] == -0.5) and points["top"].size == 0 and points["right"].size == 0
    frame = LeveledFrame.level(np.zeros((100, 80, 3), np.uint8), alpha, (40.0, 50.0), 10.0)
    rotated = crop_rules.person_edge_points(alpha, frame.matrix)
    expected = transform_points(np.c_[np.arange(20, 40), np.full(20, 99.5)], frame.matrix)
    assert np.allclose(rotated["bottom"], expected)
    # Levelled by 10°, the bottom edge is a slanted line in the frame: a diagonal cut if a crop shows it.
    slope = np.diff(rotated["bottom"][:, 1]) / np.diff(rotated["bottom"][:, 0])
    assert np.allclose(slope, -np.tan(np.radians(10.0)))


def test_slanted_bottom_edge_after_levelling_is_avoided_or_flagged():
    """Levelled by 8°, the source's bottom edge crosses the crop diagonally unless the crop stays above it."""
    spec = get_spec("cn-1inch")
    h, w = 560, 700
    alpha = np.zeros((h, w), np.float32)
    alpha[-1, 150:550] = 1.0
    frame = LeveledFrame.level(np.zeros((h, w, 3), np.uint8), alpha, (MID_X, EYE), 8.0)
    edges = crop_rules.person_edge_points(alpha, frame.matrix)
    crown, chin, eye, mid = transform_points(
        np.array([[MID_X, CROWN], [MID_X, CHIN], [MID_X, EYE], [MID_X, EYE]]), frame.matrix
    )
    plan = plan_crop(spec, crown[1], chin[1], eye[1], mid[0], frame.shape, edges)
    inside = (
        (edges["bottom"][:, 0] > plan.x0)
        & (edges["bottom"][:, 0] < plan.x0 + plan.w)
        & (edges["bottom"][:, 1] > plan.y0)
        & (edges["bottom"][:, 1] < plan.y0 + plan.h - 1.0 / plan.scale)
    )
    assert ("body_cut" in plan.flags()) == bool(inside.any())
    cut_short = alpha[: h - 100].copy()  # a source ending at the chin: no placement avoids the cut
    cut_short[-1, 150:550] = 1.0
    short = plan_crop(
        spec,
        crown[1],
        chin[1],
        eye[1],
        mid[0],
        frame.shape,
        crop_rules.person_edge_points(cut_short, frame.matrix),
    )
    assert short.flags() == ["body_cut"]
