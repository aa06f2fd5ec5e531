"""The CPU stages' process tuning: freed image buffers are reused instead of faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = r"""
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from idphoto_ray.job.worker import tune_worker_process
    tune_worker_process()
    import cv2
    assert cv2.getNumThreads() == 1
from idphoto_ray.benchdata import make_photo
from idphoto_ray.config import ProcessingOptions
from idphoto_ray.decode import decode_image
from idphoto_ray.models.face_detect import BlazeFaceDetector
from idphoto_ray.models.face_mesh import FaceMeshLandmarker
from idphoto_ray.models.mediapipe_fetch import ensure
from idphoto_ray.models.registry import build_segmenter, resolve_segmenter
from idphoto_ray.photo import process_photo
from idphoto_ray.specs import all_specs
from idphoto_ray.backgrounds import parse_background
info, path = resolve_segmenter("mediapipe-selfie")
seg = build_segmenter(info, path.read_bytes(), device="cpu", intra_op_num_threads=1)
det = BlazeFaceDetector(ensure("blazeface").read_bytes(), intra_op_num_threads=1)
lm = FaceMeshLandmarker(ensure("face-mesh").read_bytes(), intra_op_num_threads=1)
# guided: closed-form matting's pymatting/numba work runs in its own threads' malloc arenas, which this
# tuning does not reach (12 photos: ~54k faults tuned, ~72k default; guided: 3 vs ~126k).
options = ProcessingOptions(matting="guided")
specs, bgs = [all_specs([])["cn-1inch"]], [parse_background("blue")]
photos = [make_photo(i)[1] for i in range(4)]
masks = [seg([decode_image(p).rgb])[0] for p in photos]
def finish(k):  # what a finishing task does with every photo
    decoded = decode_image(photos[k])
    process_photo(decoded.rgb, masks[k], det, lm, specs, bgs, options, source_scale=decoded.scale)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for k in range(4):  # warm up
    finish(k)
before = faults()
for _ in range(3):
    for k in range(4):
        finish(k)
print(faults() - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt tuning is glibc-only")
def test_tuned_process_reuses_freed_image_buffers(mediapipe_models):
    default, tuned = _faults("default"), _faults("tuned")
    # measured: ~49k minor faults for 12 photos by default (every large buffer mapped afresh), a handful tuned
    assert tuned * 10 < default
