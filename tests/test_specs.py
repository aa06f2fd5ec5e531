import passport_photo_specs_data as ppsd
import pytest

from idphoto_ray.specs import (
    BUILTIN_SPECS,
    _display_width,
    all_specs,
    format_specs_table,
    get_spec,
    load_spec_file,
)

REQUIRED = {
    "cn-1inch": (25, 35, 295, 413),
    "cn-1inch-small": (22, 32, 260, 378),
    "cn-1inch-large": (33, 48, 390, 567),
    "cn-2inch": (35, 49, 413, 579),
    "cn-2inch-small": (35, 45, 413, 531),
    "cn-2inch-large": (35, 53, 413, 626),
    "cn-passport": (33, 48, 390, 567),
    "cn-id-card": (26, 32, 358, 441),
    "us-passport": (50.8, 50.8, 600, 600),
    "schengen": (35, 45, 413, 531),
    "uk": (35, 45, 413, 531),
    "jp-passport": (35, 45, 413, 531),
    "ca-passport": (50, 70, 591, 827),
}


@pytest.mark.parametrize("name, expected", REQUIRED.items())
def test_builtin_sizes(name, expected):
    spec = get_spec(name)
    assert (spec.width_mm, spec.height_mm, *spec.size_px) == expected
    assert spec.source and spec.name == name


def test_every_builtin_is_internally_consistent():
    for spec in BUILTIN_SPECS.values():
        w, h = spec.size_px
        top = spec.crown_top_max_mm or 0.0
        assert top + spec.head_max_mm < spec.height_mm, spec.name  # the head fits below the crown margin
        assert 0 < spec.head_target_px() < h
        assert spec.background == "white" or spec.name == "uk"


def test_cn_convention_head_and_crown():
    one = get_spec("cn-1inch")
    assert (one.head_min_mm, one.head_max_mm) == pytest.approx((0.60 * 35, 0.75 * 35))
    assert (one.crown_top_min_mm, one.crown_top_max_mm) == pytest.approx((0.08 * 35, 0.12 * 35))
    assert one.head_target_px() == pytest.approx(0.675 * 413)
    assert one.crown_target_px() == pytest.approx(0.10 * 413)
    assert one.eye_from_bottom_target_px() is None


def test_official_rules():
    cn = get_spec("cn-passport")
    assert (cn.head_min_mm, cn.head_max_mm, cn.crown_top_min_mm, cn.crown_top_max_mm) == (28, 33, 3, 5)
    assert (cn.face_width_min_mm, cn.face_width_max_mm) == (15, 22)
    idc = get_spec("cn-id-card")
    assert idc.dpi == 350 and idc.mm_to_px(15) == pytest.approx(207, abs=1)  # GA 461: face width 207±14 px
    assert idc.mm_to_px(idc.eye_bottom_min_mm) == pytest.approx(207, abs=1)
    assert idc.mm_to_px(idc.crown_top_min_mm) == pytest.approx(7, abs=0.5)
    assert idc.mm_to_px(idc.crown_top_max_mm) == pytest.approx(21, abs=0.5)
    assert idc.head_min_mm / 32 < 2 / 3 < idc.head_max_mm / 32
    assert idc.eye_from_bottom_target_px() is None  # one-sided rule: a check, not a target
    us = get_spec("us-passport")
    assert us.head_target_px() == pytest.approx(30 / 25.4 * 300, abs=0.5)
    assert us.eye_from_bottom_target_px() == pytest.approx(31.5 / 25.4 * 300, abs=0.5)
    assert us.crown_target_px() is None
    jp = get_spec("jp-passport")
    assert (jp.head_min_mm, jp.head_max_mm, jp.crown_top_min_mm, jp.crown_top_max_mm) == (32, 36, 2, 6)
    assert (get_spec("uk").head_min_mm, get_spec("uk").head_max_mm) == (29, 34)


def _mm_range(text: str) -> tuple[float, float]:
    lo, hi = text.split("-")
    return float(lo), float(hi)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        ("us-passport", "us-passport"),
        ("schengen", "de-passport"),
        ("ca-passport", "ca-passport-print"),
        ("cn-passport", "cn-visa"),
    ],
)
def test_cross_check_with_passport_photo_specs_data(ours, theirs):
    spec, ref = get_spec(ours), ppsd.get(theirs)
    assert ref is not None and ref["verification"] == "official_text_read"
    assert spec.width_mm == pytest.approx(float(ref["width_mm"]), abs=0.5)
    assert spec.height_mm == pytest.approx(float(ref["height_mm"]), abs=0.5)
    assert (spec.head_min_mm, spec.head_max_mm) == _mm_range(ref["head_height_mm"])


