"""Background colours by name, `#RRGGBB`, or `transparent`.

No Chinese standard gives RGB values for blue or red; the named colours are the conventions most often
quoted (see docs notes). Names double as output folder names, so a custom colour is named by its
lowercase hex without the '#'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Named colours. "blue" is the common 蓝底 value; "std-blue" the often-quoted "标准蓝".
NAMED_BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (0xFF, 0xFF, 0xFF),
    "blue": (0x43, 0x8E, 0xDB),
    "red": (0xFF, 0x00, 0x00),
    "std-blue": (0x00, 0xBF, 0xF3),
    "dark-blue": (0x4B, 0x61, 0x90),
    "light-grey": (0xF2, 0xF0, 0xF0),
}
TRANSPARENT = "transparent"
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


@dataclass(frozen=True)
class Background:
    """A named fill colour; rgb None means keep alpha (PNG with transparency)."""

    name: str
    rgb: tuple[int, int, int] | None


def parse_background(value: str) -> Background:
    """'white', 'blue', …, 'transparent' or '#RRGGBB' (case-insensitive) → Background; else ValueError.

    The bare hex ('438edb') is accepted too, so a Background's own name parses back to it.
    """
    key = value.strip().lower()
    if key == TRANSPARENT:
        return Background(TRANSPARENT, None)
    if key in NAMED_BACKGROUNDS:
        return Background(key, NAMED_BACKGROUNDS[key])
    match = _HEX.fullmatch(key)
    if match:
        hex6 = match.group(1)
        return Background(hex6, (int(hex6[0:2], 16), int(hex6[2:4], 16), int(hex6[4:6], 16)))
    names = ", ".join([*NAMED_BACKGROUNDS, TRANSPARENT])
    raise ValueError(f"unknown background {value!r}; use one of {names} or a #RRGGBB colour")
