"""The three model roles, as small interfaces every implementation follows.

Sessions are built from ONNX *bytes* so a Ray actor on another machine receives the model through the
object store, never through a driver-local path.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from idphoto_ray.types import Face


@runtime_checkable
class Segmenter(Protocol):
    """Batch of RGB uint8 images of any sizes → float32 masks in [0, 1] at model resolution (N, S, S)."""

    input_size: int

    def __call__(self, images: list[np.ndarray]) -> np.ndarray: ...


@runtime_checkable
class FaceDetector(Protocol):
    """Per image, the faces found (anchor-decoded, weighted-NMS'd), in source-image pixels."""

    def __call__(self, images: list[np.ndarray]) -> list[list[Face]]: ...


@runtime_checkable
class FaceLandmarker(Protocol):
    """468 face-mesh points (x, y in source pixels, z relative) for one face box, plus a presence score."""

    def __call__(self, image: np.ndarray, face: Face) -> tuple[np.ndarray, float]: ...
