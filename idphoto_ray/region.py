"""Where to segment: a region around the subject holding every frame the crop rules may choose.

An ID photo shows head and shoulders, yet a segmenter fed the whole snapshot spends its fixed-size input
(256² or 1024²) on the room: on a wide press photo the head is a tenth of IS-Net's input. The region is
found before segmentation, with BlazeFace on the small image `prepare` decodes anyway, and is wide enough
for every frame `crop_rules.search` may pick for any spec asked:

- head size and vertical position over each spec's full ranges (the search uses 90 % of them; frames moved
  down to keep the shoulders stay inside those ranges),
- a head height (crown–chin) of 1.55–2.9 eye–chin distances: outside that `crown_uncertain` flags the photo
  (matte_checks), so hair cut by the region's top edge is flagged, never silently mis-framed,
- the eye–chin distance ±20 % (the detector's chin is extrapolated from the mouth),
- the roll within ±10° of the detector's (the face mesh and BlazeFace's eyes differ by up to 7.3° on the
  development faces), or none (a doubtful roll is left uncorrected).

Regions are fractions (x0, y0, x1, y1) of the upright image, so the small decode that finds them and the
working image that uses them agree whatever their sizes. No face, several faces or no spec: the whole
frame (None).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from idphoto_ray.geometry.crop_rules import position_range
from idphoto_ray.geometry.face import CHIN_FROM_MOUTH_RATIO, select_subject
from idphoto_ray.geometry.level import roll_deg
from idphoto_ray.specs import PhotoSpec
from idphoto_ray.types import Face, PhotoError

#: Plausible crown–chin / eye–chin ratios; matte_checks flags `crown_uncertain` outside them.
HEAD_RATIO = (1.55, 2.9)
#: Uncertainty of the detector's eye–chin distance (chin extrapolated from the mouth keypoint).
EYE_CHIN_SLACK = 0.2
#: Roll uncertainty around the detector's eye line, degrees, sampled every ROLL_STEP_DEG.
ROLL_SLACK_DEG = 10.0
ROLL_STEP_DEG = 2.5
#: Extra border, in eye–chin distances: crop resampling reads a few px past the frame, and a model sees an
#: edge better with a little context beyond it.
BORDER = 0.25
#: A region covering at least this share of both sides is no gain: the whole frame is segmented instead,
#: so tightly framed portraits keep exactly the whole-frame result.
WHOLE_SHARE = 0.95

Box = tuple[float, float, float, float]


def spec_frames(spec: PhotoSpec, eye_chin: tuple[float, float]) -> np.ndarray:
    """(K, 4) boxes (x0, y0, x1, y1) of the extreme frames for `spec`, relative to the eye midpoint in the
    levelled frame (px, y down), for eye–chin distances within `eye_chin`.

    Frame edges are monotonic in each of head height, head size in the output and position, so the corners
    of that parameter box bound every frame the search can choose.
    """
    out_w, out_h = spec.size_px
    rule, pos_lo, pos_hi = position_range(spec)
    head_out = (spec.mm_to_px(spec.head_min_mm), spec.mm_to_px(spec.head_max_mm))
    boxes = []
    for chin in eye_chin:
        for ratio in HEAD_RATIO:
            head_src = ratio * chin
            crown = chin - head_src
            for head in head_out:
                s = head / head_src
                w, h = out_w / s, out_h / s
                for pos in (pos_lo, pos_hi):
                    y0 = -(out_h - pos) / s if rule == "eye" else crown - pos / s
                    boxes.append((-w / 2.0, y0, w / 2.0, y0 + h))
    return np.asarray(boxes, dtype=np.float64)


def frames_box(face: Face, specs: Sequence[PhotoSpec]) -> Box:
    """Source-pixel box holding every frame any of `specs` may choose for this face (not clipped)."""
    kp = np.asarray(face.keypoints, dtype=np.float64)
    right, left = kp[0], kp[1]
    eye_mid = (right + left) / 2.0
    eye_chin = float(np.linalg.norm((kp[3] - eye_mid) * CHIN_FROM_MOUTH_RATIO))
    eye_chin = max(eye_chin, 0.25 * face.height)  # a degenerate keypoint set must not shrink the region
    span = (eye_chin * (1 - EYE_CHIN_SLACK), eye_chin * (1 + EYE_CHIN_SLACK))
    boxes = np.concatenate([spec_frames(spec, span) for spec in specs])
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    border = BORDER * span[1]
    corners = (
        np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]])
        + np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]]) * border
    )
    roll = roll_deg(left, right)
    steps = int(math.ceil(2 * ROLL_SLACK_DEG / ROLL_STEP_DEG))
    angles = [0.0, *np.linspace(roll - ROLL_SLACK_DEG, roll + ROLL_SLACK_DEG, steps + 1)]
    points = []
    for angle in angles:
        # Levelling rotates the source by `roll` about the eye midpoint; a levelled box comes back by −roll.
        a = math.radians(angle)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        points.append(corners @ rot.T + eye_mid)
    pts = np.concatenate(points)
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def subject_region(face: Face, shape: tuple[int, ...], specs: Sequence[PhotoSpec]) -> Box | None:
    """The region to segment as fractions of the image, or None when it would be (nearly) the whole frame."""
    h, w = float(shape[0]), float(shape[1])
    x0, y0, x1, y1 = frames_box(face, specs)
    fx0, fy0 = max(0.0, x0 / w), max(0.0, y0 / h)
    fx1, fy1 = min(1.0, x1 / w), min(1.0, y1 / h)
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    if fx1 - fx0 >= WHOLE_SHARE and fy1 - fy0 >= WHOLE_SHARE:
        return None
    return fx0, fy0, fx1, fy1


@dataclass
class RegionFinder:
    """The face detector and the specs of a job: image → the region to segment (fractions), or None."""

    detector: Any
    specs: Sequence[PhotoSpec]
    multiple_face_ratio: float = 0.5

    def __call__(self, image: np.ndarray) -> Box | None:
        if not self.specs:
            return None
        faces = self.detector([image])[0]
        try:
            face = select_subject(faces, image.shape, self.multiple_face_ratio)
        except PhotoError:  # no face or several: the whole frame, and finishing reports why
            return None
        return subject_region(face, image.shape, self.specs)


def pixel_box(region: Box, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A fractional region as whole pixels (c0, r0, c1, r1) of an image of `shape`, at least 1 px each way."""
    h, w = int(shape[0]), int(shape[1])
    c0 = min(w - 1, max(0, int(math.floor(region[0] * w))))
    r0 = min(h - 1, max(0, int(math.floor(region[1] * h))))
    c1 = max(c0 + 1, min(w, int(math.ceil(region[2] * w))))
    r1 = max(r0 + 1, min(h, int(math.ceil(region[3] * h))))
    return c0, r0, c1, r1
