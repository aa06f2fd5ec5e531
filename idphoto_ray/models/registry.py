"""Model names → where the file comes from (a ModelSource), how to preprocess it, and how to build it.

One table for `idphoto-ray models list/fetch` and for the job, so a name means the same thing in both.
Files are resolved on the driver and shipped as bytes to actors (see models/base.py); the segmenter,
the face detector and the landmarker are all built here.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from idphoto_ray.config import Preprocess
from idphoto_ray.models import isnet_npm, mediapipe_fetch, rembg_models
from idphoto_ray.models.home import ModelUnavailable, sha256_file
from idphoto_ray.models.mask_graph import mask_graph
from idphoto_ray.models.segmenters import MEDIAPIPE_SELFIE_PREPROCESS, OnnxSegmenter
from idphoto_ray.models.sources import (
    FetchOptions,
    Generated,
    MediapipeWheel,
    ModelSource,
    NpmPackage,
    RembgHome,
    Uri,
)
from idphoto_ray.types import Device

if TYPE_CHECKING:
    from idphoto_ray.config import JobConfig
    from idphoto_ray.models.face_detect import BlazeFaceDetector
    from idphoto_ray.models.face_mesh import FaceMeshLandmarker

NOT_FOR_REAL_USE = "random weights — not for real use (benchmarks and tests only)"
AUTO = "auto"
#: `auto` takes the first of these whose file is in the model home; the last is always obtainable offline
#: from the wheel. IS-Net first: on 27 press portraits it removed the backdrop bleed the 256² selfie model
#: left beside jaws and shoulders (1–5 % of the frame on 3 photos), at about 0.4× its speed.
AUTO_PREFERENCE = ("isnet-medium", "isnet-small", "mediapipe-selfie")
ALIASES = {"isnet": "isnet-medium"}
#: The face detector (face_detect.PIPELINE_DETECTOR: full range, so group photos' small faces count) and mesh.
FACE_MODELS = ("blazeface-full", "face-mesh")
#: The person model of `processing.person_gate` (person_gate.py): shipped with the face models.
PERSON_MODEL = "mediapipe-selfie"


@dataclass(frozen=True)
class ModelInfo:
    """What a model name stands for; `preprocess` is None for models that are not segmenters."""

    name: str
    task: str
    input_size: int
    source: ModelSource
    note: str = ""
    preprocess: Preprocess | None = None


_U2NET_PRE = rembg_models.REMBG_MODELS["u2net"]  # arch models take u2net's input, like the real file


def _catalogue() -> dict[str, ModelInfo]:
    infos = [
        ModelInfo(
            m.name,
            m.task,
            m.input_size,
            MediapipeWheel(m.name),
            f"MediaPipe {mediapipe_fetch.MEDIAPIPE_VERSION} (Apache-2.0), converted to ONNX",
            MEDIAPIPE_SELFIE_PREPROCESS if m.name == "mediapipe-selfie" else None,
        )
        for m in mediapipe_fetch.MEDIAPIPE_MODELS.values()
    ]
    infos += [
        ModelInfo(
            v.name,
            "segmentation",
            isnet_npm.ISNET_PREPROCESS.input_size,
            NpmPackage(v.name),
            f"IS-Net/DIS (MIT), {v.weights}, from npm {isnet_npm.PACKAGE}@{isnet_npm.VERSION} (AGPL-3.0)",
            isnet_npm.ISNET_PREPROCESS,
        )
        for v in isnet_npm.VARIANTS.values()
    ]
    infos += [
        ModelInfo(name, "segmentation", pre.input_size, RembgHome(name), "rembg model, rembg's home", pre)
        for name, pre in rembg_models.REMBG_MODELS.items()
    ]
    infos += [
        ModelInfo(
            f"{variant}-arch",
            "segmentation",
            _U2NET_PRE.input_size,
            Generated(variant, f"{variant}-arch.onnx"),
            NOT_FOR_REAL_USE,
            _U2NET_PRE,
        )
        for variant in ("u2net", "u2netp")
    ]
    return {i.name: i for i in infos}


MODELS: dict[str, ModelInfo] = _catalogue()


def get_info(name: str) -> ModelInfo:
    """The catalogue entry for `name`; an alias (`isnet`) gives its target's entry."""
    try:
        return MODELS[ALIASES.get(name, name)]
    except KeyError:
        known = ", ".join(sorted([*MODELS, *ALIASES, AUTO]))
        raise ValueError(f"unknown model {name!r}; known models: {known}") from None


