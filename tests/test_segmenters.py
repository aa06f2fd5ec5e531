"""Segmenters: U²-Net architecture, fixed-batch graphs, per-sample normalisation, model sources."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from idphoto_ray.config import Preprocess
from idphoto_ray.models.segmenters import (
    OnnxSegmenter,
    fixed_batch_size,
    make_batch_dynamic,
    postprocess,
    session_batch_size,
)
from idphoto_ray.models.u2net_arch import INPUT_NAME, OUTPUT_NAMES, build_u2net, count_parameters

TINY = Preprocess(input_size=8, scale="unit", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), minmax=False)


def _run_arch(model: onnx.ModelProto, n: int) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].name == INPUT_NAME
    x = np.random.default_rng(0).standard_normal((n, 3, 320, 320), dtype=np.float32)
    return sess.run(None, {INPUT_NAME: x})


def _assert_u2net_outputs(outs: list[np.ndarray], n: int) -> None:
    assert len(outs) == len(OUTPUT_NAMES) == 7
    for out in outs:
        assert out.shape == (n, 1, 320, 320) and out.dtype == np.float32
        assert 0.0 < out.min() and out.max() < 1.0  # sigmoids not saturated: activations stay sane
        assert out.std() > 1e-3


def test_u2netp_arch_has_published_size_and_runs_batch_4():
    model = build_u2net("u2netp", seed=0)
    assert abs(count_parameters(model) - 1.13e6) / 1.13e6 < 0.01
    _assert_u2net_outputs(_run_arch(model, 4), 4)


def test_u2net_arch_has_published_size_and_runs_batch_2():
    model = build_u2net("u2net", seed=0)
    assert abs(count_parameters(model) - 44.0e6) / 44.0e6 < 0.01
    _assert_u2net_outputs(_run_arch(model, 2), 2)


def test_u2net_arch_is_deterministic_per_seed():
    a, b, c = build_u2net("u2netp", 0), build_u2net("u2netp", 0), build_u2net("u2netp", 1)
    wa, wb, wc = (numpy_helper.to_array(m.graph.initializer[0]) for m in (a, b, c))
    assert np.array_equal(wa, wb) and not np.array_equal(wa, wc)


def test_minmax_is_per_sample_not_over_the_batch():
    pre = Preprocess(input_size=4, minmax=True)
    raw = np.stack([np.linspace(0.0, 0.2, 16), np.linspace(0.5, 1.0, 16)]).reshape(2, 1, 4, 4)
    raw = raw.astype(np.float32)
    masks = postprocess(raw, pre)
    for m in masks:  # each image spans the full [0, 1] on its own
        assert m.min() == pytest.approx(0.0) and m.max() == pytest.approx(1.0)
    whole = (raw[:, 0] - raw.min()) / (raw.max() - raw.min())  # rembg's normalisation, batched
    assert whole[0].max() == pytest.approx(0.2)
    assert not np.allclose(masks, whole)
    single = postprocess(raw[:1], pre)
    np.testing.assert_allclose(masks[:1], single, atol=1e-7)  # batching doesn't change a mask


def _fixed_batch_model(resist: bool) -> onnx.ModelProto:
    """Tiny conv+sigmoid with batch fixed at 1; `resist` adds a Reshape hard-coded to [1, ...]."""
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((1, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])]
    inits = [w]
    if resist:
        inits += [
            numpy_helper.from_array(np.array([1, 64], np.int64), "flat"),
            numpy_helper.from_array(np.array([1, 1, 8, 8], np.int64), "back"),
        ]
        nodes += [
            helper.make_node("Reshape", ["c", "flat"], ["f"]),
            helper.make_node("Reshape", ["f", "back"], ["r"]),
        ]
        last = "r"
    else:
        last = "c"
    nodes.append(helper.make_node("Sigmoid", [last], ["y"]))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)  # stale batch-1 value_info, as exporters leave it


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (8 + 4 * i, 8, 3), dtype=np.uint8) for i in range(n)]


def test_make_batch_dynamic_then_batch_equals_singles():
    model = _fixed_batch_model(resist=False)
    assert fixed_batch_size(model) == 1 and len(model.graph.value_info) > 0
    dyn = make_batch_dynamic(model)
    assert fixed_batch_size(dyn) is None and len(dyn.graph.value_info) == 0
    assert dyn.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"

    seg = OnnxSegmenter(model.SerializeToString(), TINY)
    assert not seg.batched and "first batch" in seg.info  # settled lazily: batch-1 actors never pay the check
    imgs = _images(4)
    batch = seg(imgs)
    singles = np.concatenate([seg([im]) for im in imgs])
    assert batch.shape == (4, 8, 8) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, singles, atol=1e-4)
    assert seg.batched and "made dynamic" in seg.info


def test_session_batch_size_reads_the_graph_and_a_path_model_is_parsed_only_for_the_rewrite(tmp_path):
    model = _fixed_batch_model(resist=False)
    path = tmp_path / "fixed.onnx"
    path.write_bytes(model.SerializeToString())
    seg = OnnxSegmenter(path, TINY)
    assert session_batch_size(seg.session) == fixed_batch_size(model) == 1 and not seg.batched
    imgs = _images(3)
    batch = seg(imgs)  # the first batch of three parses the file from its path and rewrites it
    assert seg.batched and "made dynamic" in seg.info and session_batch_size(seg.session) is None
    np.testing.assert_allclose(batch, np.concatenate([seg([im]) for im in imgs]), atol=1e-4)
    dyn = OnnxSegmenter(make_batch_dynamic(model).SerializeToString(), TINY)
    assert session_batch_size(dyn.session) is None and dyn.batched and dyn.info == "dynamic batch"


def test_job_processes_never_import_onnx(mediapipe_models):
    """Prepare, segment and finish build their models without the `onnx` package (1.4 s of CPU each)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from idphoto_ray.job import run, stages\n"
        "from idphoto_ray.photo_path import PhotoPath\n"
        "from idphoto_ray.models.registry import build_segmenter, resolve_segmenter\n"
        "info, path = resolve_segmenter('mediapipe-selfie')\n"
        "build_segmenter(info, path.read_bytes())\n"
        "PhotoPath.load([], ['white'], __import__('idphoto_ray.config').config.ProcessingOptions())\n"
        "print('onnx' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stderr


