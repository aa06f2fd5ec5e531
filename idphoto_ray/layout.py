"""Print sheets (排版照): copies of one person's ID photos laid out on photo paper, ready for a print shop.

A studio or a school prints 1寸/2寸 photos on 6-inch paper, not one by one. The arrangement depends only on
the paper, the specs and the counts, never on the photo, so it is planned once per job (`plan_sheet`, which
also refuses a request that cannot fit before any photo is processed) and then rendered for every person
(`render_sheet`). Sizes are kept in millimetres: a photo that says 25×35 mm prints at 25×35 mm on the sheet,
whatever DPI the photo file itself was made at, and the sheet's DPI is written into its file.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from idphoto_ray.encode import EncodedImage, encode_image
from idphoto_ray.specs import MM_PER_INCH, PhotoSpec

#: Named papers, portrait, in mm. "6inch" is the 4×6 in (102×152 mm) photo paper: 1200×1800 px at 300 DPI.
PAPERS: dict[str, tuple[float, float]] = {
    "6inch": (4 * MM_PER_INCH, 6 * MM_PER_INCH),
    "5inch": (3.5 * MM_PER_INCH, 5 * MM_PER_INCH),
    "a4": (210.0, 297.0),
}
_CUSTOM = re.compile(r"(\d+(?:\.\d+)?)x(\d+(?:\.\d+)?)mm")
#: Cut guides are light grey: visible to scissors, faint if the cut lands a hair outside them.
CUT_LINE_RGB = (170, 170, 170)


@dataclass(frozen=True)
class Paper:
    """A sheet size; `name` doubles as the output folder name (`layout/{name}/`)."""

    name: str
    width_mm: float
    height_mm: float


def parse_paper(value: str) -> Paper:
    """'6inch', '5inch', 'a4' or a custom 'WIDTHxHEIGHTmm' such as '89x127mm'; else ValueError."""
    key = value.strip().lower()
    if key in PAPERS:
        return Paper(key, *PAPERS[key])
    match = _CUSTOM.fullmatch(key)
    if match and float(match.group(1)) > 0 and float(match.group(2)) > 0:
        return Paper(key, float(match.group(1)), float(match.group(2)))
    raise ValueError(
        f"unknown paper {value!r}; use one of {', '.join(PAPERS)} or WIDTHxHEIGHTmm, e.g. 89x127mm"
    )


def mm_to_px(mm: float, dpi: int) -> int:
    return round(mm / MM_PER_INCH * dpi)


class LayoutItem(BaseModel):
    """How many copies of one spec go on the sheet; copies None fills the space that is left."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = Field(description="A spec the job makes, e.g. cn-1inch.")
    copies: int | None = Field(None, ge=1, description="Copies of this spec; empty: as many as fit.")


