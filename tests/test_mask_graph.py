"""A segmenter's graph cut to its mask output: same mask, fewer nodes, made once, the source's sha kept."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from idphoto_ray.config import Preprocess
from idphoto_ray.models import mask_graph as mg
from idphoto_ray.models.home import sha256_file
from idphoto_ray.models.segmenters import OnnxSegmenter
from idphoto_ray.models.sources import Uri

TINY = Preprocess(input_size=8, scale="unit", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), minmax=False)


def _two_output_model() -> bytes:
    """x → Conv → c → Sigmoid → y (the mask) and c → Conv → Relu → side; nodes listed out of order, as
    IS-Net's export lists them."""
    rng = np.random.default_rng(5)
    w = numpy_helper.from_array(rng.standard_normal((1, 3, 3, 3)).astype(np.float32), "w")
    v = numpy_helper.from_array(rng.standard_normal((1, 1, 3, 3)).astype(np.float32), "v")
    nodes = [
        helper.make_node("Sigmoid", ["c"], ["y"]),
        helper.make_node("Relu", ["s"], ["side"]),
        helper.make_node("Conv", ["c", "v"], ["s"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 8, 8]),
            helper.make_tensor_value_info("side", TensorProto.FLOAT, ["N", 1, 8, 8]),
        ],
        [w, v],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _run(model: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"x": x}), strict=True))


def test_cut_keeps_only_what_the_mask_needs_and_the_same_mask():
    model = _two_output_model()
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    cut = mg.cut_to_output(model, 0)
    graph = onnx.load_from_string(cut).graph
    assert [o.name for o in graph.output] == ["y"]
    assert sorted(n.op_type for n in graph.node) == ["Conv", "Sigmoid"]
    assert [w.name for w in graph.initializer] == ["w"]
    np.testing.assert_array_equal(_run(cut, x)["y"], _run(model, x)["y"])
    side = mg.cut_to_output(model, 1)
    assert [o.name for o in onnx.load_from_string(side).graph.output] == ["side"]
    np.testing.assert_array_equal(_run(side, x)["side"], _run(model, x)["side"])


def test_single_output_graph_is_left_as_it_is_and_remembered(tmp_path, monkeypatch):
    model = mg.cut_to_output(_two_output_model(), 0)
    assert mg.cut_to_output(model, 0) is None
    path = tmp_path / "m.onnx"
    path.write_bytes(model)
    assert mg.mask_graph(path, "a" * 64, 0, home=tmp_path) == model
    assert (tmp_path / mg.DERIVED / f"{'a' * 64}.whole").is_file()

    def parse_again(*_: object) -> None:
        raise AssertionError("the graph was parsed again")

    monkeypatch.setattr(mg, "cut_to_output", parse_again)
    assert mg.mask_graph(path, "a" * 64, 0, home=tmp_path) == model


def test_cut_graph_is_made_once_per_source_and_output(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    path.write_bytes(_two_output_model())
    sha = sha256_file(path)
    first = mg.mask_graph(path, sha, 0, home=tmp_path)
    assert first != path.read_bytes() and (tmp_path / mg.DERIVED / f"{sha}.out0.onnx").read_bytes() == first
    monkeypatch.setattr(mg, "cut_to_output", lambda *_: pytest.fail("cut twice"))
    assert mg.mask_graph(path, sha, 0, home=tmp_path) == first


def test_graph_that_cannot_be_cut_runs_whole_with_a_warning(tmp_path, caplog):
    path = tmp_path / "odd.onnx"
    path.write_bytes(b"not an onnx graph")
    with caplog.at_level(logging.WARNING, logger=mg.__name__):
        assert mg.mask_graph(path, "b" * 64, 0, home=tmp_path) == b"not an onnx graph"
    assert "odd.onnx" in caplog.text and "whole graph" in caplog.text
    assert not (tmp_path / mg.DERIVED).exists() or not any((tmp_path / mg.DERIVED).iterdir())


def test_segmenter_reads_the_one_output_a_cut_graph_has():
    model = _two_output_model()
    pre = TINY.model_copy(update={"output_index": 1})
    images = [np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)]
    whole = OnnxSegmenter(model, pre)(images)
    cut = OnnxSegmenter(mg.cut_to_output(model, 1), pre)(images)
    np.testing.assert_array_equal(cut, whole)


def test_segmenter_graph_records_the_fetched_file_not_the_cut(tmp_path, monkeypatch):
    from idphoto_ray.models.registry import ModelInfo, segmenter_graph
    from idphoto_ray.models.sources import Uri

    monkeypatch.setenv("IDPHOTO_RAY_HOME", str(tmp_path / "home"))
    path = tmp_path / "m.onnx"
    path.write_bytes(_two_output_model())
    info = ModelInfo("m", "segmentation", 8, Uri(str(path)), "", TINY)
    graph, sha = segmenter_graph(info, path)
    assert sha == sha256_file(path)
    assert [o.name for o in onnx.load_from_string(graph).graph.output] == ["y"]


