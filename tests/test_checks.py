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
    assert checks.resolution(80.0, 1.2, 90.0) == ["low_resolution"]
    assert checks.resolution(120.0, 1.6, 90.0) == ["upscaled"]
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
