"""A drawn head-and-shoulders person with exactly known crown, chin and eyes, plus fake face models.

Colours are distinct on purpose so tests can re-measure geometry in the produced photo independently
of the pipeline: hair (crown) is dark brown, the face is skin, the neck is darker skin, eyes are pure blue.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from idphoto_ray.types import Face

HAIR = (60, 40, 30)
SKIN = (225, 185, 155)
NECK = (170, 120, 95)
SHIRT = (40, 60, 110)
EYE = (0, 0, 255)
BACKDROP = (150, 160, 150)
MODEL_SIZE = 256


@dataclass
class Person:
    image: np.ndarray  # H×W×3 uint8
    mask: np.ndarray  # MODEL_SIZE² float32, as a segmenter would return it
    face: Face
    landmarks: np.ndarray  # (468, 3)
    crown: tuple[float, float]
    chin: tuple[float, float]
    right_eye: tuple[float, float]  # image left
    left_eye: tuple[float, float]


def draw_person(
    size: tuple[int, int] = (900, 700),
    center: tuple[float, float] = (350.0, 330.0),
    head_axes: tuple[float, float] = (95.0, 130.0),
    angle_deg: float = 0.0,
    backdrop: tuple[int, int, int] = BACKDROP,
    seed: int = 0,
) -> Person:
    """Upright person drawn at `center` (head-ellipse centre), then rotated by angle_deg (ccw as
    displayed)."""
    h, w = size
    cx, cy = center
    a, b = head_axes
    img = np.empty((h, w, 3), np.uint8)
    img[:] = backdrop
    person = np.zeros((h, w), np.uint8)

    def ellipse(target: np.ndarray, c: tuple[float, float], axes: tuple[float, float], value) -> None:
        cv2.ellipse(
            target,
            (int(round(c[0])), int(round(c[1]))),
            (int(round(axes[0])), int(round(axes[1]))),
            0,
            0,
            360,
            value,
            -1,
            cv2.LINE_AA,
        )

    shoulders_c = (cx, cy + b + 0.9 * b + 40)
    ellipse(img, shoulders_c, (2.6 * a, 1.0 * b + 40), SHIRT)
    ellipse(person, shoulders_c, (2.6 * a, 1.0 * b + 40), 255)
    neck = np.array(
        [
            [cx - 0.45 * a, cy + 0.5 * b],
            [cx + 0.45 * a, cy + 0.5 * b],
            [cx + 0.45 * a, cy + 1.6 * b],
            [cx - 0.45 * a, cy + 1.6 * b],
        ],
        np.int32,
    )
    cv2.fillPoly(img, [neck], NECK)
    cv2.fillPoly(person, [neck], 255)
    ellipse(img, (cx, cy), (a, b), HAIR)
    ellipse(person, (cx, cy), (a, b), 255)
    # face = lower part of the head ellipse, hair above the forehead
    ellipse(img, (cx, cy + 0.12 * b), (0.92 * a, 0.88 * b), SKIN)
    rng = np.random.default_rng(seed)
    texture = rng.normal(0, 6, (h, w, 1))
    img = np.clip(img + texture * (person[..., None] > 0), 0, 255).astype(np.uint8)

    eye_y = cy + 0.05 * b
    right_eye, left_eye = (cx - 0.38 * a, eye_y), (cx + 0.38 * a, eye_y)
    for e in (right_eye, left_eye):
        ellipse(img, e, (0.12 * a, 0.07 * b), EYE)
    crown, chin = (cx, cy - b), (cx, cy + b)
    nose, mouth = (cx, cy + 0.35 * b), (cx, cy + 0.6 * b)

    points = {
        "re": right_eye,
        "le": left_eye,
        "crown": crown,
        "chin": chin,
        "nose": nose,
        "mouth": mouth,
        "rear": (cx - a, eye_y),
        "lear": (cx + a, eye_y),
    }
    if angle_deg:
        m = cv2.getRotationMatrix2D((cx, cy), angle_deg, 1.0)
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        person = cv2.warpAffine(person, m, (w, h), flags=cv2.INTER_LINEAR)
        points = {k: tuple(m @ np.array([p[0], p[1], 1.0])) for k, p in points.items()}

    mask = cv2.resize(
        person.astype(np.float32) / 255.0, (MODEL_SIZE, MODEL_SIZE), interpolation=cv2.INTER_AREA
    )
    keypoints = np.array([points[k] for k in ("re", "le", "nose", "mouth", "rear", "lear")], np.float32)
    box = (cx - 0.9 * a, cy - 0.6 * b, cx + 0.9 * a, cy + b)
    face = Face(box=box, score=0.95, keypoints=keypoints)
    return Person(
        img, mask, face, mesh_points(points), points["crown"], points["chin"], points["re"], points["le"]
    )


def mesh_points(points: dict[str, tuple[float, float]]) -> np.ndarray:
    """A 468-point face mesh with only the indices the pipeline reads set to meaningful places."""
    mesh = np.zeros((468, 3), np.float32)
    mesh[:, :2] = points["nose"]
    re, le = np.array(points["re"]), np.array(points["le"])
    half = (le - re) * 0.12
    mesh[33, :2], mesh[133, :2] = re - half, re + half
    mesh[362, :2], mesh[263, :2] = le - half, le + half
    # Open eyes (lid gap 0.3 of the eye width, like the development faces) and a closed mouth.
    normal = np.array([-(le - re)[1], (le - re)[0]]) / max(float(np.hypot(*(le - re))), 1e-6)
    lid = normal * float(np.hypot(*(2 * half))) * 0.15
    for centre, (upper, lower) in ((re, (159, 145)), (le, (386, 374))):
        mesh[upper, :2], mesh[lower, :2] = centre - lid, centre + lid
    mouth = np.array(points["mouth"])
    mesh[78, :2], mesh[308, :2] = mouth - half * 2, mouth + half * 2
    mesh[13, :2], mesh[14, :2] = mouth, mouth
    mesh[1, :2] = points["nose"]
    mesh[152, :2] = points["chin"]
    mesh[234, :2], mesh[454, :2] = points["rear"], points["lear"]
    return mesh


class FakeDetector:
    """Returns the given faces for every image (exact geometry, no model)."""

    def __init__(self, faces: list[Face]) -> None:
        self.faces = faces

    def __call__(self, images: list[np.ndarray]) -> list[list[Face]]:
        return [list(self.faces) for _ in images]


class FakeLandmarker:
    def __init__(self, points: np.ndarray, presence: float = 0.99) -> None:
        self.points, self.presence = points, presence

    def __call__(self, image: np.ndarray, face: Face) -> tuple[np.ndarray, float]:
        return self.points.copy(), self.presence
