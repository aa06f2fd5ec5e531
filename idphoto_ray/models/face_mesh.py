"""MediaPipe face mesh (468 landmarks) on ONNX Runtime, fed from a BlazeFace detection.

The mesh model expects an upright, square face crop: like MediaPipe we take the detection box, make
it square, enlarge it 1.5× and rotate it so the eyes are level, then map the points back to source
pixels through the inverse of that same affine. The detector's eye keypoints are coarse (one model pixel
is 8 source px on a 1600-px photo) and on the demo's red-wall sample the short-range detector put the eye
line 25° off; the mesh, given a crop that tilted, answered -7.6° for a face that is +3.4°. So, like
MediaPipe's tracking graph, a second pass re-crops with the eye line of the first pass's mesh: on the
development portraits the two passes agree within 0.5°, and the second pass corrects a mis-tilted first one.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from idphoto_ray.models.session import create_session
from idphoto_ray.types import Device, Face

INPUT_SIZE = 192
NUM_LANDMARKS = 468
ROI_SCALE = 1.5


#: Mesh eye corners (subject's right outer/inner, left inner/outer) that level the second pass.
_RIGHT_EYE, _LEFT_EYE = (33, 133), (362, 263)


def crop_affine(
    face: Face,
    size: int = INPUT_SIZE,
    roi_scale: float = ROI_SCALE,
    eyes: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """2×3 affine taking source pixels to the eye-levelled, square size×size model crop.

    eyes = (right, left) centres that set the rotation; default: the detector's eye keypoints.
    """
    cx, cy = face.center
    side = roi_scale * max(face.width, face.height)
    right_eye, left_eye = eyes if eyes is not None else (face.keypoints[0], face.keypoints[1])
    angle = math.degrees(math.atan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0]))
    matrix = cv2.getRotationMatrix2D((float(cx), float(cy)), angle, size / side)
    matrix[:, 2] += (size / 2.0 - cx, size / 2.0 - cy)
    return matrix


class FaceMeshLandmarker:
    """FaceLandmarker over MediaPipe's face_landmark model (input 192×192 RGB in [0, 1])."""

    def __init__(
        self, model: bytes | Path, device: Device = "cpu", intra_op_num_threads: int | None = None
    ) -> None:
        self.session = create_session(model, device, intra_op_num_threads)
        self.input_name = self.session.get_inputs()[0].name

    def _run(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,192,192,3) uint8 crops → landmarks (N,468,3) in crop px and presence logits (N,)."""
        batch = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
        outs = self.session.run(None, {self.input_name: batch})
        by_size = {o[0].size: o for o in outs}
        points = by_size[NUM_LANDMARKS * 3].reshape(len(crops), NUM_LANDMARKS, 3)
        return points, by_size[1].reshape(len(crops))

    def landmarks_batch(
        self, image: np.ndarray, faces: list[Face], refine: bool = True
    ) -> list[tuple[np.ndarray, float]]:
        """All faces of one image through one session call (two with `refine`: see the module docstring)."""
        results = self._landmarks(image, faces, [crop_affine(f) for f in faces])
        if not refine:
            return results
        affines = []
        for face, (pts, _) in zip(faces, results, strict=True):
            eyes = pts[list(_RIGHT_EYE), :2].mean(axis=0), pts[list(_LEFT_EYE), :2].mean(axis=0)
            affines.append(crop_affine(face, eyes=eyes))
        return self._landmarks(image, faces, affines)

    def _landmarks(
        self, image: np.ndarray, faces: list[Face], affines: list[np.ndarray]
    ) -> list[tuple[np.ndarray, float]]:
        if not faces:
            return []
        size = (INPUT_SIZE, INPUT_SIZE)
        crops = np.stack(
            [
                cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                for m in affines
            ]
        )
        points, logits = self._run(crops)
        results = []
        for m, pts, logit in zip(affines, points, logits, strict=False):
            inverse = cv2.invertAffineTransform(m)
            xy = pts[:, :2] @ inverse[:, :2].T + inverse[:, 2]
            z = pts[:, 2:] * float(np.sqrt(abs(np.linalg.det(inverse[:, :2]))))
            presence = float(1.0 / (1.0 + np.exp(-np.clip(float(logit), -100.0, 100.0))))
            results.append((np.concatenate([xy, z], axis=1).astype(np.float32), presence))
        return results

    def __call__(self, image: np.ndarray, face: Face) -> tuple[np.ndarray, float]:
        return self.landmarks_batch(image, [face])[0]
