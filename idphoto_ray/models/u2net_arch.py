"""Random-weight U²-Net of the published architecture (Qin et al. 2020), built with `onnx.helper`.

Not for real use: the weights are random. It exists so benchmarks pay the true cost of the
production model (same layers, channels and 7 sigmoid outputs as u2net.onnx) and tests exercise
u2net-shaped I/O on machines that cannot download the real file. No torch dependency.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from idphoto_ray.atomic import atomic_write_bytes

Variant = Literal["u2net", "u2netp"]

INPUT_NAME = "input.1"
OUTPUT_NAMES = tuple(f"d{i}" for i in range(7))
INPUT_SIZE = 320
OPSET = 17
_BUFFER_SUFFIXES = (".running_mean", ".running_var")

# (kind, in_ch, mid_ch, out_ch) for stage1..6 then stage5d..1d, as in the paper's Table/upstream model.
_STAGES: dict[str, list[tuple[str, int, int, int]]] = {
    "u2net": [
        ("RSU7", 3, 32, 64),
        ("RSU6", 64, 32, 128),
        ("RSU5", 128, 64, 256),
        ("RSU4", 256, 128, 512),
        ("RSU4F", 512, 256, 512),
        ("RSU4F", 512, 256, 512),
        ("RSU4F", 1024, 256, 512),
        ("RSU4", 1024, 128, 256),
        ("RSU5", 512, 64, 128),
        ("RSU6", 256, 32, 64),
        ("RSU7", 128, 16, 64),
    ],
    "u2netp": [
        ("RSU7", 3, 16, 64),
        ("RSU6", 64, 16, 64),
        ("RSU5", 64, 16, 64),
        ("RSU4", 64, 16, 64),
        ("RSU4F", 64, 16, 64),
        ("RSU4F", 64, 16, 64),
        ("RSU4F", 128, 16, 64),
        ("RSU4", 128, 16, 64),
        ("RSU5", 128, 16, 64),
        ("RSU6", 128, 16, 64),
        ("RSU7", 128, 16, 64),
    ],
}


# Mean-square growth of a 2×2 max-pool over ReLU outputs; a data-free estimate used to set BN statistics.
_POOL_GAIN = 2.0


class _Graph:
    """Accumulates nodes and He-initialised weights with torch-like parameter names.

    Random weights with BN statistics of (0, 1) let activations grow ×2–4 at every residual add, so
    after eleven stages the side logits saturate the sigmoids. We track each tensor's expected mean
    square `q` and give every BN the running variance a trained net would have, keeping activations O(1).
    """

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.q: dict[str, float] = {INPUT_NAME: 1.0}
        self._n = 0

    def tmp(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def conv(
        self, x: str, cin: int, cout: int, prefix: str, k: int = 3, dil: int = 1, std: float | None = None
    ) -> str:
        fan_in = cin * k * k
        std = np.sqrt(2.0 / fan_in) if std is None else std
        w = (self.rng.standard_normal((cout, cin, k, k), dtype=np.float32) * std).astype(np.float32)
        wn = self.const(f"{prefix}.weight", w)
        bn = self.const(f"{prefix}.bias", np.zeros(cout, np.float32))
        pad = dil * (k // 2)
        out = self.tmp(prefix)
        self.nodes.append(
            helper.make_node(
                "Conv", [x, wn, bn], [out], kernel_shape=[k, k], pads=[pad] * 4, dilations=[dil, dil]
            )
        )
        return out

    def rebnconv(self, x: str, cin: int, cout: int, prefix: str, dil: int = 1) -> str:
        """Conv3x3(dilated) → BatchNorm → ReLU; BN kept so the parameter count matches the paper."""
        y = self.conv(x, cin, cout, f"{prefix}.conv_s1", dil=dil)
        p = f"{prefix}.bn_s1"
        names = [
            self.const(f"{p}.weight", np.ones(cout, np.float32)),
            self.const(f"{p}.bias", np.zeros(cout, np.float32)),
            self.const(f"{p}.running_mean", np.zeros(cout, np.float32)),
            self.const(f"{p}.running_var", np.full(cout, 2.0 * self.q[x], np.float32)),
        ]
        z = self.tmp(p)
        self.nodes.append(helper.make_node("BatchNormalization", [y, *names], [z], epsilon=1e-5))
        r = self.tmp(f"{prefix}.relu")
        self.nodes.append(helper.make_node("Relu", [z], [r]))
        self.q[r] = 0.5
        return r

    def op(self, op_type: str, inputs: list[str], hint: str, q: float | None = None, **attrs) -> str:
        out = self.tmp(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        if q is not None:
            self.q[out] = q
        return out

    def pool(self, x: str) -> str:
        return self.op(
            "MaxPool", [x], "pool", q=_POOL_GAIN * self.q[x], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1
        )

    def cat(self, a: str, b: str) -> str:
        return self.op("Concat", [a, b], "cat", q=(self.q[a] + self.q[b]) / 2, axis=1)

    def add(self, a: str, b: str, hint: str) -> str:
        """Residual add of two positively correlated ReLU outputs."""
        qa, qb = self.q[a], self.q[b]
        return self.op("Add", [a, b], hint, q=qa + qb + float(np.sqrt(qa * qb)))

    def upsample_like(self, src: str, tar: str) -> str:
        """Bilinear resize of `src` to `tar`'s H×W, computed at run time so any input size works."""
        nc = self.op("Shape", [src], "shape_nc", start=0, end=2)
        hw = self.op("Shape", [tar], "shape_hw", start=2, end=4)
        sizes = self.op("Concat", [nc, hw], "sizes", axis=0)
        return self.op(
            "Resize",
            [src, "", "", sizes],
            "up",
            q=self.q.get(src),
            mode="linear",
            coordinate_transformation_mode="pytorch_half_pixel",
        )


