"""Print sheets: exact counts and positions (computed by hand below), DPI in the file, pixels in place."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from idphoto_ray.encode import encode_image
from idphoto_ray.layout import (
    CUT_LINE_RGB,
    LayoutConfig,
    LayoutItem,
    Paper,
    make_sheets,
    parse_paper,
    plan_layouts,
    plan_sheet,
    render_sheet,
)
from idphoto_ray.specs import BUILTIN_SPECS

ONE = BUILTIN_SPECS["cn-1inch"]  # 25×35 mm = 295×413 px at 300 DPI
TWO = BUILTIN_SPECS["cn-2inch"]  # 35×49 mm = 413×579 px
SIX = parse_paper("6inch")  # 1200×1800 px at 300 DPI; margin 3 mm = 35 px, gap 2 mm = 24 px


def test_papers_and_custom_sizes():
    assert (SIX.width_mm, SIX.height_mm) == pytest.approx((101.6, 152.4))
    assert parse_paper("5inch").width_mm == pytest.approx(88.9)
    assert parse_paper("A4") == Paper("a4", 210.0, 297.0)
    assert parse_paper("89x127mm") == Paper("89x127mm", 89.0, 127.0)
    for bad in ("7inch", "0x100mm", "100x150", ""):
        with pytest.raises(ValueError, match="unknown paper"):
            parse_paper(bad)


def test_one_inch_fills_six_inch_paper_in_a_centred_grid():
    plan = plan_sheet(SIX, [(ONE, None)])
    assert (plan.width, plan.height, plan.dpi) == (1200, 1800, 300)
    # Inner area 1130×1730: upright (1130+24)//319 = 3 columns × (1730+24)//437 = 4 rows = 12;
    # turned 2 × 5 = 10, so upright wins.
    assert plan.counts() == {"cn-1inch": 12}
    assert not any(p.rotated for p in plan.placements)
    # Grid 3·295+2·24 = 933 wide, 4·413+3·24 = 1724 high, centred in the inner area.
    xs = sorted({p.x for p in plan.placements})
    ys = sorted({p.y for p in plan.placements})
    assert xs == [35 + 98, 35 + 98 + 319, 35 + 98 + 638]
    assert ys == [35 + 3, 35 + 3 + 437, 35 + 3 + 874, 35 + 3 + 1311]
    assert all((p.width, p.height) == (295, 413) for p in plan.placements)


def test_turns_photos_when_more_fit():
    schengen = BUILTIN_SPECS["schengen"]  # 35×45 mm = 413×531 px
    plan = plan_sheet(SIX, [(schengen, None)])
    # Upright: (1154)//437 = 2 × (1754)//555 = 3 = 6. Turned 531×413: 1154//555 = 2 × 1754//437 = 4 = 8.
    assert plan.counts() == {"schengen": 8}
    assert all(p.rotated and (p.width, p.height) == (531, 413) for p in plan.placements)


def test_mixed_sizes_four_one_inch_and_two_two_inch():
    plan = plan_sheet(SIX, [(ONE, 4), (TWO, 2)])
    assert plan.counts() == {"cn-1inch": 4, "cn-2inch": 2}
    ones = [p for p in plan.placements if p.spec == "cn-1inch"]
    twos = [p for p in plan.placements if p.spec == "cn-2inch"]
    # 1寸: 3 per row, two rows (413+24+413 = 850); then a gap and one row of 2寸 (579): 1453 high in all.
    assert sorted({p.y for p in ones}) == [35 + 138, 35 + 138 + 437]
    assert {p.y for p in twos} == {35 + 138 + 874}
    assert max(p.y + p.height for p in plan.placements) == 35 + 138 + 1453
    _assert_disjoint_and_inside(plan)


def test_request_that_cannot_fit_is_refused_with_the_most_that_would():
    with pytest.raises(ValueError, match=r"do not fit on 6inch.*12 × cn-1inch alone"):
        plan_sheet(SIX, [(ONE, 13)])


def test_photo_made_at_another_dpi_keeps_its_millimetres():
    card = BUILTIN_SPECS["cn-id-card"]  # 26×32 mm, made at 350 DPI (358×441 px)
    plan = plan_sheet(SIX, [(card, 1)])
    p = plan.placements[0]
    assert (p.width, p.height) == (307, 378)  # 26 and 32 mm at 300 DPI


def test_rendered_pixels_cut_lines_and_rotation():
    paper = Paper("60x60mm", 60, 60)  # 709×709 px
    spec = BUILTIN_SPECS["cn-1inch"]
    plan = plan_sheet(paper, [(spec, 2)], gap_mm=2, margin_mm=3)
    photo = np.zeros((413, 295, 3), np.uint8)
    photo[:, :, 0] = 200
    photo[0, 0] = (0, 255, 0)  # marks the top-left corner to follow the rotation
    sheet = render_sheet(plan, {"cn-1inch": photo})
    assert sheet.shape == (709, 709, 3)
    for p in plan.placements:
        region = sheet[p.y : p.y + p.height, p.x : p.x + p.width]
        assert (region[..., 0] == 200).sum() == p.width * p.height - 1
        # Cut guide: one pixel outside the photo on every side, never on it.
        assert tuple(sheet[p.y - 1, p.x + 10]) == CUT_LINE_RGB
        assert tuple(sheet[p.y + p.height, p.x + 10]) == CUT_LINE_RGB
        assert tuple(sheet[p.y + 10, p.x - 1]) == CUT_LINE_RGB
        assert tuple(sheet[p.y + 10, p.x + p.width]) == CUT_LINE_RGB
    # Two upright 1寸 need 614 px across, which fits the 639 px inner width: no rotation.
    assert not plan.placements[0].rotated
    # 45×30 mm paper, 1 mm margin: inner 507×330 px; upright 295×413 does not fit, turned 413×295 does.
    turned = plan_sheet(Paper("45x30mm", 45, 30), [(spec, 1)], gap_mm=2, margin_mm=1)
    assert turned.placements[0].rotated
    sheet = render_sheet(turned, {"cn-1inch": photo})
    p = turned.placements[0]
    # Turned clockwise: the photo's top-left corner lands at the sheet copy's top-right.
    assert tuple(sheet[p.y, p.x + p.width - 1]) == (0, 255, 0)
    assert sheet.shape[:2] == (354, 531)


def test_layout_config_and_job_checks():
    assert LayoutConfig().paper == "6inch"
    with pytest.raises(ValueError, match="only the last"):
        LayoutConfig(items=[LayoutItem(spec="cn-1inch"), LayoutItem(spec="cn-2inch", copies=2)])
    with pytest.raises(ValueError, match="unknown paper"):
        LayoutConfig(paper="7inch")
    plans = plan_layouts([LayoutConfig()], BUILTIN_SPECS, ["cn-1inch"], ["blue", "white"])
    assert plans[0][1] == "blue" and plans[0][2].counts() == {"cn-1inch": 12}
    with pytest.raises(ValueError, match="not among the job's specs"):
        plan_layouts(
            [LayoutConfig(items=[LayoutItem(spec="cn-2inch")])], BUILTIN_SPECS, ["cn-1inch"], ["blue"]
        )
    with pytest.raises(ValueError, match="not among the job's backgrounds"):
        plan_layouts([LayoutConfig(background="red")], BUILTIN_SPECS, ["cn-1inch"], ["blue"])
    with pytest.raises(ValueError, match="two layouts"):
        plan_layouts([LayoutConfig(), LayoutConfig()], BUILTIN_SPECS, ["cn-1inch"], ["blue"])


def test_make_sheets_writes_dpi_and_the_output_path():
    plans = plan_layouts(
        [LayoutConfig(items=[LayoutItem(spec="cn-1inch", copies=4), LayoutItem(spec="cn-2inch", copies=2)])],
        BUILTIN_SPECS,
        ["cn-1inch", "cn-2inch"],
        ["white"],
    )
    photos = {
        ("cn-1inch", "white"): encode_image(np.full((413, 295, 3), 90, np.uint8), "jpeg", 300).data,
        ("cn-2inch", "white"): encode_image(np.full((579, 413, 4), 90, np.uint8), "png", 300).data,
    }
    (sheet,) = make_sheets(plans, photos)
    assert (sheet.paper, sheet.specs, sheet.background, sheet.ext) == (
        "6inch",
        "cn-1inch+cn-2inch",
        "white",
        "jpg",
    )
    assert sheet.output_path("/out/", "alice") == "/out/layout/6inch/alice.jpg"
    with Image.open(io.BytesIO(sheet.encoded.data)) as image:
        assert image.format == "JPEG"
        assert image.size == (1200, 1800)
        assert image.info["dpi"] == pytest.approx((300, 300))


def _assert_disjoint_and_inside(plan):
    boxes = [(p.x, p.y, p.x + p.width, p.y + p.height) for p in plan.placements]
    for x0, y0, x1, y1 in boxes:
        assert x0 >= 35 and y0 >= 35 and x1 <= plan.width - 35 and y1 <= plan.height - 35
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[2] + 24 <= b[0] or b[2] + 24 <= a[0] or a[3] + 24 <= b[1] or b[3] + 24 <= a[1]


def test_job_config_layouts_checked_and_hashed_only_when_set():
    from idphoto_ray.config import JobConfig

    plain = JobConfig()
    sheets = JobConfig(layouts=[{"paper": "a4", "items": [{"spec": "cn-1inch", "copies": 8}]}])
    assert sheets.layouts[0].paper == "a4" and sheets.layouts[0].items[0].copies == 8
    assert sheets.config_hash() != plain.config_hash()
    assert JobConfig(layouts=[]).config_hash() == plain.config_hash()
    with pytest.raises(ValueError, match="not among specs"):
        JobConfig(layouts=[{"items": [{"spec": "cn-2inch"}]}])
    with pytest.raises(ValueError, match="not among backgrounds"):
        JobConfig(layouts=[{"background": "red"}])


def test_photo_path_writes_sheets_after_the_photos_and_lists_them(tmp_path, mediapipe_models):
    """The per-photo path the job and the service share: sheets rendered, written, one entry each."""
    import fsspec

    from idphoto_ray import manifest
    from idphoto_ray.config import ProcessingOptions
    from idphoto_ray.models.registry import build_segmenter, resolve_segmenter
    from idphoto_ray.photo_path import PhotoPath, quantize_masks, write_outputs
    from idphoto_ray.samples import write_samples

    write_samples(tmp_path / "samples")
    data = (tmp_path / "samples" / "portrait" / "upright.jpg").read_bytes()
    plans = plan_layouts([LayoutConfig(paper="5inch")], BUILTIN_SPECS, ["cn-1inch"], ["white"])
    path = PhotoPath.load([ONE], ["white"], ProcessingOptions(), plans=plans)
    info, weights = resolve_segmenter("mediapipe-selfie")
    segmenter = build_segmenter(info, weights.read_bytes(), device="cpu")
    prepared = path.prepare(data, segmenter.input_size)
    row = manifest.new_row("in/alice.jpg", "alice.jpg", len(data), "sha", "run", "hash")
    finished = path.finish_row(row, prepared, quantize_masks(segmenter([prepared.model_image]))[0], 1.0)
    written = write_outputs(fsspec.filesystem("file"), str(tmp_path / "out"), "alice", finished.files)
    manifest.set_outputs(row, written, finished.scale)
    row = manifest.finish_row(row)

    assert row["status"] in ("ok", "needs_review") and row["width"] == 1280
    photo, sheet = row["outputs"]
    expected_photo = str(tmp_path / "out" / "cn-1inch" / "white" / "alice.jpg")
    assert (photo["kind"], photo["paper"], photo["path"]) == ("photo", None, expected_photo)
    assert (sheet["kind"], sheet["paper"], sheet["spec"]) == ("layout", "5inch", "cn-1inch")
    assert sheet["affine"] is None
    assert len(photo["affine"]) == 6
    with Image.open(sheet["path"]) as image:  # 3.5×5 in at 300 DPI
        assert image.size == (1050, 1500) == (sheet["width"], sheet["height"])
        assert image.info["dpi"] == pytest.approx((300, 300))


@pytest.mark.slow
def test_batch_job_writes_a_sheet_per_input_listed_in_its_outputs(tmp_path, ray_local, mediapipe_models):
    """`layouts:` in a job: layout/{paper}/{name}.jpg at the sheet's DPI, listed in that input's row."""
    import pyarrow.parquet as pq

    from idphoto_ray.config import JobConfig
    from idphoto_ray.job.run import run_job
    from idphoto_ray.samples import write_samples

    write_samples(tmp_path / "samples")
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "alice.jpg").write_bytes((tmp_path / "samples" / "portrait" / "upright.jpg").read_bytes())
    (inputs / "coffee.jpg").write_bytes((tmp_path / "samples" / "bad" / "no_face_coffee.jpg").read_bytes())
    layout = {
        "paper": "6inch",
        "items": [{"spec": "cn-1inch", "copies": 4}, {"spec": "cn-2inch", "copies": 2}],
    }
    config = JobConfig(
        input=[str(inputs)],
        output=str(tmp_path / "out"),
        specs=["cn-1inch", "cn-2inch"],
        backgrounds=["blue", "white"],
        layouts=[layout],
        device="cpu",
        model="mediapipe-selfie",  # named: `auto` takes IS-Net where the home holds it, 10-20x slower here
    )
    run_job(config, progress=False)

    table = pq.read_table(tmp_path / "out" / "manifest")
    rows = {r["input_path"].rsplit("/", 1)[-1]: r for r in table.to_pylist()}
    sheet = tmp_path / "out" / "layout" / "6inch" / "alice.jpg"
    with Image.open(sheet) as image:
        assert image.size == (1200, 1800) and image.info["dpi"] == pytest.approx((300, 300))
    alice = rows["alice.jpg"]
    assert alice["status"] in ("ok", "needs_review"), alice["message"]
    photos = [o for o in alice["outputs"] if o["kind"] == "photo"]
    (entry,) = [o for o in alice["outputs"] if o["kind"] == "layout"]
    assert len(photos) == 4 and all(o["paper"] is None and len(o["affine"]) == 6 for o in photos)
    assert entry == {
        "kind": "layout",
        "spec": "cn-1inch+cn-2inch",
        "background": "blue",
        "path": str(sheet),
        "width": 1200,
        "height": 1800,
        "bytes": sheet.stat().st_size,
        "affine": None,
        "paper": "6inch",
    }
    assert rows["coffee.jpg"]["status"] == "failed" and rows["coffee.jpg"]["outputs"] == []
    assert not (tmp_path / "out" / "layout" / "6inch" / "coffee.jpg").exists()
