"""Head geometry: which face, where the eyes/chin/crown are, how to level and crop to a spec.

All coordinates are working-image pixels (x right, y down) unless a name says otherwise.
"Right eye" is the subject's right eye, which appears on the image's left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from idphoto_ray import crop_rules
from idphoto_ray.specs import PhotoSpec
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

#: Detector keypoints are read at the detector's input resolution; each eye is good to about one model pixel.
KEYPOINT_ERROR_MODEL_PX = 1.0
#: Mesh and detector rolls this close always agree (the mesh's own passes agree within 0.5°).
MIN_ROLL_DISAGREEMENT_DEG = 4.0

#: Below this |roll| the rotation (and its resampling blur) is not worth it.
MIN_ROLL_CORRECTION_DEG = 1.0
#: Nose-tip depth as a fraction of the face half-width, for the yaw approximation below.
NOSE_DEPTH_RATIO = 0.7
#: Without landmarks, eye→chin ≈ 1.6 × eye→mouth (anthropometric average; a documented guess).
CHIN_FROM_MOUTH_RATIO = 1.6
#: Downscaling by more than this goes through an INTER_AREA resize first (warpAffine alone aliases).
AREA_PRESCALE_THRESHOLD = 2.0


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


def chin_point(landmarks: np.ndarray | None, face: Face) -> np.ndarray:
    """Chin (x, y): mesh point 152, else extrapolated from eyes and mouth (see CHIN_FROM_MOUTH_RATIO)."""
    if landmarks is not None:
        return np.asarray(landmarks, dtype=np.float64)[MESH_CHIN, :2].copy()
    kp = np.asarray(face.keypoints, dtype=np.float64)
    eye_mid = (kp[0] + kp[1]) / 2.0
    return eye_mid + (kp[3] - eye_mid) * CHIN_FROM_MOUTH_RATIO


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


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> tuple[float, ...]:
    """The 2×3 affine `outer ∘ inner` (apply inner first) as six floats [a, b, c, d, e, f]."""
    o, i = np.asarray(outer, np.float64), np.asarray(inner, np.float64)
    m = o[:, :2] @ i
    m[:, 2] += o[:, 2]
    return tuple(float(v) for v in m.ravel())


def input_affine(working_affine: tuple[float, ...], scale: float) -> list[float]:
    """Input (original resolution, EXIF-upright) px → output px, from working px → output px.

    Working pixel centres sit at (x + 0.5)·scale − 0.5 of the input's (the decoder's resize aligns pixel
    centres), so the input → working step is x·scale + (scale − 1)/2 on both axes.
    """
    offset = (scale - 1.0) / 2.0
    inner = np.array([[scale, 0.0, offset], [0.0, scale, offset]])
    return list(compose_affine(np.asarray(working_affine, np.float64).reshape(2, 3), inner))


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine matrix to (N, 2+) points; extra columns (mesh z) are kept unchanged."""
    pts = np.asarray(points, dtype=np.float64)
    out = pts.copy()
    xy = np.c_[pts[..., :2].reshape(-1, 2), np.ones(pts[..., :2].reshape(-1, 2).shape[0])]
    out[..., :2] = (xy @ np.asarray(matrix, dtype=np.float64).T).reshape(pts[..., :2].shape)
    return out


@dataclass(frozen=True)
class CropPlan:
    """Where the output comes from: a source-space box (x0, y0, w, h) scaled to the output size.

    scale = output px per source px (> 1 means upscaling). `cuts` name where the source's edge cuts the
    person inside the output (crop_rules.EDGE_CUTS); `cuts_at_target` what the middle of the spec's ranges
    would have shown, so a manifest can tell which cuts the crop rules avoided.
    """

    x0: float
    y0: float
    w: float
    h: float
    out_w: int
    out_h: int
    placement: str  # "crown" | "eye" | "default-crown": which rule set the vertical position
    cuts: tuple[Flag, ...] = ()
    head_touches_top: bool = False
    cuts_at_target: tuple[Flag, ...] = ()

    @property
    def scale(self) -> float:
        return self.out_w / self.w

    def flags(self) -> list[Flag]:
        return list(self.cuts) + ([Flag.HEAD_TOUCHES_TOP] if self.head_touches_top else [])

    @property
    def matrix(self) -> np.ndarray:
        """2×3 affine, levelled-frame px → output px."""
        s = self.scale
        return np.array([[s, 0.0, -s * self.x0], [0.0, s, -s * self.y0]])

    def to_output(self, points: np.ndarray) -> np.ndarray:
        """Source (x, y) → output (x, y)."""
        pts = np.asarray(points, dtype=np.float64)
        return (pts - np.array([self.x0, self.y0])) * self.scale


