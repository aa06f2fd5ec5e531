"""Levelling: the roll of the eye line, whether to trust it, the frame rotated to undo it, and the crown.

All coordinates are working-image pixels unless a name says levelled frame (the rotated canvas).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from idphoto_ray.geometry import crop_rules
from idphoto_ray.geometry.affine import transform_points
from idphoto_ray.types import Face, PhotoError, Reason

#: Detector keypoints are read at the detector's input resolution; each eye is good to about one model pixel.
KEYPOINT_ERROR_MODEL_PX = 1.0
#: Mesh and detector rolls this close always agree (the mesh's own passes agree within 0.5°).
MIN_ROLL_DISAGREEMENT_DEG = 4.0

#: Below this |roll| the rotation (and its resampling blur) is not worth it.
MIN_ROLL_CORRECTION_DEG = 1.0


def roll_deg(left_eye: np.ndarray, right_eye: np.ndarray) -> float:
    """Angle of the eye line in image coordinates; positive when the image-right (left) eye is lower."""
    dx = float(left_eye[0] - right_eye[0])
    dy = float(left_eye[1] - right_eye[1])
    return math.degrees(math.atan2(dy, dx))


def roll_tolerance_deg(keypoint_eye_distance_px: float, model_px: float) -> float:
    """How far the detector's keypoint roll may sit from the mesh roll and still be the same answer.

    Each keypoint eye can be off by KEYPOINT_ERROR_MODEL_PX detector pixels (model_px source px each), so
    the keypoint eye line is good to atan(2·error / eye distance): 12° for eyes 9 model px apart (a face
    filling an eighth of a 1600-px photo), 6° at 20 px; never less than MIN_ROLL_DISAGREEMENT_DEG.
    """
    spread = 2.0 * KEYPOINT_ERROR_MODEL_PX * model_px
    angle = math.degrees(math.atan2(spread, max(keypoint_eye_distance_px, 1e-6)))
    return max(MIN_ROLL_DISAGREEMENT_DEG, angle)


def roll_uncertain(mesh_roll: float, face: Face, model_px: float) -> bool:
    """True when the mesh's eye line and the detector's keypoint eye line disagree beyond keypoint precision.

    Two models that see the same face differently mean neither can be trusted to level the photo: the
    red-wall demo sample was rotated 11° the wrong way on such a disagreement (mesh −7.6°, keypoints −21°).
    """
    kp = np.asarray(face.keypoints, dtype=np.float64)
    keypoint_roll = roll_deg(kp[1], kp[0])
    tolerance = roll_tolerance_deg(float(np.hypot(*(kp[1] - kp[0]))), model_px)
    return abs(mesh_roll - keypoint_roll) > tolerance


def find_crown_y(alpha: np.ndarray, x0: float, x1: float, threshold: float = 0.5) -> float | None:
    """Top of the person (hair included) within columns [x0, x1), sub-pixel; None if the span is empty."""
    w = alpha.shape[1]
    c0, c1 = max(0, int(math.floor(x0))), min(w, int(math.ceil(x1)))
    if c1 <= c0:
        return None
    profile = alpha[:, c0:c1].max(axis=1)
    rows = np.nonzero(profile >= threshold)[0]
    if rows.size == 0:
        return None
    r = int(rows[0])
    if r == 0:
        return 0.0
    lo, hi = float(profile[r - 1]), float(profile[r])
    return (r - 1) + (threshold - lo) / max(hi - lo, 1e-6)


def crown_touches_top(alpha: np.ndarray, x0: float, x1: float, threshold: float = 0.5) -> bool:
    """True when the person mask reaches the source's top edge above the face: the crown is cut off."""
    w = alpha.shape[1]
    c0, c1 = max(0, int(math.floor(x0))), min(w, int(math.ceil(x1)))
    return c1 > c0 and float(alpha[0, c0:c1].max()) >= threshold


