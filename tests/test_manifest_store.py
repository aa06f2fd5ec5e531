"""Manifest parts are whole or absent; a part that cannot be read is moved aside and the run goes on."""

from __future__ import annotations

import logging
import os

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from idphoto_ray.manifest import SCHEMA, empty_row, rows_to_table
from idphoto_ray.manifest_store import QUARANTINE_DIR, ManifestWriteError, read_parts, write_part

pytestmark = pytest.mark.timeout(60)


def _table(*ids: str) -> pa.Table:
    return rows_to_table(
        [empty_row() | {"input_id": i, "input_path": f"/in/{i}.jpg", "status": "ok"} for i in ids]
    )


def test_parts_round_trip_and_no_temp_files_remain(tmp_path):
    fs = fsspec.filesystem("file")
    manifest = str(tmp_path / "manifest")
    write_part(_table("a", "b"), fs, manifest, "run1-0000.parquet")
    write_part(_table("c"), fs, manifest, "run1-0001.parquet")
    assert sorted(os.listdir(manifest)) == ["run1-0000.parquet", "run1-0001.parquet"]
    table = read_parts(manifest, SCHEMA, fs)
    assert sorted(table.column("input_id").to_pylist()) == ["a", "b", "c"]
    assert table.schema == SCHEMA


def test_torn_and_empty_parts_are_quarantined_with_one_warning_each(tmp_path, caplog):
    fs = fsspec.filesystem("file")
    manifest = tmp_path / "manifest"
    write_part(_table("a"), fs, str(manifest), "good.parquet")
    whole = (manifest / "good.parquet").read_bytes()
    (manifest / "torn.parquet").write_bytes(whole[: len(whole) // 2])  # no footer, as a full disk leaves it
    (manifest / "empty.parquet").write_bytes(b"")
    (manifest / ".tmp-inflight.parquet").write_bytes(b"partial")  # a writer's temp file: not a part
    with caplog.at_level(logging.WARNING, logger="idphoto_ray.manifest_store"):
        table = read_parts(str(manifest), SCHEMA, fs)
    assert table.column("input_id").to_pylist() == ["a"]
    moved = sorted(os.listdir(tmp_path / QUARANTINE_DIR))
    assert moved == ["empty.parquet", "torn.parquet"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("moved to" in w and "\n" not in w for w in warnings)
    assert sorted(os.listdir(manifest)) == [".tmp-inflight.parquet", "good.parquet"]
    assert pq.read_table(manifest).num_rows == 1  # Arrow's own reader agrees once the torn parts are gone


def test_absent_manifest_is_empty(tmp_path):
    assert read_parts(str(tmp_path / "nothing"), SCHEMA, fsspec.filesystem("file")).num_rows == 0


def test_a_failed_write_leaves_no_part_and_says_where(tmp_path):
    fs = fsspec.filesystem("file")
    manifest = tmp_path / "manifest"
    manifest.mkdir()
    manifest.chmod(0o555)
    try:
        if os.access(manifest, os.W_OK):
            target = tmp_path / "manifest-is-a-file"
            target.write_text("x")  # root ignores modes: a file where the folder should be fails for everyone
            manifest_dir = str(target)
        else:
            manifest_dir = str(manifest)
        with pytest.raises(ManifestWriteError, match="cannot write the manifest in"):
            write_part(_table("a"), fs, manifest_dir, "p.parquet")
    finally:
        manifest.chmod(0o755)
    assert os.listdir(manifest) == []


def test_part_writer_flushes_by_rows_and_hands_back_rows_it_could_not_write(tmp_path):
    from idphoto_ray.manifest_store import PartWriter

    fs = fsspec.filesystem("file")
    writer = PartWriter(fs, str(tmp_path / "manifest"), "run1", SCHEMA, rows_per_part=2, seconds=3600)
    writer.add(_table("a"))
    assert not (tmp_path / "manifest").exists()
    writer.add(_table("b", "c"))
    writer.add(_table("d"))
    writer.flush()
    assert sorted(os.listdir(tmp_path / "manifest")) == ["run1-00000.parquet", "run1-00001.parquet"]
    assert writer.written_rows == 4

    lost = []
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the manifest folder should be")
    failing = PartWriter(fs, str(blocked), "run2", SCHEMA, rows_per_part=1, on_failed_rows=lost.append)
    with pytest.raises(ManifestWriteError):
        failing.add(_table("e"))
    assert [t.column("input_id").to_pylist() for t in lost] == [["e"]]
