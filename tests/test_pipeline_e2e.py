"""End to end on a local Ray: mixed real photos in, one manifest row per input, outputs with size + DPI."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from idphoto_ray.config import JobConfig
from idphoto_ray.samples import write_samples
from idphoto_ray.specs import get_spec

pytestmark = pytest.mark.slow

EXPECTED = {
    "portrait/upright.jpg": ("ok", "needs_review"),
    "portrait/high_quality.png": ("ok", "needs_review"),
    "portrait/rotated_10deg.jpg": ("ok", "needs_review"),
    "phone/exif_rotated.jpg": ("ok", "needs_review"),
    "phone/cmyk.jpg": ("ok", "needs_review"),
    "phone/alpha.png": ("ok", "needs_review"),
    "phone/grey.jpg": ("ok", "needs_review"),
    "phone/large_4000x3000.jpg": ("ok", "needs_review"),
    "phone/photo.heic": ("ok", "needs_review"),
    "backgrounds/red_wall.jpg": ("ok", "needs_review"),
    "backgrounds/green_wall.jpg": ("ok", "needs_review"),
}
EXPECTED_FAILURES = {
    "bad/two_faces.jpg": "multiple_faces",
    "bad/no_face_coffee.jpg": "no_face",
    "bad/truncated.jpg": "decode_error",
    "bad/not_an_image.jpg": "not_an_image",
    "bad/empty.png": "not_an_image",
}


@pytest.fixture(scope="module")
def job(tmp_path_factory, ray_local, mediapipe_models):
    from idphoto_ray.job.run import run_job

    root = tmp_path_factory.mktemp("e2e")
    write_samples(root / "in")
    config = JobConfig(
        input=[str(root / "in")],
        output=str(root / "out"),
        specs=["cn-1inch", "us-passport"],
        backgrounds=["blue", "white"],
        model="mediapipe-selfie",
        batch_size=4,
        concurrency=1,
    )
    summary = run_job(config, progress=False)
    return root, config, summary


def _rows(root: Path) -> dict[str, dict]:
    table = pq.read_table(root / "out" / "manifest")
    rows = table.to_pylist()
    by_rel = {}
    for row in rows:
        rel = str(Path(row["input_path"]).relative_to(root / "in"))
        assert rel not in by_rel, f"duplicate row for {rel}"
        by_rel[rel] = row
    return by_rel


def test_every_input_has_exactly_one_row_with_the_right_outcome(job):
    root, _, summary = job
    rows = _rows(root)
    inputs = {str(p.relative_to(root / "in")) for p in (root / "in").rglob("*") if p.is_file()}
    assert set(rows) == inputs
    for rel, reason in EXPECTED_FAILURES.items():
        assert rows[rel]["status"] == "failed", (rel, rows[rel])
        assert rows[rel]["reason"] == reason, (rel, rows[rel]["reason"], rows[rel]["message"])
        assert rows[rel]["outputs"] == []
    for rel, statuses in EXPECTED.items():
        if rel in rows:
            assert rows[rel]["status"] in statuses, (rel, rows[rel]["reason"], rows[rel]["message"])
    assert rows["small/low_resolution.jpg"]["status"] == "needs_review"
    assert "low_resolution" in rows["small/low_resolution.jpg"]["flags"]
    assert summary.processed == len(inputs)


def test_outputs_exist_with_spec_size_and_dpi_and_no_partial_files(job):
    root, config, _ = job
    rows = _rows(root)
    made = 0
    for row in rows.values():
        if row["status"] == "failed":
            continue
        assert len(row["outputs"]) == len(config.specs) * len(config.backgrounds)
        for out in row["outputs"]:
            spec = get_spec(out["spec"])
            path = Path(out["path"])
            assert path.is_relative_to(root / "out" / out["spec"] / out["background"])
            with Image.open(path) as img:
                assert img.size == spec.size_px
                assert round(img.info["dpi"][0]) == spec.dpi
                assert not img.getexif()
            assert path.stat().st_size == out["bytes"]
            made += 1
    assert made >= 10 * 4
    assert not list((root / "out").rglob(".tmp-*"))
    # subfolders are preserved in output names
    assert (root / "out" / "cn-1inch" / "blue" / "portrait" / "upright.jpg").exists()


def test_output_affine_maps_the_input_file_onto_the_written_output(job):
    """Each output's affine (input px → output px) reproduces the written file's subject from the input."""
    import numpy as np
    from affine_check import subject_error
    from PIL import ImageOps

    root, _, _ = job
    rows = _rows(root)
    for rel in ("phone/large_4000x3000.jpg", "portrait/rotated_10deg.jpg", "phone/exif_rotated.jpg"):
        with Image.open(root / "in" / rel) as img:
            source = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
        for out in rows[rel]["outputs"]:
            if out["background"] != "white":
                continue
            assert len(out["affine"]) == 6
            with Image.open(out["path"]) as img:
                written = np.asarray(img.convert("RGB"))
            error = subject_error(source, written, out["affine"], (255, 255, 255))
            assert error < 4.0, (rel, out["spec"], error)


def test_run_json_and_review_page(job):
    root, config, summary = job
    info = json.loads((root / "out" / "run.json").read_text())
    assert info["config_hash"] == config.config_hash(info["models"]["segmenter"]["sha256"])
    assert info["processed"] == summary.processed
    assert sum(info["counts"].values()) == summary.processed
    assert info["models"]["segmenter"]["sha256"]
    # the session Ray declares a logical GPU: device=auto schedules one GPU actor (its session runs on CPU
    # here)
    assert info["pool"]["gpus_per_actor"] == 1.0
    html = (root / "out" / "review.html").read_text()
    assert "two_faces" in html and "multiple_faces" in html
    assert "http://" not in html and "https://" not in html


def test_resume_retries_failed_then_processes_nothing(job):
    from idphoto_ray.job.run import run_job

    root, config, first = job
    resumed = config.model_copy(update={"resume": True})
    again = run_job(resumed, progress=False)
    failed = first.counts.get("failed", 0)
    assert again.processed == failed  # failed inputs are retried ...
    assert again.skipped == first.processed - failed  # ... everything ok/needs_review is skipped

    for rel in EXPECTED_FAILURES:  # the operator removes the broken files; nothing is left to do
        (root / "in" / rel).unlink()
    third = run_job(resumed, progress=False)
    assert third.processed == 0
    assert "nothing to do" in third.table()
    # the review page still shows the batch's latest results, not an empty page for an empty run
    assert "low_resolution" in (root / "out" / "review.html").read_text()
