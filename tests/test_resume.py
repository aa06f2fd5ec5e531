"""Resume and output names key on input_id: copies are new inputs, names another id owns are not reused."""

from __future__ import annotations

from dataclasses import dataclass

from idphoto_ray.manifest import empty_row, latest_rows, rows_to_table
from idphoto_ray.resume import assign_names, done_inputs, owned_names


def _row(input_id, sha, run, status="ok", config="c1", name=None):
    outputs = (
        []
        if name is None
        else [
            {
                "spec": "cn-1inch",
                "background": "white",
                "path": f"/out/cn-1inch/white/{name}.jpg",
                "width": 295,
                "height": 413,
                "bytes": 10,
            }
        ]
    )
    return empty_row() | {
        "input_id": input_id,
        "input_path": f"/in/{input_id}.jpg",
        "input_sha256": sha,
        "run_id": run,
        "status": status,
        "config_hash": config,
        "outputs": outputs,
    }


def test_done_means_this_inputs_latest_row_with_the_same_bytes():
    table = rows_to_table(
        [
            _row("a", "h1", "r1"),
            _row("b", "h2", "r1", status="failed"),
            _row("c", "h3", "r1"),
            _row("c", "h3", "r2", status="failed"),  # latest row of c failed: not done
            _row("d", "h4", "r1", config="c0"),  # another config: not done under c1
            _row("e", "h5", "r1", status="needs_review"),
            _row("e", "h5", "r2", status="failed") | {"reason": "rejected_in_review"},  # a review decision
            _row("f", "h6", "r1", status="needs_review"),
            _row("f", "h6", "r2"),  # approved in review: ok, final for resume too
        ]
    )
    assert done_inputs(table, "c1") == {"a": "h1", "e": "h5", "f": "h6"}
    # a copy of a's bytes under another id is a new input: done is keyed by id, not by hash
    assert "copy-of-a" not in done_inputs(table, "c1")


def test_latest_rows_keeps_two_ids_of_one_path():
    rows = [_row("x", "h", "r1"), _row("y", "h", "r1"), _row("x", "h", "r2", status="failed")]
    for row in rows:
        row["input_path"] = "/in/same.jpg"
    latest = latest_rows(rows_to_table(rows))
    ids, statuses = latest.column("input_id").to_pylist(), latest.column("status").to_pylist()
    assert sorted(zip(ids, statuses, strict=False)) == [
        ("x", "failed"),
        ("y", "ok"),
    ]


@dataclass(frozen=True)
class Item:
    input_id: str
    name: str


def test_names_owned_by_another_id_are_disambiguated_stably():
    table = rows_to_table([_row("a:b", "h1", "r1", name="a_b"), _row("other", "h2", "r1", name="a_b__2")])
    owners = owned_names(table, "/out")
    assert owners == {"a_b": "a:b", "a_b__2": "other"}

    items, renamed = assign_names([Item("a_b", "a_b"), Item("a:b", "a_b__9"), Item("z", "z")], owners)
    assert [i.name for i in items] == ["a_b__3", "a_b__9", "z"]  # __2 belongs to "other"
    assert renamed == [("a_b", "a_b", "a_b__3")]

    # next run: the renamed input keeps the name it now owns
    owners["a_b__3"] = "a_b"
    items, _ = assign_names([Item("a_b", "a_b")], owners)
    assert items[0].name == "a_b__3"
