"""A segmentation actor killed mid-run is restarted and its batch retried: every input still gets one row."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from idphoto_ray.config import JobConfig
from idphoto_ray.samples import write_samples

pytestmark = pytest.mark.slow


def crashing_once(batch: int, marker: Path) -> type:
    """A SegmentStage whose actor exits at its `batch`-th batch, once (the marker file remembers).

    Made in a function so cloudpickle ships the class by value: the workers cannot import test modules.
    """
    import os

    from idphoto_ray.job.stages import SegmentStage

    class CrashingSegmentStage(SegmentStage):
        calls = 0

        def __call__(self, batch_in):
            self.calls += 1
            if self.calls == batch and not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(1)
            return super().__call__(batch_in)

    return CrashingSegmentStage


def test_actor_crash_mid_run_loses_nothing(tmp_path, ray_local, mediapipe_models):
    from idphoto_ray.job.run import run_job

    write_samples(tmp_path / "in")
    marker = tmp_path / "crashed.pid"
    config = JobConfig(
        input=[str(tmp_path / "in")],
        output=str(tmp_path / "out"),
        specs=["cn-1inch"],
        backgrounds=["white"],
        batch_size=2,
        concurrency=1,
        device="cpu",
        model="mediapipe-selfie",
    )
    summary = run_job(config, progress=False, segment_stage=crashing_once(3, marker))

    assert marker.exists(), "the fault was never injected: the test proves nothing"
    rows = pq.read_table(tmp_path / "out" / "manifest").to_pylist()
    paths = [r["input_path"] for r in rows]
    inputs = sorted(str(p) for p in (tmp_path / "in").rglob("*") if p.is_file())
    assert sorted(paths) == inputs  # every input once: no loss, no duplicates
    assert summary.processed == len(inputs)
    assert not list((tmp_path / "out").rglob(".tmp-*"))
    for row in rows:
        for out in row["outputs"]:
            assert Path(out["path"]).stat().st_size == out["bytes"]