def plan_crop(
    spec: PhotoSpec,
    crown_y: float,
    chin_y: float,
    eye_y: float,
    face_center_x: float,
    image_shape: tuple[int, ...],
    edges: dict[str, np.ndarray] | None = None,
) -> CropPlan:
    """Head size and vertical position within the spec's ranges, chosen so the source's edge cuts no one.

    Position rule: crown margin (both bounds) → eye line (both bounds) → crop_rules.DEFAULT_CROWN_RANGE;
    a one-sided rule is only checked, not used for placement. The crown comes first because head-size
    rules are chin–crown, so pinning the crown keeps both ends of the measured head inside the frame.
    Horizontally the face midline is centred. `edges` (crop_rules.person_edge_points) are where the
    person meets the source's edges; without them every placement is cut-free and the middle of the
    ranges is used. image_shape is kept for callers; the edges carry the source's extent.
    """
    rule, chosen, middle = crop_rules.search(spec, crown_y, chin_y, eye_y, face_center_x, edges or {})
    out_w, out_h = spec.size_px
    order = [Flag.CROWN_CUT, Flag.SIDE_CUT, Flag.BODY_CUT]
    return CropPlan(
        x0=chosen.x0,
        y0=chosen.y0,
        w=chosen.w,
        h=chosen.h,
        out_w=out_w,
        out_h=out_h,
        placement=rule,
        cuts=tuple(c for c in order if c in chosen.cuts),
        head_touches_top=chosen.crown_gap_px < crop_rules.MIN_CROWN_GAP * out_h - 1.0,
        cuts_at_target=tuple(c for c in order if c in middle.cuts),
    )


def extract_crop(array: np.ndarray, plan: CropPlan, border: str = "constant") -> np.ndarray:
    """Resample the plan's box to output size with one warpAffine (INTER_AREA pre-scale when shrinking >2×).

    border: "replicate" for the photo (pixels outside the source get alpha 0 anyway) or "constant" (0)
    for masks.
    """
    src = np.asarray(array)
    if src.dtype == np.float64:
        src = src.astype(np.float32)
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    s = plan.scale
    size = (plan.out_w, plan.out_h)
    if 1.0 / s <= AREA_PRESCALE_THRESHOLD:
        m = np.array([[s, 0.0, -s * plan.x0], [0.0, s, -s * plan.y0]])
        return cv2.warpAffine(src, m, size, flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=0)

    img_h, img_w = src.shape[:2]
    margin = 2.0 / s
    rx0 = int(max(0, math.floor(plan.x0 - margin)))
    ry0 = int(max(0, math.floor(plan.y0 - margin)))
    rx1 = int(min(img_w, math.ceil(plan.x0 + plan.w + margin)))
    ry1 = int(min(img_h, math.ceil(plan.y0 + plan.h + margin)))
    if rx1 - rx0 < 2 or ry1 - ry0 < 2:
        return np.zeros((plan.out_h, plan.out_w) + src.shape[2:], dtype=src.dtype)
    region = src[ry0:ry1, rx0:rx1]
    new_w = max(1, int(round((rx1 - rx0) * s)))
    new_h = max(1, int(round((ry1 - ry0) * s)))
    small = cv2.resize(region, (new_w, new_h), interpolation=cv2.INTER_AREA)
    sx, sy = new_w / (rx1 - rx0), new_h / (ry1 - ry0)
    # INTER_AREA maps pixel centres: small index i sits at region coordinate (i + 0.5) / sx - 0.5.
    tx = (rx0 - plan.x0) * s + 0.5 * (s / sx - s)
    ty = (ry0 - plan.y0) * s + 0.5 * (s / sy - s)
    m = np.array([[s / sx, 0.0, tx], [0.0, s / sy, ty]])
    return cv2.warpAffine(small, m, size, flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=0)
