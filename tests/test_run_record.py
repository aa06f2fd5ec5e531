"""Each run keeps its own record; run.json is the latest; no secret is written."""

from __future__ import annotations

import json

import fsspec

from idphoto_ray.run_record import write_run_record


def test_runs_side_by_side_and_latest_with_secrets_redacted(tmp_path):
    fs = fsspec.filesystem("file")
    options = {"key": "AKIA-SIDE", "secret": 'q"uo\\te-secret', "endpoint_url": "http://127.0.0.1:9"}
    for run_id in ("r1", "r2"):
        info = {
            "run_id": run_id,
            "config": {"storage_options": options, "output": "s3://b/out"},
            "message": f"listing failed with key {options['key']}",
            "flags": {"token_like_flag": 2},
        }
        write_run_record(fs, str(tmp_path), run_id, info, options)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["r1.json", "r2.json"]
    latest = json.loads((tmp_path / "run.json").read_text())
    assert latest["run_id"] == "r2"
    assert latest["config"]["storage_options"] == {
        "key": "***",
        "secret": "***",
        "endpoint_url": "http://127.0.0.1:9",
    }
    assert latest["flags"] == {"token_like_flag": 2}
    for path in tmp_path.rglob("*.json"):
        text = path.read_text()
        assert "AKIA-SIDE" not in text and "uo" not in text, path
    assert not list(tmp_path.rglob(".tmp-*"))
