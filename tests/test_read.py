"""Input listing: folders, globs, input lists with ids; output names are unique and stay inside the output."""

from __future__ import annotations

import pytest

from idphoto_ray.read import list_inputs


def _touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_folder_keeps_subfolders_and_skips_non_images(tmp_path):
    _touch(tmp_path, "a.jpg", "sub/b.HEIC", "notes.txt", "sub/deeper/c.png")
    protocol, items = list_inputs([str(tmp_path)])
    assert protocol == "file"
    assert sorted(i.name for i in items) == ["a", "sub/b", "sub/deeper/c"]
    assert all(i.uri == i.path for i in items)


def test_colliding_stems_keep_their_extension(tmp_path):
    _touch(tmp_path, "a.jpg", "a.png", "b.jpg")
    _, items = list_inputs([str(tmp_path)])
    assert sorted(i.name for i in items) == ["a_jpg", "a_png", "b"]


def test_glob_and_missing_input(tmp_path):
    _touch(tmp_path, "x/1.jpg", "x/2.png", "y/3.jpg")
    _, items = list_inputs([str(tmp_path / "x" / "*.jpg")])
    assert [i.name for i in items] == ["1"]
    with pytest.raises(FileNotFoundError, match="nope"):
        list_inputs([str(tmp_path / "nope")])


def test_input_list_ids_name_outputs_and_are_sanitised(tmp_path):
    _touch(tmp_path, "p/1.jpg", "p/2.jpg", "p/3.jpg")
    listing = tmp_path / "staff.csv"
    listing.write_text(
        f"path,id\n{tmp_path}/p/1.jpg,E-001\n{tmp_path}/p/2.jpg,../../etc/passwd\n{tmp_path}/p/3.jpg,\n"
    )
    _, items = list_inputs([], input_list=str(listing))
    by_path = {i.path.rsplit("/", 1)[-1]: i for i in items}
    assert by_path["1.jpg"].name == "E-001" and by_path["1.jpg"].input_id == "E-001"
    assert by_path["2.jpg"].name == "etc/passwd"  # no escaping the output folder
    assert by_path["3.jpg"].name == "3"


def test_input_list_errors_name_the_file(tmp_path):
    bad = tmp_path / "list.csv"
    bad.write_text("file\na.jpg\n")
    with pytest.raises(ValueError, match="list.csv.*'path' column"):
        list_inputs([], input_list=str(bad))
    dup = tmp_path / "dup.csv"
    dup.write_text("path,id\na.jpg,7\nb.jpg,7\n")
    with pytest.raises(ValueError, match="repeats ids: 7"):
        list_inputs([], input_list=str(dup))


def test_input_filesystem_is_the_photos_not_the_input_list(tmp_path):
    """A local input list may name photos in a bucket: Ray must read them through the bucket's filesystem."""
    from idphoto_ray.job.run import input_filesystem
    from idphoto_ray.read import list_inputs, protocol_of

    listing = tmp_path / "inputs.csv"
    listing.write_text("path\ns3://photos/a.jpg\ns3://photos/b.jpg\n")
    protocol, items = list_inputs([], str(listing), {"anon": True})
    assert protocol == "s3"
    fs = input_filesystem(items, protocol, {"anon": True})
    assert protocol_of(fs) == "s3"
    local = tmp_path / "in"
    local.mkdir()
    (local / "a.jpg").write_bytes(b"x")
    protocol, items = list_inputs([str(local)], None, None)
    assert input_filesystem(items, protocol, {}) is None


def test_unreadable_entries_are_inputs_with_their_cause_and_other_files_are_counted(tmp_path):
    from torture import make_torture_folder

    from idphoto_ray.read import list_inputs_detailed

    expected = make_torture_folder(tmp_path / "in")
    listing = list_inputs_detailed([str(tmp_path / "in")])
    got = {i.input_id: i.problem.split(":", 1)[0] for i in listing.items}
    assert got == {name.rsplit(".", 1)[0]: (p.value if p else "") for name, p in expected.items()}
    assert all("\n" not in i.name and "\t" not in i.name for i in listing.items)
    assert sum(listing.skipped.values()) == 4


def test_input_list_missing_paths_and_one_path_under_two_ids(tmp_path):
    from idphoto_ray.read import list_inputs_detailed

    _touch(tmp_path, "p/1.jpg")
    listing = tmp_path / "list.csv"
    listing.write_text(f"path,id\n{tmp_path}/p/1.jpg,A\n{tmp_path}/p/1.jpg,B\n{tmp_path}/p/gone.jpg,C\n")
    items = {i.input_id: i for i in list_inputs_detailed([], input_list=str(listing)).items}
    assert sorted(items) == ["A", "B", "C"]
    assert items["A"].path == items["B"].path and items["A"].name != items["B"].name
    assert items["C"].problem.startswith("missing:") and not items["A"].problem
