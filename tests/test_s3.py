"""Read photos from and write results to an S3 endpoint served locally by moto (server mode on 127.0.0.1)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from idphoto_ray.config import JobConfig
from idphoto_ray.samples import sample_files

pytestmark = pytest.mark.slow
s3fs = pytest.importorskip("s3fs")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("moto server did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_bucket_in_bucket_out(s3_endpoint, ray_local, mediapipe_models):
    from idphoto_ray.job.run import run_job

    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    fs = s3fs.S3FileSystem(**options)
    import boto3

    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket="photos")
    samples = sample_files()
    chosen = ["portrait/upright.jpg", "phone/exif_rotated.jpg", "bad/truncated.jpg"]
    for name in chosen:
        fs.pipe_file(f"photos/inbox/{name}", samples[name])

    config = JobConfig(
        input=["s3://photos/inbox/"],
        output="s3://photos/results",
        storage_options=options,
        specs=["cn-1inch"],
        backgrounds=["blue"],
        model="mediapipe-selfie",
        batch_size=2,
        concurrency=1,
    )
    summary = run_job(config, progress=False)
    assert summary.processed == 3

    with fs.open("photos/results/run.json", "rb") as handle:
        assert b'"processed": 3' in handle.read()
    parts = [p for p in fs.find("photos/results/manifest") if p.endswith(".parquet")]
    assert parts
    rows = []
    for part in parts:
        with fs.open(part, "rb") as handle:
            rows += pq.read_table(handle).to_pylist()
    by_path = {r["input_path"]: r for r in rows}
    assert set(by_path) == {f"s3://photos/inbox/{n}" for n in chosen}
    assert by_path["s3://photos/inbox/bad/truncated.jpg"]["reason"] == "decode_error"
    good = by_path["s3://photos/inbox/portrait/upright.jpg"]
    assert good["status"] in ("ok", "needs_review")
    out = good["outputs"][0]
    assert out["path"] == "s3://photos/results/cn-1inch/blue/portrait/upright.jpg"
    assert fs.info(out["path"])["size"] == out["bytes"]
    assert fs.exists("photos/results/review.html")
