import re

import pytest

from idphoto_ray.backgrounds import NAMED_BACKGROUNDS, Background, parse_background


@pytest.mark.parametrize(
    "name, rgb",
    [
        ("white", (255, 255, 255)),
        ("blue", (0x43, 0x8E, 0xDB)),
        ("red", (255, 0, 0)),
        ("std-blue", (0, 0xBF, 0xF3)),
        ("dark-blue", (0x4B, 0x61, 0x90)),
        ("light-grey", (0xF2, 0xF0, 0xF0)),
    ],
)
def test_named(name, rgb):
    assert parse_background(name) == Background(name, rgb)
    assert parse_background(f"  {name.upper()} ") == Background(name, rgb)


def test_hex_is_named_by_lowercase_hex_and_round_trips():
    bg = parse_background("#438EDB")
    assert bg == Background("438edb", (67, 142, 219))
    assert re.fullmatch(r"[0-9a-f]{6}", bg.name)  # safe as a folder name
    assert parse_background(bg.name) == bg


def test_transparent():
    bg = parse_background("Transparent")
    assert bg.rgb is None and bg.name == "transparent"
    assert parse_background("white").rgb is not None


@pytest.mark.parametrize("value", ["", "#12345", "#1234567", "#GGGGGG", "navy", "rgb(1,2,3)", "../etc"])
def test_invalid_names_value_and_lists_choices(value):
    with pytest.raises(ValueError) as info:
        parse_background(value)
    text = str(info.value)
    assert repr(value) in text
    assert all(name in text for name in [*NAMED_BACKGROUNDS, "transparent", "#RRGGBB"])


def test_frozen():
    with pytest.raises(AttributeError):
        parse_background("white").name = "x"  # type: ignore[misc]
