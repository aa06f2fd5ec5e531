"""Triage on real portraits: every output's flags and matte measures, one line each, to set against verdicts.

Each photo goes through the job's own per-photo path: `PhotoPath.prepare` for all the specs asked (so the
segmenter sees the same region of interest a job would give it), the segmenter, then `finish` once per spec
(so the flags printed are exactly that output's). Masks are cached by file bytes, model and region, so
re-running after a threshold change costs only the finishing. Writes each output as PNG to --out for
looking at 100 %, and a CSV of the measures. The calibration/validation split is
`jobs/matte_quality.devset_split` (docs/quality.md).

    python jobs/triage_devset.py --half calibration --out DIR [--model isnet] [--specs cn-1inch us-passport]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from matte_quality import cached_mask, devset_split, load_segmenter

from idphoto_ray.config import ProcessingOptions
from idphoto_ray.models.home import model_home
from idphoto_ray.photo_path import PhotoPath, quantize_masks
from idphoto_ray.specs import get_spec

#: Photo-level measures printed beside the matte ones (the checks' raw values, to set against verdicts).
PHOTO_MEASURES = (
    "yaw_deg",
    "roll_deg",
    "inter_eye_px",
    "exposure",
    "underexposed_fraction",
    "illumination_ratio",
)
DEFAULT_DEVSET = Path(__file__).resolve().parents[1].parent / "shared" / "devset"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devset", type=Path, default=DEFAULT_DEVSET)
    parser.add_argument("--half", choices=["calibration", "validation", "all"], default="calibration")
    parser.add_argument("--specs", nargs="+", default=["cn-1inch", "us-passport"])
    parser.add_argument("--backgrounds", nargs="+", default=["white"])
    parser.add_argument("--model", default="isnet")
    parser.add_argument(
        "--segment-region", choices=["roi", "whole"], default="roi", help="as the job's option"
    )
    parser.add_argument(
        "--person-gate", action=argparse.BooleanOptionalAction, default=True, help="as the job's option"
    )
    parser.add_argument(
        "--only", nargs="*", default=None, help="photo stems to run, from either half (default: the half)"
    )
    parser.add_argument("--out", type=Path, required=True, help="outputs (PNG) and measures.csv go here")
    args = parser.parse_args()

    photos = sorted(args.devset.glob("*.jpg"))
    if args.only:
        photos = [p for p in photos if p.stem in args.only]
        missing = sorted(set(args.only) - {p.stem for p in photos})
        if missing:
            raise SystemExit(f"not in {args.devset}: {', '.join(missing)}")
    elif args.half != "all":
        calibration, validation = devset_split(args.devset)
        keep = set(calibration if args.half == "calibration" else validation)
        photos = [p for p in photos if p.name in keep]
    options = ProcessingOptions(
        output_format="png", segment_region=args.segment_region, person_gate=args.person_gate
    )
    specs = [get_spec(name) for name in args.specs]
    path = PhotoPath.load(specs, args.backgrounds, options, segmenter=args.model)
    per_spec = {spec.name: path.with_outputs([spec], args.backgrounds) for spec in specs}
    segmenter = load_segmenter(args.model)
    if segmenter is None:
        raise SystemExit(f"model {args.model!r} is not available")
    cache = model_home() / "bench" / "triage"
    args.out.mkdir(parents=True, exist_ok=True)

    rows = []
    for photo in photos:
        data = photo.read_bytes()
        prepared = path.prepare(data, segmenter.size)
        model_id = f"{segmenter.name}:{segmenter.weights[:12]}"
        mask = cached_mask(segmenter, prepared.model_image, data, cache, model_id, prepared.region)
        for name, spec_path in per_spec.items():
            result = spec_path.finish(prepared, quantize_masks(mask[None])[0])
            row = {"photo": photo.stem, "spec": name, "status": result.status.value}
            row["reason"] = result.reason.value if result.reason else ""
            row["flags"] = " ".join(str(getattr(f, "value", f)) for f in result.flags)
            for key in PHOTO_MEASURES:
                if isinstance(result.metrics.get(key), int | float):
                    row[key] = float(f"{float(result.metrics[key]):.4g}")
            spec_metrics = result.metrics.get("specs", {}).get(name, {})
            if "upscale" in spec_metrics:
                row["upscale"] = float(f"{float(spec_metrics['upscale']):.4g}")
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
