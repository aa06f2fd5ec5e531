"""Task stages built ahead of their first batch: once per build in a process, and in Ray's workers early."""

from __future__ import annotations

import os

import pytest

from idphoto_ray.job.stages import as_tasks, settle_warm_up, warm_workers


def _stages(log_dir: str) -> tuple[type, type]:
    """Made in a function so cloudpickle ships the classes by value (workers cannot import test modules)."""

    class Recording:
        """Writes one file per instance built, named after the building process."""

        def __init__(self, tag: str) -> None:
            self.tag = tag
            with open(os.path.join(log_dir, f"{tag}-{os.getpid()}-{id(self)}"), "w"):
                pass

        def __call__(self, batch: dict) -> dict:
            return {**batch, "tag": [self.tag] * len(batch["x"])}

    class Broken:
        def __init__(self) -> None:
            raise RuntimeError("no face models here")

    return Recording, Broken


def _finish_stage(recording: type) -> type:
    """A second stage class, as the job's finish is beside prepare: a process keeps one live instance per
    class, so with one class for both, a process that ran two warm-ups rebuilt each (seen in CI: 'prepare'
    twice)."""

    class RecordingFinish(recording):  # type: ignore[misc, valid-type]
        pass

    return RecordingFinish


def test_build_makes_one_instance_per_build_and_process(tmp_path):
    recording, _ = _stages(str(tmp_path))
    run = as_tasks(recording, tag="a")
    first = run.build()
    assert run.build() is first and run({"x": [1, 2]})["tag"] == ["a", "a"]
    assert len(list(tmp_path.iterdir())) == 1
    again = as_tasks(recording, tag="b")  # a new job's build replaces the old one in this process
    assert again.build() is not first and again({"x": [1]})["tag"] == ["b"]


@pytest.mark.slow
def test_warm_up_builds_the_stages_in_worker_processes_and_swallows_a_failed_build(tmp_path, ray_local):
    recording, broken = _stages(str(tmp_path))
    finish = _finish_stage(recording)
    refs = warm_workers([as_tasks(recording, tag="prepare"), as_tasks(finish, tag="finish")], 2)
    ray_local.wait(refs, num_returns=len(refs), timeout=120)
    built = [name.split("-") for name in os.listdir(tmp_path)]
    workers = {pid for _, pid, _ in built}
    assert workers and str(os.getpid()) not in workers  # worker processes, not the driver
    for pid in workers:  # each process that ran a warm-up built both stages, once, even when two warm-ups
        # share one process (the test cluster's other CPU held by an earlier test's actor)
        assert sorted(tag for tag, p, _ in built if p == pid) == ["finish", "prepare"]
    failing = warm_workers([as_tasks(broken)], 1)
    ray_local.wait(failing, timeout=120)
    settle_warm_up(failing)  # the real tasks report a stage that cannot be built; the warm-up only logs it
    settle_warm_up(refs)


def _all_person_model(path) -> None:
    """A 'segmenter' with dynamic spatial size that calls every pixel the person (a mask of ones)."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["z", "one"], ["y"]),
    ]
    consts = [helper.make_tensor(n, TensorProto.FLOAT, [], [v]) for n, v in (("zero", 0.0), ("one", 1.0))]
    graph = helper.make_graph(
        nodes,
        "all_person",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        consts,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


@pytest.mark.slow
def test_a_heavy_model_runs_each_photo_alone_in_one_cpu_stage_process(tmp_path, ray_local, mediapipe_models):
    """A 1024² input takes the heavy-model plan (pool.py): photo-sized blocks, finishing per photo."""
    import json

    import pyarrow.parquet as pq

    from idphoto_ray.config import JobConfig, Preprocess
    from idphoto_ray.job.run import run_job
    from idphoto_ray.samples import write_samples

    model = tmp_path / "all_person.onnx"
    _all_person_model(model)
    write_samples(tmp_path / "samples")
    photos = tmp_path / "in"
    photos.mkdir()
    for i in range(3):
        os.link(tmp_path / "samples" / "portrait" / "upright.jpg", photos / f"p{i}.jpg")
    pre = Preprocess(input_size=1024, scale="unit", mean=(0, 0, 0), std=(1, 1, 1), minmax=False)
    config = JobConfig(
        input=[str(photos)], output=str(tmp_path / "out"), device="cpu", model_uri=str(model), preprocess=pre
    )
    summary = run_job(config, progress=False)
    pool = json.loads((tmp_path / "out" / "run.json").read_text())["pool"]
    assert (pool["finish_batch"], pool["cpu_tasks"]) == (1, 1)
    rows = pq.read_table(tmp_path / "out" / "manifest").to_pylist()
    assert summary.processed == 3 and len(rows) == 3
    assert all(row["status"] in ("ok", "needs_review") and row["outputs"] for row in rows)
