"""Small value types shared by the image core, the models and the pipeline.

Kept free of Ray and ONNX Runtime so every stage can be tested on plain numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

#: BlazeFace keypoint order. "right"/"left" are the *subject's*: the right eye appears on the image's left.
KEYPOINT_NAMES: tuple[str, ...] = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
)


class Status(str, Enum):
    OK = "ok"
    NEEDS_REVIEW = "needs_review"
    FAILED = "failed"


class Reason(str, Enum):
    """Failure codes: exactly one per failed photo, stable strings that land in the manifest."""

    NOT_AN_IMAGE = "not_an_image"
    DECODE_ERROR = "decode_error"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MODE = "unsupported_mode"
    NO_FACE = "no_face"
    MULTIPLE_FACES = "multiple_faces"
    NO_PERSON = "no_person"
    SEGMENTATION_ERROR = "segmentation_error"
    ENCODE_ERROR = "encode_error"
    MAX_KB_UNREACHABLE = "max_kb_unreachable"
    WRITE_ERROR = "write_error"
    READ_ERROR = "read_error"
    INTERNAL_ERROR = "internal_error"


class PhotoError(Exception):
    """A per-photo failure that becomes a manifest row (status=failed), never a crashed batch."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Face:
    """One detected face in source-image pixels.

    box is (x0, y0, x1, y1); keypoints is a (6, 2) float array in KEYPOINT_NAMES order.
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray = field(repr=False)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)
