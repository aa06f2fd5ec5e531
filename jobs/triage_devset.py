"""Triage on real portraits: every output's flags and matte measures, one line each, to set against verdicts.

For each photo of a devset half and each spec, one `process_photo` call per spec (so the flags printed are
exactly that output's), the segmenter's mask cached per model so re-running after a threshold change costs
only the finishing. Writes each output as PNG to --out for looking at 100 %, and a CSV of the measures.
The calibration/validation split is `jobs/matte_quality.devset_split` (docs/quality.md).

    python jobs/triage_devset.py --half calibration --out DIR [--model isnet] [--specs cn-1inch us-passport]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from matte_quality import devset_split

from idphoto_ray.backgrounds import parse_background
from idphoto_ray.config import ProcessingOptions
from idphoto_ray.decode import decode_image
from idphoto_ray.models.face_detect import PIPELINE_DETECTOR, BlazeFaceDetector
from idphoto_ray.models.face_mesh import FaceMeshLandmarker
from idphoto_ray.models.home import model_home
from idphoto_ray.models.mediapipe_fetch import ensure
from idphoto_ray.models.registry import build_segmenter, resolve_segmenter
from idphoto_ray.photo import process_photo
from idphoto_ray.specs import get_spec

DEFAULT_DEVSET = Path(__file__).resolve().parents[1].parent / "shared" / "devset"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devset", type=Path, default=DEFAULT_DEVSET)
    parser.add_argument("--half", choices=["calibration", "validation", "all"], default="calibration")
    parser.add_argument("--specs", nargs="+", default=["cn-1inch", "us-passport"])
    parser.add_argument("--backgrounds", nargs="+", default=["white"])
    parser.add_argument("--model", default="isnet")
    parser.add_argument("--only", nargs="*", default=None, help="photo stems to run (default: the half)")
    parser.add_argument("--out", type=Path, required=True, help="outputs (PNG) and measures.csv go here")
    args = parser.parse_args()

    photos = sorted(args.devset.glob("*.jpg"))
    if args.half != "all":
        calibration, validation = devset_split(args.devset)
        keep = set(calibration if args.half == "calibration" else validation)
        photos = [p for p in photos if p.name in keep]
    if args.only:
        photos = [p for p in photos if p.stem in args.only]
    options = ProcessingOptions(output_format="png")
    detector = BlazeFaceDetector(ensure(PIPELINE_DETECTOR), intra_op_num_threads=2)
    landmarker = FaceMeshLandmarker(ensure("face-mesh"), intra_op_num_threads=2)
    info, path = resolve_segmenter(args.model)
    segmenter = build_segmenter(info, path, "cpu", intra_op_num_threads=2)
    cache = model_home() / "bench" / "triage" / info.name
    cache.mkdir(parents=True, exist_ok=True)
    backgrounds = [parse_background(b) for b in args.backgrounds]
    args.out.mkdir(parents=True, exist_ok=True)

    rows = []
    for photo in photos:
        decoded = decode_image(photo.read_bytes(), long_side=options.working_long_side)
        cached = cache / f"{photo.stem}-{decoded.rgb.shape[1]}x{decoded.rgb.shape[0]}.npy"
        if cached.exists():
            mask = np.load(cached)
        else:
            mask = segmenter([decoded.rgb])[0]
            np.save(cached, mask)
        for name in args.specs:
            result = process_photo(
                decoded.rgb, mask, detector, landmarker, [get_spec(name)], backgrounds, options, decoded.scale
            )
            row = {"photo": photo.stem, "spec": name, "status": result.status.value}
            row["reason"] = result.reason.value if result.reason else ""
            row["flags"] = " ".join(str(getattr(f, "value", f)) for f in result.flags)
            spec_metrics = result.metrics.get("specs", {}).get(name, {})
            for key, value in spec_metrics.get("matte", {}).items():
                row[key] = float(f"{float(value):.4g}")
            rows.append(row)
            for out in result.outputs:
                (args.out / f"{photo.stem}.{name}.{out.background}.{out.ext}").write_bytes(out.data)
            print(f"{photo.stem:28s} {name:12s} {row['status']:13s} {row['flags'] or '-'}", flush=True)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(args.out / "measures.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
