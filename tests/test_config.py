import pytest

from idphoto_ray.config import JobConfig, load_config


def test_unknown_key_is_an_error_naming_the_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("input: [a]\nbatchsize: 4\n")
    with pytest.raises(ValueError, match="batchsize"):
        load_config(cfg)


def test_flags_override_yaml_and_hash_tracks_pixels(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("input: [photos]\nspecs: [cn-1inch]\nbatch_size: 4\nprocessing: {jpeg_quality: 90}\n")
    a = load_config(cfg, batch_size=8, processing={"max_kb": 50})
    assert a.batch_size == 8 and a.processing.jpeg_quality == 90 and a.processing.max_kb == 50
    b = load_config(cfg, batch_size=32)
    assert a.config_hash() != b.config_hash()  # max_kb changes pixels
    c = load_config(cfg, batch_size=32, processing={"max_kb": 50})
    assert a.config_hash() == c.config_hash()  # batch size does not


def test_model_uri_requires_preprocess():
    with pytest.raises(ValueError, match="preprocess"):
        JobConfig(model_uri="s3://b/seg.onnx")


@pytest.mark.parametrize("name", ["sample.yaml", "campus-gpu.yaml", "scheduled-clean.yaml"])
def test_shipped_configs_validate(name):
    from pathlib import Path

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / name)
    assert config.specs and config.backgrounds
    if name == "scheduled-clean.yaml":
        assert config.resume and config.no_progress_timeout_s == -1
    if name == "campus-gpu.yaml":
        assert config.device == "cuda" and config.model_uri and config.preprocess.input_size == 320


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("input: [a]\nprocessing:\n  jpeg_quality: 90\n max_kb: 50\n")
    with pytest.raises(ValueError) as exc:
        load_config(cfg)
    message = str(exc.value)
    assert message.startswith(f"{cfg}:4:2: YAML syntax error:") and "\n" not in message


def test_validation_errors_come_back_as_one_line_with_a_suggestion(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("input: [a]\nbatchsize: 4\nprocessing: {max_kb: 0}\n")
    with pytest.raises(ValueError) as exc:
        load_config(cfg)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(f"{cfg}: invalid config: ")
    assert "unknown key 'batchsize' (did you mean 'batch_size'?)" in message
    assert "processing.max_kb: Input should be greater than 0 (got 0)" in message


def test_a_config_that_is_not_a_mapping(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("- photos/\n")
    with pytest.raises(ValueError, match="must be a YAML mapping"):
        load_config(cfg)


def test_one_string_where_a_list_is_expected_is_accepted():
    config = load_config(None, input="photos/", backgrounds="#438edb", spec_files="extra.yaml")
    assert (
        config.input == ["photos/"]
        and config.backgrounds == ["#438edb"]
        and config.spec_files == ["extra.yaml"]
    )
