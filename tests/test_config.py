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
