"""The console script: help, model and spec tables, clear errors naming the bad input."""

from __future__ import annotations

import subprocess
import sys
import unicodedata

import pytest

from idphoto_ray import __version__
from idphoto_ray.cli import build_parser, config_from_args, main


def test_help_explains_every_run_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--input",
        "--output",
        "--config",
        "--spec",
        "--background",
        "--model",
        "--device",
        "--batch-size",
        "--concurrency",
        "--resume",
        "--limit",
        "--verbose",
    ):
        assert flag in out


def test_run_help_shows_defaults_background_names_and_examples(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = "".join(capsys.readouterr().out.split())  # argparse wraps at the terminal width, also after hyphens
    for default in ("idphoto-out", "cn-1inch", "blue", "auto", "off", "jpeg", "closed-form"):
        assert f"(default:{default})" in out
    assert "white,blue,red,std-blue,dark-blue,light-grey,transparent" in out
    examples = out.split("examples:", 1)[1]
    assert examples.count("idphoto-rayrun") == 3


def test_version_names_the_package_and_its_engines(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"idphoto-ray {__version__} (ray ") and "onnxruntime" in out


@pytest.mark.parametrize("argv", [[], ["models"]])
def test_bare_command_prints_help(argv, capsys):
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: idphoto-ray") and captured.err == ""


def test_flags_override_the_yaml_config(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("input: [a]\noutput: out\nspecs: [cn-2inch]\nbatch_size: 4\n")
    args = build_parser().parse_args(
        ["run", "--config", str(cfg), "--batch-size", "32", "--spec", "us-passport", "--max-kb", "80"]
    )
    config = config_from_args(args)
    assert config.batch_size == 32 and config.specs == ["us-passport"] and config.processing.max_kb == 80
    assert config.input == ["a"]


def test_person_gate_flag_turns_the_gate_off_and_it_is_on_by_default(tmp_path):
    base = ["run", "--input", "a", "--output", str(tmp_path)]
    assert config_from_args(build_parser().parse_args(base)).processing.person_gate
    off = config_from_args(build_parser().parse_args([*base, "--no-person-gate"]))
    assert off.processing.person_gate is False


def test_crown_colour_flag_turns_it_off_and_it_is_on_by_default(tmp_path):
    base = ["run", "--input", "a", "--output", str(tmp_path)]
    assert config_from_args(build_parser().parse_args(base)).processing.crown_colour
    off = config_from_args(build_parser().parse_args([*base, "--no-crown-colour"]))
    assert off.processing.crown_colour is False


def test_unknown_config_key_is_reported_with_the_key(tmp_path, capsys):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("input: [a]\nbackground: [blue]\n")
    assert main(["run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'background' (did you mean 'backgrounds'?)" in err and err.count("\n") == 1


def test_run_without_input_says_what_is_missing(capsys):
    assert main(["run", "--output", "x"]) == 2
    assert "--input" in capsys.readouterr().err


def test_specs_table_lists_the_builtins(capsys):
    assert main(["specs"]) == 0
    out = capsys.readouterr().out
    for name in ("cn-1inch", "cn-2inch", "cn-id-card", "us-passport", "schengen", "jp-passport"):
        assert name in out


def _columns(line: str) -> list[int]:
    """Display columns (a CJK character takes two cells) where each cell after a 2-space gap starts."""
    starts, col, gap = [], 0, 0
    for ch in line:
        if ch == " ":
            gap += 1
        else:
            if gap >= 2:
                starts.append(col)
            gap = 0
        col += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return starts


def test_specs_table_columns_line_up_with_cjk_titles(capsys):
    assert main(["specs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cjk_rows = [line for line in lines[2:] if any(unicodedata.east_asian_width(ch) == "W" for ch in line)]
    assert cjk_rows, "the built-in catalogue has Chinese titles"
    header_cols = _columns(lines[0])
    for line in lines[2:]:
        # the first three columns (name, title, mm) start at the header's columns on every row
        assert _columns(line)[:2] == header_cols[:2], line


def test_models_list_marks_arch_models_and_shows_cache(mediapipe_models, capsys):
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    selfie = next(line for line in lines if line.startswith("mediapipe-selfie"))
    assert " yes " in selfie
    arch = next(line for line in lines if line.startswith("u2net-arch"))
    assert "not for real use" in arch


def test_console_script_is_installed():
    proc = subprocess.run(
        [sys.executable, "-m", "idphoto_ray.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "demo" in proc.stdout


@pytest.mark.slow
def test_a_run_keeps_ray_off_the_terminal_and_its_logs_in_rays_folder(tmp_path):
    """No Ray INFO/WARNING line, no auth-token warning, no C++ core line on stderr; they stay in Ray's log
    folder."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from idphoto_ray.samples import sample_files

    photos = tmp_path / "in"
    (photos / "out" / "cn-1inch" / "white").mkdir(parents=True)
    upright = sample_files()["portrait/upright.jpg"]
    (photos / "a.jpg").write_bytes(upright)
    (photos / "out" / "cn-1inch" / "white" / "a.jpg").write_bytes(upright)  # an earlier run's output
    ray_tmp = Path(
        tempfile.mkdtemp(prefix="idq", dir="/tmp")
    )  # short: Ray's socket paths have a length limit
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_DATA_DISABLE_PROGRESS_BARS")}
    env |= {"RAY_TMPDIR": str(ray_tmp), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "idphoto_ray.cli",
                "run",
                "--input",
                "in",
                "--output",
                "in/out",
                "--spec",
                "cn-1inch",
                "--background",
                "white",
                "--concurrency",
                "1",
                "--model",
                "mediapipe-selfie",
            ],  # named: `auto` adds its own one-line hint about better models
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stderr.splitlines() == [
            "note: left 1 file(s) out of in: they lie in the output folder"
            " or a _review/ folder of an earlier run"
        ]
        assert "1 inputs listed" in proc.stdout and "review page:" in proc.stdout
        logs = next(ray_tmp.glob("ray/session_2*/logs"))
        assert "Execution plan" in (logs / "ray-data" / "ray-data.log").read_text()
        assert (logs / "idphoto-ray-driver.err").exists()
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_output_to_a_closed_pipe_ends_quietly():
    """`idphoto-ray specs | head -3`: no BrokenPipeError traceback, the exit status of a SIGPIPE'd tool."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "idphoto_ray.cli", "specs"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # the reader is gone before the table is written: the write fails with EPIPE
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""

    piped = subprocess.run(
        ["bash", "-c", f"'{sys.executable}' -m idphoto_ray.cli specs | head -1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert piped.stderr == "" and len(piped.stdout.splitlines()) == 1


def test_a_local_ray_that_cannot_start_is_one_line(tmp_path, monkeypatch, capsys, mediapipe_models):
    """Ray's own exception for a node that misses its startup deadline becomes one line saying what to do."""
    import ray

    from idphoto_ray.samples import sample_files

    def timed_out(*args, **kwargs):  # what ray/_private/node.py raises after 30 s without a raylet
        raise Exception(  # noqa: TRY002 - Ray's own type
            "The current node timed out during startup. This could happen because some of the raylet "
            "failed to startup or the GCS has become overloaded."
        )

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # the session's Ray may be up already
    monkeypatch.setattr(ray, "init", timed_out)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(sample_files()["portrait/upright.jpg"])
    code = main(
        [
            "run",
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "out"),
            "--model",
            "mediapipe-selfie",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(
        "error: could not start a local Ray node (The current node timed out during startup"
    )
    assert "RAY_ADDRESS" in err and "busy" in err
