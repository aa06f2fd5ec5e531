"""review.html: one self-contained page (images inlined, no network) for a person checking a batch."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from idphoto_ray.write import join, write_bytes

THUMB_SIDE = 160
REVIEW_DIR = "_review"


def thumbnail_jpeg(image: np.ndarray, side: int = THUMB_SIDE) -> bytes:
    pil = Image.fromarray(image)
    pil.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pil.convert("RGB").save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def write_thumbnail(fs: Any, root: str, name: str, image: np.ndarray) -> None:
    """Small input preview written by the finishing stage so the driver never handles full images."""
    write_bytes(fs, join(root, REVIEW_DIR, f"{name}.jpg"), thumbnail_jpeg(image))


def _data_uri(fs: Any, path: str, side: int = THUMB_SIDE) -> str | None:
    try:
        with fs.open(path, "rb") as handle:
            raw = handle.read()
    except (FileNotFoundError, OSError):
        return None
    if not path.endswith(".jpg") or len(raw) > 40_000:
        with Image.open(io.BytesIO(raw)) as img:
            if img.mode in ("RGBA", "LA"):  # transparent outputs: show the cut-out, not the colour under alpha 0
                flat = Image.new("RGB", img.size, "white")
                flat.paste(img.convert("RGBA"), mask=img.getchannel("A"))
                img = flat
            raw = thumbnail_jpeg(np.asarray(img.convert("RGB")), side)
    return "data:image/jpeg;base64," + base64.b64encode(raw).decode()


def write_review(rows: pa.Table, fs: Any, root: str, path: str, names: dict[str, str], ok_sample: int = 24) -> None:
    """Every needs_review/failed input with its reasons, and a sample of ok ones, input beside outputs."""
    records = rows.to_pylist()
    severity = {"failed": 0, "needs_review": 1}
    problems = sorted((r for r in records if r["status"] != "ok"), key=lambda r: severity.get(r["status"], 2))
    ok = [r for r in records if r["status"] == "ok"][:ok_sample]
    cards = []
    for row in problems + ok:
        name = names.get(row["input_id"], row["input_id"])  # input_id → output stem (row identity)
        input_uri = _data_uri(fs, join(root, REVIEW_DIR, f"{name}.jpg"))
        outs = "".join(
            f'<figure><img alt="{html.escape(o["spec"])} {html.escape(o["background"])}" src="{uri}">'
            f"<figcaption>{html.escape(o['spec'])} · {html.escape(o['background'])}</figcaption></figure>"
            for o in (row["outputs"] or [])
            if (uri := _data_uri(fs, o["path"]))
        )
        key = row["reason"] or ",".join(row["flags"] or []) or "ok"
        shown_key = row["reason"] or ", ".join(row["flags"] or []) or "ok"
        detail = html.escape(row["message"] or "")
        inp = f'<img alt="input" src="{input_uri}">' if input_uri else '<div class="noimg">no preview</div>'
        cards.append(
            f'<tr class="{html.escape(row["status"])}" data-status="{html.escape(row["status"])}" data-key="{html.escape(key)}">'
            f'<td class="status">{html.escape(row["status"])}</td><td class="key">{html.escape(shown_key)}</td>'
            f'<td class="path" title="{html.escape(row["input_path"])}">{html.escape(name)}<div class="msg">{detail}</div></td>'
            f'<td><figure>{inp}<figcaption>input</figcaption></figure></td><td class="outs">{outs}</td></tr>'
        )
    counts = json.dumps({s: sum(1 for r in records if r["status"] == s) for s in ("ok", "needs_review", "failed")})
    page = _PAGE.format(rows="\n".join(cards), counts=html.escape(counts), n=len(records))
    write_bytes(fs, path, page.encode("utf-8"))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>idphoto-ray review</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th {{ cursor: pointer; text-align: left; background: #eee; padding: .4em; }}
td {{ border-top: 1px solid #ddd; padding: .4em; vertical-align: top; }}
tr.failed td.status {{ color: #b00; font-weight: bold; }}
tr.needs_review td.status {{ color: #b60; font-weight: bold; }}
tr.ok td.status {{ color: #070; }}
figure {{ display: inline-block; margin: 0 .4em .4em 0; text-align: center; }}
figure img {{ max-height: 160px; border: 1px solid #ccc; }}
figcaption {{ font-size: 75%; color: #555; }}
.msg {{ font-size: 80%; color: #555; max-width: 28em; }}
td.key {{ max-width: 14em; }}
td.path {{ max-width: 22em; overflow-wrap: anywhere; }}
td.outs {{ min-width: 30em; }}
td.outs figure img {{ max-height: 120px; }}
.noimg {{ width: 120px; height: 120px; background: #f4f4f4; color: #999; display: flex; align-items: center; justify-content: center; }}
</style></head><body>
<h1>idphoto-ray review</h1>
<p id="counts" data-counts="{counts}">{n} photos (latest result of each input). Problems first; click a column header to sort.</p>
<table id="review"><thead><tr><th data-col="0">status</th><th data-col="1">reason / flags</th><th data-col="2">input</th><th>preview</th><th>outputs</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<script>
document.querySelectorAll('th[data-col]').forEach(function (th) {{
  th.addEventListener('click', function () {{
    var col = +th.dataset.col, body = document.querySelector('#review tbody');
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
    rows.sort(function (a, b) {{ return dir * a.cells[col].textContent.localeCompare(b.cells[col].textContent); }});
    rows.forEach(function (r) {{ body.appendChild(r); }});
  }});
}});
</script>
</body></html>
"""
