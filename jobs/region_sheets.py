"""Whole-frame against region-of-interest segmentation on real portraits: contact sheets and seconds.

    python jobs/region_sheets.py [--half validation] [--models mediapipe-selfie,isnet] [--out DIR]

For each development portrait of the half (group photos left out) and each model, the photo path runs
twice, `segment_region: whole` and `roi`, making cn-1inch on white. Per model one sheet: rows of
whole | roi at 100 %, captioned, in `--out` (PNG, so nothing is smeared by JPEG); and per photo the share
of the frame the model saw and the seconds of prepare + segment + finish, printed as a table.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from idphoto_ray.config import ProcessingOptions
from idphoto_ray.photo_path import PhotoPath, quantize_masks
from idphoto_ray.specs import get_spec

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "devset"
GROUP_PHOTOS = {"deepface_selfie-many-people.jpg", "hivision_demoImage.jpg"}
REGIONS = ("whole", "roi")


def _caption(rgb: np.ndarray, text: str) -> np.ndarray:
    tile = cv2.copyMakeBorder(rgb, 18, 2, 2, 2, cv2.BORDER_CONSTANT, value=(60, 60, 60))
    cv2.putText(tile, text[:48], (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1)
    return tile


def run_model(model: str, names: list[str], devset: Path, spec: str) -> tuple[list[np.ndarray], list[dict]]:
    """(sheet rows, per-photo figures) for one model over the portraits."""
    from idphoto_ray.models.registry import build_segmenter, resolve_segmenter

    info, weights = resolve_segmenter(model)
    seg = build_segmenter(info, weights)
    seg([np.zeros((seg.input_size, seg.input_size, 3), np.uint8)])  # warm-up: not the first photo's seconds
    base = PhotoPath.load([get_spec(spec)], ["white"], ProcessingOptions())
    paths = {
        r: PhotoPath(
            base.detector, base.landmarker, base.specs, base.backgrounds, ProcessingOptions(segment_region=r)
        )
        for r in REGIONS
    }
    rows, figures = [], []
    for name in names:
        data = (devset / name).read_bytes()
        tiles = []
        for region, path in paths.items():
            started = time.perf_counter()
            prepared = path.prepare(data, seg.input_size)
            mask = quantize_masks(seg([prepared.model_image]))[0]
            result = path.finish(prepared, mask)
            seconds = time.perf_counter() - started
            box = prepared.region or (0.0, 0.0, 1.0, 1.0)
            share = (box[2] - box[0]) * (box[3] - box[1])
            figures.append(
                {
                    "photo": name,
                    "region": region,
                    "share": share,
                    "seconds": seconds,
                    "status": result.status.value,
                    "flags": [f.value for f in result.flags],
                }
            )
            if result.outputs:
                rgb = np.asarray(Image.open(io.BytesIO(result.outputs[0].data)).convert("RGB"))
            else:
                size = get_spec(spec).size_px
                rgb = np.full((size[1], size[0], 3), 80, np.uint8)
            tiles.append(_caption(rgb, f"{Path(name).stem} {region} {share:.0%} {result.status.value}"))
        rows.append(np.hstack(tiles))
        print(f"  {model} {name}: " + ", ".join(f"{f['region']} {f['seconds']:.1f} s" for f in figures[-2:]))
    return rows, figures


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devset", default=str(DEVSET))
    ap.add_argument("--half", choices=["calibration", "validation"], default="validation")
    ap.add_argument("--models", default="mediapipe-selfie,isnet")
    ap.add_argument("--spec", default="cn-1inch")
    ap.add_argument("--limit", type=int, default=None, help="first N portraits of the half")
    ap.add_argument("--photos", default=None, help="comma list of file names of the half (default: all)")
    ap.add_argument("--out", default="region-sheets")
    args = ap.parse_args(argv)

    devset = Path(args.devset)
    names = sorted(p.name for p in devset.glob("*.jpg"))
    names = [n for n in names[{"calibration": 0, "validation": 1}[args.half] :: 2] if n not in GROUP_PHOTOS]
    if args.photos:
        names = [n for n in names if n in args.photos.split(",")]
    names = names[: args.limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for model in args.models.split(","):
        rows, figures = run_model(model, names, devset, args.spec)
        Image.fromarray(np.vstack(rows)).save(out / f"region-{args.half}-{model}.png")
        print(f"\n{model}: photo, share of the frame segmented, s/photo (prepare + segment + finish), status")
        for name in names:
            w, r = (next(f for f in figures if f["photo"] == name and f["region"] == g) for g in REGIONS)
            print(
                f"  {name:<28} roi {r['share']:>4.0%}  whole {w['seconds']:5.2f} s  roi {r['seconds']:5.2f} s"
                f"  {w['status']}/{r['status']}"
            )
        for region in REGIONS:
            secs = [f["seconds"] for f in figures if f["region"] == region]
            print(f"  median s/photo {region}: {np.median(secs):.2f}")


if __name__ == "__main__":
    main()
    sys.exit(0)
