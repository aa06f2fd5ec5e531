"""The photo-count bound: memory stays flat with dataset size because reading waits for finishing."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest
from ray.data._internal.execution.backpressure_policy import (
    ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY as POLICIES_KEY,
)

from idphoto_ray.config import JobConfig
from idphoto_ray.job.pool import photos_in_flight, plan_pool
from idphoto_ray.job.ray_private import PhotoQueueBackpressure
from idphoto_ray.samples import write_samples


def test_default_scales_with_the_cluster_and_never_starves_a_batch():
    cpu = plan_pool(JobConfig(device="cpu"), cpus=2, gpus=0)
    assert photos_in_flight(JobConfig(), 2, cpu) == 64
    assert photos_in_flight(JobConfig(), 16, cpu) == 512
    assert photos_in_flight(JobConfig(max_photos_in_flight=10), 2, cpu) == 10
    gpu = plan_pool(JobConfig(device="cuda", batch_size=64), cpus=2, gpus=2)
    # two actors of 64-photo batches must be able to fill: a smaller bound would stop the reader first
    assert photos_in_flight(JobConfig(max_photos_in_flight=10), 2, gpu) == 4 * 64 * 2


@pytest.mark.slow
def test_reading_waits_while_the_bound_is_reached(tmp_path, ray_local, mediapipe_models, monkeypatch):
    from idphoto_ray.job.run import run_job

    write_samples(tmp_path / "samples")
    source = tmp_path / "samples" / "portrait" / "upright.jpg"
    photos = tmp_path / "in"
    photos.mkdir()
    n = 40
    for i in range(n):
        os.link(source, photos / f"p{i:03d}.jpg")

    seen: list[tuple[float, int, int]] = []
    ratios: set = set()
    original = PhotoQueueBackpressure.can_add_input

    def recording(self: PhotoQueueBackpressure, op) -> bool:
        allowed = original(self, op)
        ratios.add(self._data_context.downstream_capacity_backpressure_ratio)
        if op in self._readers:
            seen.append((self.in_flight(), self._cap, self._per_read))
        return allowed

    monkeypatch.setattr(PhotoQueueBackpressure, "can_add_input", recording)
    ctx = ray_local.data.DataContext.get_current()
    before = (
        ctx.op_resource_reservation_enabled,
        ctx.wait_for_min_actors_s,
        ctx.get_config(POLICIES_KEY),
        ctx.downstream_capacity_backpressure_ratio,
    )
    summary = run_job(
        JobConfig(
            input=[str(photos)],
            output=str(tmp_path / "out"),
            device="cpu",
            model="mediapipe-selfie",
            max_photos_in_flight=4,
        ),
        progress=False,
    )

    assert summary.processed == n
    # a notebook's other datasets get the process's DataContext back as it was
    assert (
        ctx.op_resource_reservation_enabled,
        ctx.wait_for_min_actors_s,
        ctx.get_config(POLICIES_KEY),
        ctx.downstream_capacity_backpressure_ratio,
    ) == before
    assert ratios == {None}, "during the job only the photo bound holds finishing back"
    assert ctx.get_config("idphoto_ray.max_photos_in_flight") is None
    assert pq.read_table(tmp_path / "out" / "manifest").num_rows == n
    assert seen, "the policy was never consulted"
    cap, per_read = seen[0][1], seen[0][2]
    assert cap == 4 and 0 < per_read < n
    # a read starts only below the bound, so at most one read's photos overshoot it
    assert max(in_flight for in_flight, _, _ in seen) <= cap - 1 + per_read
