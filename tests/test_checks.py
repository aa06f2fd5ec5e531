"""Compliance measures: each one on inputs where the right answer is known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.data import astronaut

from idphoto_ray import checks
from idphoto_ray.specs import get_spec

ASTRONAUT_FACE = (slice(70, 190), slice(170, 260))


def test_spec_geometry_passes_on_target_and_flags_each_rule():
    spec = get_spec("cn-1inch")
    w, h = spec.size_px
    crown = spec.crown_target_px()
    chin = crown + spec.head_target_px()
    metrics, flags = checks.spec_geometry(spec, crown, chin, crown + 0.45 * spec.head_target_px(), w / 2)
    assert flags == [] and metrics["head_height_ratio"] == pytest.approx(0.675)
    _, flags = checks.spec_geometry(spec, 2.0, 0.9 * h, 200.0, w * 0.6)
    assert {"head_size_out_of_range", "crown_margin_out_of_range", "face_off_center"} <= set(flags)
    us = get_spec("us-passport")
    _, flags = checks.spec_geometry(us, 60.0, 420.0, 100.0, 300.0)
    assert "eye_line_out_of_range" in flags


def test_pose_and_resolution_flags():
    assert checks.pose(20.0, 3.0, 15.0, 15.0) == ["roll_exceeds_limit"]
    assert checks.pose(-2.0, -16.0, 15.0, 15.0) == ["yaw_exceeds_limit"]
    assert checks.resolution(80.0, 110.0, 1.2, 90.0) == ["low_resolution"]
    assert checks.resolution(80.0, 50.0, 0.6, 90.0) == []  # a 1寸 print shows fewer eye pixels than it has
    assert checks.resolution(63.0, 64.0, 1.01, 90.0) == []  # below ICAO's 90, but not enlarged
    assert checks.resolution(120.0, 190.0, 1.6, 90.0) == ["upscaled"]
    assert checks.inter_eye_source_px(np.array([0.0, 0.0]), np.array([60.0, 0.0]), 0.5) == 120.0


def test_sharpness_is_size_normalised_and_detects_blur():
    face = astronaut()[ASTRONAUT_FACE]
    sharp = checks.sharpness(face)
    bigger = checks.sharpness(cv2.resize(face, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC))
    assert sharp > checks.MIN_SHARPNESS and bigger > checks.MIN_SHARPNESS
    blurred = cv2.GaussianBlur(face, (0, 0), 2.0)
    _, flags = checks.face_quality(blurred, face.shape[1] / 2)
    assert "blurry" in flags
    _, flags = checks.face_quality(face, face.shape[1] / 2)
    assert "blurry" not in flags


def test_exposure_and_uneven_lighting():
    face = astronaut()[ASTRONAUT_FACE]
    metrics, flags = checks.face_quality(face, face.shape[1] / 2)
    assert not {"underexposed", "overexposed", "uneven_lighting"} & set(flags)
    assert 100 < metrics["exposure"] < 200 and metrics["overexposed_fraction"] < 0.01
    _, flags = checks.face_quality((face * 0.1).astype(np.uint8), face.shape[1] / 2)
    assert "underexposed" in flags
    _, flags = checks.face_quality(
        np.clip(face.astype(int) + 150, 0, 255).astype(np.uint8), face.shape[1] / 2
    )
    assert "overexposed" in flags
    shaded = face.astype(np.float32)
    shaded[:, : face.shape[1] // 2] *= 0.4
    metrics, flags = checks.face_quality(shaded.astype(np.uint8), face.shape[1] / 2)
    assert "uneven_lighting" in flags and metrics["illumination_ratio"] < 0.6


def test_exposure_is_judged_on_skin_not_on_hair_or_backdrop():
    """A well-lit face under a dark fringe (devset img42: 24 % of its box near black): the box says
    underexposed, the cheek–nose zone does not; a dark zone still is."""
    face = np.full((100, 80, 3), 180, np.uint8)
    face[:30] = 10  # dark hair over the forehead: 30 % of the crop
    zone = np.zeros((100, 80), bool)
    zone[50:75, 20:60] = True
    _, flags = checks.face_quality(face, 40.0)
    assert "underexposed" in flags
    metrics, flags = checks.face_quality(face, 40.0, zone)
    assert "underexposed" not in flags and metrics["exposure"] == pytest.approx(180.0)
    dark = face.copy()
    dark[zone] = 20
    _, flags = checks.face_quality(dark, 40.0, zone)
    assert "underexposed" in flags
    lit_left = face.copy()
    lit_left[:, 40:][zone[:, 40:]] = 60  # the zone's right half in shadow, hair and backdrop as before
    metrics, flags = checks.face_quality(lit_left, 40.0, zone)
    assert "uneven_lighting" in flags and metrics["illumination_ratio"] == pytest.approx(60 / 180)


def test_skin_zone_lies_between_the_eyes_and_the_mouth():
    from idphoto_ray.geometry.face import (
        MESH_LEFT_EYE,
        MESH_MOUTH_CORNERS_INNER,
        MESH_RIGHT_EYE,
        skin_zone_mask,
    )
    from idphoto_ray.types import Face

    landmarks = np.zeros((468, 3))
    landmarks[MESH_RIGHT_EYE[0], :2] = (30, 40)
    landmarks[MESH_LEFT_EYE[1], :2] = (70, 40)
    landmarks[MESH_MOUTH_CORNERS_INNER[0], :2] = (38, 80)
    landmarks[MESH_MOUTH_CORNERS_INNER[1], :2] = (62, 80)
    face = Face(box=(20.0, 20.0, 80.0, 100.0), score=1.0, keypoints=np.zeros((6, 2)))
    mask = skin_zone_mask(landmarks, face, (20, 20, 80, 100))
    rows = np.nonzero(mask.any(axis=1))[0] + 20
    assert rows.min() >= 40 + 0.15 * 40 - 1 and rows.max() <= 81
    assert mask.sum() > 0.6 * 0.5 * (40 + 24) * (80 - 46)  # the trapezoid, less rounding
    fallback = skin_zone_mask(None, face, (20, 20, 80, 100))
    assert fallback.any() and not fallback[:20].any()


def test_face_width_rule_only_where_the_spec_has_one():
    """cn-id-card wants a 15 ± 1 mm face (GA 461): 207 px at 350 dpi passes, 150 px does not."""
    spec = get_spec("cn-id-card")
    w, _ = spec.size_px
    crown = spec.crown_target_px() or 10.0
    chin = crown + spec.head_target_px()
    metrics, flags = checks.spec_geometry(spec, crown, chin, crown + 100, w / 2, face_width=207.0)
    assert metrics["face_width_mm"] == pytest.approx(15.0, abs=0.05)
    assert "face_width_out_of_range" not in flags
    _, flags = checks.spec_geometry(spec, crown, chin, crown + 100, w / 2, face_width=150.0)
    assert "face_width_out_of_range" in flags
    cn1 = get_spec("cn-1inch")  # no face-width rule: never flagged
    _, flags = checks.spec_geometry(
        cn1, cn1.crown_target_px(), cn1.crown_target_px() + cn1.head_target_px(), 150, 147, face_width=20.0
    )
    assert "face_width_out_of_range" not in flags
