"""The model a job records is the resolved one (name + weights' sha256), so --resume never mixes models."""

from __future__ import annotations

import hashlib
import json
import shutil

import pyarrow.parquet as pq
import pytest

from idphoto_ray.config import JobConfig
from idphoto_ray.samples import sample_files

pytestmark = pytest.mark.slow


def test_config_hash_covers_the_weights_not_the_word_auto():
    a = JobConfig(model="mediapipe-selfie")
    assert a.config_hash("0" * 64) != a.config_hash("1" * 64)
    assert a.config_hash("0" * 64) != JobConfig(model="isnet-medium").config_hash("0" * 64)


def test_resume_keys_on_the_resolved_model(tmp_path, monkeypatch, ray_local, mediapipe_models):
    from idphoto_ray.pipeline import run_job

    home = tmp_path / "home"
    shutil.copytree(mediapipe_models["mediapipe-selfie"].parent, home / "mediapipe")  # no isnet here
    monkeypatch.setenv("IDPHOTO_RAY_HOME", str(home))
    files = sample_files()
    for name in ("portrait/upright.jpg", "phone/grey.jpg"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(files[name])
    out = tmp_path / "out"
    base = dict(
        input=[str(tmp_path / "in")],
        output=str(out),
        specs=["cn-1inch"],
        backgrounds=["white"],
        device="cpu",
        batch_size=2,
        concurrency=1,
    )

    first = run_job(JobConfig(**base), progress=False)  # model: auto, the default
    info = json.loads((out / "run.json").read_text())
    assert first.processed == 2
    assert info["config"]["model"] == "mediapipe-selfie"  # what auto resolved to, not the word
    sha = info["models"]["segmenter"]["sha256"]
    assert sha == hashlib.sha256(mediapipe_models["mediapipe-selfie"].read_bytes()).hexdigest()
    expected_hash = JobConfig(**base, model="mediapipe-selfie").config_hash(sha)
    assert info["config_hash"] == expected_hash
    assert set(pq.read_table(out / "manifest").column("config_hash").to_pylist()) == {expected_hash}

    same = run_job(JobConfig(**base, model="mediapipe-selfie", resume=True), progress=False)
    assert same.processed == 0  # auto and its resolution are one model: nothing to redo

    other = run_job(JobConfig(**base, model="u2netp-arch", resume=True), progress=False)
    assert other.processed == 2  # another model never reuses the first model's rows
    hashes = set(pq.read_table(out / "manifest").column("config_hash").to_pylist())
    assert len(hashes) == 2 and expected_hash in hashes
    # u2netp's graph has 7 outputs and runs cut to its mask (mask_graph.py); the run records the fetched file.
    arch = next((home / "arch").glob("u2netp*.onnx"))
    recorded = json.loads((out / "run.json").read_text())["models"]["segmenter"]["sha256"]
    assert recorded == hashlib.sha256(arch.read_bytes()).hexdigest()
    assert any((home / "derived").glob(f"{recorded}.out0.onnx"))
