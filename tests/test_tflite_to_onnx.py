"""Converted MediaPipe models must match LiteRT (the TFLite runtime) on random and real inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import skimage.data
from onnx import numpy_helper

from idphoto_ray.models.mediapipe_fetch import MEDIAPIPE_MODELS, tflite_path
from idphoto_ray.models.tflite_to_onnx import convert_tflite, list_ops, same_pads

litert = pytest.importorskip("ai_edge_litert.interpreter")

TOL = 1e-4
# Input range each model was trained on; random inputs are drawn from it.
INPUT_RANGE = {
    "mediapipe-selfie": (0.0, 1.0),
    "blazeface": (-1.0, 1.0),
    "blazeface-full": (-1.0, 1.0),
    "face-mesh": (0.0, 1.0),
}


def _interpreter(name: str, model_bytes: bytes):
    # The custom transposed conv only resolves through the default (XNNPACK) delegate; elsewhere the
    # builtin kernels are the tighter oracle (XNNPACK's own fp32 reordering alone reaches ~1.5e-4).
    resolver = litert.OpResolverType.AUTO
    if "Convolution2DTransposeBias" not in "".join(list_ops(model_bytes)):
        resolver = litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = litert.Interpreter(model_content=model_bytes, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


def _run_litert(interp, x_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    interp.set_tensor(interp.get_input_details()[0]["index"], x_nhwc)
    interp.invoke()
    return {o["name"]: interp.get_tensor(o["index"]) for o in interp.get_output_details()}


def _run_onnx(session: ort.InferenceSession, x_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    outs = session.run(None, {session.get_inputs()[0].name: x_nhwc.transpose(0, 3, 1, 2)})
    names = [o.name for o in session.get_outputs()]
    return {n: (v.transpose(0, 2, 3, 1) if v.ndim == 4 else v) for n, v in zip(names, outs, strict=False)}


def _inputs(name: str) -> list[np.ndarray]:
    size = MEDIAPIPE_MODELS[name].input_size
    lo, hi = INPUT_RANGE[name]
    rng = np.random.default_rng(1234)
    photo = cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    samples = [rng.uniform(lo, hi, (1, size, size, 3)).astype(np.float32) for _ in range(2)]
    samples.append((lo + (hi - lo) * photo[None].astype(np.float32) / 255.0).astype(np.float32))
    return samples


@pytest.fixture(scope="module")
def models(mediapipe_models):
    out = {}
    for name, onnx_file in mediapipe_models.items():
        source = tflite_path(name).read_bytes()
        out[name] = (source, ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]))
    return out


def test_same_pads_matches_tensorflow():
    assert same_pads(128, 5, 2) == (1, 2)
    assert same_pads(64, 3, 1) == (1, 1)
    assert same_pads(64, 2, 2) == (0, 0)


@pytest.mark.parametrize("name", sorted(MEDIAPIPE_MODELS))
def test_matches_litert(models, name):
    source, session = models[name]
    interp = _interpreter(name, source)
    for x in _inputs(name):
        ref, got = _run_litert(interp, x), _run_onnx(session, x)
        assert set(ref) == set(got)
        for key, expected in ref.items():
            assert got[key].shape == expected.shape
            # Relative above 1: the full-range detector's random-input logits reach ±190 (1e-4 = 7 ulps).
            diff = float((np.abs(got[key] - expected) / np.maximum(1.0, np.abs(expected))).max())
            assert diff <= TOL, f"{name}:{key} max|onnx-litert|/max(1,|litert|)={diff:.3g}"


@pytest.mark.parametrize("name", sorted(MEDIAPIPE_MODELS))
def test_batch_of_8_equals_single_runs(models, name):
    _, session = models[name]
    size = MEDIAPIPE_MODELS[name].input_size
    lo, hi = INPUT_RANGE[name]
    batch = np.random.default_rng(7).uniform(lo, hi, (8, size, size, 3)).astype(np.float32)
    together = _run_onnx(session, batch)
    for i in range(8):
        single = _run_onnx(session, batch[i : i + 1])
        for key, value in single.items():
            assert float(np.abs(together[key][i : i + 1] - value).max()) <= TOL


@pytest.mark.parametrize("name", sorted(MEDIAPIPE_MODELS))
def test_dynamic_batch_and_nchw_io(mediapipe_models, name):
    model = onnx.load(str(mediapipe_models[name]))
    size = MEDIAPIPE_MODELS[name].input_size
    (inp,) = model.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].HasField("dim_value")
    assert [d.dim_value for d in dims[1:]] == [3, size, size]
    for out in model.graph.output:
        assert out.type.tensor_type.shape.dim[0].dim_param


def test_fp16_weights_become_fp32_initializers(mediapipe_models):
    source = tflite_path("blazeface").read_bytes()
    model = convert_tflite(source)
    assert list_ops(source)["DEQUANTIZE"] > 0
    dtypes = {init.data_type for init in model.graph.initializer}
    assert dtypes <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}
    assert "Cast" not in {n.op_type for n in model.graph.node}


def test_sparse_full_range_detector_converts_to_dense_weights(mediapipe_models):
    """46 DENSIFY ops and DEPTH_TO_SPACE: the sparse constants become plain initializers."""
    source = tflite_path("blazeface-full").read_bytes()
    ops = list_ops(source)
    assert ops["DENSIFY"] == 46 and ops["DEPTH_TO_SPACE"] == 2
    model = convert_tflite(source)
    assert "DepthToSpace" in {n.op_type for n in model.graph.node}
    assert not model.graph.sparse_initializer
    # Sparse weights keep their zeros after densifying: the network is ~50 % zeros in those layers.
    weights = [numpy_helper.to_array(i) for i in model.graph.initializer if i.dims and i.dims[0] > 4]
    zero_share = max(float((w == 0).mean()) for w in weights)
    assert zero_share > 0.3


def test_full_range_detector_matches_litert_on_group_photo(models):
    """Real faces (a group selfie from the development set) light up the same anchors in both runtimes."""
    path = Path(__file__).resolve().parents[2] / "shared" / "devset" / "deepface_selfie-many-people.jpg"
    if not path.is_file():
        pytest.skip("development portraits not present")
    source, session = models["blazeface-full"]
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    x = cv2.resize(rgb, (192, 192), interpolation=cv2.INTER_AREA)[None].astype(np.float32) / 127.5 - 1.0
    ref, got = _run_litert(_interpreter("blazeface-full", source), x), _run_onnx(session, x)
    for key, expected in ref.items():
        assert np.allclose(got[key], expected, atol=TOL, rtol=0)
    scores = next(v for v in ref.values() if v.shape[-1] == 1)
    assert int((scores > 0).sum()) >= 6
