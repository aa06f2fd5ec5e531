"""The one check every entry point makes first: is an ONNX Runtime build installed?

ONNX Runtime lives in the `cpu` / `gpu` extras, never in the base install, because installing both builds
side by side breaks CUDA (rembg #483). A base install would otherwise die on first use with a bare
`ModuleNotFoundError`; this says which command fixes it instead.
"""

from __future__ import annotations

import importlib.util
import sys

MISSING_ONNXRUNTIME = (
    "error: ONNX Runtime is not installed; install one build: pip install 'idphoto-ray[cpu]' "
    "(or 'idphoto-ray[gpu]' on a CUDA machine; never both)"
)


def onnxruntime_missing() -> bool:
    """True when neither onnxruntime nor onnxruntime-gpu can be imported (both provide `onnxruntime`)."""
    try:
        return importlib.util.find_spec("onnxruntime") is None
    except (ImportError, ValueError):
        return True


def require_onnxruntime() -> None:
    """Exit 2 with one line on stderr when ONNX Runtime is missing; call before importing anything heavy."""
    if onnxruntime_missing():
        print(MISSING_ONNXRUNTIME, file=sys.stderr)
        raise SystemExit(2)
