"""Smoke-size run of jobs/benchmark.py (N=20) so the benchmark script cannot rot."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("idphoto_benchmark", ROOT / "jobs" / "benchmark.py")
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_benchmark_smoke(ray_local, tmp_path, capsys):
    bench = _load_benchmark()
    out = tmp_path / "bench.json"
    results = bench.main(
        [
            "--n",
            "20",
            "--model",
            "mediapipe-selfie",
            "--batch-sizes",
            "4",
            "--working-long-side",
            "800",
            "--cpu-sample",
            "3",
            "--baseline-sample",
            "3",
            "--bound-seconds",
            "0.5",
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "p/limit" in printed and "mediapipe-selfie" in printed
    saved = json.loads(out.read_text())
    assert saved["n"] == 20 and len(saved["runs"]) == 1
    row = results["runs"][0]
    for figure in ("bound", "cpu_stage", "pipeline", "baseline"):
        assert row[figure]["photos_per_s"] > 0, figure
    for name, value in row["ratios"].items():
        assert value > 0, name
    pipe = row["pipeline"]
    assert pipe["images"] == 20
    assert pipe["peak_rss_mb"] > 0 and pipe["peak_object_store_mb"] > 0
    operators = " ".join(op["operator"] for op in pipe["stages"])
    assert "SegmentStage" in operators and "FinishStage" in operators
    assert all(op.get("wall_s", 0) > 0 for op in pipe["stages"] if "SegmentStage" in op["operator"])
    cpu = pipe["cpu_seconds"]
    assert cpu["workers"] > 0 and cpu["driver"] > 0 and 0 < cpu["busy_fraction"]
    assert cpu["total"] == pytest.approx(cpu["workers"] + cpu["driver"] + cpu["ray_system"], abs=0.2)
    assert "core-seconds during the pipeline run" in printed
    assert "prepare" in row["cpu_stage"]["ms_per_photo"]  # the pipeline's model-size decode is counted


@pytest.mark.slow
def test_memory_check_smoke(ray_local, tmp_path, capsys):
    bench = _load_benchmark()
    results = bench.main(
        [
            "--skip-main",
            "--memory-check",
            "--memory-ns",
            "3,4",
            "--memory-repeats",
            "2",
            "--model",
            "mediapipe-selfie",
            "--working-long-side",
            "800",
            "--data-dir",
            str(tmp_path / "data"),
        ]
    )
    mc = results["memory_check"]
    assert [(r["n"], r["repeat"]) for r in mc["runs"]] == [(3, 0), (4, 0), (3, 1), (4, 1)]
    assert all(r["peak_object_store_mb"] > 0 and r["peak_rss_mb"] > 0 for r in mc["runs"])
    store_3 = [r["peak_object_store_mb"] for r in mc["runs"] if r["n"] == 3]
    assert mc["means"][3]["peak_object_store_mb"] == pytest.approx(sum(store_3) / 2)
    assert mc["store_growth"] == pytest.approx(
        mc["means"][4]["peak_object_store_mb"] / mc["means"][3]["peak_object_store_mb"] - 1.0
    )
    assert mc["pass"] == all(abs(mc[k]) <= 0.10 for k in ("rss_growth", "store_growth"))
    assert "mean of the runs' peaks" in capsys.readouterr().out


def test_parse_stats_reads_ray_data_text():
    bench = _load_benchmark()
    text = (
        "Operator 1 ReadBinary: 4 tasks executed, 4 blocks produced in 0.1s\n"
        "* Remote wall time: 1.5ms min, 20.0ms max, 10.0ms mean, 40.0ms total\n"
        "* Remote cpu time: 1.0ms min, 10.0ms max, 5.0ms mean, 20.0ms total\n"
        "* Output num rows per task: 1 min, 5 max, 3 mean, 12 total\n"
        "Operator 2 MapBatches(finish_batch)->Write: 2 tasks executed, 2 blocks produced in 5s\n"
        "* Remote wall time: 1.2s min, 3.1s max, 2.5s mean, 5.0s total\n"
    )
    ops = bench.parse_stats(text)
    assert ops[0] == {"operator": "ReadBinary", "tasks": 4, "wall_s": 0.04, "cpu_s": 0.02, "rows": 12}
    assert ops[1]["operator"] == "MapBatches(finish_batch)->Write" and ops[1]["wall_s"] == 5.0
