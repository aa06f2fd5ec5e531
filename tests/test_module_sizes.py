"""Module sizes stay within docs/architecture.md's table, so the "small modules" rule cannot rot.

A module of the package or of jobs/ over LIMIT lines must have a row in the table ("Module sizes") that says
why; a row's line count is kept honest (the module may not outgrow it by more than SLACK), and a row whose
module shrank under the limit, or no longer exists, must go.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The guide's "~350 lines", with the tilde's room.
LIMIT = 360
#: How far a listed module may grow past its row's figure before the row must be updated.
SLACK = 1.1
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*~?(\d+)\s*\|(.*)\|\s*$")


def size_table() -> dict[str, tuple[int, str]]:
    """{module path as written in the table: (its line figure, the reason)} from docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Module sizes", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = _ROW.match(line.strip())
        if match:
            rows[match[1]] = (int(match[2]), match[3].strip())
    return rows


def module_path(name: str) -> Path:
    """Table names are relative to idphoto_ray/, except the scripts under jobs/."""
    return ROOT / name if name.startswith("jobs/") else ROOT / "idphoto_ray" / name


def table_name(path: Path) -> str:
    rel = path.relative_to(ROOT).as_posix()
    return rel if rel.startswith("jobs/") else path.relative_to(ROOT / "idphoto_ray").as_posix()


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def modules() -> list[Path]:
    return sorted((ROOT / "idphoto_ray").rglob("*.py")) + sorted((ROOT / "jobs").glob("*.py"))


def test_the_table_is_found_and_every_row_says_why():
    table = size_table()
    assert len(table) >= 3, "docs/architecture.md has lost its 'Module sizes' table"
    for name, (_, why) in table.items():
        assert len(why.split()) >= 5, f"{name}: the row must say why the module is long"


def test_unlisted_modules_stay_under_the_limit():
    table = size_table()
    over = {
        table_name(p): line_count(p)
        for p in modules()
        if table_name(p) not in table and line_count(p) > LIMIT
    }
    assert not over, (
        f"modules over {LIMIT} lines: {over}; split them along a seam, or add a row with the reason to "
        "docs/architecture.md's 'Module sizes' table"
    )


def test_each_row_matches_its_module():
    for name, (figure, _) in size_table().items():
        path = module_path(name)
        assert path.is_file(), f"{name} is in the size table but does not exist: remove its row"
        lines = line_count(path)
        assert lines > LIMIT, f"{name} has {lines} lines, under {LIMIT}: remove its row from the table"
        assert lines <= figure * SLACK, f"{name} has {lines} lines, its row says ~{figure}: update the row"
