"""Region-of-interest segmentation: the region holds every frame the crop rules may choose, and the photo
path works with `segment_region` roi and whole (real models, scikit-image's astronaut on a wide canvas)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from idphoto_ray.config import JobConfig, ProcessingOptions
from idphoto_ray.geometry import crop_rules
from idphoto_ray.refine import place_mask, upsample_mask
from idphoto_ray.region import HEAD_RATIO, frames_box, pixel_box, spec_frames, subject_region
from idphoto_ray.samples import astronaut, jpeg_bytes
from idphoto_ray.specs import all_specs
from idphoto_ray.types import Face, Status

SPECS = list(all_specs().values())


def _face(eye_mid=(700.0, 400.0), eye_gap=60.0, eye_chin=110.0, roll_deg=0.0) -> Face:
    """A detector face: eyes, nose, mouth (the chin is 1.6 × eye→mouth below the eyes), rotated by roll."""
    a = math.radians(roll_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    local = np.array(
        [
            [-eye_gap / 2, 0.0],  # right eye (image left)
            [eye_gap / 2, 0.0],
            [0.0, eye_chin * 0.35],
            [0.0, eye_chin / 1.6],  # mouth
            [-eye_gap, eye_chin * 0.1],
            [eye_gap, eye_chin * 0.1],
        ]
    )
    points = local @ rot.T + np.asarray(eye_mid)
    box = (
        eye_mid[0] - eye_gap,
        eye_mid[1] - 0.5 * eye_chin,
        eye_mid[0] + eye_gap,
        eye_mid[1] + eye_chin,
    )
    return Face(box, 0.9, points.astype(np.float32))


def _inside(box, outer, tol=1e-6) -> bool:
    return (
        box[0] >= outer[0] - tol
        and box[1] >= outer[1] - tol
        and box[2] <= outer[2] + tol
        and box[3] <= outer[3] + tol
    )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_placement_the_search_may_choose_lies_in_the_region(spec):
    """Crowns across the plausible head heights, chins ±15 %, and shoulders cut by the source's bottom edge
    (which moves the frame down): the chosen and the middle placements stay inside the region."""
    face = _face()
    eye_mid = np.asarray(face.keypoints[:2], np.float64).mean(axis=0)
    region = frames_box(face, [spec])
    eye_chin = 110.0
    bottom = {"bottom": np.c_[np.linspace(500, 900, 50), np.full(50, eye_mid[1] + 2.2 * eye_chin)]}
    for chin_scale in (0.85, 1.0, 1.15):
        chin_y = eye_mid[1] + eye_chin * chin_scale
        for ratio in np.linspace(HEAD_RATIO[0], HEAD_RATIO[1], 5):
            crown_y = chin_y - ratio * eye_chin * chin_scale
            for edges in ({}, bottom):
                _, chosen, middle = crop_rules.search(
                    spec, crown_y, chin_y, float(eye_mid[1]), float(eye_mid[0]), edges, steps=7
                )
                for p in (chosen, middle):
                    assert _inside((p.x0, p.y0, p.x0 + p.w, p.y0 + p.h), region), (spec.name, ratio, p)


def test_region_covers_rolled_frames():
    """Every extreme frame, levelled by a roll within 10° of the detector's (or not levelled), maps back
    inside the region."""
    face = _face(roll_deg=12.0)
    spec = all_specs()["us-passport"]
    region = frames_box(face, [spec])
    eye_mid = np.asarray(face.keypoints[:2], np.float64).mean(axis=0)
    for x0, y0, x1, y1 in spec_frames(spec, (110.0 * 0.8, 110.0 * 1.2)):
        corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]])
        for roll in (0.0, 2.0, 12.0, 22.0):
            a = math.radians(roll)
            rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            back = corners @ rot.T + eye_mid
            assert _inside((*back.min(axis=0), *back.max(axis=0)), region, tol=1.0), roll


def test_subject_region_is_whole_for_a_tight_portrait_and_clipped_fractions_otherwise():
    face = _face(eye_mid=(256.0, 220.0), eye_gap=70.0, eye_chin=90.0)
    assert subject_region(face, (512, 512), SPECS) is None  # the frames need the whole 512² image
    wide = subject_region(_face(), (1200, 2400), SPECS)
    assert wide is not None
    x0, y0, x1, y1 = wide
    assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
    assert (x1 - x0) < 0.6
    assert pixel_box(wide, (1200, 2400)) == (
        math.floor(x0 * 2400),
        math.floor(y0 * 1200),
        math.ceil(x1 * 2400),
        math.ceil(y1 * 1200),
    )


def test_place_mask_equals_upsampling_for_the_whole_image_and_is_background_outside():
    rng = np.random.default_rng(0)
    mask = rng.random((32, 32)).astype(np.float32)
    whole = place_mask(mask, (0.0, 0.0, 300.0, 200.0), (200, 300))
    np.testing.assert_allclose(whole, upsample_mask(mask, (200, 300)), atol=1e-4)
    placed = place_mask(np.ones((16, 16), np.float32), (50.5, 20.0, 150.5, 120.0), (200, 300))
    assert placed[:, :50].max() == 0.0 and placed[:, 151:].max() == 0.0 and placed[121:].max() == 0.0
    assert placed[20:120, 51:150].min() == 1.0


def test_config_hash_records_the_region_choice():
    roi = JobConfig(processing={"segment_region": "roi"})
    whole = JobConfig(processing={"segment_region": "whole"})
    assert roi.config_hash("0" * 64) != whole.config_hash("0" * 64)


# --- the real photo path ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(mediapipe_models):
    from idphoto_ray.models.registry import build_segmenter, resolve_segmenter

    info, path = resolve_segmenter("mediapipe-selfie")
    return build_segmenter(info, path, "cpu", intra_op_num_threads=1)


def _wide_astronaut(roll: float = 0.0) -> bytes:
    """The astronaut (512²) low and left of centre on a 1500×1000 grey canvas: a loosely framed snapshot."""
    person = Image.fromarray(astronaut())
    if roll:
        person = person.rotate(roll, resample=Image.Resampling.BICUBIC, fillcolor=(120, 124, 130))
    canvas = Image.new("RGB", (1500, 1000), (120, 124, 130))
    canvas.paste(person, (380, 1000 - 512))
    return jpeg_bytes(canvas, quality=92)


def _source_box(affine, out_w: int, out_h: int) -> tuple[float, float, float, float]:
    """The working-image box an output shows: its corners through the inverse of working → output."""
    m = np.vstack([np.asarray(affine, np.float64).reshape(2, 3), [0, 0, 1]])
    inv = np.linalg.inv(m)
    corners = np.array(
        [[-0.5, -0.5, 1], [out_w - 0.5, -0.5, 1], [-0.5, out_h - 0.5, 1], [out_w - 0.5, out_h - 0.5, 1]]
    )
    pts = (corners @ inv.T)[:, :2]
    return (*pts.min(axis=0), *pts.max(axis=0))


def test_roi_path_frames_every_spec_inside_the_region_and_matches_whole(models):
    """Real detector, face mesh and segmenter on a portrait rolled 8°: with `roi` the model sees a fixed-size
    crop of the region; every spec's output comes from inside it, with the whole-frame run's geometry."""
    from idphoto_ray.photo_path import PhotoPath, quantize_masks

    data = _wide_astronaut(8.0)
    compared = [s for s in SPECS if s.name in ("cn-1inch", "us-passport", "cn-id-card")]
    results = {}
    for choice, specs in (("whole", compared), ("roi", SPECS)):
        path = PhotoPath.load(specs, ["white"], ProcessingOptions(segment_region=choice))
        prepared = path.prepare(data, models.input_size)
        assert prepared.model_image.shape == (models.input_size, models.input_size, 3)
        results[choice] = (prepared, path.finish(prepared, quantize_masks(models([prepared.model_image]))[0]))
    prepared, roi = results["roi"]
    assert results["whole"][0].region is None and prepared.region is not None
    x0, y0, x1, y1 = prepared.region
    assert (x1 - x0) * (y1 - y0) < 0.6  # the model's pixels land on the subject, not the room
    whole = results["whole"][1]
    assert roi.status != Status.FAILED and whole.status != Status.FAILED, (roi.message, whole.message)
    assert len(roi.outputs) == len(SPECS)
    region_px = (x0 * 1500, y0 * 1000, x1 * 1500, y1 * 1000)
    for out in roi.outputs:
        sx0, sy0, sx1, sy1 = _source_box(out.affine, out.width, out.height)
        shown = (max(sx0, 0.0), max(sy0, 0.0), min(sx1, 1500.0), min(sy1, 1000.0))
        assert _inside(shown, region_px, tol=1.0), (out.spec, shown, region_px)
    for spec in compared:
        a, b = roi.metrics["specs"][spec.name], whole.metrics["specs"][spec.name]
        assert abs(a["head_height_ratio"] - b["head_height_ratio"]) < 0.03, spec.name
    rgba = np.asarray(Image.open(io.BytesIO(roi.outputs[0].data)))
    assert rgba.shape[:2] == (SPECS[0].size_px[1], SPECS[0].size_px[0])


def test_roi_without_a_face_segments_the_whole_frame(models):
    from skimage import data as skdata

    from idphoto_ray.photo_path import PhotoPath

    path = PhotoPath.load(SPECS[:1], ["white"], ProcessingOptions(segment_region="roi"))
    prepared = path.prepare(jpeg_bytes(Image.fromarray(skdata.coffee())), models.input_size)
    assert prepared.region is None and prepared.model_image.shape == (models.input_size, models.input_size, 3)
