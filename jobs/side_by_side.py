"""Look at the pipeline's result with your own eyes: input | mask | cn-1inch on three backgrounds.

    python jobs/side_by_side.py [IMAGE] [-o side_by_side.png] [--spec cn-1inch] [--model mediapipe-selfie]

Without IMAGE it uses scikit-image's astronaut. Runs the real models (segmenter, BlazeFace, face mesh)
on CPU; prints the status, flags and key metrics so the picture and the numbers can be compared.
"""

from __future__ import annotations

# The ONNX Runtime check runs before any import that needs it.
from idphoto_ray.install_check import require_onnxruntime

require_onnxruntime()

import argparse
import io
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from idphoto_ray.backgrounds import parse_background
from idphoto_ray.config import ProcessingOptions
from idphoto_ray.decode import decode_image
from idphoto_ray.models.face_detect import PIPELINE_DETECTOR
from idphoto_ray.models.registry import (
    build_face_detector,
    build_face_landmarker,
    build_segmenter,
    face_model_paths,
    resolve_segmenter,
    segmenter_graph,
)
from idphoto_ray.photo import process_photo
from idphoto_ray.refine import upsample_mask
from idphoto_ray.specs import get_spec

BACKGROUNDS = ("white", "blue", "red")
PANEL_HEIGHT = 480
GAP = 8


def _input_bytes(path: str | None) -> bytes:
    if path:
        return Path(path).read_bytes()
    from skimage.data import astronaut

    buf = io.BytesIO()
    Image.fromarray(astronaut()).save(buf, format="PNG")
    return buf.getvalue()


def _panel(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    width = max(1, round(w * PANEL_HEIGHT / h))
    interp = cv2.INTER_AREA if h > PANEL_HEIGHT else cv2.INTER_CUBIC
    return cv2.resize(rgb, (width, PANEL_HEIGHT), interpolation=interp)


def side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    """Panels of equal height, separated by light-grey gaps."""
    gap = np.full((PANEL_HEIGHT, GAP, 3), 230, np.uint8)
    row: list[np.ndarray] = []
    for p in panels:
        row += [_panel(p), gap]
    return np.hstack(row[:-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", help="photo path (default: skimage astronaut)")
    parser.add_argument("-o", "--output", default="side_by_side.png")
    parser.add_argument("--spec", default="cn-1inch")
    parser.add_argument("--model", default="mediapipe-selfie")
    args = parser.parse_args(argv)

    options = ProcessingOptions()
    decoded = decode_image(_input_bytes(args.image), options.working_long_side, options.max_pixels)
    info, seg_path = resolve_segmenter(args.model)
    segmenter = build_segmenter(info, segmenter_graph(info, seg_path)[0])
    faces = face_model_paths()
    detector = build_face_detector(faces[PIPELINE_DETECTOR], intra_op_num_threads=None)
    landmarker = build_face_landmarker(faces["face-mesh"], intra_op_num_threads=None)

    mask = segmenter([decoded.rgb])[0]
    result = process_photo(
        decoded.rgb,
        mask,
        detector,
        landmarker,
        [get_spec(args.spec)],
        [parse_background(b) for b in BACKGROUNDS],
        options,
        source_scale=decoded.scale,
    )
    print(f"status={result.status.value} reason={result.reason and result.reason.value} {result.message}")
    print(f"flags={result.flags}")
    for key in (
        "face_count",
        "roll_deg",
        "yaw_deg",
        "inter_eye_px",
        "head_height_ratio",
        "sharpness",
        "upscale",
    ):
        print(f"  {key}: {result.metrics.get(key)}")
    print(f"  timings_ms: { {k: round(v, 1) for k, v in result.timings_ms.items()} }")

    mask_rgb = np.repeat(
        (upsample_mask(mask, decoded.rgb.shape) * 255).astype(np.uint8)[..., None], 3, axis=2
    )
    outputs = [np.asarray(Image.open(io.BytesIO(o.data)).convert("RGB")) for o in result.outputs]
    Image.fromarray(side_by_side([decoded.rgb, mask_rgb, *outputs])).save(args.output)
    print(f"wrote {args.output}")
    return 0 if result.outputs else 1


if __name__ == "__main__":
    sys.exit(main())
