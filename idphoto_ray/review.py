"""review.html: one self-contained page (images inlined, no network) on which a person triages a batch.

A row per needs_review/failed input (and a sample of ok ones) with its flags in words; a click opens large
previews (input with each spec's crop box, every output) and links to the files; approve / reject with a
note is kept in the browser (localStorage) and exported as a decisions file for `idphoto-ray review apply`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import posixpath
import re
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
from PIL import Image

from idphoto_ray.read import is_local
from idphoto_ray.types import Flag, Reason, Status
from idphoto_ray.write import join, write_bytes

#: Table thumbnails: a row of 9 outputs (3 specs × 3 backgrounds) still fits a 1280-px window.
THUMB_SIDE = 160
#: Large previews: a 1寸 photo (295 × 413) shows at about its own size, a 12 MP input is still 40 kB.
PREVIEW_SIDE = 400
REVIEW_DIR = "_review"
#: Crop box colours, one per spec (the input preview draws every spec's box).
BOX_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080")


def thumbnail_jpeg(image: np.ndarray, side: int = PREVIEW_SIDE) -> bytes:
    pil = Image.fromarray(image)
    pil.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pil.convert("RGB").save(buf, format="JPEG", quality=82)
    return buf.getvalue()


def write_thumbnail(fs: Any, root: str, name: str, image: np.ndarray) -> None:
    """Input preview written by the finishing stage (large-preview size) so the driver never handles full
    images."""
    write_bytes(fs, join(root, REVIEW_DIR, f"{name}.jpg"), thumbnail_jpeg(image))


def _open_rgb(fs: Any, path: str) -> Image.Image | None:
    """The file as RGB; a transparent output shows its cut-out on white, not the colour under alpha 0."""
    try:
        with fs.open(path, "rb") as handle:
            raw = handle.read()
        img = Image.open(io.BytesIO(raw))
        img.load()
    except (OSError, ValueError, SyntaxError):
        return None
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", img.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


def _jpeg_uri(img: Image.Image, side: int) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(thumbnail_jpeg(np.asarray(img), side)).decode()


def _data_uri(fs: Any, path: str, side: int = THUMB_SIDE) -> str | None:
    img = _open_rgb(fs, path)
    return _jpeg_uri(img, side) if img is not None else None


def sentence(code: str) -> str:
    """The flag's or reason's sentence for people ('' for a code this version does not know)."""
    for vocabulary in (Flag, Reason):
        if code in vocabulary._value2member_map_:
            return vocabulary(code).doc
    return ""


def _words(code: str) -> str:
    """The sentence as HTML: `name` in it becomes <code>name</code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(sentence(code)))


def crop_polygon(affine: list[float] | None, width: int, height: int) -> list[tuple[float, float]] | None:
    """The output frame's corners in input pixels: `affine` (input → output) inverted, applied to
    (0, 0), (w, 0), (w, h), (0, h). None when there is no affine or it is singular."""
    if not affine or len(affine) != 6:
        return None
    a, b, c, d, e, f = (float(v) for v in affine)
    det = a * e - b * d
    if not np.isfinite(det) or abs(det) < 1e-12:
        return None
    corners = []
    for x, y in ((0, 0), (width, 0), (width, height), (0, height)):
        u, v = x - c, y - f
        corners.append(((e * u - b * v) / det, (a * v - d * u) / det))
    return corners


def _href(path: str, root: str, local: bool) -> str:
    """Relative link from review.html (in `root`) to a local file; object-store URIs as they are."""
    if "://" in path or not local:
        return path
    return quote(posixpath.relpath(path, root.rstrip("/") or "/"))


