"""The console script: help, model and spec tables, clear errors naming the bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from idphoto_ray.cli import build_parser, config_from_args, main


def test_help_explains_every_run_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--input", "--output", "--config", "--spec", "--background", "--model", "--device", "--batch-size",
                 "--concurrency", "--resume", "--limit"):
        assert flag in out


def test_flags_override_the_yaml_config(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("input: [a]\noutput: out\nspecs: [cn-2inch]\nbatch_size: 4\n")
    args = build_parser().parse_args(["run", "--config", str(cfg), "--batch-size", "32", "--spec", "us-passport", "--max-kb", "80"])
    config = config_from_args(args)
    assert config.batch_size == 32 and config.specs == ["us-passport"] and config.processing.max_kb == 80
    assert config.input == ["a"]


def test_unknown_config_key_is_reported_with_the_key(tmp_path, capsys):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("input: [a]\nbackground: [blue]\n")
    assert main(["run", "--config", str(cfg)]) == 2
    assert "background" in capsys.readouterr().err


def test_run_without_input_says_what_is_missing(capsys):
    assert main(["run", "--output", "x"]) == 2
    assert "--input" in capsys.readouterr().err


def test_specs_table_lists_the_builtins(capsys):
    assert main(["specs"]) == 0
    out = capsys.readouterr().out
    for name in ("cn-1inch", "cn-2inch", "cn-id-card", "us-passport", "schengen", "jp-passport"):
        assert name in out


def test_models_list_marks_arch_models_and_shows_cache(mediapipe_models, capsys):
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    selfie = next(line for line in lines if line.startswith("mediapipe-selfie"))
    assert " yes " in selfie
    arch = next(line for line in lines if line.startswith("u2net-arch"))
    assert "not for real use" in arch


def test_console_script_is_installed():
    proc = subprocess.run([sys.executable, "-m", "idphoto_ray.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "demo" in proc.stdout
