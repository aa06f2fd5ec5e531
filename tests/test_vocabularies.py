"""Reasons and flags are enums with a sentence each; the README's tables say the same."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from idphoto_ray.entries import ReadProblem
from idphoto_ray.types import Documented, Flag, OutputKind, Reason, Status, Step, TimingStage

README = Path(__file__).resolve().parents[1] / "README.md"


def _table_rows(heading_start: str) -> list[tuple[str, str]]:
    text = README.read_text()
    start = text.index(heading_start)
    rows = []
    for line in text[start:].splitlines()[1:]:
        m = re.match(r"^\| `([a-z_]+)` \| (.*) \|$", line)
        if m:
            rows.append((m[1], m[2]))
        elif rows and not line.startswith("|"):
            break
    return rows


@pytest.mark.parametrize(
    "enum, heading",
    [(Reason, "Failure reasons ("), (Flag, "Review flags ("), (ReadProblem, "Read problems (")],
)
def test_readme_table_matches_the_enum(enum, heading):
    expected = [(m.value, m.doc) for m in enum]
    assert _table_rows(heading) == expected, "regenerate the README table from idphoto_ray/types.py"


@pytest.mark.parametrize("enum", [Status, Reason, Flag, Step, TimingStage, ReadProblem, OutputKind])
def test_every_member_has_a_sentence(enum: type[Documented]):
    for member in enum:
        assert member.doc.endswith(".") and len(member.doc) > 10, member


def test_readme_timings_struct_lists_the_timing_stages():
    fields = ", ".join(stage.value for stage in TimingStage)
    assert f"struct<{fields}: float>" in README.read_text()


def test_members_are_their_strings():
    assert (
        Reason.READ_ERROR == "read_error"
        and str(Flag.BLURRY) == "blurry"
        and Flag("upscaled") is Flag.UPSCALED
    )
