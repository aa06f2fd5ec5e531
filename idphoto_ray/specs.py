"""ID-photo specs: output size, DPI and head-geometry rules, built-ins plus user YAML.

Geometry rules are in millimetres as the standards state them; `*_px` helpers convert at the spec's DPI.
Where no official head rule exists (Chinese 1寸/2寸 family) the documented convention is used:
chin–crown 60–75 % of the height, crown 8–12 % of the height below the top.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MM_PER_INCH = 25.4


class PhotoSpec(BaseModel):
    """One output document format. Pixel size defaults to round(mm / 25.4 × dpi)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Identifier used in configs and output folders, e.g. cn-1inch.")
    title: str = Field("", description="Human name, e.g. 1寸.")
    width_mm: float = Field(gt=0, description="Print width in mm.")
    height_mm: float = Field(gt=0, description="Print height in mm.")
    dpi: int = Field(300, gt=0, description="Resolution written into the file and used for mm→px.")
    width_px: int | None = Field(None, gt=0, description="Explicit pixel width when the standard gives one.")
    height_px: int | None = Field(
        None, gt=0, description="Explicit pixel height when the standard gives one."
    )
    head_min_mm: float = Field(gt=0, description="Minimum chin-to-crown height.")
    head_max_mm: float = Field(gt=0, description="Maximum chin-to-crown height.")
    crown_top_min_mm: float | None = Field(
        None, ge=0, description="Minimum gap from the top edge to the crown."
    )
    crown_top_max_mm: float | None = Field(
        None, ge=0, description="Maximum gap from the top edge to the crown."
    )
    eye_bottom_min_mm: float | None = Field(
        None, ge=0, description="Minimum eye-line height above the bottom edge."
    )
    eye_bottom_max_mm: float | None = Field(
        None, ge=0, description="Maximum eye-line height above the bottom edge."
    )
    face_width_min_mm: float | None = Field(None, gt=0, description="Minimum face width.")
    face_width_max_mm: float | None = Field(None, gt=0, description="Maximum face width.")
    neutral_expression: bool = Field(
        False, description="Passport/visa rule: eyes open and mouth closed; outputs are flagged otherwise."
    )
    background: str = Field("white", description="Background the document requires or conventionally uses.")
    source: str = Field("", description="Where the numbers come from.")

    @model_validator(mode="after")
    def _check(self) -> PhotoSpec:
        if self.head_min_mm > self.head_max_mm:
            raise ValueError(f"{self.name}: head_min_mm > head_max_mm")
        if self.head_max_mm > self.height_mm:
            raise ValueError(f"{self.name}: head_max_mm exceeds the photo height")
        return self

    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        w = self.width_px or round(self.width_mm / MM_PER_INCH * self.dpi)
        h = self.height_px or round(self.height_mm / MM_PER_INCH * self.dpi)
        return int(w), int(h)

    def mm_to_px(self, mm: float) -> float:
        """mm → px along the height (explicit pixel sizes define the scale)."""
        return mm * self.size_px[1] / self.height_mm

    def head_target_px(self) -> float:
        """Chin–crown height to aim for: the middle of the allowed range, in output px."""
        return self.mm_to_px((self.head_min_mm + self.head_max_mm) / 2.0)

    def crown_target_px(self) -> float | None:
        """Gap from the top edge to the crown to aim for (middle of the range); None unless both bounds
        exist."""
        return _mid_px(self, self.crown_top_min_mm, self.crown_top_max_mm)

    def eye_from_bottom_target_px(self) -> float | None:
        """Eye-line height above the bottom edge to aim for; None unless both bounds exist.

        A one-sided rule (cn-id-card: eyes at least 15 mm up) is a check, not a placement target.
        """
        return _mid_px(self, self.eye_bottom_min_mm, self.eye_bottom_max_mm)


def _mid_px(spec: PhotoSpec, lo: float | None, hi: float | None) -> float | None:
    return None if lo is None or hi is None else spec.mm_to_px((lo + hi) / 2.0)


def _cn_convention(name: str, title: str, width_mm: float, height_mm: float, source: str) -> PhotoSpec:
    """Chinese 1寸/2寸 sizes have no official head rule; use chin–crown 60–75 % and crown 8–12 % of
    the height.

    The crown band follows HivisionIDPhotos' top_distance 0.10–0.12 widened to 0.08; the head band brackets
    its default result and GA 461's "head about 2/3 of the photo".
    """
    return PhotoSpec(
        name=name,
        title=title,
        width_mm=width_mm,
        height_mm=height_mm,
        head_min_mm=round(0.60 * height_mm, 2),
        head_max_mm=round(0.75 * height_mm, 2),
        crown_top_min_mm=round(0.08 * height_mm, 2),
        crown_top_max_mm=round(0.12 * height_mm, 2),
        background="white",
        source=f"{source}; head/crown: convention (60–75 % / 8–12 % of height), no official rule",
    )


