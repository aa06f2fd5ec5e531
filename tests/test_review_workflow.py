"""The review workflow in a real browser: open review.html, filter, decide, export, apply to the manifest.

Headless Chromium through Playwright. Skips where Chromium or Playwright is missing, fails when CI=true.
Screenshots: IDPHOTO_REVIEW_SCREENSHOTS=/some/folder keeps them to look at.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from idphoto_ray.cli import main
from idphoto_ray.manifest import (
    OUTPUT_TYPE,
    decision_row,
    empty_row,
    finished_for_resume,
    latest_rows,
    read_manifest,
    rows_to_table,
)
from idphoto_ray.resume import done_inputs
from idphoto_ray.review import REVIEW_DIR, crop_polygon, thumbnail_jpeg, write_review
from idphoto_ray.samples import astronaut
from idphoto_ray.types import Flag, Reason

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
HAS_AFFINE = "affine" in [OUTPUT_TYPE.field(i).name for i in range(OUTPUT_TYPE.num_fields)]


def _affine(scale: float, x0: float, y0: float, deg: float = 0.0) -> list[float]:
    """input → output: rotate by `deg` about (x0, y0), then scale; (x0, y0) lands on the output's origin."""
    t = np.deg2rad(deg)
    a, b = scale * np.cos(t), scale * np.sin(t)
    d, e = -scale * np.sin(t), scale * np.cos(t)
    return [a, b, -(a * x0 + b * y0), d, e, -(d * x0 + e * y0)]


def _batch(tmp_path: Path) -> tuple[Path, list[dict]]:
    """A small batch on disk as a job leaves it: inputs, outputs (crops of the real portrait), input
    previews, one manifest part and review.html."""
    out, inp = tmp_path / "out", tmp_path / "in"
    photo = astronaut(2.0)  # 1024²
    cases = [  # input_id, status, flags, reason, roll of the crop
        ("class-a/alice", "needs_review", [Flag.BLURRY.value, Flag.UPSCALED.value], None, 0.0),
        ("class-a/bob", "needs_review", [Flag.LOW_RESOLUTION.value], None, 8.0),
        ("class-b/carol", "failed", [], Reason.NO_FACE.value, 0.0),
        ("class-b/dave", "ok", [], None, 0.0),
    ]
    rows = []
    for i, (input_id, status, flags, reason, deg) in enumerate(cases):
        src = inp / f"{input_id}.jpg"
        src.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo).save(src, quality=85)
        (out / REVIEW_DIR / input_id).parent.mkdir(parents=True, exist_ok=True)
        (out / REVIEW_DIR / f"{input_id}.jpg").write_bytes(thumbnail_jpeg(photo))
        outputs = []
        if status != "failed":
            for spec, (w, h), bg in (("cn-1inch", (295, 413), "blue"), ("cn-1inch", (295, 413), "white")):
                affine = _affine(0.6, 300 + 10 * i, 150, deg)
                a, b, c, d, e, f = affine
                inv = np.linalg.inv(np.array([[a, b], [d, e]]))
                crop = Image.fromarray(photo).transform(
                    (w, h),
                    Image.Transform.AFFINE,
                    (
                        inv[0, 0],
                        inv[0, 1],
                        -(inv[0, 0] * c + inv[0, 1] * f),
                        inv[1, 0],
                        inv[1, 1],
                        -(inv[1, 0] * c + inv[1, 1] * f),
                    ),
                    Image.Resampling.BILINEAR,
                )
                path = out / spec / bg / f"{input_id}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                crop.save(path, quality=90)
                outputs.append(
                    {
                        "spec": spec,
                        "background": bg,
                        "path": str(path),
                        "width": w,
                        "height": h,
                        "bytes": path.stat().st_size,
                        "affine": affine,
                    }
                )
        row = empty_row()
        row.update(
            input_path=str(src),
            input_id=input_id,
            input_bytes=src.stat().st_size,
            input_sha256=f"sha-{i}",
            run_id="20260101T000000000000Z-aaaaaa",
            config_hash="cfg",
            status=status,
            reason=reason,
            flags=flags,
            outputs=outputs,
            width=1024,
            height=1024,
            message="the face detector saw nothing" if reason else None,
        )
        rows.append(row)
    table = rows_to_table(rows)
    (out / "manifest").mkdir(parents=True)
    pq.write_table(table, out / "manifest" / "part-0.parquet")
    names = {r["input_id"]: r["input_id"] for r in rows}
    write_review(table, fsspec.filesystem("file"), str(out), str(out / "review.html"), names)
    return out, rows


