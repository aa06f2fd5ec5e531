"""Real MediaPipe models on real photos: detection, landmarks, segmentation, and the fetch path."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import skimage.data

from idphoto_ray.models.base import FaceDetector, FaceLandmarker
from idphoto_ray.models.face_detect import BlazeFaceDetector, ssd_anchors, weighted_nms
from idphoto_ray.models.face_mesh import FaceMeshLandmarker
from idphoto_ray.models.home import ModelUnavailable, recorded_sha256, sha256_file
from idphoto_ray.models.mediapipe_fetch import MEDIAPIPE_MODELS, ensure, fetch, tflite_path

DEVSET = Path(__file__).resolve().parents[1].parent / "shared" / "devset"
# Mesh indices: eye outer corners (subject's right, left), nose tip, chin.
RIGHT_EYE, LEFT_EYE, NOSE_TIP, CHIN = 33, 263, 1, 152


@pytest.fixture(scope="module")
def detector(mediapipe_models):
    return BlazeFaceDetector(mediapipe_models["blazeface"], intra_op_num_threads=1)


@pytest.fixture(scope="module")
def astronaut_face(detector):
    faces = detector([skimage.data.astronaut()])[0]
    assert len(faces) == 1
    return faces[0]


def test_anchor_grid_matches_model_outputs():
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    assert np.allclose(anchors[0], [0.5 / 16, 0.5 / 16]) and np.allclose(anchors[1], anchors[0])
    assert np.allclose(anchors[512], [0.5 / 8, 0.5 / 8]) and np.allclose(anchors[512:518], anchors[512])


def test_full_range_anchor_grid_is_one_anchor_per_stride_4_cell():
    anchors = ssd_anchors(192, (4,), 1)
    assert anchors.shape == (2304, 2)
    assert np.allclose(anchors[0], [0.5 / 48, 0.5 / 48]) and np.allclose(anchors[1], [1.5 / 48, 0.5 / 48])


def test_full_range_detector_counts_small_faces_of_a_group(mediapipe_models):
    """Four ID portraits side by side, shrunk so each face is 6 % of a 1600-px image (a group photo's scale).

    Looked at: four upright faces on a grey canvas. Full range finds all four, which makes the photo
    `multiple_faces`; short range finds at most one (a 2-face-wide box), which made such a group photo
    `no_face`.
    """
    path = DEVSET / "hivision_demoImage.jpg"
    if not path.is_file():
        pytest.skip("development portraits not present")
    group = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    scale = 0.06 * 1600 / (0.131 * group.shape[1])  # its faces are ~13 % of its width
    small = cv2.resize(group, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((1067, 1600, 3), 128, np.uint8)
    y, x = (1067 - small.shape[0]) // 2, (1600 - small.shape[1]) // 2
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    full = BlazeFaceDetector(mediapipe_models["blazeface-full"], intra_op_num_threads=1)
    short = BlazeFaceDetector(mediapipe_models["blazeface"], intra_op_num_threads=1)
    found = full([canvas])[0]
    assert len(found) == 4
    assert len(short([canvas])[0]) <= 1
    widths = sorted(f.width for f in found)
    assert 0.7 * 96 < widths[0] and widths[-1] < 1.4 * 96


def test_weighted_nms_blends_by_score():
    boxes = np.array([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [5, 5, 6, 6]], np.float64)
    kps = np.zeros((3, 6, 2))
    kept = weighted_nms(boxes, kps, np.array([0.9, 0.3, 0.8]), 0.3)
    assert len(kept) == 2
    assert kept[0][2] == pytest.approx(0.9)
    assert kept[0][0][0] == pytest.approx(0.1 * 0.3 / 1.2)
    assert np.allclose(kept[1][0], [5, 5, 6, 6])


def test_blazeface_finds_the_astronaut_face(detector, astronaut_face):
    assert isinstance(detector, FaceDetector)
    x0, y0, x1, y1 = astronaut_face.box
    # Looked at: the face spans roughly x 180–270, y 80–175 of the 512×512 image.
    assert 170 < x0 < 190 and 260 < x1 < 285 and 70 < y0 < 95 and 165 < y1 < 185
    assert astronaut_face.score > 0.8
    right_eye, left_eye, nose, mouth = astronaut_face.keypoints[:4]
    assert right_eye[0] < nose[0] < left_eye[0]  # subject's right eye is on the image's left
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]


def test_blazeface_batch_handles_no_face_and_letterbox(detector, astronaut_face):
    astronaut = skimage.data.astronaut()
    wide = np.ascontiguousarray(astronaut[:, :400])
    coffee, wide_faces, cat = detector([skimage.data.coffee(), wide, skimage.data.chelsea()])
    assert coffee == [] and cat == []
    assert len(wide_faces) == 1
    assert np.allclose(wide_faces[0].box, astronaut_face.box, atol=4.0)


def test_face_mesh_points_in_order_inside_the_face(mediapipe_models, astronaut_face):
    landmarker = FaceMeshLandmarker(mediapipe_models["face-mesh"], intra_op_num_threads=1)
    assert isinstance(landmarker, FaceLandmarker)
    points, presence = landmarker(skimage.data.astronaut(), astronaut_face)
    assert points.shape == (468, 3) and points.dtype == np.float32
    assert presence > 0.9
    x0, y0, x1, y1 = astronaut_face.box
    for idx in (RIGHT_EYE, LEFT_EYE, NOSE_TIP):
        assert x0 < points[idx, 0] < x1 and y0 < points[idx, 1] < y1
    # BlazeFace's box ends at the chin, so allow the chin point 5% of the box height below it.
    assert x0 < points[CHIN, 0] < x1 and y0 < points[CHIN, 1] < y1 + 0.05 * astronaut_face.height
    assert points[RIGHT_EYE, 0] < points[NOSE_TIP, 0] < points[LEFT_EYE, 0]
    assert max(points[RIGHT_EYE, 1], points[LEFT_EYE, 1]) < points[NOSE_TIP, 1] < points[CHIN, 1]


def test_face_mesh_follows_a_rotated_face(mediapipe_models, detector):
    rotation = cv2.getRotationMatrix2D((256.0, 256.0), 25.0, 1.0)
    rotated = cv2.warpAffine(skimage.data.astronaut(), rotation, (512, 512))
    (face,) = detector([rotated])[0]
    points, presence = FaceMeshLandmarker(mediapipe_models["face-mesh"])(rotated, face)
    eye_vec = points[LEFT_EYE, :2] - points[RIGHT_EYE, :2]
    assert presence > 0.9
    assert np.degrees(np.arctan2(eye_vec[1], eye_vec[0])) == pytest.approx(-25.0, abs=6.0)
    assert not FaceMeshLandmarker(mediapipe_models["face-mesh"])(skimage.data.coffee(), face)[1] > 0.5


def test_selfie_mask_covers_person_not_corners(mediapipe_models):
    model = str(mediapipe_models["mediapipe-selfie"])
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    image = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    batch = np.stack([image, image]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    (mask,) = session.run(None, {session.get_inputs()[0].name: batch})
    assert mask.shape == (2, 1, 256, 256)
    mask = mask[0, 0]
    assert mask[64, 112] > 0.5  # face centre (astronaut face ≈ (225, 128) in 512 px)
    assert mask[200, 100] > 0.5  # suit
    assert mask[:16, :16].max() < 0.5 and mask[:16, -16:].max() < 0.5


def test_fetch_from_tflite_dir_and_sha_mismatch(mediapipe_models, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in MEDIAPIPE_MODELS:
        (src / tflite_path(name).name).write_bytes(tflite_path(name).read_bytes())
    home = tmp_path / "home"
    paths = fetch(list(MEDIAPIPE_MODELS), from_tflite=src, home=home)
    assert set(paths) == set(MEDIAPIPE_MODELS)
    assert sha256_file(paths["blazeface"]) == sha256_file(mediapipe_models["blazeface"])
    assert ensure("face-mesh", home=home) == paths["face-mesh"]
    for path in paths.values():  # what a job later checks the cached file against
        assert recorded_sha256(path) == sha256_file(path)

    tampered = src / "face_detection_short_range.tflite"
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    with pytest.raises(ModelUnavailable, match="face_detection_short_range.tflite"):
        fetch(["blazeface"], from_tflite=src, home=tmp_path / "other")


def test_ensure_failure_names_model_dir_and_command(tmp_path, monkeypatch):
    import idphoto_ray.models.mediapipe_fetch as mf

    def offline(dest):
        raise ModelUnavailable("pip download failed: no network")

    monkeypatch.setattr(mf, "download_wheel", offline)
    with pytest.raises(ModelUnavailable) as err:
        ensure("blazeface", home=tmp_path)
    message = str(err.value)
    assert "'blazeface'" in message and str(tmp_path / "mediapipe") in message
    assert "idphoto-ray models fetch blazeface" in message and "--from-wheel" in message
