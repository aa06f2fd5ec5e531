"""review.html: parsed with the stdlib HTML parser, and looked at through headless Chromium when installed."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import fsspec
import numpy as np
import pytest
from PIL import Image

from idphoto_ray.config import JobConfig
from idphoto_ray.manifest import empty_row, latest_rows, read_manifest, rows_to_table
from idphoto_ray.review import write_review
from idphoto_ray.samples import write_samples

OK_SAMPLE = 1
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BLUE = np.array([0x43, 0x8E, 0xDB])


class ReviewPage(HTMLParser):
    """Rows (status, key, cells' text, images), header cells, every URL-bearing attribute, scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[dict] = []
        self.headers: list[dict] = []
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self._row: dict | None = None
        self._cell: list[str] | None = None
        self._th: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for name in ("src", "href", "srcset", "poster", "data", "action"):
            if a.get(name) is not None:
                self.urls.append((tag, name, a[name]))
        if tag == "tr" and "data-status" in a:
            self._row = {
                "status": a["data-status"],
                "key": a.get("data-key", ""),
                "class": a.get("class", ""),
                "cells": [],
                "images": [],
            }
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "th":
            self._th = {"attrs": a, "text": ""}
        elif tag == "img" and self._row is not None:
            self._row["images"].append(a)

    def handle_endtag(self, tag):
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "th" and self._th is not None:
            self._th["text"] = self._th["text"].strip()
            self.headers.append(self._th)
            self._th = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._th is not None:
            self._th["text"] += data


def parse(text: str) -> ReviewPage:
    page = ReviewPage()
    page.feed(text)
    page.close()
    return page


@pytest.fixture(scope="module")
def job(tmp_path_factory, ray_local, mediapipe_models):
    from idphoto_ray.job.run import run_job

    root = tmp_path_factory.mktemp("review")
    write_samples(root / "in")
    config = JobConfig(
        input=[str(root / "in")],
        output=str(root / "out"),
        specs=["cn-1inch"],
        backgrounds=["blue"],
        model="mediapipe-selfie",
        batch_size=4,
        concurrency=1,
        review_ok_sample=OK_SAMPLE,
    )
    summary = run_job(config, progress=False)
    rows = latest_rows(read_manifest(summary.manifest_dir)).to_pylist()
    html_path = Path(summary.review_html)
    return root, config, rows, html_path, parse(html_path.read_text(encoding="utf-8"))


def _row_for(page: ReviewPage, root: Path, input_path: str) -> dict:
    """The page row of an input, found by its relative path without extension (the page may show either)."""
    stem = Path(input_path).relative_to(root / "in").with_suffix("").as_posix()
    found = [r for r in page.rows if len(r["cells"]) > 2 and stem in r["cells"][2]]
    assert len(found) == 1, f"{input_path}: {len(found)} rows on the page"
    return found[0]


@pytest.mark.slow
def test_every_problem_input_is_listed_with_its_reason(job):
    root, _, rows, _, page = job
    problems = [r for r in rows if r["status"] != "ok"]
    assert any(r["status"] == "failed" for r in problems) and any(
        r["status"] == "needs_review" for r in problems
    )
    for row in problems:
        shown = _row_for(page, root, row["input_path"])
        assert shown["status"] == row["status"] and row["status"] in shown["cells"][0]
        if row["status"] == "failed":
            assert row["reason"] and row["reason"] in shown["key"] and row["reason"] in shown["cells"][1]
            if row["message"]:
                assert " ".join(row["message"].split()) in shown["cells"][2]
        else:
            assert row["flags"]
            for flag in row["flags"]:
                assert flag in shown["key"] and flag in shown["cells"][1]
        outs = [img for img in shown["images"] if img.get("alt") != "input"]
        assert len(outs) == len(row["outputs"])


@pytest.mark.slow
def test_every_image_is_inline_and_nothing_reaches_the_network(job):
    _, _, _, html_path, page = job
    images = [img for r in page.rows for img in r["images"]]
    assert images
    assert all(img["src"].startswith("data:image/jpeg;base64,") for img in images)
    # images are inline; the only other URLs are links to the files, relative to the page (local outputs)
    out_root = html_path.parent
    for tag, attr, value in page.urls:
        if value.startswith("data:"):
            continue
        assert (tag, attr) == ("a", "href") and not value.startswith(("/", "file:")), (tag, attr, value)
        assert (out_root / unquote(value)).resolve().is_file(), value
    assert not {"link", "iframe", "object", "embed", "base"} & set(page.tags)
    text = html_path.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "url(" not in text and "@import" not in text
    # every row whose input decoded shows its input thumbnail
    assert any(img.get("alt") == "input" for r in page.rows for img in r["images"])


@pytest.mark.slow
def test_sortable_headers_and_ok_sample_cap(job):
    _, config, rows, _, page = job
    sortable = {h["text"]: h["attrs"]["data-col"] for h in page.headers if "data-col" in h["attrs"]}
    assert {"status", "reason / flags", "input"} <= set(sortable)
    assert len(set(sortable.values())) == len(sortable)
    text = job[3].read_text(encoding="utf-8")
    assert (
        "th[data-col]" in text and "addEventListener('click'" in text
    )  # the sorting script is wired to them

    ok_shown = [r for r in page.rows if r["status"] == "ok"]
    assert len(ok_shown) <= config.review_ok_sample
    assert len(page.rows) == sum(r["status"] != "ok" for r in rows) + len(ok_shown)
    counts = json.loads(html.unescape(text.split('data-counts="', 1)[1].split('"', 1)[0]))
    assert sum(counts.values()) == len(rows)


def test_ok_sample_cap_with_many_ok_photos(tmp_path):
    """Without Ray: 10 ok rows and 2 problems, ok_sample=3 → the 2 problems first, then exactly 3 ok."""
    fs = fsspec.filesystem("file")
    records = []
    for i in range(12):
        row = empty_row()
        status = "ok" if i < 10 else ("failed" if i == 10 else "needs_review")
        row.update(
            input_path=f"/in/p{i}.jpg",
            input_id=f"p{i}",
            run_id="r",
            config_hash="c",
            status=status,
            reason="no_face" if status == "failed" else None,
            flags=["blurry"] if status == "needs_review" else [],
        )
        records.append(row)
    out = tmp_path / "review.html"
    write_review(rows_to_table(records), fs, str(tmp_path), str(out), {}, ok_sample=3)
    page = parse(out.read_text(encoding="utf-8"))
    assert [r["status"] for r in page.rows[:2]] == ["failed", "needs_review"]
    assert [r["status"] for r in page.rows[2:]] == ["ok"] * 3
    assert page.rows[0]["key"] == "no_face" and page.rows[1]["key"] == "blurry"
    assert all(r["cells"][3] for r in page.rows)  # "no preview" placeholder when there is no thumbnail


# --- what a person sees ---------------------------------------------------------------------------


def _chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path and Path("/usr/bin/chromium").exists():
        path = "/usr/bin/chromium"
    if not path:
        if os.environ.get("CI") == "true":
            pytest.fail("headless Chromium is required in CI (apt-get install -y chromium)")
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    return path


def _run_chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    chromium = _chromium()
    cmd = [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,2000",
        *args,
    ]
    try:
        return subprocess.run(
            cmd, capture_output=True, timeout=120, check=False, env={**os.environ, "HOME": str(tmp_path)}
        )
    except OSError as exc:  # present but not runnable here
        pytest.skip(f"chromium could not start: {exc}")


@pytest.mark.slow
def test_screenshot_with_headless_chromium(job, tmp_path):
    _, _, _, html_path, _ = job
    png = tmp_path / "review.png"
    proc = _run_chromium([f"--screenshot={png}", html_path.resolve().as_uri()], tmp_path)
    assert png.exists(), proc.stderr.decode(errors="replace")[-2000:]
    keep = os.environ.get("IDPHOTO_REVIEW_SCREENSHOT")
    if keep:  # to look at it: IDPHOTO_REVIEW_SCREENSHOT=/tmp/review.png pytest tests/test_review.py
        shutil.copyfile(png, keep)
    with Image.open(png) as img:
        assert img.size == (1280, 2000)
        pixels = np.asarray(img.convert("RGB")).astype(int)
    assert pixels.std() > 20, "blank page"
    # inline images rendered: the astronaut's orange suit (input thumbnails) and the blue background (outputs)
    orange = (pixels[..., 0] > 180) & (pixels[..., 1] > 60) & (pixels[..., 1] < 140) & (pixels[..., 2] < 90)
    blue = np.abs(pixels - BLUE).sum(axis=2) < 40
    assert orange.sum() > 2000 and blue.sum() > 500, (int(orange.sum()), int(blue.sum()))


def _realistic_page(tmp_path: Path) -> Path:
    """A page like a real campus batch: long bucket paths, several flags, 2 specs × 2 backgrounds each."""
    from idphoto_ray.review import REVIEW_DIR, thumbnail_jpeg

    fs = fsspec.filesystem("file")
    root = tmp_path / "out"
    rng = np.random.default_rng(0)
    records, names = [], {}
    flags = ["padded_top", "padded_sides", "low_resolution", "upscaled", "yaw_exceeds_limit"]
    for i in range(6):
        name = f"2026-intake/college-of-engineering/class-{i:02d}/IMG_20260901_1015{i:02d}_HDR"
        path = f"s3://campus-photos-incoming/raw/{name}.jpg"
        names[name] = name  # keyed on input_id
        (root / REVIEW_DIR / name).parent.mkdir(parents=True, exist_ok=True)
        photo = rng.integers(0, 255, (1200, 900, 3), dtype=np.uint8)
        (root / REVIEW_DIR / f"{name}.jpg").write_bytes(thumbnail_jpeg(photo))
        outputs = []
        for spec, size in (("cn-1inch", (295, 413)), ("us-passport", (600, 600))):
            for bg, colour in (("blue", BLUE), ("white", (255, 255, 255))):
                out = root / spec / bg / f"{name}.jpg"
                out.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", size, tuple(int(c) for c in colour)).save(out, quality=90)
                outputs.append(
                    {
                        "spec": spec,
                        "background": bg,
                        "path": str(out),
                        "width": size[0],
                        "height": size[1],
                        "bytes": out.stat().st_size,
                    }
                )
        row = empty_row()
        row.update(
            input_path=path,
            input_id=name,
            run_id="r",
            config_hash="c",
            status="needs_review",
            flags=flags[: 2 + i % 4],
            outputs=outputs,
        )
        records.append(row)
    page = root / "review.html"
    write_review(rows_to_table(records), fs, str(root), str(page), names, ok_sample=24)
    return page


def test_outputs_column_fits_a_1280px_window(tmp_path):
    """Measure the laid-out page: no horizontal scrolling, every output thumbnail fully inside the window."""
    _chromium()
    html_path = _realistic_page(tmp_path)
    probe = (
        "<script>window.addEventListener('load', function () {"
        " var d = document.documentElement, r = 0;"
        " document.querySelectorAll('td.outs img').forEach(function (i) {"
        "   r = Math.max(r, i.getBoundingClientRect().right); });"
        " document.body.setAttribute('data-probe',"
        "   JSON.stringify({scroll: d.scrollWidth, client: d.clientWidth, outs: r}));"
        "});</script>"
    )
    probed = tmp_path / "probe.html"
    probed.write_text(
        html_path.read_text(encoding="utf-8").replace("</body>", probe + "</body>"), encoding="utf-8"
    )
    proc = _run_chromium(["--dump-dom", probed.as_uri()], tmp_path)
    dom = parse_probe(proc.stdout.decode(errors="replace"))
    assert dom["outs"] > 0
    assert dom["scroll"] <= dom["client"] and dom["outs"] <= dom["client"], dom


def parse_probe(dom: str) -> dict:
    class Probe(HTMLParser):
        value: dict | None = None

        def handle_starttag(self, tag, attrs):
            if tag == "body" and dict(attrs).get("data-probe"):
                self.value = json.loads(dict(attrs)["data-probe"])

    p = Probe()
    p.feed(dom)
    assert p.value is not None, dom[-2000:]
    return p.value


def test_transparent_output_preview_shows_the_cut_out(tmp_path):
    """A transparent PNG keeps the old background's colour under alpha 0; the preview must not show it."""
    import base64
    import io

    import fsspec
    import numpy as np
    from PIL import Image

    from idphoto_ray.review import _data_uri

    rgba = np.zeros((200, 150, 4), np.uint8)
    rgba[..., 0] = 255  # red under the transparent part
    rgba[50:150, 40:110] = (30, 60, 90, 255)  # the subject
    path = tmp_path / "out.png"
    Image.fromarray(rgba, "RGBA").save(path)
    uri = _data_uri(fsspec.filesystem("file"), str(path))
    preview = np.asarray(
        Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    ).astype(int)
    assert (preview[2, 2] > 240).all()  # white, not red
    h, w = preview.shape[:2]
    assert abs(preview[h // 2, w // 2] - np.array([30, 60, 90])).max() < 12