def test_graph_that_resists_falls_back_to_per_image_loop():
    model = _fixed_batch_model(resist=True)
    seg = OnnxSegmenter(model.SerializeToString(), TINY)
    assert not seg.ensure_batching()
    assert "one image at a time" in seg.info and "batch-2 run failed" in seg.info
    imgs = _images(3)
    masks = seg(imgs)
    assert masks.shape == (3, 8, 8)
    np.testing.assert_allclose(masks[2], seg([imgs[2]])[0], atol=1e-6)


def test_fetch_uri_copies_local_path_once_and_repairs_corruption(tmp_path, caplog):
    from idphoto_ray.models.home import sha256_file
    from idphoto_ray.models.uri_models import fetch_uri

    src = tmp_path / "seg.onnx"
    src.write_bytes(_fixed_batch_model(resist=False).SerializeToString())
    home = tmp_path / "home"
    path = fetch_uri(str(src), home=home)
    assert path.parent == home / "uri" and path.name.endswith("-seg.onnx")
    assert path.read_bytes() == src.read_bytes()
    assert (path.parent / (path.name + ".sha256")).read_text().strip() == sha256_file(src)
    mtime = path.stat().st_mtime_ns
    assert fetch_uri(str(src), home=home) == path and path.stat().st_mtime_ns == mtime  # reused, not copied
    assert fetch_uri(src.as_uri(), home=home) != path  # file:// is another URI, another entry

    path.write_bytes(b"truncated")
    with caplog.at_level("WARNING"):
        again = fetch_uri(str(src), home=home)
    assert again == path and again.read_bytes() == src.read_bytes()
    assert "fails its sha256 check" in caplog.text


def test_fetch_uri_from_fsspec_memory_and_errors_name_the_uri(tmp_path):
    import fsspec

    from idphoto_ray.models.home import ModelUnavailable
    from idphoto_ray.models.uri_models import fetch_uri

    data = _fixed_batch_model(resist=False).SerializeToString()
    uri = "memory://bucket/models/tiny.onnx"
    with fsspec.open(uri, "wb") as fh:
        fh.write(data)
    try:
        path = fetch_uri(uri, home=tmp_path)
        assert path.read_bytes() == data and path.name.endswith("-tiny.onnx")
        fsspec.filesystem("memory").rm(uri)
        assert fetch_uri(uri, home=tmp_path) == path  # cached copy survives the source going away
        path.write_bytes(data[:10])
        with pytest.raises(ModelUnavailable, match="memory://bucket/models/tiny.onnx"):
            fetch_uri(uri, home=tmp_path)
    finally:
        fsspec.filesystem("memory").rm("memory://bucket", recursive=True)
    with pytest.raises(ModelUnavailable, match="nope.onnx"):
        fetch_uri(str(tmp_path / "nope.onnx"), home=tmp_path)


def test_rembg_model_without_network_says_how_to_prestage(tmp_path, monkeypatch):
    import pooch.downloaders

    from idphoto_ray.models.home import ModelUnavailable
    from idphoto_ray.models.rembg_models import ensure_rembg

    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net"))
    monkeypatch.setattr(pooch.downloaders, "DEFAULT_TIMEOUT", 3)  # never hang where DNS blackholes
    with pytest.raises(ModelUnavailable) as err:
        ensure_rembg("u2netp")
    msg = str(err.value)
    assert str(tmp_path / "u2net") in msg and "U2NET_HOME" in msg
    assert "u2netp.onnx" in msg and "model_uri" in msg and "rembg d u2netp" in msg


def test_prestaged_rembg_file_is_found_and_fixed_batch_made_dynamic(tmp_path, monkeypatch):
    from idphoto_ray.models.registry import build_segmenter, resolve_segmenter

    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    (tmp_path / "u2netp.onnx").write_bytes(_fixed_batch_model(resist=False).SerializeToString())
    info, path = resolve_segmenter("u2netp", preprocess=TINY)
    assert path == tmp_path / "u2netp.onnx" and info.source.kind == "rembg" and info.input_size == 8
    seg = build_segmenter(info, path.read_bytes())
    assert seg(_images(2)).shape == (2, 8, 8) and seg.batched


