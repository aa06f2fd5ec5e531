"""The demo shows the good path: its `good/` samples come out `ok` with nothing to review.

Run through the Ray-free photo path with the demo's own specs, backgrounds and model, so the verdict is the
one `idphoto-ray demo` prints. Judgement (looked at at 100 %): the 3:4 framing of the astronaut portrait
has room above the hair and the shoulders reach the bottom edge in both Chinese formats.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from idphoto_ray.demo import demo_config
from idphoto_ray.models.registry import build_segmenter, resolve_segmenter
from idphoto_ray.photo_path import PhotoPath, quantize_masks
from idphoto_ray.samples import sample_files
from idphoto_ray.specs import all_specs
from idphoto_ray.types import Status


@pytest.fixture(scope="module")
def demo_photo_path(mediapipe_models):
    config = demo_config(Path("unused"))
    specs = all_specs(config.spec_files)
    info, model_path = resolve_segmenter(config.model)
    segmenter = build_segmenter(info, model_path, "cpu", intra_op_num_threads=1)
    path = PhotoPath.load([specs[name] for name in config.specs], list(config.backgrounds), config.processing)
    return config, path, segmenter, info.preprocess.input_size


def test_good_samples_are_ok_with_no_flags(demo_photo_path):
    config, path, segmenter, size = demo_photo_path
    good = {name: data for name, data in sample_files().items() if name.startswith("good/")}
    assert good, "the demo has no good-path sample"
    for name, data in good.items():
        prepared = path.prepare(data, model_size=size)
        mask = quantize_masks(segmenter([prepared.model_image]))[0]
        result = path.finish(prepared, mask)
        assert result.status == Status.OK, (
            name,
            result.status,
            [str(f) for f in result.flags],
            result.message,
        )
        assert result.flags == [] and result.reason is None
        assert len(result.outputs) == len(config.specs) * len(config.backgrounds)
        for out in result.outputs:  # a real photo, not an empty frame: the subject fills the middle
            with Image.open(io.BytesIO(out.data)) as img:
                pixels = np.asarray(img.convert("RGB")).astype(int)
            h, w = pixels.shape[:2]
            middle = pixels[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3]
            assert middle.std() > 20, (name, out.spec, out.background)