def _input_figure(preview: str | None, row: dict[str, Any], outputs: list[dict[str, Any]]) -> str:
    """The input at preview size with one crop box per spec, drawn in input pixels (SVG viewBox)."""
    if not preview:
        return '<div class="noimg big">no preview</div>'
    w, h = row.get("width") or 0, row.get("height") or 0
    boxes, legend, per_spec = [], [], {}
    for out in outputs:
        per_spec.setdefault(out["spec"], out)
    for i, (spec, out) in enumerate(per_spec.items()):
        poly = crop_polygon(out.get("affine"), out.get("width") or 0, out.get("height") or 0) if w else None
        colour = BOX_COLOURS[i % len(BOX_COLOURS)]
        if poly is None:
            continue
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in poly)
        svg = (
            f'<polygon class="crop" data-spec="{html.escape(spec)}" points="{points}" fill="none" '
            f'stroke="{colour}" stroke-width="2" vector-effect="non-scaling-stroke"/>'
        )
        boxes.append((poly, svg))
        legend.append(f'<span class="swatch" style="border-color:{colour}"></span>{html.escape(spec)}')
    if not w or not h:
        return f'<img class="big" alt="input" src="{preview}">'
    xs = [0.0, float(w)] + [x for poly, _ in boxes for x, _ in poly]
    ys = [0.0, float(h)] + [y for poly, _ in boxes for _, y in poly]
    pad = 0.01 * max(w, h)
    x0, y0, x1, y1 = min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad
    scale = PREVIEW_SIDE / max(x1 - x0, y1 - y0)
    caption = (
        ("crop of each spec: " + " ".join(legend))
        if legend
        else ("no crop box: this manifest's outputs carry no affine" if outputs else "")
    )
    return (
        f'<svg class="input-crop" role="img" aria-label="input with crop boxes" '
        f'width="{(x1 - x0) * scale:.0f}" height="{(y1 - y0) * scale:.0f}" '
        f'viewBox="{x0:.1f} {y0:.1f} {x1 - x0:.1f} {y1 - y0:.1f}">'
        f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" fill="#ddd"/>'
        f'<image href="{preview}" x="0" y="0" width="{w}" height="{h}" preserveAspectRatio="none"/>'
        + "".join(svg for _, svg in boxes)
        + f'</svg><div class="legend">{caption}</div>'
    )


def _why(row: dict[str, Any]) -> str:
    items = []
    for code in ([row["reason"]] if row["reason"] else []) + list(row["flags"] or []):
        items.append(f"<li><code>{html.escape(code)}</code> {_words(code)}</li>")
    detail = f'<p class="msg">{html.escape(row["message"])}</p>' if row["message"] else ""
    return (f'<ul class="why">{"".join(items)}</ul>' if items else "") + detail


def _detail(
    row: dict[str, Any], fs: Any, root: str, input_preview: str | None, large: list[str | None]
) -> str:
    """The content of a row's detail panel, kept in a <template> so its images decode only when opened.

    `large` holds each output's preview URI (None: the file could not be read)."""
    local = is_local(fs)
    outputs = list(row["outputs"] or [])
    figures = []
    for out, uri in zip(outputs, large, strict=True):
        big = (
            (
                f'<img class="big" alt="{html.escape(out["spec"])} {html.escape(out["background"])}" '
                f'src="{uri}">'
            )
            if uri
            else '<div class="noimg big">missing</div>'
        )
        figures.append(
            f"<figure>{big}<figcaption>{html.escape(out['spec'])} · {html.escape(out['background'])} · "
            f'{out["width"]}×{out["height"]} · <a class="file" '
            f'href="{html.escape(_href(out["path"], root, local))}"'
            f' target="_blank">open file</a></figcaption></figure>'
        )
    input_link = html.escape(_href(row["input_path"], root, local))
    return (
        f'<div class="why-box">{_why(row)}</div>'
        f'<div class="previews"><figure class="input">{_input_figure(input_preview, row, outputs)}'
        f"<figcaption>input · {row.get('width') or '?'}×{row.get('height') or '?'} · "
        f'<a class="file" href="{input_link}" target="_blank">open input</a></figcaption></figure>'
        + "".join(figures)
        + "</div>"
        '<div class="decide"><button type="button" data-decide="approved">Approve</button>'
        '<button type="button" data-decide="rejected">Reject</button>'
        '<button type="button" data-decide="">Undo</button>'
        '<input class="note" type="text" placeholder="note (optional, saved with the decision)" size="50">'
        "</div>"
    )


