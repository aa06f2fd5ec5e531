"""End-to-end per-photo orchestration on drawn people with exactly known geometry."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image
from synthetic_person import EYE, SKIN, FakeDetector, FakeLandmarker, draw_person

from idphoto_ray.backgrounds import parse_background
from idphoto_ray.config import ProcessingOptions
from idphoto_ray.photo import process_photo
from idphoto_ray.specs import get_spec
from idphoto_ray.types import Face, Reason, Status

OPTIONS = ProcessingOptions(min_inter_eye_px=20)


def run(person, specs=("cn-1inch",), backgrounds=("blue",), faces=None, landmarker=True, **opts):
    return process_photo(
        person.image,
        person.mask,
        FakeDetector([person.face] if faces is None else faces),
        FakeLandmarker(person.landmarks) if landmarker else None,
        [get_spec(s) for s in specs],
        [parse_background(b) for b in backgrounds],
        OPTIONS.model_copy(update=opts),
    )


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def measured_head_ratio(rgba: np.ndarray) -> float:
    """Independent of the pipeline: crown from the PNG's alpha, chin = lowest skin pixel in the centre
    column."""
    h, w = rgba.shape[:2]
    centre = rgba[:, w // 2 - 2 : w // 2 + 3]
    crown = np.nonzero((centre[..., 3] > 127).any(axis=1))[0][0]
    skin = (np.abs(centre[..., :3].astype(int) - SKIN).sum(axis=2) < 60).any(axis=1)
    chin = np.nonzero(skin)[0][-1]
    return (chin - crown) / h


@pytest.mark.parametrize("spec_name", ["cn-1inch", "us-passport"])
def test_head_ratio_inside_spec_range_measured_on_output(spec_name):
    spec = get_spec(spec_name)
    result = run(draw_person(), specs=(spec_name,), backgrounds=("transparent", "white"))
    assert result.status != Status.FAILED, result.message
    lo, hi = spec.head_min_mm / spec.height_mm, spec.head_max_mm / spec.height_mm
    assert lo <= result.metrics["head_height_ratio"] <= hi
    rgba = decode(result.outputs[0].data)
    assert rgba.shape == (spec.size_px[1], spec.size_px[0], 4)
    assert lo <= measured_head_ratio(rgba) <= hi
    assert not {"head_size_out_of_range", "crown_margin_out_of_range", "eye_line_out_of_range"} & set(
        result.flags
    )
    assert decode(result.outputs[1].data).shape == (spec.size_px[1], spec.size_px[0], 3)


def test_several_specs_and_backgrounds_from_one_segmentation():
    result = run(draw_person(), specs=("cn-1inch", "cn-2inch"), backgrounds=("blue", "white", "red"))
    assert [(o.spec, o.background) for o in result.outputs] == [
        (s, b) for s in ("cn-1inch", "cn-2inch") for b in ("blue", "white", "red")
    ]
    assert all(o.ext == "jpg" for o in result.outputs)
    assert {"detect", "mask", "crop", "matting", "decontaminate", "compose", "encode"} <= set(
        result.timings_ms
    )


def test_crown_colour_runs_per_spec_with_the_eye_row_and_only_when_asked(monkeypatch):
    from idphoto_ray import render

    calls = []
    real = render.crown_ceiling

    def spy(rgb, alpha, model_alpha, eye_row, face_width, valid=None):
        calls.append((rgb.shape[:2], eye_row, face_width))
        return real(rgb, alpha, model_alpha, eye_row, face_width, valid)

    monkeypatch.setattr(render, "crown_ceiling", spy)
    on = run(draw_person(), specs=("cn-1inch", "cn-2inch"))
    assert len(calls) == 2
    for (h, w), eye_row, face_width in calls:
        assert 0.2 * h < eye_row < 0.7 * h and 0.2 * w < face_width < w
    calls.clear()
    off = run(draw_person(), specs=("cn-1inch", "cn-2inch"), crown_colour=False)
    assert calls == [] and on.status == off.status


def test_rotated_input_comes_out_level():
    person = draw_person(angle_deg=10.0)
    result = run(person, backgrounds=("transparent",))
    assert "roll_exceeds_limit" not in result.flags
    assert abs(abs(result.metrics["roll_deg"]) - 10.0) < 0.5
    rgba = decode(result.outputs[0].data)
    eye = (np.abs(rgba[..., :3].astype(int) - EYE).sum(axis=2) < 80) & (rgba[..., 3] > 200)
    ys, xs = np.nonzero(eye)
    mid = rgba.shape[1] / 2
    left, right = xs < mid, xs >= mid
    dy = ys[right].mean() - ys[left].mean()
    dx = xs[right].mean() - xs[left].mean()
    assert abs(math.degrees(math.atan2(dy, dx))) < 1.0


def test_roll_beyond_limit_is_corrected_and_flagged():
    result = run(draw_person(angle_deg=20.0), max_roll_deg=15.0)
    assert result.status == Status.NEEDS_REVIEW and "roll_exceeds_limit" in result.flags


def test_two_comparable_faces_fail_as_multiple_faces():
    person = draw_person()
    x0, y0, x1, y1 = person.face.box
    other = Face((x0 + 300, y0, x1 + 300, y1), 0.9, person.face.keypoints + [300, 0])
    result = run(person, faces=[person.face, other])
    assert result.status == Status.FAILED and result.reason == Reason.MULTIPLE_FACES
    assert "2 faces" in result.message and result.outputs == []


def test_no_face_fails_as_no_face():
    result = run(draw_person(), faces=[])
    assert (result.status, result.reason) == (Status.FAILED, Reason.NO_FACE)


def test_empty_mask_fails_as_no_person():
    person = draw_person()
    person.mask[:] = 0.0
    result = run(person)
    assert (result.status, result.reason) == (Status.FAILED, Reason.NO_PERSON)


def test_crown_near_the_top_is_padded_with_background_without_a_flag():
    """Crown 10 px below the source's top: the 1寸 crop needs room above it, filled with the new
    background."""
    result = run(draw_person(center=(350.0, 140.0)), backgrounds=("transparent",))
    # Only the crop is judged here: the drawn person's 256² mask, upsampled, leaves a soft edge several px
    # wide where hair meets skin, which the matte checks may report (they are tested on their own).
    assert result.status != Status.FAILED, result.message
    assert not {"crown_cut", "side_cut", "body_cut", "head_touches_top"} & set(result.flags), result.flags
    rgba = decode(result.outputs[0].data)
    assert rgba[:20, :, 3].max() == 0  # the padding above the hair is plain background


def test_crown_cut_by_the_source_top_is_flagged():
    result = run(draw_person(center=(350.0, 110.0)))
    assert "crown_cut" in result.flags and result.status == Status.NEEDS_REVIEW


def test_tight_source_keeps_the_body_within_the_rules():
    """Shoulders cut by the source 120 px below the chin: the middle of the US ranges would show the cut, a
    larger head placed lower does not."""
    result = run(draw_person(size=(580, 700)), specs=("us-passport",), backgrounds=("transparent",))
    assert result.metrics["specs"]["us-passport"]["cuts_at_target"] == ["body_cut"]
    assert "body_cut" not in result.flags, result.flags
    rgba = decode(result.outputs[0].data)
    assert rgba[-1, rgba.shape[1] // 2, 3] == 255  # the shirt reaches the bottom edge


def test_body_cut_when_no_placement_avoids_it():
    result = run(draw_person(size=(500, 700)))
    assert "body_cut" in result.flags


def test_unexpected_exception_becomes_internal_error():
    def broken(images):
        raise RuntimeError("detector exploded")

    person = draw_person()
    result = process_photo(
        person.image, person.mask, broken, None, [get_spec("cn-1inch")], [parse_background("blue")], OPTIONS
    )
    assert (result.status, result.reason) == (Status.FAILED, Reason.INTERNAL_ERROR)
    assert "detector exploded" in result.message


def test_without_landmarks_falls_back_to_keypoints_and_asks_for_review():
    result = run(draw_person(), landmarker=False)
    assert result.status == Status.NEEDS_REVIEW and "landmarks_unavailable" in result.flags
    assert result.outputs


def test_crop_regions_equal_cropping_the_fully_leveled_canvas_even_off_canvas():
    from idphoto_ray.geometry.crop import CropPlan, crop_layers, extract_crop
    from idphoto_ray.geometry.level import Head, LeveledFrame

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 90, 3), dtype=np.uint8)
    alpha = rng.random((120, 90), dtype=np.float32)
    for frame in (LeveledFrame.level(image, alpha, (45.0, 40.0), 7.0), LeveledFrame.unrotated(image, alpha)):
        head = Head(frame, np.zeros(2), np.zeros(2), np.zeros(2), (0.0, 0.0, 1.0, 1.0), 0.0, 1.0, {})
        for x0, y0, w, h in ((10.3, 5.7, 60.0, 80.0), (-20.0, -15.0, 50.0, 70.0), (500.0, 400.0, 30.0, 40.0)):
            for out in ((30, 40), (120, 160)):  # shrinking (area pre-scale) and enlarging
                plan = CropPlan(x0, y0, w, h, out[0], out[1], "crown")
                rgb, a, valid = crop_layers(head, plan)
                assert rgb.shape == (out[1], out[0], 3) and a.shape == valid.shape == (out[1], out[0])
                np.testing.assert_allclose(a, extract_crop(frame.full("alpha"), plan), atol=1e-4)
                np.testing.assert_allclose(valid, extract_crop(frame.full("valid"), plan), atol=1e-4)
                if x0 < 100:  # inside or overlapping the canvas: the pixels of cropping the full canvas
                    full_rgb = extract_crop(frame.full("image"), plan, "replicate").astype(int)
                    assert np.abs(rgb.astype(int) - full_rgb).max() <= 1  # uint8 rounding in the warp
                else:
                    assert valid.max() == 0.0  # wholly off the canvas: nothing but padding


def test_crop_coverage_is_exactly_one_inside_the_photo(monkeypatch):
    """INTER_AREA's and warpAffine's float weights sum to 1 − 6e-8 on some rows; downstream `valid >= 1`
    tests (closed-form matting, the crown colour step) skipped those rows and left horizontal streaks in
    hair edges."""
    from idphoto_ray.geometry import crop
    from idphoto_ray.geometry.crop import CropPlan, crop_layers
    from idphoto_ray.geometry.level import Head, LeveledFrame

    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (1600, 1200, 3), dtype=np.uint8)
    alpha = rng.random((1600, 1200), dtype=np.float32)
    frames = (LeveledFrame.level(image, alpha, (600.0, 500.0), 4.0), LeveledFrame.unrotated(image, alpha))
    for frame in frames:
        head = Head(frame, np.zeros(2), np.zeros(2), np.zeros(2), (0.0, 0.0, 1.0, 1.0), 0.0, 1.0, {})
        plan = CropPlan(200.3, 100.7, 811.7, 1136.4, 295, 413, "crown")  # shrunk 2.75×: INTER_AREA first
        with monkeypatch.context() as patch:
            patch.setattr(crop, "COVERAGE_TOLERANCE", 0.0)
            raw = crop_layers(head, plan)[2][8:-8, 8:-8]
        assert raw.min() < 1.0  # the warps do leave such rows: the test exercises the snap
        valid = crop_layers(head, plan)[2]
        assert valid[8:-8, 8:-8].min() == 1.0
