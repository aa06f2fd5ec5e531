"""Head geometry: subject choice, landmarks → eyes/chin/roll/yaw, crown, leveling, crop planning."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_person import draw_person

from idphoto_ray.geometry.affine import transform_points
from idphoto_ray.geometry.crop import extract_crop, plan_crop
from idphoto_ray.geometry.face import (
    chin_point,
    expression_flags,
    expression_measures,
    eye_centers,
    select_subject,
    yaw_estimate_deg,
)
from idphoto_ray.geometry.level import (
    LeveledFrame,
    crown_touches_top,
    find_crown_y,
    roll_deg,
    roll_tolerance_deg,
    roll_uncertain,
)
from idphoto_ray.refine import upsample_mask
from idphoto_ray.specs import get_spec
from idphoto_ray.types import Face, PhotoError, Reason


def face(x0, y0, size):
    kp = np.tile([x0 + size / 2, y0 + size / 2], (6, 1)).astype(np.float32)
    return Face((x0, y0, x0 + size, y0 + size), 0.9, kp)


def test_select_subject_largest_and_rejects_comparable_second_face():
    big, small = face(100, 100, 200), face(10, 10, 60)
    assert select_subject([small, big], (600, 600), 0.5) is big
    with pytest.raises(PhotoError) as err:
        select_subject([big, face(350, 100, 160)], (600, 600), 0.5)
    assert err.value.reason == Reason.MULTIPLE_FACES and "2 faces" in err.value.message
    with pytest.raises(PhotoError) as err:
        select_subject([], (600, 600), 0.5)
    assert err.value.reason == Reason.NO_FACE


def test_eyes_chin_from_mesh_and_from_keypoints():
    p = draw_person()
    right, left = eye_centers(p.landmarks, p.face)
    assert np.allclose(right, p.right_eye, atol=1e-3) and np.allclose(left, p.left_eye, atol=1e-3)
    assert np.allclose(chin_point(p.landmarks, p.face), p.chin)
    right_kp, left_kp = eye_centers(None, p.face)
    assert np.allclose(right_kp, p.right_eye, atol=1e-3)
    approx_chin = chin_point(None, p.face)
    assert abs(approx_chin[1] - p.chin[1]) < 0.15 * 260  # documented anthropometric guess


def test_roll_sign_and_rotation_levels_the_eyes():
    p = draw_person(angle_deg=10.0)
    right, left = eye_centers(p.landmarks, p.face)
    roll = roll_deg(left, right)
    assert roll == pytest.approx(-10.0, abs=1e-3)  # ccw-rotated head: the image-right eye is higher
    mid = (right + left) / 2
    alpha = upsample_mask(p.mask, p.image.shape)
    frame = LeveledFrame.level(p.image, alpha, tuple(mid), roll)
    r2, l2 = transform_points(np.stack([right, left]), frame.matrix)
    assert abs(roll_deg(l2, r2)) < 1e-6
    image, valid = frame.full("image"), frame.full("valid")
    assert image.shape[:2] == frame.shape and frame.shape[0] > p.image.shape[0]  # canvas grew
    assert valid.min() == 0.0 and valid[frame.shape[0] // 2, frame.shape[1] // 2] == 1.0  # corners marked
    # A region is the same slice of the fully warped canvas: the pipeline warps only what it reads.
    for layer, full in (("image", image), ("alpha", frame.full("alpha")), ("valid", valid)):
        part = frame.region(layer, 37, 21, 150, 190)
        np.testing.assert_allclose(
            part.astype(np.float32), full[21:190, 37:150].astype(np.float32), atol=1e-4
        )
    flat = LeveledFrame.unrotated(p.image, alpha)
    assert flat.shape == p.image.shape[:2] and np.array_equal(
        flat.region("image", 5, 6, 50, 60), p.image[6:60, 5:50]
    )


def test_yaw_is_zero_for_frontal_even_when_rolled_and_grows_with_nose_offset():
    assert abs(yaw_estimate_deg(draw_person(angle_deg=10.0).landmarks)) < 0.5
    p = draw_person()
    turned = p.landmarks.copy()
    turned[1, 0] += 0.2 * 95  # nose towards the image right by 0.2 half-widths
    assert 5.0 < yaw_estimate_deg(turned) < 25.0
    assert yaw_estimate_deg(None, p.face) == pytest.approx(0.0, abs=0.5)


@pytest.mark.parametrize("yaw", [-12.0, 5.0, 10.0])
def test_yaw_of_a_turned_head_is_read_back_in_degrees(yaw):
    """A head whose nose stands NOSE_DEPTH_RATIO half-widths in front of its cheeks, turned by `yaw` and seen
    head-on, reads `yaw` back (the old 0.7 read twice the angle: 10° gave 20.5°)."""
    from idphoto_ray.geometry.face import MESH_CHEEK_LEFT, MESH_CHEEK_RIGHT, MESH_NOSE_TIP, NOSE_DEPTH_RATIO

    t = np.radians(yaw)
    half = 60.0
    points = {
        MESH_CHEEK_RIGHT: (-half, 0.0),
        MESH_CHEEK_LEFT: (half, 0.0),
        MESH_NOSE_TIP: (0.0, NOSE_DEPTH_RATIO * half),
    }
    landmarks = np.zeros((468, 3))
    for index, (x, z) in points.items():
        landmarks[index, :2] = (200.0 + x * np.cos(t) + z * np.sin(t), 150.0)
    assert yaw_estimate_deg(landmarks) == pytest.approx(yaw, abs=0.5)


def test_crown_is_top_of_mask_in_face_columns_subpixel():
    alpha = np.zeros((50, 40), np.float32)
    alpha[20:, 10:30] = 1.0
    alpha[19, 10:30] = 0.75
    alpha[5:, 0:3] = 1.0  # something taller outside the face span is ignored
    assert find_crown_y(alpha, 10, 30) == pytest.approx(18 + 0.5 / 0.75)
    assert find_crown_y(alpha, 35, 40) is None
    assert not crown_touches_top(alpha, 10, 30)
    alpha[0, 15] = 1.0
    assert crown_touches_top(alpha, 10, 30)


def test_plan_hits_head_middle_and_spec_crown_target():
    spec = get_spec("cn-1inch")
    plan = plan_crop(
        spec, crown_y=200.0, chin_y=460.0, eye_y=336.5, face_center_x=350.0, image_shape=(900, 700)
    )
    head_out = 260.0 * plan.scale
    assert head_out == pytest.approx(spec.head_target_px())
    crown_out = plan.to_output(np.array([350.0, 200.0]))
    assert crown_out[1] == pytest.approx(spec.crown_target_px())
    assert crown_out[0] == pytest.approx(spec.size_px[0] / 2)
    assert plan.placement == "crown" and plan.flags() == []


def test_plan_uses_eye_rule_when_no_crown_rule():
    spec = get_spec("us-passport")
    plan = plan_crop(spec, 200.0, 460.0, 336.5, 350.0, (900, 700))
    eye_out = plan.to_output(np.array([350.0, 336.5]))
    assert plan.placement == "eye"
    assert spec.size_px[1] - eye_out[1] == pytest.approx(spec.eye_from_bottom_target_px())


def test_plan_without_person_on_the_source_edges_has_no_flags_even_when_padded():
    """A box far past every edge of a tiny source is plain background padding: nobody touches the edges."""
    plan = plan_crop(get_spec("cn-1inch"), 0.5, 150.0, 80.0, 40.0, (180, 300), edges={})
    assert plan.x0 < 0 and plan.y0 < 0 and plan.y0 + plan.h > 180
    assert plan.flags() == [] and plan.cuts_at_target == ()
    with pytest.raises(PhotoError):
        plan_crop(get_spec("cn-1inch"), 100.0, 100.0, 100.0, 50.0, (200, 300))


@pytest.mark.parametrize("shrink", [1.0, 4.0])
def test_extract_crop_maps_points_where_plan_says(shrink):
    """A bright dot lands where plan.to_output puts it, both on the direct path and the INTER_AREA path."""
    spec = get_spec("cn-1inch")
    h = int(1200 * shrink)
    img = np.zeros((h, h, 3), np.uint8)
    dot = np.array([h * 0.5, h * 0.45])
    r = int(6 * shrink)
    img[int(dot[1]) - r : int(dot[1]) + r + 1, int(dot[0]) - r : int(dot[0]) + r + 1] = 255
    plan = plan_crop(spec, h * 0.3, h * 0.3 + 279 * shrink, h * 0.45, h * 0.5, img.shape)
    out = extract_crop(img, plan, "replicate")
    assert out.shape == (413, 295, 3)
    ys, xs = np.nonzero(out[..., 0] > 127)
    expected = plan.to_output(np.array([int(dot[0]), int(dot[1])]))
    assert abs(xs.mean() - expected[0]) < 0.6 and abs(ys.mean() - expected[1]) < 0.6


def _eyes_face(right, left):
    kp = np.zeros((6, 2), np.float32)
    kp[0], kp[1] = right, left
    return Face((0, 0, 100, 100), 0.9, kp)


def test_roll_tolerance_follows_keypoint_precision():
    # Eyes 9 model px apart (8 source px each): good to atan(2/9) = 12.5°; 40 px apart: the 4° floor.
    assert roll_tolerance_deg(72.0, 8.0) == pytest.approx(12.53, abs=0.01)
    assert roll_tolerance_deg(320.0, 8.0) == pytest.approx(4.0)


def test_roll_uncertain_when_mesh_and_keypoints_disagree():
    # Keypoint eyes 80 source px apart at 8 px per model px → tolerance atan(16/80) = 11.3°.
    level = _eyes_face((100, 200), (180, 200))
    assert not roll_uncertain(3.4, level, 8.0)
    # The red-wall case: keypoints at −21.4°, mesh +3.2°: 24.6° apart, beyond any keypoint precision here.
    kp_right = np.array([100.0, 200.0])
    kp_left = kp_right + 80 * np.array([np.cos(np.radians(-21.4)), np.sin(np.radians(-21.4))])
    assert roll_uncertain(3.2, _eyes_face(kp_right, kp_left), 8.0)
    assert not roll_uncertain(-18.0, _eyes_face(kp_right, kp_left), 8.0)


def _mesh_with(eye_gap: float, mouth_gap: float) -> np.ndarray:
    """A 468-point mesh where only the eye and lip points used for expression are placed."""
    pts = np.zeros((468, 3), np.float64)
    eyes = (((33, 133), (159, 145), 100.0), ((362, 263), (386, 374), 200.0))
    for (outer, inner), (upper, lower), x in eyes:
        pts[outer, :2], pts[inner, :2] = (x - 30, 100), (x + 30, 100)
        pts[upper, :2], pts[lower, :2] = (x, 100 - eye_gap / 2), (x, 100 + eye_gap / 2)
    pts[78, :2], pts[308, :2] = (120, 250), (180, 250)
    pts[13, :2], pts[14, :2] = (150, 250 - mouth_gap / 2), (150, 250 + mouth_gap / 2)
    return pts


def test_expression_ratios_and_flags():
    open_face = expression_measures(_mesh_with(eye_gap=18.0, mouth_gap=1.2))
    assert open_face["eye_open_right"] == pytest.approx(0.3)
    assert open_face["mouth_open"] == pytest.approx(0.02)
    assert expression_flags(open_face) == []
    assert expression_flags(expression_measures(_mesh_with(eye_gap=3.0, mouth_gap=1.2))) == ["eyes_closed"]
    assert expression_flags(expression_measures(_mesh_with(eye_gap=18.0, mouth_gap=12.0))) == ["mouth_open"]


def test_passport_specs_ask_for_a_neutral_expression():
    assert get_spec("us-passport").neutral_expression and get_spec("cn-passport").neutral_expression
    assert not get_spec("cn-1inch").neutral_expression
