"""`ray job submit` against a real local cluster started with `ray start --head`, then the cluster is
stopped."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from idphoto_ray.samples import sample_files

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_cluster(temp_dir: Path) -> None:
    """Stop only this cluster: `ray stop` would also kill the test session's own Ray."""
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(temp_dir) in part for part in proc.info["cmdline"] or []):
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


def test_ray_job_submit_runs_the_job_on_a_cluster(tmp_path, mediapipe_models):
    ray_bin = Path(sys.executable).with_name("ray")
    temp_dir = Path("/tmp") / f"idpr-{os.getpid()}"  # short: Ray's socket paths have a length limit
    dashboard_port = _free_port()
    # Ray 2.60 clusters use token auth; the CLI client only sends the token when the mode says so.
    # A fresh machine has no ~/.ray/auth_token and `ray start` does not create one: give the cluster and the
    # client the same token through the environment.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {
        "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    photos = tmp_path / "in"
    photos.mkdir()
    samples = sample_files()
    for name in ("portrait/upright.jpg", "bad/not_an_image.jpg"):
        (photos / name.replace("/", "_")).write_bytes(samples[name])
    out = tmp_path / "out"

    start = subprocess.run(
        [
            str(ray_bin),
            "start",
            "--head",
            "--num-cpus=2",
            f"--port={_free_port()}",
            "--include-dashboard=true",
            f"--dashboard-port={dashboard_port}",
            "--dashboard-host=127.0.0.1",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
            # every port explicit and free, so this cluster can run beside the test session's own Ray
            f"--dashboard-agent-listen-port={_free_port()}",
            f"--dashboard-agent-grpc-port={_free_port()}",
            f"--runtime-env-agent-port={_free_port()}",
            f"--metrics-export-port={_free_port()}",
            f"--ray-client-server-port={_free_port()}",
            f"--node-manager-port={_free_port()}",
            f"--object-manager-port={_free_port()}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert start.returncode == 0, start.stderr[-2000:]
        address = f"--address=http://127.0.0.1:{dashboard_port}"
        job_id = f"idphoto-test-{os.getpid()}"
        # The entrypoint is a shell command run with the cluster's PATH: a bare `python` is whatever that
        # finds, which is not this venv's when it is not activated. Name the interpreter.
        cmd = [
            str(ray_bin),
            "job",
            "submit",
            address,
            f"--submission-id={job_id}",
            "--working-dir",
            str(REPO),
            "--",
            sys.executable,
            "jobs/make_id_photos.py",
            "--input",
            str(photos),
            "--output",
            str(out),
            "--spec",
            "cn-1inch",
            "--background",
            "white",
            "--concurrency",
            "1",
            "--no-progress",
        ]
        deadline = time.monotonic() + 90
        while True:  # the dashboard agent needs a few seconds after `ray start` before it accepts jobs
            submit = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400, cwd=REPO)
            if "No available agent" not in submit.stderr + submit.stdout or time.monotonic() > deadline:
                break
            time.sleep(3)
        logs = submit.stdout[-3000:] + submit.stderr[-3000:]
        assert submit.returncode == 0, logs
        status = subprocess.run(
            [str(ray_bin), "job", "status", address, job_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert f"Job '{job_id}' succeeded" in status.stdout + status.stderr, status.stdout + status.stderr
    finally:
        _stop_cluster(temp_dir)

    info = json.loads((out / "run.json").read_text())
    assert info["processed"] == 2
    assert info["reasons"] == {"not_an_image": 1}
    assert (out / "cn-1inch" / "white" / "portrait_upright.jpg").exists()