def _row_html(row: dict[str, Any], name: str, fs: Any, root: str) -> str:
    preview_img = _open_rgb(fs, join(root, REVIEW_DIR, f"{name}.jpg"))
    preview = _jpeg_uri(preview_img, PREVIEW_SIDE) if preview_img is not None else None
    thumb = _jpeg_uri(preview_img, THUMB_SIDE) if preview_img is not None else None
    small, large = [], []
    for o in row["outputs"] or []:  # each output decoded once, for both sizes
        img = _open_rgb(fs, o["path"])
        large.append(_jpeg_uri(img, PREVIEW_SIDE) if img is not None else None)
        if img is not None:
            small.append(
                f'<figure><img alt="{html.escape(o["spec"])} {html.escape(o["background"])}" '
                f'src="{_jpeg_uri(img, THUMB_SIDE)}"><figcaption>{html.escape(o["spec"])} · '
                f"{html.escape(o['background'])}</figcaption></figure>"
            )
    outs = "".join(small)
    codes = [row["reason"]] if row["reason"] else list(row["flags"] or [])
    key = ",".join(codes) or "ok"
    words = (
        "".join(
            f'<div class="code"><code>{html.escape(c)}</code> <span class="words">{_words(c)}</span></div>'
            for c in codes
        )
        or "ok"
    )
    detail = html.escape(row["message"] or "")
    inp = f'<img alt="input" src="{thumb}">' if thumb else '<div class="noimg">no preview</div>'
    status = html.escape(row["status"])
    attrs = " ".join(
        f'data-{k}="{html.escape(str(v or ""))}"'
        for k, v in (
            ("status", row["status"]),
            ("key", key),
            ("codes", " ".join(codes)),
            ("id", row["input_id"]),
            ("run", row["run_id"]),
            ("config", row["config_hash"]),
            ("sha", row["input_sha256"]),
        )
    )
    return (
        f'<tr class="row {status}" {attrs} tabindex="0">'
        f'<td class="status">{status}</td><td class="key">{words}</td>'
        f'<td class="path" title="{html.escape(row["input_path"])}">{html.escape(name)}'
        f'<div class="msg">{detail}'
        f'</div></td><td>{inp}</td><td class="outs">{outs}</td><td class="decision"></td></tr>\n'
        f'<tr class="detail" hidden><td colspan="6">'
        f"<template>{_detail(row, fs, root, preview, large)}</template></td></tr>"
    )


def write_review(
    rows: pa.Table, fs: Any, root: str, path: str, names: dict[str, str], ok_sample: int = 24
) -> None:
    """Every needs_review/failed input with its reasons in words, and a sample of ok ones."""
    records = rows.to_pylist()
    severity = {Status.FAILED.value: 0, Status.NEEDS_REVIEW.value: 1}
    problems = sorted(
        (r for r in records if r["status"] != Status.OK), key=lambda r: severity.get(r["status"], 2)
    )
    ok = [r for r in records if r["status"] == Status.OK][:ok_sample]
    shown = problems + ok
    # names: input_id → output stem (row identity, contracts §3); thumbnails are stored under the stem
    body = "\n".join(_row_html(r, names.get(r["input_id"], r["input_id"]), fs, root) for r in shown)
    counts = {s.value: sum(1 for r in records if r["status"] == s) for s in Status}
    code_counts: dict[str, int] = {}
    for r in shown:
        for code in [r["reason"]] if r["reason"] else list(r["flags"] or []):
            code_counts[code] = code_counts.get(code, 0) + 1
    code_options = "".join(
        f'<option value="{html.escape(c)}">{html.escape(c)} ({n})</option>'
        for c, n in sorted(code_counts.items())
    )
    status_options = "".join(
        f'<option value="{s.value}">{s.value} ({counts[s.value]})</option>' for s in Status
    )
    page = _PAGE.format(
        rows=body,
        side=PREVIEW_SIDE,
        counts=html.escape(json.dumps(counts)),
        n=len(records),
        output=html.escape(root),
        code_options=code_options,
        status_options=status_options,
    )
    write_bytes(fs, path, page.encode("utf-8"))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>idphoto-ray review</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