@dataclass(frozen=True)
class LeveledFrame:
    """The working image, its alpha and a coverage mask as seen after roll correction, warped on demand.

    Rotating the whole working image, its alpha and the coverage mask onto an enlarged canvas cost ~24 ms
    per 1600-px photo, yet only the crown strip, the face box and each spec's crop are ever read. A region
    is warped with the canvas matrix shifted to its corner, which gives the pixels of the same slice of the
    fully warped canvas. Without rotation the matrix is the identity and regions are plain slices.
    """

    image: np.ndarray
    alpha: np.ndarray
    matrix: np.ndarray  # 2×3, source pixel → canvas pixel
    shape: tuple[int, int]  # canvas (h, w)
    rotated: bool

    @classmethod
    def level(
        cls, image: np.ndarray, alpha: np.ndarray, center: tuple[float, float], angle_deg: float
    ) -> LeveledFrame:
        """Rotate counter-clockwise (as displayed) by angle_deg about center, on a canvas that clips nothing.

        To level an eye line with roll r, use angle_deg = r.
        """
        h, w = image.shape[:2]
        if alpha.shape[:2] != (h, w):
            raise ValueError(f"alpha {alpha.shape[:2]} does not match image {(h, w)}")
        m = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), float(angle_deg), 1.0)
        corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64)
        moved = corners @ m.T
        min_xy = np.floor(moved.min(axis=0))
        max_xy = np.ceil(moved.max(axis=0))
        m[:, 2] -= min_xy
        return cls(image, alpha, m, (int(max_xy[1] - min_xy[1]), int(max_xy[0] - min_xy[0])), True)

    @classmethod
    def unrotated(cls, image: np.ndarray, alpha: np.ndarray) -> LeveledFrame:
        h, w = image.shape[:2]
        if alpha.shape[:2] != (h, w):
            raise ValueError(f"alpha {alpha.shape[:2]} does not match image {(h, w)}")
        return cls(image, alpha, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (h, w), False)

    def bounds(self, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        """Integer region covering [x0, x1) × [y0, y1), clipped to the canvas."""
        h, w = self.shape
        c0, r0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
        c1, r1 = min(w, int(math.ceil(x1))), min(h, int(math.ceil(y1)))
        return c0, r0, max(c0, c1), max(r0, r1)

    def region(self, layer: str, c0: int, r0: int, c1: int, r1: int) -> np.ndarray:
        """Canvas pixels [r0:r1, c0:c1] of `layer`: "image" (edges replicated), "alpha" or "valid" (0
        outside)."""
        if layer not in ("image", "alpha", "valid"):
            raise ValueError(f"unknown layer {layer!r}")
        if not self.rotated:
            if layer == "valid":
                return np.ones((r1 - r0, c1 - c0), np.float32)
            return (self.image if layer == "image" else self.alpha)[r0:r1, c0:c1]
        if c1 <= c0 or r1 <= r0:
            shape = (max(0, r1 - r0), max(0, c1 - c0)) + ((3,) if layer == "image" else ())
            return np.zeros(shape, self.image.dtype if layer == "image" else np.float32)
        m = self.matrix.copy()
        m[:, 2] -= (c0, r0)
        size = (c1 - c0, r1 - r0)
        if layer == "image":
            return cv2.warpAffine(
                self.image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
        src = np.asarray(self.alpha, np.float32) if layer == "alpha" else self._coverage_source
        return cv2.warpAffine(
            src, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )

    @cached_property
    def _coverage_source(self) -> np.ndarray:
        """Ones over the source image, made once per frame: each spec's crop asks for its coverage."""
        return np.ones(self.image.shape[:2], np.float32)

    def full(self, layer: str) -> np.ndarray:
        """The whole canvas of `layer` (tests and debugging; the pipeline reads regions)."""
        return self.region(layer, 0, 0, self.shape[1], self.shape[0])


@dataclass(frozen=True)
class Head:
    """The subject in the leveled working frame (after roll correction)."""

    frame: LeveledFrame
    right_eye: np.ndarray
    left_eye: np.ndarray
    chin: np.ndarray
    box: tuple[float, float, float, float]
    crown_y: float
    face_width: float
    edges: dict[str, np.ndarray]  # where the person meets the source's edges, levelled frame (crop_rules)

    @property
    def eye_mid(self) -> np.ndarray:
        return (self.right_eye + self.left_eye) / 2.0


def level_head(
    image: np.ndarray,
    alpha: np.ndarray,
    face: Face,
    right_eye: np.ndarray,
    left_eye: np.ndarray,
    chin: np.ndarray,
    roll: float,
    face_width: float,
) -> Head:
    """Rotate about the eye midpoint when the roll is worth correcting; find the crown in the leveled
    frame."""
    box = face.box
    frame = LeveledFrame.unrotated(image, alpha)
    if abs(roll) > MIN_ROLL_CORRECTION_DEG:
        mid = (right_eye + left_eye) / 2.0
        frame = LeveledFrame.level(image, alpha, (mid[0], mid[1]), roll)
        right_eye, left_eye, chin = transform_points(np.stack([right_eye, left_eye, chin]), frame.matrix)
        cx, cy = transform_points(np.array([face.center]), frame.matrix)[0]
        box = (cx - face.width / 2, cy - face.height / 2, cx + face.width / 2, cy + face.height / 2)
    c0, _, c1, _ = frame.bounds(box[0], 0, box[2], 0)
    crown = find_crown_y(frame.region("alpha", c0, 0, c1, frame.shape[0]), box[0] - c0, box[2] - c0)
    if crown is None or crown >= min(right_eye[1], left_eye[1]):
        raise PhotoError(Reason.NO_PERSON, "no person mask above the eyes: cannot find the crown")
    edges = crop_rules.person_edge_points(alpha, frame.matrix)
    return Head(frame, right_eye, left_eye, chin, box, float(crown), face_width, edges)


def face_bounds(box: tuple[float, float, float, float], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The face box rounded to whole pixels and clipped to the canvas (may be empty)."""
    h, w = shape
    x0, y0, x1, y1 = box
    c0, c1 = max(0, int(round(x0))), min(w, int(round(x1)))
    r0, r1 = max(0, int(round(y0))), min(h, int(round(y1)))
    return c0, r0, max(c0, c1), max(r0, r1)
