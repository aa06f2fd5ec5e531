"""One ONNX segmenter class for every mask model: MediaPipe selfie, rembg's family, IS-Net, any ONNX at a URI.

rembg runs one image at a time and min-max normalises over the whole output tensor; batched, that
would let one image's scores rescale another's mask, so normalisation here is per sample. Graphs
exported with a fixed batch of 1 are made dynamic and checked against single runs before we trust them,
the first time a batch of more than one image arrives: on CPU the job runs batch 1, and the check costs
four 1024² forward passes for IS-Net (about 60 s on 2 busy cores), which a batch-1 actor never needs.
The `onnx` package is imported for that rewrite only: importing it costs 1.4 s of CPU, and parsing IS-Net's
88 MB graph with it more, in every actor, on a 2-core machine where the actor's start is on the job's
critical path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from idphoto_ray.config import Preprocess
from idphoto_ray.models.session import create_session
from idphoto_ray.types import Device

if TYPE_CHECKING:
    import onnx

#: MediaPipe selfie segmentation after our TFLite→ONNX conversion: [0, 1] input, probability output.
MEDIAPIPE_SELFIE_PREPROCESS = Preprocess(
    input_size=256, scale="unit", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), minmax=False
)

BATCH_TOLERANCE = 1e-4

log = logging.getLogger(__name__)


def _set_batch_dim(value_info: onnx.ValueInfoProto, symbol: str) -> None:
    dims = value_info.type.tensor_type.shape.dim
    if len(dims) > 0:
        dims[0].Clear()
        dims[0].dim_param = symbol


def make_batch_dynamic(model: onnx.ModelProto, symbol: str = "N") -> onnx.ModelProto:
    """Copy of `model` whose inputs and outputs have a symbolic batch dimension.

    Intermediate value_info still carries the old batch of 1 and would make ORT reject batch > 1,
    so it is cleared. No `onnx.checker` here: real third-party graphs fail it for reasons that have
    nothing to do with the batch (IS-Net's fp16 export lists nodes out of topological order, which
    ONNX Runtime accepts and sorts itself). ONNX Runtime loading the copy and `verify_batch_equivalence`
    are the checks that matter; graphs that hard-code the batch elsewhere (a Reshape to [1, ...]) fail there.
    """
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    initializers = {init.name for init in out.graph.initializer}
    for vi in out.graph.input:
        if vi.name not in initializers:
            _set_batch_dim(vi, symbol)
    for vi in out.graph.output:
        _set_batch_dim(vi, symbol)
    del out.graph.value_info[:]
    return out


def fixed_batch_size(model: onnx.ModelProto) -> int | None:
    """The first graph input's batch dimension when it is a fixed number, else None (dynamic)."""
    initializers = {init.name for init in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            return int(dims[0].dim_value)
        return None
    return None


def verify_batch_equivalence(
    session, input_shape: tuple[int, ...], n: int = 2, seed: int = 0
) -> tuple[bool, str]:
    """Does one batch-`n` run equal `n` single runs on every output?

    The tolerance is BATCH_TOLERANCE relative to max(1, |output|): raw logits (BiRefNet) can be ~10
    and batched kernels sum in a different order. n=2 keeps the check cheap for 1024² models.
    """
    rng = np.random.default_rng(seed)
    name = session.get_inputs()[0].name
    x = rng.standard_normal((n, *input_shape), dtype=np.float32)
    try:
        batched = session.run(None, {name: x})
        singles = [session.run(None, {name: x[i : i + 1]}) for i in range(n)]
    except Exception as exc:  # ORT raises plain RuntimeError/Fail subclasses for shape clashes
        return False, f"batch-{n} run failed: {str(exc).splitlines()[0][:200]}"
    for k, out in enumerate(batched):
        expected = np.concatenate([s[k] for s in singles], axis=0)
        if out.shape != expected.shape:
            return False, f"output {k} has shape {out.shape} for batch {n}, expected {expected.shape}"
        diff = float(np.max(np.abs(out.astype(np.float64) - expected)))
        if diff > BATCH_TOLERANCE * max(1.0, float(np.max(np.abs(expected)))):
            return False, f"output {k} differs from single runs by {diff:.2e} > {BATCH_TOLERANCE:g}"
    return True, f"batch-{n} output equals {n} single runs"


def session_batch_size(session) -> int | None:
    """The session's first input's batch dimension when it is a fixed number, else None (dynamic).

    What `fixed_batch_size` says of the graph, read from the loaded session: no second parse of the model.
    """
    dim = session.get_inputs()[0].shape[0]
    return int(dim) if isinstance(dim, int) and dim > 0 else None


def _load_model(model: bytes | str | Path) -> onnx.ModelProto:
    import onnx

    if isinstance(model, bytes):
        return onnx.load_from_string(model)
    return onnx.load(str(model))


def model_input(image: np.ndarray, size: int) -> np.ndarray:
    """Square resize to the model's input; INTER_AREA when shrinking avoids aliasing, LINEAR when enlarging.

    The pipeline calls this in its CPU prepare stage, so only size²×3 bytes per photo travel to the
    segmentation actors; an image already at the size passes through untouched. rembg uses PIL LANCZOS;
    the difference in the mask is far below what the refinement stage changes, and cv2 is several times
    faster.
    """
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interp = cv2.INTER_AREA if (h >= size and w >= size) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def preprocess_batch(images: list[np.ndarray], pre: Preprocess) -> np.ndarray:
    """RGB uint8 images of any sizes → float32 model input batch per `pre`.

    Each image is normalised in place and written once into the batch in the model's layout: IS-Net's
    1024² input took 45 ms of the actor's single thread per photo as whole-batch passes, 29 ms this way,
    with the same bits.
    """
    size = pre.input_size
    nchw = pre.layout == "nchw"
    batch = np.empty((len(images), 3, size, size) if nchw else (len(images), size, size, 3), np.float32)
    mean, std = np.asarray(pre.mean, np.float32), np.asarray(pre.std, np.float32)
    for i, img in enumerate(images):
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image {i}: expected RGB HxWx3, got shape {img.shape}")
        x = model_input(img, size).astype(np.float32)
        if pre.scale == "unit":
            x /= 255.0
        elif pre.scale == "image_max":
            x /= max(float(x.max()), 1e-6)
        elif pre.scale == "minus_one_one":
            x = x / 127.5 - 1.0
        x -= mean
        x /= std
        batch[i] = x.transpose(2, 0, 1) if nchw else x
    return batch


def postprocess(raw: np.ndarray, pre: Preprocess) -> np.ndarray:
    """Raw model output → float32 (N, S, S) masks in [0, 1], normalised per sample."""
    if raw.ndim == 4:
        raw = raw[:, 0] if pre.layout == "nchw" else raw[..., 0]
    elif raw.ndim != 3:
        raise ValueError(f"segmentation output must be 3-D or 4-D, got shape {raw.shape}")
    pred = raw.astype(np.float32)
    if pred.shape[1:] != (pre.input_size, pre.input_size):
        size = (pre.input_size, pre.input_size)
        pred = np.stack([cv2.resize(p, size, interpolation=cv2.INTER_LINEAR) for p in pred])
    if pre.sigmoid:
        pred = 1.0 / (1.0 + np.exp(-pred))
    if pre.minmax:
        lo = pred.min(axis=(1, 2), keepdims=True)
        span = pred.max(axis=(1, 2), keepdims=True) - lo
        pred = np.where(span > 1e-12, (pred - lo) / np.maximum(span, 1e-12), 0.0)
    return np.clip(pred, 0.0, 1.0).astype(np.float32)


class OnnxSegmenter:
    """Segmenter over one ONNX Runtime session; one `session.run` per batch when the graph allows.

    `batched` tells whether a batch goes through in one run; `info` says why not when it doesn't. For a
    graph with a fixed batch of 1 both are settled by `ensure_batching()`, called on the first call with
    more than one image; until then the session is the original graph.
    """

    def __init__(
        self,
        model: bytes | str | Path,
        preprocess: Preprocess,
        device: Device = "cpu",
        intra_op_num_threads: int | None = None,
        tensorrt: bool = False,
        trt_cache_dir: str | None = None,
    ) -> None:
        self.preprocess = preprocess
        self.input_size = preprocess.input_size
        self._session_args = (device, intra_op_num_threads, tensorrt, trt_cache_dir)
        self.session = create_session(model, *self._session_args)
        self.input_name = self.session.get_inputs()[0].name
        # Only the mask is fetched: IS-Net's graph also returns 11 side outputs (11 × 4 MB per image). A
        # graph cut to its mask (mask_graph.py) has that one output left.
        outputs = self.session.get_outputs()
        self.output_name = outputs[preprocess.output_index if len(outputs) > 1 else 0].name
        self._pending = session_batch_size(self.session) == 1
        self.batched = not self._pending
        self.info = "dynamic batch"
        # The graph is parsed (with `onnx`) only if a batch of more than one ever arrives.
        self._model: bytes | str | Path | None = model if self._pending else None
        if self._pending:
            self.info = "fixed batch 1; made dynamic on the first batch of more than one"

    def ensure_batching(self) -> bool:
        """Make a fixed-batch-1 graph dynamic once, keeping it only if a batch equals single runs."""
        if not self._pending:
            return self.batched
        self._pending = False
        try:
            dynamic = make_batch_dynamic(_load_model(self._model)).SerializeToString()
            candidate = create_session(dynamic, *self._session_args)
            ok, detail = verify_batch_equivalence(candidate, self._sample_shape())
        except Exception as exc:  # ORT refuses the rewritten graph: same outcome as a failed check
            ok, detail = False, f"rewritten graph does not load: {str(exc).splitlines()[0][:200]}"
        self._model = None
        if ok:
            self.session, self.batched = candidate, True
            self.info = f"fixed batch 1 made dynamic; {detail}"
        else:
            self.info = f"fixed batch 1 cannot be made dynamic ({detail}); running one image at a time"
            log.warning("segmenter: %s", self.info)
        return self.batched

    def _sample_shape(self) -> tuple[int, int, int]:
        """Per-sample input shape from the preprocess declaration (graph dims may be symbolic)."""
        s = self.input_size
        return (3, s, s) if self.preprocess.layout == "nchw" else (s, s, 3)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.input_size, self.input_size), np.float32)
        x = preprocess_batch(images, self.preprocess)
        if len(x) == 1 or self.ensure_batching():
            raw = self._run(x)
        else:
            raw = np.concatenate([self._run(x[i : i + 1]) for i in range(len(x))])
        return postprocess(raw, self.preprocess)