def _rsu(g: _Graph, x: str, kind: str, cin: int, mid: int, cout: int, prefix: str) -> str:
    """Residual U-block: RSU-L is an L-level U-Net inside one stage; RSU-4F dilates instead of pooling."""
    hxin = g.rebnconv(x, cin, cout, f"{prefix}.rebnconvin")
    if kind == "RSU4F":
        h1 = g.rebnconv(hxin, cout, mid, f"{prefix}.rebnconv1", 1)
        h2 = g.rebnconv(h1, mid, mid, f"{prefix}.rebnconv2", 2)
        h3 = g.rebnconv(h2, mid, mid, f"{prefix}.rebnconv3", 4)
        h4 = g.rebnconv(h3, mid, mid, f"{prefix}.rebnconv4", 8)
        d3 = g.rebnconv(g.cat(h4, h3), 2 * mid, mid, f"{prefix}.rebnconv3d", 4)
        d2 = g.rebnconv(g.cat(d3, h2), 2 * mid, mid, f"{prefix}.rebnconv2d", 2)
        d1 = g.rebnconv(g.cat(d2, h1), 2 * mid, cout, f"{prefix}.rebnconv1d", 1)
        return g.add(d1, hxin, f"{prefix}.res")
    depth = int(kind[3:])
    enc = [g.rebnconv(hxin, cout, mid, f"{prefix}.rebnconv1")]
    for level in range(2, depth):
        enc.append(g.rebnconv(g.pool(enc[-1]), mid, mid, f"{prefix}.rebnconv{level}"))
    top = g.rebnconv(enc[-1], mid, mid, f"{prefix}.rebnconv{depth}", dil=2)
    d = g.rebnconv(g.cat(top, enc[-1]), 2 * mid, mid, f"{prefix}.rebnconv{depth - 1}d")
    for level in range(depth - 2, 0, -1):
        skip = enc[level - 1]
        ch_out = cout if level == 1 else mid
        d = g.rebnconv(g.cat(g.upsample_like(d, skip), skip), 2 * mid, ch_out, f"{prefix}.rebnconv{level}d")
    return g.add(d, hxin, f"{prefix}.res")


def build_u2net(variant: Variant = "u2net", seed: int = 0) -> onnx.ModelProto:
    """U²-Net or U²-Net-P, random He-initialised weights: input N×3×320×320, outputs d0..d6 N×1×320×320."""
    if variant not in _STAGES:
        raise ValueError(f"unknown U²-Net variant {variant!r}; known: {sorted(_STAGES)}")
    spec = _STAGES[variant]
    g = _Graph(seed)
    x = INPUT_NAME
    enc: list[str] = []
    for i, (kind, cin, mid, cout) in enumerate(spec[:6], start=1):
        x = _rsu(g, x, kind, cin, mid, cout, f"stage{i}")
        enc.append(x)
        if i < 6:
            x = g.pool(x)
    dec: dict[int, str] = {6: enc[5]}
    d = enc[5]
    for j, (kind, cin, mid, cout) in zip(range(5, 0, -1), spec[6:], strict=False):
        d = _rsu(g, g.cat(g.upsample_like(d, enc[j - 1]), enc[j - 1]), kind, cin, mid, cout, f"stage{j}d")
        dec[j] = d
    side_in = {j: spec[6 + 5 - j][3] if j < 6 else spec[5][3] for j in range(1, 7)}
    sides: list[str] = []
    for j in range(1, 7):
        s = g.conv(dec[j], side_in[j], 1, f"side{j}", std=1.0 / np.sqrt(9.0 * side_in[j] * g.q[dec[j]]))
        sides.append(s if j == 1 else g.upsample_like(s, sides[0]))
    fused = g.conv(g.op("Concat", sides, "cat_sides", axis=1), 6, 1, "outconv", k=1, std=1.0 / np.sqrt(6.0))
    for name, logit in zip(OUTPUT_NAMES, [fused, *sides], strict=False):
        g.nodes.append(helper.make_node("Sigmoid", [logit], [name]))
    out_shape = ["N", 1, INPUT_SIZE, INPUT_SIZE]
    graph = helper.make_graph(
        g.nodes,
        f"{variant}-arch (random weights, not for real use)",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, out_shape) for o in OUTPUT_NAMES],
        g.inits,
    )
    opsets = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="idphoto-ray")
    model.doc_string = f"{variant} architecture with random weights (seed {seed}) - NOT FOR REAL USE"
    onnx.checker.check_model(model)
    return model


def count_parameters(model: onnx.ModelProto) -> int:
    """Trainable parameters as torch counts them: conv weights/biases and BN affine, not BN running stats."""
    return sum(
        int(np.prod(init.dims))
        for init in model.graph.initializer
        if not init.name.endswith(_BUFFER_SUFFIXES)
    )


def generate(variant: Variant, path: Path, seed: int = 0) -> Path:
    """Write the random-weight model to `path` once (atomic rename) and return it."""
    if path.exists():
        return path
    return atomic_write_bytes(path, build_u2net(variant, seed).SerializeToString(), fsync=True)
