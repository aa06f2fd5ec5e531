"""ID-photo specs: output size, DPI and head-geometry rules, built-ins plus user YAML.

Geometry rules are in millimetres as the standards state them; `*_px` helpers convert at the spec's DPI.
Where no official head rule exists (Chinese 1寸/2寸 family) the documented convention is used:
chin–crown 60–75 % of the height, crown 8–12 % of the height below the top.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    height_px: int | None = Field(None, gt=0, description="Explicit pixel height when the standard gives one.")
    head_min_mm: float = Field(gt=0, description="Minimum chin-to-crown height.")
    head_max_mm: float = Field(gt=0, description="Maximum chin-to-crown height.")
    crown_top_min_mm: float | None = Field(None, ge=0, description="Minimum gap from the top edge to the crown.")
    crown_top_max_mm: float | None = Field(None, ge=0, description="Maximum gap from the top edge to the crown.")
    eye_bottom_min_mm: float | None = Field(None, ge=0, description="Minimum eye-line height above the bottom edge.")
    eye_bottom_max_mm: float | None = Field(None, ge=0, description="Maximum eye-line height above the bottom edge.")
    face_width_min_mm: float | None = Field(None, gt=0, description="Minimum face width.")
    face_width_max_mm: float | None = Field(None, gt=0, description="Maximum face width.")
    background: str = Field("white", description="Background the document requires or conventionally uses.")
    source: str = Field("", description="Where the numbers come from.")

    @model_validator(mode="after")
    def _check(self) -> "PhotoSpec":
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
