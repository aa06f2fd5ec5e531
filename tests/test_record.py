"""The record between the job's stages: each stage names the columns it lacks, at its entry."""

from __future__ import annotations

import numpy as np
import pytest

from idphoto_ray.job import record
from idphoto_ray.job.stages import FinishStage, PrepareStage, SegmentStage


def test_require_names_every_missing_column():
    batch = {name: np.zeros(1) for name in record.SEGMENTED if name not in ("mask", "segment_ms")}
    with pytest.raises(record.RecordError) as err:
        record.require(batch, record.SEGMENTED, "finish")
    assert "finish stage" in str(err.value) and "mask, segment_ms" in str(err.value)
    record.require({**batch, "mask": 0, "segment_ms": 0}, record.SEGMENTED, "finish")  # complete: no error


@pytest.mark.parametrize(
    "stage, dropped",
    [
        (PrepareStage, "problem"),
        (SegmentStage, "model_image"),
        (FinishStage, "segment_error"),
    ],
)
def test_each_stage_checks_its_input_at_entry(stage, dropped):
    """A stage that stops producing a column fails the next stage at entry, not deep inside a photo."""
    columns = {PrepareStage: record.READ, SegmentStage: record.PREPARED, FinishStage: record.SEGMENTED}[stage]
    batch = {name: np.zeros(2) for name in columns if name != dropped}
    instance = object.__new__(stage)  # the entry check runs before any model is used
    with pytest.raises(record.RecordError, match=dropped):
        instance(batch)


def test_segment_output_is_the_finish_input():
    """What segment adds to the prepared record is exactly what finish declares (model_image has served)."""
    prepared = set(record.PREPARED) - {"model_image"}
    assert set(record.SEGMENTED) == prepared | {"mask", "segment_ms", "segment_error"}