_CN_SIZES = "size: HivisionIDPhotos size_list_CN.csv, yamab2b.com/content/115048.html"

BUILTIN_SPECS: dict[str, PhotoSpec] = {
    s.name: s
    for s in (
        # 1寸 25×35 mm = 295×413 px @300 dpi, the most common Chinese ID size.
        _cn_convention("cn-1inch", "1寸", 25, 35, _CN_SIZES),
        # 小1寸 22×32 mm = 260×378 px (driving licence).
        _cn_convention("cn-1inch-small", "小1寸", 22, 32, _CN_SIZES),
        # 大1寸 33×48 mm = 390×567 px (same paper size as the passport photo).
        _cn_convention("cn-1inch-large", "大1寸", 33, 48, _CN_SIZES),
        # 2寸 35×49 mm = 413×579 px. HivisionIDPhotos uses 35×53 here; users (its #199) and yamab2b say 35×49.
        _cn_convention("cn-2inch", "2寸", 35, 49, _CN_SIZES + ", HivisionIDPhotos issue #199"),
        # 小2寸 35×45 mm = 413×531 px.
        _cn_convention("cn-2inch-small", "小2寸", 35, 45, _CN_SIZES),
        # 大2寸 35×53 mm = 413×626 px.
        _cn_convention("cn-2inch-large", "大2寸", 35, 53, _CN_SIZES),
        # Exit-entry / MFA consular passport photo: 33×48 mm, head 28–33 mm, head width 15–22 mm, crown 3–5 mm
        # below the top, chin ≥ 7 mm above the bottom (implied by the others), white.
        PhotoSpec(
            name="cn-passport",
            title="中国护照 / 出入境",
            width_mm=33,
            height_mm=48,
            head_min_mm=28,
            head_max_mm=33,
            crown_top_min_mm=3,
            crown_top_max_mm=5,
            face_width_min_mm=15,
            face_width_max_mm=22,
            neutral_expression=True,
            background="white",
            source=(
                "MFA consular photo rules (2nd-hand: bbs.sgcn.org/thread-16277781; "
                "shidian.gov.cn/info/2676/1956243.htm)"
            ),
        ),
        # Resident ID card, GA 461-2004: digital file 358×441 px at 350 dpi (26×32 mm). Official rules in px
        # at 350 dpi: face width 207±14 px (15±1 mm), crown 7–21 px (0.5–1.5 mm) below the top, eye line ≥ 207
        # px (15 mm) above the bottom. "Head about 2/3 of the photo" has no tolerance, so the 60–75 %
        # convention (19.2–24 mm, middle 67.5 % ≈ 2/3) is used for the chin–crown range.
        PhotoSpec(
            name="cn-id-card",
            title="身份证",
            width_mm=26,
            height_mm=32,
            dpi=350,
            width_px=358,
            height_px=441,
            head_min_mm=19.2,
            head_max_mm=24.0,
            crown_top_min_mm=round(7 / 350 * MM_PER_INCH, 2),
            crown_top_max_mm=round(21 / 350 * MM_PER_INCH, 2),
            eye_bottom_min_mm=round(207 / 350 * MM_PER_INCH, 2),
            face_width_min_mm=14,
            face_width_max_mm=16,
            background="white",
            source=(
                "GA 461-2004 (2nd-hand: hybridbeedesign.com/news_mini.asp?id=2088, "
                "taximeter.com.cn/147572899908.html)"
            ),
        ),
        # US passport / visa: 2×2 in, 600×600 px; head 1–1⅜ in (25–35 mm); eyes 1⅛–1⅜ in (28–35 mm) above the
        # bottom; white or off-white.
        PhotoSpec(
            name="us-passport",
            title="US passport 2×2 in",
            width_mm=50.8,
            height_mm=50.8,
            width_px=600,
            height_px=600,
            head_min_mm=25,
            head_max_mm=35,
            eye_bottom_min_mm=28,
            eye_bottom_max_mm=35,
            neutral_expression=True,
            background="white",
            source="travel.state.gov passport photo requirements; passport-photo-specs-data us-passport",
        ),
        # Schengen / EU (ICAO 9303 profile): 35×45 mm, chin–crown 32–36 mm (70–80 %).
        PhotoSpec(
            name="schengen",
            title="Schengen visa / EU passport",
            width_mm=35,
            height_mm=45,
            head_min_mm=32,
            head_max_mm=36,
            neutral_expression=True,
            background="white",
            source="ICAO 9303; Bundesdruckerei Fotomustertafel; passport-photo-specs-data de-passport",
        ),
        # UK passport print: 35×45 mm, chin–crown 29–34 mm, cream or light grey background.
        PhotoSpec(
            name="uk",
            title="UK passport",
            width_mm=35,
            height_mm=45,
            head_min_mm=29,
            head_max_mm=34,
            neutral_expression=True,
            background="light-grey",
            source="gov.uk/photos-for-passports",
        ),
        # Japan passport: 35×45 mm, chin–crown 34±2 mm, top margin (crown to top edge) 4±2 mm.
        PhotoSpec(
            name="jp-passport",
            title="日本旅券",
            width_mm=35,
            height_mm=45,
            head_min_mm=32,
            head_max_mm=36,
            crown_top_min_mm=2,
            crown_top_max_mm=6,
            neutral_expression=True,
            background="white",
            source="MOFA Japan passport photo standard (pref.miyazaki.lg.jp; embassy pages)",
        ),
        # Canada passport: 50×70 mm, chin–crown 31–36 mm, white or light-coloured.
        PhotoSpec(
            name="ca-passport",
            title="Canada passport",
            width_mm=50,
            height_mm=70,
            head_min_mm=31,
            head_max_mm=36,
            neutral_expression=True,
            background="white",
            source="canada.ca passport photo specifications; passport-photo-specs-data ca-passport-print",
        ),
    )
}


