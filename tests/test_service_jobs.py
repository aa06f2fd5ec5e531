"""The service's upload handling without Serve: sniffing, safe unpacking, job state, cleanup, results zip."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from idphoto_ray.encode import encode_image
from idphoto_ray.service.jobs import JobStore, Unpacker, UploadRejected
from idphoto_ray.service.sniff import is_zip, sniff_image

JPEG = encode_image(np.full((8, 8, 3), 128, np.uint8), "jpeg").data
PNG = encode_image(np.full((8, 8, 3), 128, np.uint8), "png").data


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def test_sniffing_reads_bytes_not_names():
    assert sniff_image(JPEG) == "jpg" and sniff_image(PNG) == "png"
    assert sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff_image(b"\x00\x00\x00\x18ftypheic\x00\x00") == "heic"
    assert sniff_image(b"%!PS-Adobe-3.0 EPSF-3.0") is None  # Pillow would run Ghostscript on it
    assert sniff_image(b"hello") is None
    assert is_zip(_zip({"a.jpg": JPEG})) and not is_zip(JPEG)


def test_unpacker_flattens_names_renames_by_content_and_skips_the_rest(tmp_path):
    unpacker = Unpacker(tmp_path / "in", max_files=10, max_bytes=10**6)
    unpacker.add(
        "class.zip",
        _zip(
            {
                "../../etc/evil.jpg": JPEG,
                "/abs/b.png": PNG,
                "class 3/Ann.txt": JPEG,  # a JPEG whatever its name says
                "notes.txt": b"hello",
                "__MACOSX/._x.jpg": JPEG,
            }
        ),
    )
    unpacker.add("single.jpeg", PNG)
    assert sorted(unpacker.names) == ["abs_b.png", "class_3_Ann.jpg", "etc_evil.jpg", "single.png"]
    assert sorted(unpacker.skipped) == ["__MACOSX/._x.jpg", "notes.txt"]
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == sorted(unpacker.names)
    assert not (tmp_path / "etc").exists()


def test_unpacker_limits_count_and_unpacked_bytes(tmp_path):
    with pytest.raises(UploadRejected) as too_many:
        three = _zip({f"{i}.jpg": JPEG for i in range(3)})
        Unpacker(tmp_path / "a", max_files=2, max_bytes=10**6).add("x.zip", three)
    assert too_many.value.status == 413
    bomb = _zip({"big.jpg": JPEG + b"\x00" * 200_000})  # deflates to almost nothing
    assert len(bomb) < 5_000
    with pytest.raises(UploadRejected, match="exceeds") as big:
        Unpacker(tmp_path / "b", max_files=10, max_bytes=100_000).add("bomb.zip", bomb)
    assert big.value.status == 413
    with pytest.raises(UploadRejected) as broken:
        Unpacker(tmp_path / "c", max_files=10, max_bytes=10**6).add("x.zip", b"PK\x03\x04broken")
    assert broken.value.status == 422


def test_job_store_progress_results_and_cleanup(tmp_path):
    store = JobStore(tmp_path)
    job_id, path = store.new()
    assert store.path("../" + job_id) is None and store.path("0" * 32) is None
    JobStore.write_state(path, state="running", total=4)
    (path / "output" / "_review").mkdir(parents=True)
    for i in range(3):
        (path / "output" / "_review" / f"{i}.jpg").write_bytes(JPEG)
    progress = store.progress(job_id)
    assert (progress["done"], progress["percent"], progress["state"]) == (3, 75.0, "running")
    assert store.results_zip(job_id) is None  # not finished
    (path / "output" / "manifest.csv").write_text("a\n1\n")
    JobStore.write_state(path, state="done")
    assert store.progress(job_id)["percent"] == 100.0
    with zipfile.ZipFile(store.results_zip(job_id)) as archive:
        assert sorted(archive.namelist()) == [
            "_review/0.jpg",
            "_review/1.jpg",
            "_review/2.jpg",
            "manifest.csv",
        ]
        assert archive.getinfo("_review/0.jpg").compress_type == zipfile.ZIP_STORED
    running_id, running = store.new()
    JobStore.write_state(running, state="running", total=1)
    later = json.loads((path / "job.json").read_text())["updated_at"] + 100
    assert store.cleanup(retention_s=50, now=later) == [job_id]
    assert store.path(job_id) is None and store.path(running_id) is not None
