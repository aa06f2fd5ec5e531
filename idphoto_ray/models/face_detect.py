"""BlazeFace (MediaPipe's short- and full-range face detectors) on ONNX Runtime, batched.

The models only emit raw SSD regressors and scores; the anchor grid, decoding and weighted NMS below
follow MediaPipe's published graph options so results match MediaPipe's detector. The variant is told
apart by the model's input size: 128 px (short range, 896 anchors) or 192 px (full range, 2304 anchors).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from idphoto_ray.models.session import create_session
from idphoto_ray.types import Device, Face

INPUT_SIZE = 128
STRIDES = (8, 16, 16, 16)
SCORE_CLIP = 100.0
NUM_KEYPOINTS = 6


@dataclass(frozen=True)
class Variant:
    """One BlazeFace model's anchor options (MediaPipe's SsdAnchorsCalculator and detection thresholds)."""

    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # 2 with an interpolated-scale anchor, 1 without
    min_score: float


#: face_detection_short_range.pbtxt: four layers, interpolated scale on; faces within ~2 m.
SHORT_RANGE = Variant(128, STRIDES, 2, 0.5)
#: face_detection_full_range.pbtxt: one stride-4 layer on a 192 px input, no interpolated scale (48² anchors).
FULL_RANGE = Variant(192, (4,), 1, 0.5)
VARIANTS = {v.input_size: v for v in (SHORT_RANGE, FULL_RANGE)}
#: The detector the pipeline runs. Full range, so a group photo's small faces count: with faces 6 % of the
#: image width it finds 4 of 4 faces where short range finds 0 (development group photos, docs/quality.md).
PIPELINE_DETECTOR = "blazeface-full"


def ssd_anchors(
    input_size: int = INPUT_SIZE, strides: tuple[int, ...] = STRIDES, anchors_per_layer: int = 2
) -> np.ndarray:
    """(A, 2) anchor centres in [0, 1], in the model's output order (fixed anchor size 1×1).

    Consecutive layers with the same stride share one grid; each layer adds `anchors_per_layer` anchors
    per cell, so for the short-range model stride 8 gives 2 and stride 16 gives 6 per cell (896 in all).
    """
    centres = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 0
        while layer < len(strides) and strides[layer] == stride:
            same += 1
            layer += 1
        cells = -(-input_size // stride)
        ticks = (np.arange(cells) + 0.5) / cells
        ys, xs = np.meshgrid(ticks, ticks, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, anchors_per_layer * same, axis=0))
    return np.concatenate(centres).astype(np.float32)


def decode(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, input_size: int = INPUT_SIZE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw (A,16) regressors, (A,) logits → boxes (A,4) x0y0x1y1 and keypoints (A,6,2) in [0,1], scores."""
    offsets = raw_boxes.reshape(-1, 2 + NUM_KEYPOINTS, 2) / input_size
    centre = offsets[:, 0] + anchors
    half = offsets[:, 1] / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = offsets[:, 2:] + anchors[:, None, :]
    logits = np.clip(raw_scores.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)
    scores = 1.0 / (1.0 + np.exp(-logits))
    return boxes, keypoints, scores


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x0y0x1y1 box against many."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's WEIGHTED NMS: each cluster of overlapping detections is blended, weighted by score.

    BlazeFace fires on many neighbouring anchors for one face; averaging them is steadier than keeping
    only the best one. The blended detection keeps the cluster's top score.
    """
    order = np.argsort(-scores, kind="stable")
    kept = []
    while order.size:
        top = order[0]
        overlap = iou(boxes[top], boxes[order]) > iou_threshold
        cluster = order[overlap]
        weights = scores[cluster][:, None]
        total = weights.sum()
        box = (boxes[cluster] * weights).sum(axis=0) / total
        kps = (keypoints[cluster] * weights[:, :, None]).sum(axis=0) / total
        kept.append((box, kps, float(scores[top])))
        order = order[~overlap]
    return kept


def letterbox(image: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Fit an RGB image into size×size, aspect kept, centred on black → (img, scale, pad_xy)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[pad_y : pad_y + nh, pad_x : pad_x + nw] = resized
    return canvas, scale, (float(pad_x), float(pad_y))


class BlazeFaceDetector:
    """FaceDetector over MediaPipe's BlazeFace (short or full range, from the model's input size)."""

    def __init__(
        self,
        model: bytes | Path,
        device: Device = "cpu",
        intra_op_num_threads: int | None = None,
        min_score: float | None = None,
        nms_iou: float = 0.3,
    ) -> None:
        self.session = create_session(model, device, intra_op_num_threads)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.output_names = [o.name for o in self.session.get_outputs()]
        size = int(model_input.shape[-1])
        if size not in VARIANTS:
            raise ValueError(f"no BlazeFace variant takes {size}×{size} inputs (known: {sorted(VARIANTS)})")
        self.variant = VARIANTS[size]
        self.input_size = size
        self.min_score = self.variant.min_score if min_score is None else min_score
        self.nms_iou = nms_iou
        self.anchors = ssd_anchors(size, self.variant.strides, self.variant.anchors_per_layer)

    def _raw(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = dict(zip(self.output_names, self.session.run(None, {self.input_name: batch}), strict=False))
        by_width = {v.shape[-1]: v for v in outs.values()}
        return by_width[16], by_width[1][..., 0]

    def __call__(self, images: list[np.ndarray]) -> list[list[Face]]:
        if not images:
            return []
        size = self.variant.input_size
        boxed = [letterbox(img, size) for img in images]
        batch = np.stack([b[0] for b in boxed]).astype(np.float32) / 127.5 - 1.0
        raw_boxes, raw_scores = self._raw(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
        results = []
        for i, (_, scale, (pad_x, pad_y)) in enumerate(boxed):
            boxes, kps, scores = decode(raw_boxes[i], raw_scores[i], self.anchors, size)
            keep = scores >= self.min_score
            faces = []
            for box, points, score in weighted_nms(boxes[keep], kps[keep], scores[keep], self.nms_iou):
                box_px = (box.reshape(2, 2) * size - (pad_x, pad_y)) / scale
                points_px = (points * size - (pad_x, pad_y)) / scale
                box_tuple = tuple(float(v) for v in box_px.ravel())
                faces.append(Face(box_tuple, score, points_px.astype(np.float32)))
            results.append(faces)
        return results