def get_spec(name: str, extra: Mapping[str, PhotoSpec] | None = None) -> PhotoSpec:
    """Look a spec up by name; `extra` (user specs) wins over the built-ins. Unknown names list what
    exists."""
    catalogue = {**BUILTIN_SPECS, **(extra or {})}
    try:
        return catalogue[name]
    except KeyError:
        raise ValueError(
            f"unknown photo spec {name!r}; known specs: {', '.join(sorted(catalogue))}"
        ) from None


def load_spec_file(path: str | Path) -> dict[str, PhotoSpec]:
    """Read user specs from YAML: a list of spec mappings, or a mapping name → fields (the key is the name).

    Errors name the file and the spec so a typo in a scheduled job's catalogue is found without guessing.
    """
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read spec file: {exc}") from None
    specs: dict[str, PhotoSpec] = {}
    for label, fields in _spec_entries(path, loaded):
        try:
            spec = PhotoSpec.model_validate(fields)
        except ValidationError as exc:
            raise ValueError(f"{path}: invalid spec {label!r}:\n{exc}") from None
        if spec.name in specs:
            raise ValueError(f"{path}: spec {spec.name!r} is defined twice")
        specs[spec.name] = spec
    return specs


def _spec_entries(path: str | Path, loaded: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(loaded, Mapping):
        for key, fields in loaded.items():
            if not isinstance(fields, Mapping):
                raise ValueError(f"{path}: spec {key!r} must be a mapping of fields")
            if "name" in fields and fields["name"] != key:
                raise ValueError(f"{path}: spec {key!r} has a different name: {fields['name']!r}")
            yield str(key), {"name": key, **fields}
    elif isinstance(loaded, list):
        for i, fields in enumerate(loaded):
            label = fields.get("name", f"#{i + 1}") if isinstance(fields, Mapping) else f"#{i + 1}"
            if not isinstance(fields, Mapping):
                raise ValueError(f"{path}: spec {label!r} must be a mapping of fields")
            yield str(label), fields
    else:
        raise ValueError(
            f"{path}: a spec file must be a YAML list or mapping of specs, got {type(loaded).__name__}"
        )


def all_specs(spec_files: Iterable[str | Path] = ()) -> dict[str, PhotoSpec]:
    """Built-ins, then each file in order; a later definition of a name replaces an earlier one."""
    catalogue = dict(BUILTIN_SPECS)
    for path in spec_files:
        catalogue.update(load_spec_file(path))
    return catalogue


def format_specs_table(specs: Mapping[str, PhotoSpec]) -> str:
    """Plain-text table for `idphoto-ray specs`; pads by display width so CJK titles line up."""
    header = (
        "name",
        "title",
        "mm",
        "px",
        "dpi",
        "head mm",
        "crown↓top mm",
        "eyes↑bottom mm",
        "face w mm",
        "background",
    )
    rows = [header] + [_spec_row(s) for s in specs.values()]
    widths = [max(_display_width(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(_pad(cell, w) for cell, w in zip(r, widths, strict=False)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _spec_row(s: PhotoSpec) -> tuple[str, ...]:
    w, h = s.size_px
    return (
        s.name,
        s.title,
        f"{_num(s.width_mm)}×{_num(s.height_mm)}",
        f"{w}×{h}",
        str(s.dpi),
        _range(s.head_min_mm, s.head_max_mm),
        _range(s.crown_top_min_mm, s.crown_top_max_mm),
        _range(s.eye_bottom_min_mm, s.eye_bottom_max_mm),
        _range(s.face_width_min_mm, s.face_width_max_mm),
        s.background,
    )


def _range(lo: float | None, hi: float | None) -> str:
    if lo is None and hi is None:
        return "-"
    if hi is None:
        return f"≥{_num(lo)}"
    if lo is None:
        return f"≤{_num(hi)}"
    return f"{_num(lo)}–{_num(hi)}"


def _num(x: float | None) -> str:
    return f"{x:g}"


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _display_width(text))