def list_models() -> list[tuple[ModelInfo, bool, Path]]:
    """Every model, whether it is cached, and its path (where it would go if not), in catalogue order."""
    return [(info, info.source.cached(), info.source.path()) for info in MODELS.values()]


def resolve_auto(announce: bool = True) -> str:
    """The best segmenter already in the model home; never reaches the network (contracts §5).

    Says in one line on stderr what it took and, when it is not IS-Net, how to get it.
    """
    chosen = next((n for n in AUTO_PREFERENCE if MODELS[n].source.cached()), AUTO_PREFERENCE[-1])
    if announce:
        if chosen.startswith("isnet"):
            print(f"model auto: {chosen} (cached at {MODELS[chosen].source.path()})", file=sys.stderr)
        else:
            print(
                f"model auto: {chosen}; for mattes without backdrop bleed run "
                f"`idphoto-ray models fetch isnet` (npm, ~88 MB) and run again",
                file=sys.stderr,
            )
    return chosen


def resolve_segmenter(
    name: str, model_uri: str | None = None, preprocess: Preprocess | None = None
) -> tuple[ModelInfo, Path]:
    """The segmenter's info and local file, fetching it once if needed; `preprocess` overrides the default."""
    if model_uri:
        if preprocess is None:
            raise ValueError(f"model_uri {model_uri!r} needs a `preprocess` block describing the model")
        note = f"ONNX from {model_uri}"
        info = ModelInfo(model_uri, "segmentation", preprocess.input_size, Uri(model_uri), note, preprocess)
        return info, info.source.ensure()
    info = get_info(resolve_auto() if name == AUTO else name)
    if info.preprocess is None:
        segmenters = sorted(n for n, i in MODELS.items() if i.preprocess is not None)
        raise ValueError(
            f"model {name!r} is a {info.task} model, not a segmenter; segmenters: {', '.join(segmenters)}"
        )
    if preprocess is not None:
        info = replace(info, preprocess=preprocess, input_size=preprocess.input_size)
    return info, info.source.ensure()


@dataclass(frozen=True)
class JobModels:
    """What a job runs: the segmenter's entry and, per role, the file's bytes and sha256."""

    segmenter: ModelInfo
    data: dict[str, bytes]
    sha256: dict[str, str]

    def record(self) -> dict[str, dict[str, str]]:
        """run.json's `models`: role → name and sha256 of the weights."""
        return {
            role: {"name": self.segmenter.name if role == "segmenter" else role, "sha256": sha}
            for role, sha in self.sha256.items()
        }


def resolve_job_models(config: JobConfig) -> tuple[JobConfig, JobModels]:
    """Resolve `auto`, obtain every file the job needs, and hash them (driver side, before Ray starts).

    The returned config names the resolved model instead of `auto`, and `config.config_hash(models.sha256
    ["segmenter"])` covers the weights, so `--resume` never mixes two models' outputs under one hash.
    """
    info, seg_path = resolve_segmenter(config.model, config.model_uri, config.preprocess)
    if not config.model_uri:
        config = config.model_copy(update={"model": info.name})
    person = get_info(PERSON_MODEL).source.ensure()
    paths = {**face_model_paths(), PERSON_MODEL: person}
    data = {role: path.read_bytes() for role, path in paths.items()}
    sha = {role: hashlib.sha256(blob).hexdigest() for role, blob in data.items()}
    for role, path in paths.items():
        check_intact(get_info(role), path, sha[role])
    data["segmenter"], sha["segmenter"] = segmenter_graph(info, seg_path)
    return config, JobModels(info, data, sha)