def test_fetching_a_segmenter_cuts_its_graph_once(tmp_path, monkeypatch):
    from idphoto_ray.models.registry import fetch_models

    monkeypatch.setenv("IDPHOTO_RAY_HOME", str(tmp_path))
    path = fetch_models(["u2netp-arch"])["u2netp-arch"]  # 7 outputs, the mask first
    cut = tmp_path / mg.DERIVED / f"{sha256_file(path)}.out0.onnx"
    assert [o.name for o in onnx.load(str(cut)).graph.output] == [onnx.load(str(path)).graph.output[0].name]


def test_read_only_model_home_still_gets_the_cut_graph(tmp_path, monkeypatch, caplog):
    path = tmp_path / "m.onnx"
    path.write_bytes(_two_output_model())

    def full_disk(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mg, "atomic_write_bytes", full_disk)
    with caplog.at_level(logging.WARNING, logger=mg.__name__):
        graph = mg.mask_graph(path, "c" * 64, 0, home=tmp_path)
    assert [o.name for o in onnx.load_from_string(graph).graph.output] == ["y"]
    assert "could not cache" in caplog.text and "m.onnx" in caplog.text


def test_job_ships_the_cut_graph_and_records_the_fetched_file(tmp_path, monkeypatch, mediapipe_models):
    import shutil

    from idphoto_ray.config import JobConfig
    from idphoto_ray.models.registry import resolve_job_models

    home = tmp_path / "home"
    shutil.copytree(mediapipe_models["mediapipe-selfie"].parent, home / "mediapipe")
    monkeypatch.setenv("IDPHOTO_RAY_HOME", str(home))
    _, models = resolve_job_models(JobConfig(model="u2netp-arch"))
    source = home / "arch" / "u2netp-arch.onnx"
    assert models.sha256["segmenter"] == sha256_file(source)
    shipped = onnx.load_from_string(models.data["segmenter"]).graph
    assert len(shipped.output) == 1 and len(onnx.load(str(source)).graph.output) == 7


def test_a_damaged_cached_cut_is_cut_again_with_a_warning(tmp_path, caplog):
    path = tmp_path / "m.onnx"
    path.write_bytes(_two_output_model())
    sha = sha256_file(path)
    good = mg.mask_graph(path, sha, 0, home=tmp_path)
    cached = tmp_path / mg.DERIVED / f"{sha}.out0.onnx"
    cached.write_bytes(good[: len(good) // 2])  # truncated on disk
    with caplog.at_level(logging.WARNING, logger=mg.__name__):
        again = mg.mask_graph(path, sha, 0, home=tmp_path)
    assert again == good and cached.read_bytes() == good
    assert "damaged" in caplog.text and cached.name in caplog.text
    x = np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(_run(again, x)["y"], _run(path.read_bytes(), x)["y"])


def test_a_cut_cached_without_its_check_is_cut_again_quietly_once(tmp_path, monkeypatch, caplog):
    path = tmp_path / "m.onnx"
    path.write_bytes(_two_output_model())
    sha = sha256_file(path)
    good = mg.mask_graph(path, sha, 0, home=tmp_path)
    check = tmp_path / mg.DERIVED / f"{sha}.out0.onnx.sha256"
    check.unlink()  # as a cut cached before the checks existed
    with caplog.at_level(logging.WARNING, logger=mg.__name__):
        assert mg.mask_graph(path, sha, 0, home=tmp_path) == good
    assert not caplog.text and check.is_file()
    monkeypatch.setattr(mg, "cut_to_output", lambda *_: pytest.fail("cut a third time"))
    assert mg.mask_graph(path, sha, 0, home=tmp_path) == good


class _Pinned(Uri):
    """A source that pins the sha256 of its file, as IS-Net's npm source does."""

    def expected_sha256(self) -> str | None:
        return self.uri.rsplit("#", 1)[1]


def test_a_pinned_model_file_that_lost_its_sha256_is_refused_in_one_line(tmp_path, monkeypatch):
    from idphoto_ray.models.home import ModelUnavailable
    from idphoto_ray.models.registry import ModelInfo, segmenter_graph

    monkeypatch.setenv("IDPHOTO_RAY_HOME", str(tmp_path / "home"))
    path = tmp_path / "m.onnx"
    path.write_bytes(_two_output_model())
    good = sha256_file(path)
    info = ModelInfo("m", "segmentation", 8, _Pinned(f"{path}#{good}"), "", TINY)
    graph, sha = segmenter_graph(info, path)
    assert sha == good
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # same size: only the hash tells
    path.write_bytes(bytes(damaged))
    with pytest.raises(ModelUnavailable) as refused:
        segmenter_graph(info, path)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message and "damaged" in message
    assert "idphoto-ray models fetch m" in message
