"""Smoke-size run of jobs/matte_quality.py (astronaut, 1 background, mediapipe-selfie; both refinements and
both regions) so it cannot rot."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from idphoto_ray.config import ProcessingOptions

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("idphoto_matte_quality", ROOT / "jobs" / "matte_quality.py")
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def test_matte_quality_smoke(mediapipe_models, tmp_path, capsys):
    bench = _load()
    result = bench.main(
        [
            "--source",
            "astronaut",
            "--truth-model",
            "mediapipe-selfie",
            "--models",
            "mediapipe-selfie",
            "--backgrounds",
            "1",
            "--variants",
            "current,improved",
            "--regions",
            "whole,roi",
            "--cache",
            str(tmp_path / "cache"),
            "--sheets",
            str(tmp_path / "sheets"),
        ]
    )
    printed = capsys.readouterr().out
    labels = [f"mediapipe-selfie / {r} / {v}" for r in ("whole", "roi") for v in ("current", "improved")]
    assert all(label in printed for label in labels), printed
    assert "biased" in printed  # the truth's own model says so next to its rows
    rows = result["rows"]
    assert len(rows) == 4 and all("sad" in r for r in rows), rows
    for r in rows:
        assert 0.0 <= r["bleed"] <= 1.0 and 0.0 <= r["hair_loss"] <= 1.0 and 0.0 <= r["edge_spill"] <= 1.0
        assert r["sad"] >= 0 and r["mse"] >= 0
    # Scored against (cleaned) mediapipe truth, mediapipe's own output is close: a broken warp would not be.
    assert max(r["mse"] for r in rows) < 0.02
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    assert sorted(p.name for p in (tmp_path / "sheets").glob("*.jpg")) == sorted(
        label.replace(" / ", "-") + ".jpg" for label in labels
    )


def test_devset_split_is_deterministic_and_disjoint(tmp_path):
    bench = _load()
    for name in ("b.jpg", "a.jpg", "d.jpg", "c.jpg", "e.jpg"):
        (tmp_path / name).write_bytes(b"")
    cal, val = bench.devset_split(tmp_path)
    assert cal == ["a.jpg", "c.jpg", "e.jpg"] and val == ["b.jpg", "d.jpg"]


def test_warp_to_output_matches_a_plain_affine_warp():
    import numpy as np

    bench = _load()
    layer = np.zeros((200, 200), np.float32)
    layer[50:150, 60:140] = 1.0
    affine = [0.5, 0.0, -10.0, 0.0, 0.5, -5.0]  # shrink by 2 and shift: no area pre-shrink (scale ≥ 0.5)
    out = bench.warp_to_output(layer, affine, (90, 90))
    assert out[30, 40] == 1.0 and out[5, 5] == 0.0
    small = bench.warp_to_output(layer, [0.25, 0, 0, 0, 0.25, 0], (50, 50))  # area pre-shrink path
    assert abs(float(small.sum()) - 100 * 80 / 16) < 10


def test_variants_name_a_refinement_and_option_overrides():
    bench = _load()
    assert bench.parse_variant("current") == ("current", {})
    assert bench.parse_variant("matting=closed-form+decontamination=ml") == (
        "improved",
        {"matting": "closed-form", "decontamination": "ml"},
    )
    options = bench.variant_options(ProcessingOptions(), "whole", {"decontamination": "ml"})
    assert options.segment_region == "whole" and options.decontamination == "ml"
    with pytest.raises(SystemExit):
        bench.parse_variant("improved+guided")
    with pytest.raises(ValidationError):
        bench.variant_options(ProcessingOptions(), "roi", {"matting": "magic"})