def segmenter_graph(info: ModelInfo, path: Path) -> tuple[bytes, str]:
    """What a segmenter session loads, the graph cut to its mask output (mask_graph.py: IS-Net 8 % faster),
    and the sha256 of the file at `path`, which is the weights' identity a run records (checked first)."""
    sha = sha256_file(path)
    check_intact(info, path, sha)
    output_index = info.preprocess.output_index if info.preprocess is not None else 0
    return mask_graph(path, sha, output_index), sha


def check_intact(info: ModelInfo, path: Path, sha256: str) -> None:
    """Refuse, in one line and before Ray starts, a cached model file that no longer has the sha256 its
    source pinned (IS-Net) or recorded when it was fetched (MediaPipe's conversions).

    `cached` looks at names and sizes only. One byte flipped inside IS-Net's weights kept the size and still
    parsed, so the job ran with a wrong weight and said nothing; a truncated face model killed every
    finishing task with ONNX Runtime's protobuf traceback (61 lines), in every run.
    """
    expected = info.source.expected_sha256()
    if expected is not None and sha256 != expected:
        raise ModelUnavailable(
            f"{path} is damaged: its sha256 is {sha256[:12]}…, {info.name} is {expected[:12]}…; "
            f"fetch it again: idphoto-ray models fetch {info.name}"
        )


def build_segmenter(
    info: ModelInfo,
    model: bytes | Path,
    device: Device = "cpu",
    intra_op_num_threads: int | None = None,
    tensorrt: bool = False,
) -> OnnxSegmenter:
    """An OnnxSegmenter for `info`; TensorRT engines are cached in the model home."""
    from idphoto_ray.models.home import model_home

    if info.preprocess is None:
        raise ValueError(f"model {info.name!r} ({info.task}) has no segmentation preprocessing")
    trt_cache = str(model_home() / "trt") if tensorrt else None
    return OnnxSegmenter(model, info.preprocess, device, intra_op_num_threads, tensorrt, trt_cache)


def build_face_detector(model: bytes | Path, intra_op_num_threads: int | None = 1) -> BlazeFaceDetector:
    """BlazeFace on CPU: one thread, it runs inside the finishing tasks beside other CPU work."""
    from idphoto_ray.models.face_detect import BlazeFaceDetector

    return BlazeFaceDetector(model, intra_op_num_threads=intra_op_num_threads)


def build_face_landmarker(model: bytes | Path, intra_op_num_threads: int | None = 1) -> FaceMeshLandmarker:
    from idphoto_ray.models.face_mesh import FaceMeshLandmarker

    return FaceMeshLandmarker(model, intra_op_num_threads=intra_op_num_threads)


def face_model_paths() -> dict[str, Path]:
    """The detector's and the landmarker's files, fetched once if missing (tests, benchmarks, notebooks)."""
    return {name: get_info(name).source.ensure() for name in FACE_MODELS}


def fetch_models(names: Iterable[str], options: FetchOptions | None = None) -> dict[str, Path]:
    """Obtain every named model, each kind of source in one go (one wheel, one npm tarball)."""
    options = options or FetchOptions()
    infos = [get_info(n) for n in names]
    by_kind: dict[type, list[ModelInfo]] = {}
    for info in infos:
        by_kind.setdefault(type(info.source), []).append(info)
    paths: dict[str, Path] = {}
    for kind, group in by_kind.items():
        for info, path in zip(group, kind.fetch_all([i.source for i in group], options), strict=True):
            paths[info.name] = path
            if info.preprocess is not None:
                segmenter_graph(info, path)  # cut once here, so a job's driver finds it made
    return {n: paths[get_info(n).name] for n in names}