def test_registry_unknown_name_lists_known_models():
    from idphoto_ray.models.registry import MODELS, get_info, resolve_segmenter

    with pytest.raises(ValueError, match="unknown model 'u3net'") as err:
        resolve_segmenter("u3net")
    for known in ("mediapipe-selfie", "u2net", "birefnet-portrait", "u2net-arch"):
        assert known in str(err.value)
    with pytest.raises(ValueError, match="not a segmenter"):
        resolve_segmenter("blazeface")
    assert "not for real use" in get_info("u2netp-arch").note
    assert MODELS["birefnet-general"].preprocess.sigmoid and not MODELS["u2net"].preprocess.sigmoid
    assert MODELS["isnet-general-use"].preprocess.mean == (0.5, 0.5, 0.5)


def test_registry_lists_and_generates_arch_models(tmp_path, monkeypatch):
    from idphoto_ray.models.registry import fetch_models, list_models

    monkeypatch.setenv("IDPHOTO_RAY_HOME", str(tmp_path))
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net"))
    rows = {info.name: (info, cached, path) for info, cached, path in list_models()}
    assert {"mediapipe-selfie", "blazeface", "face-mesh", "u2net", "bria-rmbg", "u2netp-arch"} <= set(rows)
    assert rows["u2netp-arch"][1] is False and rows["u2net"][1] is False
    paths = fetch_models(["u2netp-arch"])
    assert paths["u2netp-arch"] == tmp_path / "arch" / "u2netp-arch.onnx" and paths["u2netp-arch"].is_file()
    assert dict((i.name, c) for i, c, _ in list_models())["u2netp-arch"] is True
    with pytest.raises(ValueError, match="known models"):
        fetch_models(["u2netp-arch", "nope"])


def test_mediapipe_selfie_masks_astronaut(mediapipe_models):
    from skimage.data import astronaut

    from idphoto_ray.models.registry import build_segmenter, resolve_segmenter

    info, path = resolve_segmenter("mediapipe-selfie")
    assert path == mediapipe_models["mediapipe-selfie"]
    seg = build_segmenter(info, path.read_bytes(), intra_op_num_threads=1)
    img = astronaut()  # 512×512, face around rows 90–180, cols 200–280
    masks = seg([img, img[:, ::-1].copy()])
    assert masks.shape == (2, 256, 256) and masks.dtype == np.float32 and seg.batched
    m = masks[0]
    face = m[50:80, 105:127]  # eyes, nose and mouth, at model scale (÷2)
    assert face.mean() > 0.95 and face.min() > 0.5
    for corner in (m[:25, :25], m[:25, -25:]):
        assert corner.mean() < 0.1
    a, b = masks[0] > 0.5, masks[1][:, ::-1] > 0.5  # mirrored image → (nearly) mirrored mask
    assert (a & b).sum() / (a | b).sum() > 0.9


def test_graph_mixing_samples_is_caught_by_value_check():
    """Batch-wide ReduceMean runs at any batch size but mixes images: only comparing values catches it."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], keepdims=1),
        helper.make_node("Sub", ["x", "m"], ["d"]),
        helper.make_node("ReduceMean", ["d"], ["y"], axes=[1], keepdims=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mix",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    seg = OnnxSegmenter(model.SerializeToString(), TINY)
    assert not seg.ensure_batching() and "differs from single runs" in seg.info
    arch = OnnxSegmenter(build_u2net("u2netp").SerializeToString(), Preprocess())
    assert arch.batched and arch.info == "dynamic batch"


@pytest.mark.parametrize("scale", ["unit", "image_max", "minus_one_one", "raw"])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_preprocess_batch_has_the_bits_of_the_whole_batch_formula(scale, layout):
    """Normalising image by image, in place, gives exactly (x·scale − mean) / std over the batch."""
    from idphoto_ray.models.segmenters import model_input, preprocess_batch

    pre = Preprocess(
        input_size=64, scale=scale, mean=(0.4, 128.0, -0.2), std=(0.2, 256.0, 1.5), layout=layout
    )
    rng = np.random.default_rng(3)
    images = [
        rng.integers(0, 256, (80, 50, 3), dtype=np.uint8),
        rng.integers(0, 256, (40, 70, 3), dtype=np.uint8),
    ]
    x = np.stack([model_input(im, 64) for im in images]).astype(np.float32)
    if scale == "unit":
        x = x / 255.0
    elif scale == "image_max":
        x = np.stack([im / max(float(im.max()), 1e-6) for im in x])
    elif scale == "minus_one_one":
        x = x / 127.5 - 1.0
    x = (x - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    expected = np.ascontiguousarray(x.transpose(0, 3, 1, 2) if layout == "nchw" else x, dtype=np.float32)
    got = preprocess_batch(images, pre)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.tobytes() == expected.tobytes()