class LayoutConfig(BaseModel):
    """One print sheet per input photo: the paper, what goes on it, spacing and cut lines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    paper: str = Field("6inch", description="6inch (4×6 in), 5inch (3.5×5 in), a4, or WIDTHxHEIGHTmm.")
    items: list[LayoutItem] = Field(
        default_factory=list,
        description="Specs and copies in order; empty: the job's first spec, as many as fit.",
    )
    background: str | None = Field(
        None, description="Which of the job's backgrounds to print; default: the first."
    )
    dpi: int = Field(300, ge=72, le=1200, description="Sheet resolution, written into the file.")
    gap_mm: float = Field(2.0, ge=0, description="Space between photos, where the cut goes.")
    margin_mm: float = Field(
        3.0, ge=0, description="Blank border kept clear of photos (printers do not print edges)."
    )
    cut_lines: bool = Field(True, description="Draw a 1 px grey guide around each photo, outside the photo.")

    @field_validator("paper")
    @classmethod
    def _paper(cls, value: str) -> str:
        return parse_paper(value).name

    @model_validator(mode="after")
    def _fill_last(self) -> LayoutConfig:
        fills = [i for i, item in enumerate(self.items) if item.copies is None]
        if fills and fills != [len(self.items) - 1]:
            raise ValueError("only the last layout item may leave copies empty (fill the remaining space)")
        return self


@dataclass(frozen=True)
class Placement:
    """One copy on the sheet, in sheet pixels; rotated copies are turned 90° clockwise (w, h are on-sheet)."""

    spec: str
    x: int
    y: int
    width: int
    height: int
    rotated: bool


@dataclass(frozen=True)
class SheetPlan:
    """Where every copy goes; the same for every person of a job."""

    paper: str
    width: int
    height: int
    dpi: int
    placements: tuple[Placement, ...]
    cut_lines: bool = True

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.placements:
            out[p.spec] = out.get(p.spec, 0) + 1
        return out


@dataclass(frozen=True)
class _Kind:
    spec: str
    cell: tuple[int, int]  # unrotated (w, h) at the sheet's DPI
    copies: int | None


def photo_size_at(spec: PhotoSpec, dpi: int) -> tuple[int, int]:
    """The photo's print size in sheet pixels; a spec made at the sheet's DPI keeps its exact pixel size."""
    if spec.dpi == dpi:
        return spec.size_px
    return mm_to_px(spec.width_mm, dpi), mm_to_px(spec.height_mm, dpi)


def plan_sheet(
    paper: Paper,
    items: Sequence[tuple[PhotoSpec, int | None]],
    dpi: int = 300,
    gap_mm: float = 2.0,
    margin_mm: float = 3.0,
    cut_lines: bool = True,
) -> SheetPlan:
    """Shelf packing: each spec fills rows of its own, top to bottom, in the order given.

    Every combination of turning each spec 90° is tried (2^k, k is 1–3 in practice) and the one placing the
    most copies wins, the fewest turned specs on a tie: 35×45 mm photos on 6-inch paper (3 mm margin, 2 mm
    gaps) fit 6 upright and 8 turned. Raises ValueError when the requested copies cannot all fit, saying how
    many would.
    """
    if not items:
        raise ValueError("a layout needs at least one spec")
    width, height = mm_to_px(paper.width_mm, dpi), mm_to_px(paper.height_mm, dpi)
    gap, margin = mm_to_px(gap_mm, dpi), mm_to_px(margin_mm, dpi)
    kinds = [_Kind(spec.name, photo_size_at(spec, dpi), copies) for spec, copies in items]
    inner = (width - 2 * margin, height - 2 * margin)
    best: tuple[int, int, list[Placement]] | None = None
    for turns in itertools.product((False, True), repeat=len(kinds)):
        placed = _shelves(kinds, turns, inner, gap)
        if placed is None:
            continue
        score = (len(placed), -sum(turns))
        if best is None or score > best[:2]:
            best = (*score, placed)
    wanted = sum(k.copies or 0 for k in kinds)
    if best is None or not best[2] or len(best[2]) < wanted:
        most = _most_that_fit(kinds, inner, gap)
        raise ValueError(
            f"{' + '.join(_describe(k) for k in kinds)} do not fit on {paper.name} "
            f"({width}×{height} px at {dpi} DPI, margin {margin_mm} mm, gap {gap_mm} mm); at most: {most}"
        )
    placed = best[2]
    used_h = max(p.y + p.height for p in placed)
    used_w = max(p.x + p.width for p in placed)
    dx, dy = margin + (inner[0] - used_w) // 2, margin + (inner[1] - used_h) // 2
    centred = tuple(Placement(p.spec, p.x + dx, p.y + dy, p.width, p.height, p.rotated) for p in placed)
    return SheetPlan(paper.name, width, height, dpi, centred, cut_lines)


def _shelves(
    kinds: list[_Kind], turns: tuple[bool, ...], inner: tuple[int, int], gap: int
) -> list[Placement] | None:
    """Placements relative to the inner area's top-left, or None when a requested count does not fit."""
    placed: list[Placement] = []
    y = 0
    for kind, turned in zip(kinds, turns, strict=True):
        w, h = (kind.cell[1], kind.cell[0]) if turned else kind.cell
        per_row = (inner[0] + gap) // (w + gap) if w <= inner[0] else 0
        top = y + (gap if placed else 0)
        rows_left = (inner[1] - top + gap) // (h + gap) if h <= inner[1] - top else 0
        if kind.copies is None:
            count = per_row * rows_left
        else:
            count = kind.copies
            if per_row == 0 or math.ceil(count / per_row) > rows_left:
                return None
        for i in range(count):
            row, col = divmod(i, per_row)
            placed.append(Placement(kind.spec, col * (w + gap), top + row * (h + gap), w, h, turned))
        if count:
            y = top + math.ceil(count / per_row) * (h + gap) - gap
    return placed


def _describe(kind: _Kind) -> str:
    return f"{kind.copies or 'as many as fit'} × {kind.spec}"


def _most_that_fit(kinds: list[_Kind], inner: tuple[int, int], gap: int) -> str:
    """For the error message: how many of each spec alone would fit, upright or turned."""
    parts = []
    for kind in kinds:
        alone = [_Kind(kind.spec, kind.cell, None)]
        n = max(len(_shelves(alone, (turn,), inner, gap) or []) for turn in (False, True))
        parts.append(f"{n} × {kind.spec} alone")
    return ", ".join(parts)


def render_sheet(plan: SheetPlan, photos: Mapping[str, np.ndarray], paper_rgb=(255, 255, 255)) -> np.ndarray:
    """Paste each copy (resized to its print size when its DPI differs) on a blank sheet; RGB uint8.

    RGBA photos (transparent background) are flattened on the paper colour. Cut lines go in the gap just
    outside each photo and are drawn first, so no guide ever covers a photo pixel.
    """
    sheet = np.empty((plan.height, plan.width, 3), np.uint8)
    sheet[:] = paper_rgb
    if plan.cut_lines:
        for p in plan.placements:
            _outline(sheet, p.x - 1, p.y - 1, p.x + p.width, p.y + p.height)
    fitted: dict[tuple[str, bool], np.ndarray] = {}
    for p in plan.placements:
        key = (p.spec, p.rotated)
        if key not in fitted:
            if p.spec not in photos:
                raise ValueError(f"no {p.spec} photo to lay out")
            w, h = (p.height, p.width) if p.rotated else (p.width, p.height)
            upright = _fit(photos[p.spec], w, h, paper_rgb)
            fitted[key] = np.ascontiguousarray(np.rot90(upright, k=-1)) if p.rotated else upright
        sheet[p.y : p.y + p.height, p.x : p.x + p.width] = fitted[key]
    return sheet