def test_cross_check_dataset_has_no_uk_or_jp_head_rule():
    """UK and Japan are not checkable against the dataset: it has no jp entry and no head rule for gb."""
    ids = {r["id"] for r in ppsd.records()}
    assert not any(i.startswith("jp-") for i in ids)
    assert ppsd.get("gb-passport-online")["head_height_mm"] is None


def test_unknown_spec_lists_names():
    with pytest.raises(ValueError, match="cn-1inch.*us-passport|us-passport.*cn-1inch") as info:
        get_spec("cn-3inch")
    assert "cn-3inch" in str(info.value)


def test_user_specs_yaml_mapping_and_list(tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "exam:\n  title: 考试\n  width_mm: 30\n  height_mm: 40\n  head_min_mm: 24\n  head_max_mm: 30\n"
        "cn-1inch:\n  width_mm: 25\n  height_mm: 35\n  head_min_mm: 22\n  head_max_mm: 24\n"
    )
    listed = tmp_path / "l.yaml"
    listed.write_text(
        "- name: xuexin\n  width_mm: 40.64\n  height_mm: 54.19\n  width_px: 480\n  height_px: 640\n"
        "  head_min_mm: 30\n  head_max_mm: 40\n"
    )
    user = load_spec_file(mapping)
    assert set(user) == {"exam", "cn-1inch"} and user["exam"].size_px == (354, 472)
    assert get_spec("cn-1inch", user).head_min_mm == 22  # user overrides built-in
    merged = all_specs([str(mapping), str(listed)])
    assert merged["xuexin"].size_px == (480, 640)
    assert merged["cn-1inch"].head_min_mm == 22 and merged["us-passport"] == BUILTIN_SPECS["us-passport"]
    assert BUILTIN_SPECS["cn-1inch"].head_min_mm == 21  # the built-in catalogue is not mutated


@pytest.mark.parametrize(
    "text, match",
    [
        ("- name: bad\n  width_mm: 30\n  height_mm: 40\n  head_min_mm: 30\n  head_max_mm: 20\n", "'bad'"),
        (
            "- name: typo\n  width_mm: 30\n  height_mm: 40\n  head_min_mm: 2\n  head_max_mm: 3\n  dpii: 3\n",
            "dpii",
        ),
        ("odd:\n  name: other\n  width_mm: 30\n", "'odd'"),
        ("just a string", "list or mapping"),
        ("- 12\n", "#1"),
        (
            "- {name: a, width_mm: 1, height_mm: 2, head_min_mm: 1, head_max_mm: 1}\n"
            "- {name: a, width_mm: 1, height_mm: 2, head_min_mm: 1, head_max_mm: 1}\n",
            "twice",
        ),
        ("a: [1, 2\n", "cannot read"),
    ],
)
def test_invalid_spec_file_names_file_and_spec(tmp_path, text, match):
    path = tmp_path / "specs.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        load_spec_file(path)
    assert str(path) in str(info.value)


def test_missing_spec_file(tmp_path):
    with pytest.raises(ValueError, match="nope.yaml"):
        all_specs([str(tmp_path / "nope.yaml")])


def test_specs_table_lists_every_spec_with_rules():
    table = format_specs_table(BUILTIN_SPECS)
    lines = table.splitlines()
    assert len(lines) == 2 + len(BUILTIN_SPECS)
    assert lines[0].split()[:5] == ["name", "title", "mm", "px", "dpi"]
    us = next(line for line in lines if line.startswith("us-passport"))
    assert "600×600" in us and "25–35" in us and "28–35" in us and "white" in us
    idc = next(line for line in lines if line.startswith("cn-id-card"))
    assert "358×441" in idc and "350" in idc and "≥15.02" in idc and "14–16" in idc
    one = next(line for line in lines if line.startswith("cn-1inch "))
    assert "1寸" in one and "295×413" in one and "2.8–4.2" in one
    # padding is by display width, so the px column starts at the same screen column despite CJK titles
    starts = set()
    for spec, line in zip(BUILTIN_SPECS.values(), lines[2:], strict=False):
        w, h = spec.size_px
        starts.add(_display_width(line[: line.index(f"  {w}×{h}")]))
    assert len(starts) == 1