.bar {{ position: sticky; top: 0; background: #fff; padding: .5em 0; border-bottom: 1px solid #ccc; z-index: \
1; }}
.bar label {{ margin-right: 1em; }}
.bar button {{ margin-left: .5em; }}
table {{ border-collapse: collapse; width: 100%; }}
th {{ cursor: pointer; text-align: left; background: #eee; padding: .4em; }}
td {{ border-top: 1px solid #ddd; padding: .4em; vertical-align: top; }}
tr.row {{ cursor: pointer; scroll-margin-top: 3.5em; }}  /* clear of the sticky filter bar */
tr.row:hover, tr.row.open {{ background: #f6f8ff; }}
tr.failed td.status {{ color: #b00; font-weight: bold; }}
tr.needs_review td.status {{ color: #b60; font-weight: bold; }}
tr.ok td.status {{ color: #070; }}
tr.detail > td {{ background: #fafafa; border-top: none; }}
figure {{ display: inline-block; margin: 0 .4em .4em 0; text-align: center; vertical-align: top; }}
figure img {{ max-height: 160px; border: 1px solid #ccc; }}
figure img.big {{ max-height: {side}px; max-width: {side}px; }}
figcaption {{ font-size: 75%; color: #555; }}
.msg {{ font-size: 80%; color: #555; max-width: 28em; }}
.code {{ margin-bottom: .3em; }}
.words {{ font-size: 80%; color: #444; }}
td.key {{ max-width: 16em; }}
td.path {{ max-width: 20em; overflow-wrap: anywhere; }}
td.outs {{ min-width: 30em; }}
td.outs figure img {{ max-height: 120px; }}
td.decision {{ min-width: 6em; font-weight: bold; }}
tr.approved td.decision {{ color: #070; }}
tr.rejected td.decision {{ color: #b00; }}
td.decision .note {{ font-weight: normal; font-size: 80%; color: #555; }}
.why {{ margin: 0 0 .5em 0; padding-left: 1.2em; }}
.previews {{ display: flex; flex-wrap: wrap; align-items: flex-start; gap: .4em; }}
svg.input-crop {{ border: 1px solid #ccc; display: block; }}
.legend {{ font-size: 75%; color: #555; }}
.swatch {{ display: inline-block; width: .8em; height: .8em; border: 2px solid; margin: 0 .2em 0 .6em; }}
.decide {{ margin-top: .6em; }}
.decide button {{ font-size: 110%; margin-right: .4em; }}
.noimg {{ width: 120px; height: 120px; background: #f4f4f4; color: #999; display: flex; align-items: center; \
justify-content: center; }}
.noimg.big {{ width: 300px; height: 300px; }}
</style></head><body data-output="{output}">
<h1>idphoto-ray review</h1>
<p id="counts" data-counts="{counts}">{n} photos (latest result of each input). Problems first; click a row \
for
large previews and to approve or reject it; click a column header to sort. Decisions stay in this browser \
until
you export them and run <code>idphoto-ray review apply DECISIONS --output OUTPUT</code>.</p>
<div class="bar">
<label>status <select id="filter-status"><option value="">all</option>{status_options}</select></label>
<label>flag / reason <select id="filter-code"><option value="">all</option>{code_options}</select></label>
<label>decision <select id="filter-decision"><option value="">all</option><option value="none">\
undecided</option>
<option value="approved">approved</option><option value="rejected">rejected</option></select></label>
<span id="shown"></span>
<button type="button" id="export">Export decisions</button> <span id="decided"></span>
</div>
<table id="review"><thead><tr><th data-col="0">status</th><th data-col="1">reason / flags</th><th \
data-col="2">input</th><th>preview</th><th>outputs</th><th data-col="5">decision</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<script>
(function () {{
  var KEY = 'idphoto-ray-review:' + document.body.dataset.output;
  var body = document.querySelector('#review tbody');
  function rows() {{ return Array.prototype.slice.call(body.querySelectorAll('tr.row')); }}
  function load() {{ try {{ return JSON.parse(localStorage.getItem(KEY) || '{{}}'); }} catch (e) {{ return \
{{}}; }} }}
  function save(d) {{ localStorage.setItem(KEY, JSON.stringify(d)); }}
  function idOf(tr) {{ return tr.dataset.run + '/' + tr.dataset.id; }}
  function detailOf(tr) {{ return tr.nextElementSibling; }}
  function render() {{
    var d = load(), st = document.getElementById('filter-status').value;
    var code = document.getElementById('filter-code').value, dec = \
document.getElementById('filter-decision').value;
    var shown = 0, decided = 0;
    rows().forEach(function (tr) {{
      var x = d[idOf(tr)], cell = tr.querySelector('td.decision');
      tr.classList.remove('approved', 'rejected');
      cell.textContent = '';
      if (x) {{
        decided++; tr.classList.add(x.decision); cell.textContent = x.decision;
        if (x.note) {{ var n = document.createElement('div'); n.className = 'note'; n.textContent = x.note; \
cell.appendChild(n); }}
      }}
      var ok = (!st || tr.dataset.status === st) && (!code || tr.dataset.codes.split(' ').indexOf(code) >= \
0) &&
               (!dec || (dec === 'none' ? !x : x && x.decision === dec));
      tr.hidden = !ok; if (!ok) detailOf(tr).hidden = true;
      if (ok) shown++;
    }});
    document.getElementById('shown').textContent = shown + ' of ' + rows().length + ' rows shown';
    document.getElementById('decided').textContent = decided + ' decided';
  }}
  function decide(tr, decision) {{
    var d = load(), note = detailOf(tr).querySelector('input.note').value;
    if (decision) {{
      d[idOf(tr)] = {{input_id: tr.dataset.id, run_id: tr.dataset.run, config_hash: tr.dataset.config,
        input_sha256: tr.dataset.sha, decision: decision, note: note, decided_at: new Date().toISOString()}};
    }} else {{ delete d[idOf(tr)]; }}
    save(d); render();
    if (decision) {{  // on to the next undecided row still shown
      if (!detailOf(tr).hidden) toggle(tr);
      var next = rows().filter(function (r) {{ return !r.hidden && !d[idOf(r)]; }})[0];
      if (next) {{ if (detailOf(next).hidden) toggle(next); next.scrollIntoView({{block: 'start'}}); }}
    }}
  }}
  function toggle(tr) {{
    var det = detailOf(tr), td = det.firstElementChild, tpl = td.querySelector('template');
    if (tpl) {{
      td.appendChild(tpl.content.cloneNode(true)); tpl.remove();
      var x = load()[idOf(tr)]; if (x) td.querySelector('input.note').value = x.note || '';
      td.querySelectorAll('button[data-decide]').forEach(function (b) {{
        b.addEventListener('click', function () {{ decide(tr, b.dataset.decide); }});
      }});
    }}
    det.hidden = !det.hidden; tr.classList.toggle('open', !det.hidden);
  }}
  rows().forEach(function (tr) {{
    tr.addEventListener('click', function () {{ toggle(tr); }});
    tr.addEventListener('keydown', function (e) {{ if (e.key === 'Enter') toggle(tr); }});
  }});
  ['filter-status', 'filter-code', 'filter-decision'].forEach(function (id) {{
    document.getElementById(id).addEventListener('change', render);
  }});
  document.getElementById('export').addEventListener('click', function () {{
    var d = load(), on = {{}};
    rows().forEach(function (tr) {{ on[idOf(tr)] = true; }});
    var list = Object.keys(d).filter(function (k) {{ return on[k]; }}).map(function (k) {{ return d[k]; }});
    var file = {{format: 'idphoto-ray-review-decisions', version: 1, output: document.body.dataset.output,
                exported_at: new Date().toISOString(), decisions: list}};
    var a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([JSON.stringify(file, null, 2)], {{type: 'application/json'}}));
    a.download = 'review-decisions.json'; document.body.appendChild(a); a.click(); a.remove();
  }});
  document.querySelectorAll('th[data-col]').forEach(function (th) {{
    th.addEventListener('click', function () {{
      var col = +th.dataset.col, dir = th.dataset.dir === 'asc' ? -1 : 1;
      th.dataset.dir = dir === 1 ? 'asc' : 'desc';
      rows().sort(function (a, b) {{ return dir * \
a.cells[col].textContent.localeCompare(b.cells[col].textContent); }})
        .forEach(function (r) {{ var det = detailOf(r); body.appendChild(r); body.appendChild(det); }});
    }});
  }});
  render();
}})();
</script>
</body></html>
"""
