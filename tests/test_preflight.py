"""Every top-level mistake is refused before Ray starts: exit 2, one line on stderr naming the value and the
fix.

Each mistake runs the real console entry point in a subprocess with its own empty RAY_TMPDIR, and the test
checks that no Ray session folder appeared there: the test process's own Ray would prove nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from idphoto_ray.read import list_inputs

REPO = Path(__file__).resolve().parents[1]


def _refused(tmp_path: Path, *argv: str, code: str | None = None) -> str:
    """Run `idphoto-ray ARGV` (or python CODE) in tmp_path; return its one stderr line after the common
    checks."""
    ray_tmp = tmp_path / "ray-tmp"
    ray_tmp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {
        "RAY_TMPDIR": str(ray_tmp),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "idphoto_ray.cli", *argv]
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(ray_tmp.iterdir()) == [], "a Ray session was started"
    return lines[0]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not decoded before Ray starts")
    return folder


def test_unknown_background_lists_the_names_and_suggests_one(tmp_path, photos):
    line = _refused(tmp_path, "run", "--input", "photos", "--background", "bleu")
    assert line.startswith("error: unknown background 'bleu'")
    assert "did you mean 'blue'" in line
    for name in ("white", "blue", "red", "transparent", "#RRGGBB"):
        assert name in line


@pytest.mark.parametrize("value", ["#12345", "#12345g", "#1234567"])
def test_malformed_hex_colour_says_how_it_should_look(tmp_path, photos, value):
    line = _refused(tmp_path, "run", "--input", "photos", "--background", value)
    assert f"background '{value}' is not a #RRGGBB colour" in line and "blue" in line


def test_output_that_is_a_file(tmp_path, photos):
    (tmp_path / "out.txt").write_text("x")
    line = _refused(tmp_path, "run", "--input", "photos", "--output", "out.txt")
    assert line == "error: output 'out.txt' is a file; give a folder (it is created if missing)"


def test_output_under_a_file(tmp_path, photos):
    (tmp_path / "out.txt").write_text("x")
    line = _refused(tmp_path, "run", "--input", "photos", "--output", "out.txt/results")
    assert "output 'out.txt/results' is under" in line and "which is a file" in line


def test_output_that_cannot_be_created(tmp_path, photos):
    if os.geteuid() == 0:
        target = "/sys/idphoto-ray-test-out"  # root writes through file modes; sysfs refuses new folders
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "out")
    line = _refused(tmp_path, "run", "--input", "photos", "--output", target)
    assert f"output '{target}' cannot be created" in line and "give a folder you can write to" in line
    assert not Path(target).exists()


def test_output_that_is_the_input_folder(tmp_path, photos):
    line = _refused(tmp_path, "run", "--input", "photos", "--output", "photos")
    assert "is the input folder" in line


def test_yaml_syntax_error_names_file_and_line(tmp_path, photos):
    (tmp_path / "job.yaml").write_text("input: [photos]\nspecs: [cn-1inch\nbackgrounds: [blue]\n")
    line = _refused(tmp_path, "run", "--config", "job.yaml")
    assert line.startswith("error: job.yaml:3:")
    assert "YAML syntax error" in line and "<unicode string>" not in line


def test_unknown_config_key_suggests_the_right_one(tmp_path, photos):
    (tmp_path / "job.yaml").write_text(
        "input: [photos]\nbackground: [white]\nprocessing: {jpg_quality: 90}\n"
    )
    line = _refused(tmp_path, "run", "--config", "job.yaml")
    assert "unknown key 'background' (did you mean 'backgrounds'?)" in line
    assert "unknown key 'processing.jpg_quality' (did you mean 'jpeg_quality'?)" in line


def test_missing_config_file(tmp_path):
    assert _refused(tmp_path, "run", "--config", "nope.yaml") == "error: config file nope.yaml does not exist"


def test_unknown_spec_lists_the_known_ones(tmp_path, photos):
    line = _refused(tmp_path, "run", "--input", "photos", "--spec", "cn-1inh")
    assert "unknown spec 'cn-1inh' (did you mean 'cn-1inch'?)" in line and "us-passport" in line


def test_missing_input_root(tmp_path):
    line = _refused(tmp_path, "run", "--input", "no-such-folder")
    assert "input 'no-such-folder' does not exist" in line


def test_missing_input_list(tmp_path):
    line = _refused(tmp_path, "run", "--input-list", "staff.csv")
    assert "input list 'staff.csv' does not exist" in line and "'path' column" in line


def test_no_input_at_all(tmp_path):
    assert "--input" in _refused(tmp_path, "run", "--output", "out")


def test_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    line = _refused(tmp_path, "run", "--input", "empty", "--output", "out")
    assert line.startswith("error: no image files found")


def test_invalid_flag_value(tmp_path, photos):
    line = _refused(tmp_path, "run", "--input", "photos", "--batch-size", "0")
    assert "batch_size" in line and "greater than or equal to 1" in line


_NO_ORT = "import sys; sys.modules['onnxruntime'] = None; "


@pytest.mark.parametrize(
    "code",
    [
        _NO_ORT + "from idphoto_ray.cli import main; sys.exit(main(['run', '--input', 'photos']))",
        _NO_ORT + "import runpy; sys.argv = ['make_id_photos.py', '--input', 'photos']; "
        f"runpy.run_path({str(REPO / 'jobs' / 'make_id_photos.py')!r}, run_name='__main__')",
        _NO_ORT + "import runpy; sys.argv = ['gpu_smoke.py']; "
        f"runpy.run_path({str(REPO / 'jobs' / 'gpu_smoke.py')!r}, "
        "run_name='__main__')",
        _NO_ORT + f"import runpy; sys.argv = ['side_by_side.py']; "
        f"runpy.run_path({str(REPO / 'jobs' / 'side_by_side.py')!r}, run_name='__main__')",
        _NO_ORT + "import runpy; sys.argv = ['benchmark.py']; "
        f"runpy.run_path({str(REPO / 'jobs' / 'benchmark.py')!r}, "
        "run_name='__main__')",
    ],
    ids=["cli", "make_id_photos", "gpu_smoke", "side_by_side", "benchmark"],
)
def test_every_entry_point_names_the_extra_when_onnxruntime_is_missing(tmp_path, photos, code):
    line = _refused(tmp_path, code=code)
    assert "ONNX Runtime is not installed" in line
    assert "pip install 'idphoto-ray[cpu]'" in line and "'idphoto-ray[gpu]'" in line


def test_a_single_string_is_a_one_element_list(tmp_path):
    from idphoto_ray.config import load_config

    (tmp_path / "job.yaml").write_text("input: photos/\nspecs: cn-2inch\nbackgrounds: white\n")
    config = load_config(tmp_path / "job.yaml")
    assert (config.input, config.specs, config.backgrounds) == (["photos/"], ["cn-2inch"], ["white"])


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def test_output_inside_the_input_is_left_out_of_the_listing(tmp_path, caplog):
    _touch(
        tmp_path, "a.jpg", "sub/b.png", "out/cn-1inch/blue/a.jpg", "out/_review/a.jpg", "old/_review/c.jpg"
    )
    with caplog.at_level("WARNING", logger="idphoto_ray.read"):
        _, items = list_inputs([str(tmp_path)], output=str(tmp_path / "out"))
    assert sorted(i.name for i in items) == ["a", "sub/b"]
    assert len(caplog.records) == 1 and "left 3 file(s) out" in caplog.records[0].getMessage()


def test_relative_output_inside_the_input_is_left_out(tmp_path, monkeypatch):
    _touch(tmp_path, "photos/a.jpg", "photos/results/cn-1inch/blue/a.jpg")
    monkeypatch.chdir(tmp_path)
    _, items = list_inputs(["photos/"], output="photos/results/")
    assert [i.name for i in items] == ["a"]


def test_output_beside_the_input_changes_nothing(tmp_path):
    _touch(tmp_path, "photos/a.jpg", "photos-out/a.jpg")
    _, items = list_inputs([str(tmp_path / "photos")], output=str(tmp_path / "photos-out"))
    assert [i.name for i in items] == ["a"]
