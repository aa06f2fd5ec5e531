"""How much our model-input resize changes IS-Net's matte against the npm package's own resize.

The package (`dist/index.cjs`, tensorResizeBilinear) samples the full-size RGB at x · (w / 1024) with
bilinear weights and no prefilter; our prepare stage decodes JPEGs at a reduced scale and shrinks with
cv2 INTER_AREA. Both feed the same normalisation and the same model; this prints the mean absolute
difference of the two 1024² alphas per photo (and in the edge band, where it matters), in [0, 1].

    python jobs/isnet_resize.py --model-home DIR ../shared/devset/*.jpg
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

SIZE = 1024


def package_resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """The package's bilinear: corner-aligned source x · (w / W), floor/ceil neighbours, rounded to uint8."""
    h, w = rgb.shape[:2]
    sx = np.arange(width) * (w / width)
    sy = np.arange(height) * (h / height)
    x1, y1 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    x2, y2 = np.minimum(np.ceil(sx).astype(int), w - 1), np.minimum(np.ceil(sy).astype(int), h - 1)
    dx, dy = (sx - x1)[None, :, None], (sy - y1)[:, None, None]
    src = rgb.astype(np.float64)
    top = (1 - dx) * src[y1][:, x1] + dx * src[y1][:, x2]
    bottom = (1 - dx) * src[y2][:, x1] + dx * src[y2][:, x2]
    return np.round((1 - dy) * top + dy * bottom).astype(np.uint8)


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--model", default="isnet-medium")
    parser.add_argument("--model-home", type=Path, help="IDPHOTO_RAY_HOME holding the model")
    args = parser.parse_args()
    if args.model_home:
        os.environ["IDPHOTO_RAY_HOME"] = str(args.model_home)

    from idphoto_ray.decode import decode_image
    from idphoto_ray.models.registry import build_segmenter, resolve_segmenter
    from idphoto_ray.models.segmenters import model_input

    info, path = resolve_segmenter(args.model)
    seg = build_segmenter(info, path.read_bytes(), intra_op_num_threads=2)
    print(f"{'photo':32} {'size':>11} {'mean |Δα|':>10} {'edge band':>10} {'|Δα|>0.1':>9}")
    means = []
    for photo in args.photos:
        data = photo.read_bytes()
        full = decode_image(data, long_side=100_000, max_pixels=200_000_000).rgb
        ours = model_input(decode_image(data, long_side=1600, max_pixels=200_000_000, cover=SIZE).rgb, SIZE)
        theirs = package_resize(full, SIZE, SIZE)
        a, b = seg([ours])[0], seg([theirs])[0]
        diff = np.abs(a - b)
        edge = cv2.dilate(((b > 0.05) & (b < 0.95)).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        means.append(float(diff.mean()))
        size = f"{full.shape[1]}x{full.shape[0]}"
        big = (diff > 0.1).mean()
        print(f"{photo.name:32} {size:>11} {diff.mean():10.4f} {diff[edge].mean():10.4f} {big:9.4f}")
    print(f"mean over {len(means)} photos: {np.mean(means):.4f}")


if __name__ == "__main__":
    main()
