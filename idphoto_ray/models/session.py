"""One ONNX Runtime session per model, with providers chosen explicitly.

Asking for CUDA and silently getting CPU is the classic failure of GPU background removal
(rembg #668): after creating a session we check the active providers and fail with the cause.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import onnxruntime as ort

from idphoto_ray.types import Device

# Libraries the CUDA provider dlopens; the first one missing is named in the error.
_CUDA_LIBS = ("libcudart.so.12", "libcublasLt.so.12", "libcublas.so.12", "libcudnn.so.9", "libcufft.so.11")


class DeviceError(RuntimeError):
    """The requested execution provider cannot be used on this machine."""


def cuda_available() -> bool:
    return "CUDAExecutionProvider" in ort.get_available_providers()


def _missing_cuda_library() -> str | None:
    for lib in _CUDA_LIBS:
        try:
            ctypes.CDLL(lib)
        except OSError:
            return lib
    return None


def providers_for(device: Device, tensorrt: bool = False, trt_cache_dir: str | None = None) -> list:
    """Provider list for a device; `auto` means CUDA when the GPU build and a GPU are present."""
    if device == "cpu" or (device == "auto" and not cuda_available()):
        return ["CPUExecutionProvider"]
    providers: list = []
    if tensorrt:
        opts = {"trt_engine_cache_enable": True}
        if trt_cache_dir:
            opts["trt_engine_cache_path"] = trt_cache_dir
        providers.append(("TensorrtExecutionProvider", opts))
    providers.append(("CUDAExecutionProvider", {"device_id": 0, "cudnn_conv_algo_search": "HEURISTIC"}))
    providers.append("CPUExecutionProvider")
    return providers


def create_session(
    model: bytes | str | Path,
    device: Device = "cpu",
    intra_op_num_threads: int | None = None,
    tensorrt: bool = False,
    trt_cache_dir: str | None = None,
) -> ort.InferenceSession:
    """Build a session from ONNX bytes or a path and verify the provider that actually runs it."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_num_threads:
        opts.intra_op_num_threads = intra_op_num_threads
        opts.inter_op_num_threads = 1
    # Idle ORT threads must not spin on cores that decode and finishing tasks are using.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    if device == "cuda" and not cuda_available():
        raise DeviceError(
            "device=cuda but this onnxruntime has no CUDAExecutionProvider "
            f"(installed providers: {ort.get_available_providers()}). Install the GPU build with "
            "`pip uninstall -y onnxruntime onnxruntime-gpu && pip install -e '.[gpu]'` (never both)."
        )
    providers = providers_for(device, tensorrt, trt_cache_dir)
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, sess_options=opts, providers=providers)
    if device == "cuda" and session.get_providers()[0] not in (
        "CUDAExecutionProvider",
        "TensorrtExecutionProvider",
    ):
        missing = _missing_cuda_library()
        cause = f"cannot load {missing}" if missing else "the CUDA provider failed to initialise"
        raise DeviceError(
            f"device=cuda but the session runs on {session.get_providers()[0]}: {cause}. "
            "Check CUDA 12 / cuDNN 9 libraries on LD_LIBRARY_PATH and CUDA_VISIBLE_DEVICES."
        )
    return session