def _fit(photo: np.ndarray, w: int, h: int, paper_rgb: tuple[int, int, int]) -> np.ndarray:
    image = Image.fromarray(photo)
    if image.mode == "RGBA":
        flat = Image.new("RGB", image.size, paper_rgb)
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    image = image.convert("RGB")
    if image.size != (w, h):
        image = image.resize((w, h), Image.Resampling.LANCZOS)
    return np.asarray(image)


def _outline(sheet: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """A 1 px rectangle with corners (x0, y0) and (x1, y1) inclusive, clipped to the sheet."""
    h, w = sheet.shape[:2]
    cx0, cx1, cy0, cy1 = max(x0, 0), min(x1, w - 1), max(y0, 0), min(y1, h - 1)
    if cx0 > cx1 or cy0 > cy1:
        return
    for y in (y0, y1):
        if 0 <= y < h:
            sheet[y, cx0 : cx1 + 1] = CUT_LINE_RGB
    for x in (x0, x1):
        if 0 <= x < w:
            sheet[cy0 : cy1 + 1, x] = CUT_LINE_RGB


def decode_photo(data: bytes) -> np.ndarray:
    """An encoded ID photo (our own JPEG/PNG output) back to pixels, alpha kept."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))


def plan_layouts(
    layouts: Sequence[LayoutConfig],
    catalogue: Mapping[str, PhotoSpec],
    job_specs: Sequence[str],
    job_backgrounds: Sequence[str],
) -> list[tuple[LayoutConfig, str, SheetPlan]]:
    """Check every layout against the job before any photo is processed; (config, background, plan) each.

    A layout can only print specs and a background the job makes; two sheets on the same paper would
    write to the same folder.
    """
    plans = []
    papers: set[str] = set()
    for layout in layouts:
        if layout.paper in papers:
            raise ValueError(f"two layouts on paper {layout.paper!r}: each paper gets one sheet per photo")
        papers.add(layout.paper)
        items = layout.items or [LayoutItem(spec=job_specs[0])]
        missing = [i.spec for i in items if i.spec not in job_specs]
        if missing:
            raise ValueError(
                f"layout {layout.paper}: spec(s) {', '.join(missing)} are not among the job's specs "
                f"({', '.join(job_specs)})"
            )
        background = layout.background or job_backgrounds[0]
        if background not in job_backgrounds:
            raise ValueError(
                f"layout {layout.paper}: background {background!r} is not among the job's "
                f"backgrounds ({', '.join(job_backgrounds)})"
            )
        plan = plan_sheet(
            parse_paper(layout.paper),
            [(catalogue[i.spec], i.copies) for i in items],
            layout.dpi,
            layout.gap_mm,
            layout.margin_mm,
            layout.cut_lines,
        )
        plans.append((layout, background, plan))
    return plans


@dataclass
class RenderedSheet:
    """One encoded print sheet, ready to write (batch job) or return (service)."""

    paper: str
    specs: str
    background: str
    encoded: EncodedImage

    @property
    def ext(self) -> str:
        return "jpg" if self.encoded.format == "jpeg" else "png"

    def output_path(self, root: str, name: str) -> str:
        """`{output}/layout/{paper}/{name}.{ext}`, as the contracts note fixes it."""
        return f"{root.rstrip('/')}/layout/{self.paper}/{name}.{self.ext}"


def make_sheets(
    plans: Sequence[tuple[LayoutConfig, str, SheetPlan]],
    photos: Mapping[tuple[str, str], bytes],
    jpeg_quality: int = 95,
) -> list[RenderedSheet]:
    """Every planned sheet for one person, from that person's encoded photos keyed by (spec, background).

    The finishing stage calls this after `process_photo`; a sheet is JPEG (prints need no alpha).
    """
    sheets = []
    decoded: dict[tuple[str, str], np.ndarray] = {}
    for _, background, plan in plans:
        pixels: dict[str, np.ndarray] = {}
        for spec in plan.counts():
            key = (spec, background)
            if key not in decoded:
                decoded[key] = decode_photo(photos[key])
            pixels[spec] = decoded[key]
        sheet = render_sheet(plan, pixels)
        encoded = encode_image(sheet, "jpeg", plan.dpi, jpeg_quality)
        sheets.append(RenderedSheet(plan.paper, "+".join(plan.counts()), background, encoded))
    return sheets
