"""Smoke-size run of jobs/serve_benchmark.py (2 photos, 1 and 4 clients) so the benchmark cannot rot."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _load():
    path = ROOT / "jobs" / "serve_benchmark.py"
    spec = importlib.util.spec_from_file_location("idphoto_serve_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_percentile_is_nearest_rank():
    bench = _load()
    values = [float(v) for v in range(1, 21)]
    assert [bench.percentile(values, q) for q in (50, 95, 99)] == [10, 19, 20]


def test_serve_benchmark_smoke(ray_local, mediapipe_models, tmp_path):
    bench = _load()
    out = tmp_path / "serve.json"
    result = bench.main(["--smoke", "--data-dir", str(tmp_path / "data"), "--out", str(out)])
    assert json.loads(out.read_text())["n"] == 2
    (run,) = result["runs"]
    assert run["sequential"]["photos"] == 2 and run["sequential"]["photos_per_s"] > 0
    assert run["batch_job"]["photos"] == 2 and run["batch_job"]["photos_per_s"] > 0
    service = run["service"]
    assert service["first_photo_s"] > 0 and service["replica_restarts"] == 0 and service["replicas"] >= 3
    one, four = service["levels"]
    assert (one["clients"], one["requests"], four["clients"], four["requests"]) == (1, 1, 4, 4)
    for level in (one, four):
        assert level["other_errors"] == 0 and level["ok"] + level["codes"].get("429", 0) == level["requests"]
        assert level["p50_s"] > 0 and level["replica_peak_rss_mb"] > 0 and level["loadgen_cores"] > 0
        segmented = sum(int(size) * count for size, count in level["segmenter_batches"].items())
        assert segmented == level["ok"]
    assert result["median"]["levels"][0]["vs_batch_job"] > 0
