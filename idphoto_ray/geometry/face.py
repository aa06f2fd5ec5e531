"""The subject's face: which face is the subject, where its eyes and chin are, how it is turned and whether
its eyes and mouth are as the rules want them.

All coordinates are working-image pixels (x right, y down) unless a name says otherwise.
"Right eye" is the subject's right eye, which appears on the image's left.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from idphoto_ray.types import Face, Flag, PhotoError, Reason

#: MediaPipe face-mesh indices used here.
MESH_RIGHT_EYE = (33, 133)
MESH_LEFT_EYE = (362, 263)
MESH_NOSE_TIP = 1
MESH_CHIN = 152
MESH_CHEEK_RIGHT = 234  # face-oval extreme on the image left
MESH_CHEEK_LEFT = 454  # face-oval extreme on the image right

#: Eyelid and inner-lip points: (upper, lower) per eye, and the inner lip midpoints and corners.
MESH_RIGHT_LIDS = (159, 145)
MESH_LEFT_LIDS = (386, 374)
MESH_LIPS_INNER = (13, 14)
MESH_MOUTH_CORNERS_INNER = (78, 308)

#: Lid gap / eye width below this is a closed eye. Open eyes on the 43 development faces measure 0.21–0.43
#: (the lowest a smiling squint); the common blink threshold on mesh eye ratios is 0.2, on both eyes.
EYE_CLOSED_RATIO = 0.15
#: Inner-lip gap / inner mouth width above this is an open mouth. Looked at on the development faces:
#: closed 0.00–0.08 (two of those show a slit of teeth), every smile with teeth 0.10–0.38.
MOUTH_OPEN_RATIO = 0.09

#: The skin zone starts this fraction of the eye-corner distance below the eye corners (clear of lower lids).
SKIN_ZONE_BELOW_EYES = 0.15
#: Nose-tip depth in front of the cheek extremes (mesh 234/454) as a fraction of half their distance, from
#: the face mesh's own 3-D points on the calibration half of the development portraits: median 1.39
#: (1.33–1.43). The 0.7 used before doubled every yaw: img14, frontal to the eye, read 15.3° where the
#: mesh's cheek line says 6.8°; with 1.39 the two agree within 1°.
NOSE_DEPTH_RATIO = 1.39
#: Without landmarks, eye→chin ≈ 1.6 × eye→mouth (anthropometric average; a documented guess).
CHIN_FROM_MOUTH_RATIO = 1.6


def select_subject(faces: list[Face], image_shape: tuple[int, ...], ratio: float) -> Face:
    """The largest face (ties → most central); a second face of comparable size is an error, never a guess."""
    if not faces:
        raise PhotoError(Reason.NO_FACE, "no face detected")
    h, w = float(image_shape[0]), float(image_shape[1])

    def key(face: Face) -> tuple[float, float]:
        cx, cy = face.center
        return face.area, -math.hypot(cx / w - 0.5, cy / h - 0.5)

    ordered = sorted(faces, key=key, reverse=True)
    largest = ordered[0]
    comparable = [f for f in ordered if f.area >= ratio * largest.area]
    if len(comparable) > 1:
        raise PhotoError(
            Reason.MULTIPLE_FACES,
            f"{len(comparable)} faces of comparable size (≥{ratio:.0%} of the largest)"
            f" among {len(faces)} detected",
        )
    return largest


def eye_centers(landmarks: np.ndarray | None, face: Face) -> tuple[np.ndarray, np.ndarray]:
    """(right_eye, left_eye) centres as (x, y): mean of mesh eye corners, else BlazeFace keypoints."""
    if landmarks is not None:
        pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
        right = pts[list(MESH_RIGHT_EYE)].mean(axis=0)
        left = pts[list(MESH_LEFT_EYE)].mean(axis=0)
        return right, left
    kp = np.asarray(face.keypoints, dtype=np.float64)
    return kp[0].copy(), kp[1].copy()


def face_width_px(landmarks: np.ndarray | None, face: Face) -> float:
    """Cheek-to-cheek width (rotation-invariant) from the mesh, else the detector box width."""
    if landmarks is not None:
        pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
        return float(np.linalg.norm(pts[MESH_CHEEK_RIGHT] - pts[MESH_CHEEK_LEFT]))
    return float(face.width)


def skin_zone(landmarks: np.ndarray | None, face: Face) -> np.ndarray:
    """The cheek–nose quadrilateral (4×2, x/y) where exposure is judged: below the eyes, above the mouth.

    Judged on the whole face box, hair, brows, eyes and the backdrop beside the cheeks counted as "face":
    10–24 % of the box was near black on 9 well-lit development portraits (dark hair over the forehead)
    and img14's bright backdrop made its box 16 % near white; in this zone all 35 measured ≤ 4 % either way.
    Without the mesh, the box's middle band (BlazeFace boxes run from the brows to the chin).
    """
    if landmarks is not None:
        pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
        outer_right, outer_left = pts[MESH_RIGHT_EYE[0]], pts[MESH_LEFT_EYE[1]]
        below = np.array([0.0, SKIN_ZONE_BELOW_EYES * float(np.linalg.norm(outer_left - outer_right))])
        corners = pts[list(MESH_MOUTH_CORNERS_INNER)]
        return np.array([outer_right + below, outer_left + below, corners[1], corners[0]])
    x0, y0, x1, y1 = face.box
    w, h = x1 - x0, y1 - y0
    return np.array(
        [
            [x0 + 0.2 * w, y0 + 0.35 * h],
            [x1 - 0.2 * w, y0 + 0.35 * h],
            [x1 - 0.25 * w, y0 + 0.7 * h],
            [x0 + 0.25 * w, y0 + 0.7 * h],
        ]
    )


def skin_zone_mask(landmarks: np.ndarray | None, face: Face, box: tuple[int, int, int, int]) -> np.ndarray:
    """`skin_zone` as a boolean mask of the crop `box` (x0, y0, x1, y1, whole pixels)."""
    x0, y0, x1, y1 = box
    mask = np.zeros((max(0, y1 - y0), max(0, x1 - x0)), np.uint8)
    corners = skin_zone(landmarks, face) - np.array([x0, y0])
    cv2.fillPoly(mask, [np.rint(corners).astype(np.int32)], 1)
    return mask.astype(bool)


def chin_point(landmarks: np.ndarray | None, face: Face) -> np.ndarray:
    """Chin (x, y): mesh point 152, else extrapolated from eyes and mouth (see CHIN_FROM_MOUTH_RATIO)."""
    if landmarks is not None:
        return np.asarray(landmarks, dtype=np.float64)[MESH_CHIN, :2].copy()
    kp = np.asarray(face.keypoints, dtype=np.float64)
    eye_mid = (kp[0] + kp[1]) / 2.0
    return eye_mid + (kp[3] - eye_mid) * CHIN_FROM_MOUTH_RATIO


def expression_measures(landmarks: np.ndarray) -> dict[str, float]:
    """Eye openness (lid gap / eye width, per eye) and mouth openness (inner-lip gap / mouth width)."""
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]

    def ratio(gap: tuple[int, int], span: tuple[int, int]) -> float:
        width = float(np.linalg.norm(pts[span[0]] - pts[span[1]]))
        return float(np.linalg.norm(pts[gap[0]] - pts[gap[1]])) / max(width, 1e-6)

    return {
        "eye_open_right": ratio(MESH_RIGHT_LIDS, MESH_RIGHT_EYE),
        "eye_open_left": ratio(MESH_LEFT_LIDS, MESH_LEFT_EYE),
        "mouth_open": ratio(MESH_LIPS_INNER, MESH_MOUTH_CORNERS_INNER),
    }


def expression_flags(measures: dict[str, float]) -> list[Flag]:
    """`eyes_closed` when either eye is shut, `mouth_open` when the lips are apart (passport/visa rules)."""
    flags = []
    if min(measures["eye_open_right"], measures["eye_open_left"]) < EYE_CLOSED_RATIO:
        flags.append(Flag.EYES_CLOSED)
    if measures["mouth_open"] > MOUTH_OPEN_RATIO:
        flags.append(Flag.MOUTH_OPEN)
    return flags


def yaw_estimate_deg(landmarks: np.ndarray | None, face: Face | None = None) -> float:
    """Rough yaw from how far the nose tip sits from the middle of the face span.

    Approximation: the head is a cylinder whose nose tip protrudes NOSE_DEPTH_RATIO × half-width, so
    offset/half-width = NOSE_DEPTH_RATIO × sin(yaw), the offset taken along the span's own axis.
    Span = mesh cheek extremes 234/454 (or the BlazeFace ear tragions). Good to a few degrees near
    frontal, which is all a "turn your head" flag needs.
    Positive = nose towards the image right (for an upright head).
    """
    if landmarks is not None:
        pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
        a, b, nose = pts[MESH_CHEEK_RIGHT], pts[MESH_CHEEK_LEFT], pts[MESH_NOSE_TIP]
    elif face is not None:
        kp = np.asarray(face.keypoints, dtype=np.float64)
        a, b, nose = kp[4], kp[5], kp[2]
    else:
        return 0.0
    span = b - a
    half = float(np.hypot(*span)) / 2.0
    if half < 1e-6:
        return 0.0
    # Measured along the cheek-to-cheek axis, so head roll does not read as yaw.
    offset = float(np.dot(nose - (a + b) / 2.0, span / (2.0 * half))) / half
    return math.degrees(math.asin(float(np.clip(offset / NOSE_DEPTH_RATIO, -1.0, 1.0))))
