"""Model names → where the file comes from, how to preprocess it, and how to build a segmenter.

One table for `idphoto-ray models list/fetch` and for the pipeline, so a name means the same thing
in both. Files are resolved on the driver and shipped as bytes to actors (see models/base.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Literal

from idphoto_ray.config import Preprocess
from idphoto_ray.models import mediapipe_fetch, rembg_models, u2net_arch
from idphoto_ray.models.home import model_home
from idphoto_ray.models.segmenters import MEDIAPIPE_SELFIE_PREPROCESS, OnnxSegmenter
from idphoto_ray.models.session import Device
from idphoto_ray.models.uri_models import fetch_uri

Source = Literal["mediapipe-wheel", "rembg", "uri", "generated"]
NOT_FOR_REAL_USE = "random weights — not for real use (benchmarks and tests only)"


@dataclass(frozen=True)
class ModelInfo:
    """What a model name stands for; `preprocess` is None for models that are not segmenters."""

    name: str
    task: str
    input_size: int
    source: Source
    note: str = ""
    preprocess: Preprocess | None = None


_ARCH = {"u2net-arch": "u2net", "u2netp-arch": "u2netp"}
_U2NET_PRE = rembg_models.REMBG_MODELS["u2net"]  # arch models take u2net's input, like the real file


def _catalogue() -> dict[str, ModelInfo]:
    infos = [
        ModelInfo(
            m.name,
            m.task,
            m.input_size,
            "mediapipe-wheel",
            f"MediaPipe {mediapipe_fetch.MEDIAPIPE_VERSION} (Apache-2.0), converted to ONNX",
            MEDIAPIPE_SELFIE_PREPROCESS if m.name == "mediapipe-selfie" else None,
        )
        for m in mediapipe_fetch.MEDIAPIPE_MODELS.values()
    ]
    infos += [
        ModelInfo(name, "segmentation", pre.input_size, "rembg", "rembg model in U2NET_HOME", pre)
        for name, pre in rembg_models.REMBG_MODELS.items()
    ]
    infos += [
        ModelInfo(name, "segmentation", u2net_arch.INPUT_SIZE, "generated", NOT_FOR_REAL_USE, _U2NET_PRE)
        for name in _ARCH
    ]
    return {i.name: i for i in infos}


MODELS: dict[str, ModelInfo] = _catalogue()


def get_info(name: str) -> ModelInfo:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


def arch_path(name: str) -> Path:
    return model_home() / "arch" / f"{name}.onnx"


def _location(info: ModelInfo) -> tuple[bool, Path | None]:
    """(cached, path): the file's path, or where it would be put when it is not cached yet."""
    if info.source == "mediapipe-wheel":
        path = mediapipe_fetch.onnx_path(info.name)
    elif info.source == "generated":
        path = arch_path(info.name)
    else:
        found = rembg_models.cached_rembg_path(info.name)
        if found is not None:
            return True, found
        path = rembg_models.u2net_home() / rembg_models.expected_filename(info.name)
    return path.is_file(), path


def list_models() -> list[tuple[ModelInfo, bool, Path | None]]:
    """Every known model with whether it is cached and its path, in catalogue order."""
    return [(info, *_location(info)) for info in MODELS.values()]


def _ensure(info: ModelInfo) -> Path:
    if info.source == "mediapipe-wheel":
        return mediapipe_fetch.ensure(info.name)
    if info.source == "generated":
        return u2net_arch.generate(_ARCH[info.name], arch_path(info.name))
    return rembg_models.ensure_rembg(info.name)


def resolve_segmenter(
    name: str, model_uri: str | None = None, preprocess: Preprocess | None = None
) -> tuple[ModelInfo, Path]:
    """The segmenter's info and local file, fetching it once if needed; `preprocess` overrides the default."""
    if model_uri:
        if preprocess is None:
            raise ValueError(f"model_uri {model_uri!r} needs a `preprocess` block describing the model")
        note = f"ONNX from {model_uri}"
        info = ModelInfo(model_uri, "segmentation", preprocess.input_size, "uri", note, preprocess)
        return info, fetch_uri(model_uri)
    info = get_info(name)
    if info.preprocess is None:
        segmenters = sorted(n for n, i in MODELS.items() if i.preprocess is not None)
        raise ValueError(
            f"model {name!r} is a {info.task} model, not a segmenter; segmenters: {', '.join(segmenters)}"
        )
    if preprocess is not None:
        info = replace(info, preprocess=preprocess, input_size=preprocess.input_size)
    return info, _ensure(info)


def model_bytes(path: str | Path) -> bytes:
    """File contents, to send to actors through the object store instead of a driver-local path."""
    return Path(path).read_bytes()


def build_segmenter(
    info: ModelInfo,
    model: bytes | Path,
    device: Device = "cpu",
    intra_op_num_threads: int | None = None,
    tensorrt: bool = False,
) -> OnnxSegmenter:
    """An OnnxSegmenter for `info`; TensorRT engines are cached in the model home."""
    if info.preprocess is None:
        raise ValueError(f"model {info.name!r} ({info.task}) has no segmentation preprocessing")
    trt_cache = str(model_home() / "trt") if tensorrt else None
    return OnnxSegmenter(model, info.preprocess, device, intra_op_num_threads, tensorrt, trt_cache)


def fetch_models(
    names: Iterable[str], from_wheel: Path | None = None, from_tflite: Path | None = None
) -> dict[str, Path]:
    """Obtain every named model: MediaPipe from the wheel, arch by generation, rembg through rembg."""
    infos = [get_info(n) for n in names]
    paths: dict[str, Path] = {}
    mp = [i.name for i in infos if i.source == "mediapipe-wheel"]
    if mp:
        paths.update(mediapipe_fetch.fetch(mp, from_wheel=from_wheel, from_tflite=from_tflite))
    for info in infos:
        if info.source != "mediapipe-wheel":
            paths[info.name] = _ensure(info)
    return {i.name: paths[i.name] for i in infos}
