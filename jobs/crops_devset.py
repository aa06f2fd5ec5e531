"""Floating heads on real portraits: the crop rules against the middle-of-the-ranges placement, same run.

For every single-person photo in a folder (default ../shared/devset) and each spec, one process_photo
call reports both what the chosen placement shows and what the middle of the spec's ranges (the rule
before the crop search, kept as `cuts_at_target`) would have shown. A cut is the person cut by the
source's edge inside the output (crop_rules). Optionally writes every output to --out for looking at.

    python jobs/crops_devset.py [--devset DIR] [--specs cn-1inch us-passport] [--out DIR]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from idphoto_ray.backgrounds import parse_background
from idphoto_ray.config import JobConfig, ProcessingOptions
from idphoto_ray.decode import decode_image
from idphoto_ray.models.face_detect import PIPELINE_DETECTOR, BlazeFaceDetector
from idphoto_ray.models.face_mesh import FaceMeshLandmarker
from idphoto_ray.models.mediapipe_fetch import ensure
from idphoto_ray.models.registry import build_segmenter, resolve_segmenter, segmenter_graph
from idphoto_ray.photo import process_photo
from idphoto_ray.specs import get_spec

DEFAULT_DEVSET = Path(__file__).resolve().parents[1].parent / "shared" / "devset"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devset", type=Path, default=DEFAULT_DEVSET)
    parser.add_argument("--specs", nargs="+", default=["cn-1inch", "us-passport"])
    parser.add_argument("--model", default=JobConfig.model_fields["model"].default)
    parser.add_argument("--out", type=Path, default=None, help="write each output JPEG here to look at")
    args = parser.parse_args()

    options = ProcessingOptions()
    detector = BlazeFaceDetector(ensure(PIPELINE_DETECTOR), intra_op_num_threads=1)
    landmarker = FaceMeshLandmarker(ensure("face-mesh"), intra_op_num_threads=1)
    info, path = resolve_segmenter(args.model)
    segmenter = build_segmenter(info, segmenter_graph(info, path)[0], "cpu", intra_op_num_threads=1)
    specs = [get_spec(s) for s in args.specs]
    white = [parse_background("white")]

    totals: Counter[str] = Counter()
    failures: list[str] = []
    for photo in sorted(args.devset.glob("*.jpg")):
        decoded = decode_image(photo.read_bytes(), long_side=options.working_long_side)
        mask = segmenter([decoded.rgb])[0]
        result = process_photo(decoded.rgb, mask, detector, landmarker, specs, white, options, decoded.scale)
        if result.status.value == "failed":
            failures.append(f"{photo.name}: {result.reason.value}")
            continue
        totals["photos"] += 1
        cells = []
        for spec in specs:
            metrics = result.metrics["specs"][spec.name]
            before = "body_cut" in metrics["cuts_at_target"]
            out = next(o for o in result.outputs if o.spec == spec.name)
            after_cuts = metrics["cuts"]
            after = "body_cut" in after_cuts
            totals[f"{spec.name} outputs"] += 1
            totals[f"{spec.name} floating before"] += before
            totals[f"{spec.name} floating after"] += after
            totals[f"{spec.name} avoided"] += before and not after
            cells.append(
                f"{spec.name}: target {','.join(metrics['cuts_at_target']) or '-'} "
                f"-> chosen {','.join(after_cuts) or '-'} ({metrics['placement']})"
            )
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"{photo.stem}.{spec.name}.{out.ext}").write_bytes(out.data)
        print(f"{photo.name:36s} {' | '.join(cells)} | flags {','.join(result.flags) or '-'}")
    print()
    for line in failures:
        print("failed:", line)
    for key in sorted(totals):
        print(f"{key}: {totals[key]}")


if __name__ == "__main__":
    main()
