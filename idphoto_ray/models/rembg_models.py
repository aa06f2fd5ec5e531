"""rembg's segmentation family, with rembg's own preprocessing and rembg's own download cache.

Users already have these files in rembg's home, so we resolve them through rembg's session classes
(`download_models()`) rather than keep a second copy. The preprocessing below was read from the
installed rembg (2.0.86, `rembg/sessions/*.py`): every model divides by the image's own max, then
applies mean/std; BiRefNet adds a sigmoid. Multi-class (u2net_cloth_seg), prompt-based (sam),
`*_custom` and remote-service sessions are not mask segmenters of this kind and are left out.
"""

from __future__ import annotations

from pathlib import Path

from idphoto_ray.config import Preprocess
from idphoto_ray.models.home import ModelUnavailable

_IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
_U2NET = Preprocess(input_size=320, scale="image_max", **_IMAGENET)
_BIREFNET = Preprocess(input_size=1024, scale="image_max", sigmoid=True, **_IMAGENET)

REMBG_MODELS: dict[str, Preprocess] = {
    "u2net": _U2NET,
    "u2netp": _U2NET,
    "u2net_human_seg": _U2NET,
    "silueta": _U2NET,
    "isnet-general-use": Preprocess(
        input_size=1024, scale="image_max", mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0)
    ),
    "isnet-anime": Preprocess(
        input_size=1024, scale="image_max", mean=(0.485, 0.456, 0.406), std=(1.0, 1.0, 1.0)
    ),
    "birefnet-general": _BIREFNET,
    "birefnet-general-lite": _BIREFNET,
    "birefnet-portrait": _BIREFNET,
    "birefnet-dis": _BIREFNET,
    "birefnet-hrsod": _BIREFNET,
    "birefnet-cod": _BIREFNET,
    "birefnet-massive": _BIREFNET,
    "bria-rmbg": Preprocess(input_size=1024, scale="image_max", **_IMAGENET),
}


def expected_filename(name: str) -> str:
    """rembg ≥ 2.0.80 names the cached file after the session, whatever the release asset is called."""
    return f"{name}.onnx"


def download_path(name: str) -> Path:
    """Where rembg writes `name` when it downloads it: `<rembg home>/models/<name>/<name>.onnx`.

    rembg 2.0.86 stopped writing to the flat `~/.u2net` (now only read, for old downloads): its home is
    U2NET_HOME if set, else REMBG_HOME, else $XDG_DATA_HOME/rembg, else ~/.rembg. Asked of rembg's own
    session class so the answer follows rembg's next move.
    """
    return Path(_session_class(name).model_dir()) / expected_filename(name)


def _session_class(name: str):
    """rembg's session class for `name`; imported lazily because `import rembg` costs about a second."""
    from rembg.sessions import sessions

    if name not in REMBG_MODELS or name not in sessions:
        raise ValueError(f"unknown rembg model {name!r}; known: {sorted(REMBG_MODELS)}")
    return sessions[name]


def cached_rembg_path(name: str) -> Path | None:
    """The already-downloaded file, looked up as rembg does (per-model dir, then the old flat ~/.u2net)."""
    found = _session_class(name).resolve_existing(expected_filename(name))
    return Path(found) if found else None


def prestage_hint(name: str) -> str:
    fname = expected_filename(name)
    return (
        f"Pre-stage it: on a machine with internet run `rembg d {name}` (or download {fname} from "
        f"rembg's GitHub releases) and copy it to {download_path(name)} on every node (rembg reads "
        f"U2NET_HOME or REMBG_HOME to change that directory), or set `model_uri:` to a path or URI every "
        f"node can read (s3://, gs://, NFS) with a `preprocess:` block."
    )


def ensure_rembg(name: str) -> Path:
    """Path of rembg model `name`, downloading it through rembg/pooch if it is not cached yet."""
    cls = _session_class(name)
    try:
        return Path(cls.download_models())
    except Exception as exc:
        raise ModelUnavailable(
            f"rembg model {name!r} is not cached and could not be downloaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            f"rembg would write it to {download_path(name)}. {prestage_hint(name)}"
        ) from exc