@pytest.fixture
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("Playwright is required in CI (pip install playwright)")
        pytest.skip("Playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        if os.environ.get("CI") == "true":
            pytest.fail("headless Chromium is required in CI (apt-get install -y chromium)")
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=CHROMIUM_ARGS,
        )
        yield b
        b.close()


def _shot(page, name: str) -> None:
    keep = os.environ.get("IDPHOTO_REVIEW_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(keep) / f"{name}.png"), full_page=True)


def _visible(page) -> list[str]:
    return page.eval_on_selector_all("tr.row", "rs => rs.filter(r => !r.hidden).map(r => r.dataset.id)")


@pytest.mark.timeout(180)
def test_open_filter_decide_export_apply(browser, tmp_path):
    out, rows = _batch(tmp_path)
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((out / "review.html").as_uri())

    # open: problems first, every row there, flags in words
    assert _visible(page) == ["class-b/carol", "class-a/alice", "class-a/bob", "class-b/dave"]
    alice = page.locator('tr.row[data-id="class-a/alice"]')
    assert Flag.BLURRY.doc in alice.locator("td.key").inner_text()
    _shot(page, "1-open")

    # filter by status, by flag, then back to all
    page.select_option("#filter-status", "needs_review")
    assert _visible(page) == ["class-a/alice", "class-a/bob"]
    page.select_option("#filter-code", Flag.LOW_RESOLUTION.value)
    assert _visible(page) == ["class-a/bob"]
    assert "1 of 4" in page.inner_text("#shown")
    page.select_option("#filter-status", "")
    page.select_option("#filter-code", Reason.NO_FACE.value)
    assert _visible(page) == ["class-b/carol"]
    page.select_option("#filter-code", "")

    # sort by input name: each row keeps its detail row right after it
    page.click('th[data-col="2"]')
    assert _visible(page) == ["class-a/alice", "class-a/bob", "class-b/carol", "class-b/dave"]
    paired = page.eval_on_selector_all("#review tbody tr", "trs => trs.map(t => t.className.split(' ')[0])")
    assert paired == ["row", "detail"] * 4

    # click a row: large previews, crop boxes, links to the files
    alice.click()
    detail = page.locator('tr.row[data-id="class-a/alice"] + tr.detail')
    assert detail.is_visible()
    sizes = detail.locator("img.big").evaluate_all("is => is.map(i => [i.naturalWidth, i.naturalHeight])")
    assert len(sizes) == 2 and all(max(s) == 400 for s in sizes), sizes
    assert detail.locator("svg.input-crop image").count() == 1
    assert Flag.UPSCALED.doc in detail.inner_text()
    if HAS_AFFINE:
        points = detail.locator("polygon.crop").get_attribute("points")
        corners = [tuple(map(float, p.split(","))) for p in points.split()]
        assert corners[0] == pytest.approx((300, 150), abs=0.2)
        assert corners[2] == pytest.approx((300 + 295 / 0.6, 150 + 413 / 0.6), abs=0.2)
    hrefs = detail.locator("a.file").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    for href in hrefs:
        assert not href.startswith(("/", "file:", "http")) and (out / href).resolve().is_file(), href
    _shot(page, "2-detail")

    # decide: approve alice, which closes her panel and opens the next undecided row (bob); reject him with a
    # note
    detail.get_by_role("button", name="Approve").click()
    assert not detail.is_visible()
    bob_detail = page.locator('tr.row[data-id="class-a/bob"] + tr.detail')
    assert bob_detail.is_visible()
    bob_detail.locator("input.note").fill("shadow across the face")
    bob_detail.get_by_role("button", name="Reject").click()
    assert page.locator('tr.row[data-id="class-a/bob"] td.decision').inner_text().startswith("rejected")
    _shot(page, "3-decided")

    # decisions survive a reload (localStorage) and filter
    page.reload()
    page.select_option("#filter-decision", "none")
    assert _visible(page) == ["class-b/carol", "class-b/dave"]
    page.select_option("#filter-decision", "rejected")
    assert _visible(page) == ["class-a/bob"]
    assert "shadow across the face" in page.locator('tr.row[data-id="class-a/bob"] td.decision').inner_text()

    # export
    with page.expect_download() as info:
        page.click("#export")
    exported = tmp_path / "review-decisions.json"
    info.value.save_as(exported)
    decisions = json.loads(exported.read_text())["decisions"]
    assert sorted((d["input_id"], d["decision"]) for d in decisions) == [
        ("class-a/alice", "approved"),
        ("class-a/bob", "rejected"),
    ]
    assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests
    context.close()

    # apply: one row per decision, the reviewed row's identity, config and outputs
    assert main(["review", "apply", str(exported), "--output", str(out)]) == 0
    table = read_manifest(str(out / "manifest"))
    assert table.num_rows == len(rows) + 2
    latest = {r["input_id"]: r for r in latest_rows(table).to_pylist()}
    reviewed = {r["input_id"]: r for r in rows}
    alice_row, bob_row = latest["class-a/alice"], latest["class-a/bob"]
    assert alice_row["status"] == "ok" and alice_row["reason"] is None
    assert bob_row["status"] == "failed" and bob_row["reason"] == Reason.REJECTED_IN_REVIEW.value
    assert bob_row["message"] == "rejected in review: shadow across the face"
    for got in (alice_row, bob_row):
        want = reviewed[got["input_id"]]
        assert got["run_id"] > want["run_id"]
        assert (got["config_hash"], got["input_sha256"]) == (want["config_hash"], want["input_sha256"])
        assert [o["path"] for o in got["outputs"]] == [o["path"] for o in want["outputs"]]
    assert latest["class-b/carol"]["run_id"] == rows[2]["run_id"]  # undecided rows untouched

    # resume: both decisions are final while the bytes are the same
    done = done_inputs(table, "cfg")
    assert done["class-a/alice"] == "sha-0" and done["class-a/bob"] == "sha-1"
    assert "class-b/carol" not in done  # no_face is retried

    # applying the same file again changes nothing: each reviewed row has a newer row now
    assert main(["review", "apply", str(exported), "--output", str(out)]) == 0
    assert read_manifest(str(out / "manifest")).num_rows == len(rows) + 2


def test_finished_for_resume_keeps_decisions_and_retries_failures():
    assert finished_for_resume("ok", None) and finished_for_resume("needs_review", None)
    assert finished_for_resume("failed", Reason.REJECTED_IN_REVIEW.value)
    assert not finished_for_resume("failed", Reason.NO_FACE.value)
    assert not finished_for_resume("failed", Reason.WRITE_ERROR.value)


def test_decision_row_keeps_identity_and_outputs():
    row = empty_row()
    row.update(
        input_path="/in/a.jpg",
        input_id="a",
        input_sha256="s",
        run_id="r1",
        config_hash="c",
        status="needs_review",
        flags=["blurry"],
        outputs=[{"spec": "x", "path": "/out/a.jpg"}],
    )
    approved = decision_row(row, True, "  ", "r2")
    rejected = decision_row(row, False, "blur", "r2")
    assert (approved["status"], approved["reason"], approved["message"]) == ("ok", None, "approved in review")
    assert (rejected["status"], rejected["reason"]) == ("failed", "rejected_in_review")
    assert rejected["message"] == "rejected in review: blur"
    for r in (approved, rejected):
        assert (r["input_id"], r["config_hash"], r["input_sha256"], r["run_id"]) == ("a", "c", "s", "r2")
        assert r["outputs"] == row["outputs"] and r["flags"] == ["blurry"]
    rows_to_table([approved, rejected])  # fits the schema


def test_crop_polygon_inverts_the_affine():
    affine = _affine(0.5, 100, 40, deg=10)
    corners = crop_polygon(affine, 200, 300)
    a, b, c, d, e, f = affine
    for (x, y), (u, v) in zip(corners, [(0, 0), (200, 0), (200, 300), (0, 300)], strict=True):
        assert (a * x + b * y + c, d * x + e * y + f) == pytest.approx((u, v), abs=1e-9)
    assert corners[0] == pytest.approx((100, 40))
    assert crop_polygon(None, 200, 300) is None and crop_polygon([0, 0, 0, 0, 0, 0], 200, 300) is None


def test_apply_rejects_a_file_that_is_not_a_decisions_file(tmp_path, capsys):
    bad = tmp_path / "d.json"
    bad.write_text(json.dumps({"decisions": [{"input_id": "a"}]}))
    assert main(["review", "apply", str(bad), "--output", str(tmp_path)]) == 2
    assert "not a decisions file" in capsys.readouterr().err


def test_links_are_relative_for_local_outputs_and_uris_for_buckets():
    from idphoto_ray.review import _href

    assert _href("/data/out/cn-1inch/blue/a b.jpg", "/data/out", local=True) == "cn-1inch/blue/a%20b.jpg"
    assert _href("/data/in/x.jpg", "/data/out", local=True) == "../in/x.jpg"
    assert _href("s3://bucket/out/cn-1inch/blue/a.jpg", "bucket/out", local=False) == (
        "s3://bucket/out/cn-1inch/blue/a.jpg"
    )
    assert _href("s3://bucket/in/a.jpg", "/data/out", local=True) == "s3://bucket/in/a.jpg"
