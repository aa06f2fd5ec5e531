"""A focused TFLite → ONNX converter for the MediaPipe models we ship (selfie, BlazeFace short and full range,
face mesh).

General converters either fail on HARD_SWISH and MediaPipe's custom `Convolution2DTransposeBias` or are
unmaintained, so we convert exactly the ops these files contain and check every output against LiteRT
in the tests. Layout rule: every rank-4 activation is NCHW in ONNX; other ranks keep TFLite's layout.
The batch dimension is dynamic; every other dimension is static, which lets SAME padding be written
as explicit (possibly asymmetric) pads instead of ONNX's auto_pad.
"""

from __future__ import annotations

import struct

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper
from tflite.ActivationFunctionType import ActivationFunctionType as Act
from tflite.BuiltinOperator import BuiltinOperator
from tflite.DimensionType import DimensionType
from tflite.Padding import Padding
from tflite.TensorType import TensorType

OPSET = 17
BATCH = "batch"
_OP_NAMES = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
_NUMPY_TYPES = {
    TensorType.FLOAT32: np.float32,
    TensorType.FLOAT16: np.float16,
    TensorType.INT32: np.int32,
    TensorType.INT64: np.int64,
}
_NHWC_TO_NCHW_AXIS = (0, 2, 3, 1)
_TO_NCHW = (0, 3, 1, 2)
_TO_NHWC = (0, 2, 3, 1)


class UnsupportedTFLite(ValueError):
    """The file uses an op, option or tensor type outside what this converter handles."""


def _options(op: tflite.Operator, cls: type) -> object:
    table = op.BuiltinOptions()
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow SAME padding for one axis as (begin, end); the extra pixel goes at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Converter:
    def __init__(self, data: bytes) -> None:
        self.model = tflite.Model.GetRootAsModel(data, 0)
        if self.model.SubgraphsLength() != 1:
            raise UnsupportedTFLite("only single-subgraph models are supported")
        self.graph = self.model.Subgraphs(0)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.consts: dict[int, np.ndarray] = {}
        self.names: dict[int, str] = {}
        self._used: set[str] = set()
        self._counter = 0
        self._pending: list[onnx.NodeProto] = []

    # -- tensors -------------------------------------------------------------------------------------
    def shape(self, idx: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.graph.Tensors(idx).ShapeAsNumpy())

    def name(self, idx: int) -> str:
        if idx not in self.names:
            base = self.graph.Tensors(idx).Name().decode() or f"t{idx}"
            name = base if base not in self._used else f"{base}__{idx}"
            self._used.add(name)
            self.names[idx] = name
        return self.names[idx]

    def fresh(self, hint: str) -> str:
        self._counter += 1
        name = f"{hint}__{self._counter}"
        self._used.add(name)
        return name

    def const(self, idx: int) -> np.ndarray | None:
        """The tensor's value if it is a constant (a buffer or a dequantized buffer), else None."""
        if idx in self.consts:
            return self.consts[idx]
        tensor = self.graph.Tensors(idx)
        buf = self.model.Buffers(tensor.Buffer())
        if buf is None or buf.DataLength() == 0:
            return None
        if tensor.Type() not in _NUMPY_TYPES:
            raise UnsupportedTFLite(f"tensor {self.name(idx)!r} has unsupported type {tensor.Type()}")
        if tensor.Quantization() is not None and tensor.Quantization().ScaleLength() > 0:
            raise UnsupportedTFLite(f"tensor {self.name(idx)!r} is integer-quantized")
        raw = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=_NUMPY_TYPES[tensor.Type()])
        sparsity = tensor.Sparsity()
        if sparsity is None:
            value = raw.reshape(self.shape(idx))
        else:
            value = densify(raw, self.shape(idx), sparsity, self.name(idx))
        self.consts[idx] = value
        return value

    def initializer(self, value: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def add(self, op_type: str, inputs: list[str], outputs: list[str], **attrs: object) -> None:
        """Append a node, then any fused activation queued for its output (ONNX wants topological order)."""
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.fresh(op_type), **attrs))
        self.nodes.extend(self._pending)
        self._pending.clear()

    def _activation(self, op_type: str, inputs: list[str], outputs: list[str]) -> None:
        self._pending.append(helper.make_node(op_type, inputs, outputs, name=self.fresh(op_type)))

    def activated(self, out_idx: int, activation: int) -> str:
        """Name an op should write to, emitting the fused activation into the real output if needed."""
        out = self.name(out_idx)
        if activation == Act.NONE:
            return out
        pre = self.fresh(out + "_pre_act")
        if activation == Act.RELU:
            self._activation("Relu", [pre], [out])
        elif activation in (Act.RELU6, Act.RELU_N1_TO_1):
            lo, hi = (0.0, 6.0) if activation == Act.RELU6 else (-1.0, 1.0)
            lo_name = self.initializer(np.array(lo, np.float32), "clip_min")
            hi_name = self.initializer(np.array(hi, np.float32), "clip_max")
            self._activation("Clip", [pre, lo_name, hi_name], [out])
        elif activation == Act.TANH:
            self._activation("Tanh", [pre], [out])
        else:
            raise UnsupportedTFLite(f"fused activation {activation} is not supported")
        return pre

    def operand(self, idx: int, other_rank: int) -> str:
        """An elementwise operand; constants are re-laid out so they broadcast against NCHW activations."""
        value = self.const(idx)
        if value is None:
            return self.name(idx)
        value = value.astype(np.float32) if value.dtype == np.float16 else value
        if other_rank == 4 and value.ndim == 4:
            value = value.transpose(_TO_NCHW)
        elif other_rank == 4 and value.ndim in (1, 3) and value.size > 1:
            if value.ndim == 3 and value.shape[:2] != (1, 1):
                raise UnsupportedTFLite(
                    f"rank-3 constant of shape {value.shape} is not a per-channel (1, 1, C) operand"
                )
            value = value.reshape(-1, 1, 1)
        return self.initializer(value, self.name(idx) + "_const")

    # -- ops -----------------------------------------------------------------------------------------
    def convert_op(self, op: tflite.Operator) -> None:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        ins = [op.Inputs(i) for i in range(op.InputsLength())]
        outs = [op.Outputs(i) for i in range(op.OutputsLength())]
        kind = _OP_NAMES.get(builtin, str(builtin))
        if kind == "CUSTOM":
            custom = code.CustomCode().decode()
            if custom != "Convolution2DTransposeBias":
                raise UnsupportedTFLite(f"custom op {custom!r} is not supported")
            self.transpose_conv_bias(op, ins, outs)
            return
        handler = getattr(self, "op_" + kind.lower(), None)
        if handler is None:
            raise UnsupportedTFLite(f"op {kind} is not supported")
        handler(op, ins, outs)

    def op_dequantize(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        value = self.const(ins[0])
        if value is None:
            self.add("Cast", [self.name(ins[0])], [self.name(outs[0])], to=TensorProto.FLOAT)
            return
        self.consts[outs[0]] = value.astype(np.float32)

    def op_densify(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        """Sparse weights become dense constants at conversion time (const() expands the sparse buffer)."""
        value = self.const(ins[0])
        if value is None:
            raise UnsupportedTFLite("DENSIFY needs a constant sparse input")
        self.consts[outs[0]] = value

    def op_depth_to_space(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        """TFLite's NHWC depth index is (i·bs + j)·C + c, which is ONNX's DCR order on NCHW."""
        block = _options(op, tflite.DepthToSpaceOptions).BlockSize()
        self.add("DepthToSpace", [self.name(ins[0])], [self.name(outs[0])], blocksize=block, mode="DCR")

    def _conv(self, op: tflite.Operator, ins: list[int], outs: list[int], depthwise: bool) -> None:
        cls = tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions
        opts = _options(op, cls)
        weights = self.const(ins[1])
        if weights is None:
            raise UnsupportedTFLite("convolution weights must be constant")
        _, h, w, c_in = self.shape(ins[0])
        weights = weights.astype(np.float32)
        if depthwise:
            kernel = weights.transpose(3, 0, 1, 2)  # 1,kh,kw,C*M -> C*M,1,kh,kw
            group = c_in
        else:
            kernel = weights.transpose(_TO_NCHW)  # O,kh,kw,I -> O,I,kh,kw
            group = 1
        kh, kw = kernel.shape[2:]
        stride = (opts.StrideH(), opts.StrideW())
        dilation = (opts.DilationHFactor() or 1, opts.DilationWFactor() or 1)
        if opts.Padding() == Padding.SAME:
            pt, pb = same_pads(h, kh, stride[0], dilation[0])
            pl, pr = same_pads(w, kw, stride[1], dilation[1])
        else:
            pt = pb = pl = pr = 0
        inputs = [self.name(ins[0]), self.initializer(kernel, self.name(ins[1]) + "_oihw")]
        if len(ins) > 2 and ins[2] >= 0:
            bias = self.const(ins[2]).astype(np.float32)
            inputs.append(self.initializer(bias, self.name(ins[2]) + "_bias"))
        out = self.activated(outs[0], opts.FusedActivationFunction())
        self.add(
            "Conv",
            inputs,
            [out],
            kernel_shape=[kh, kw],
            strides=list(stride),
            dilations=list(dilation),
            pads=[pt, pl, pb, pr],
            group=group,
        )

    def op_conv_2d(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._conv(op, ins, outs, depthwise=False)

    def op_depthwise_conv_2d(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._conv(op, ins, outs, depthwise=True)

    def transpose_conv_bias(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        """MediaPipe's transposed conv + bias; options: raw int32 {padding, stride_w, stride_h}."""
        padding, stride_w, stride_h = struct.unpack("<3i", op.CustomOptionsAsNumpy().tobytes()[:12])
        weights = self.const(ins[1]).astype(np.float32)  # O,kh,kw,I
        kernel = weights.transpose(3, 0, 1, 2)  # I,O,kh,kw
        _, h, w, _ = self.shape(ins[0])
        _, oh, ow, _ = self.shape(outs[0])
        kh, kw = kernel.shape[2:]
        pads = []
        for size, out, k, s in ((h, oh, kh, stride_h), (w, ow, kw, stride_w)):
            total = (size - 1) * s + k - out
            if total < 0 or (padding != 1 and total != 0):
                raise UnsupportedTFLite("transposed conv output size needs output_padding")
            pads.append((total // 2, total - total // 2))
        bias = self.initializer(self.const(ins[2]).astype(np.float32), self.name(ins[2]) + "_bias")
        self.add(
            "ConvTranspose",
            [self.name(ins[0]), self.initializer(kernel, self.name(ins[1]) + "_iohw"), bias],
            [self.name(outs[0])],
            kernel_shape=[kh, kw],
            strides=[stride_h, stride_w],
            pads=[pads[0][0], pads[1][0], pads[0][1], pads[1][1]],
        )

    def _pool(self, op: tflite.Operator, ins: list[int], outs: list[int], onnx_op: str) -> None:
        opts = _options(op, tflite.Pool2DOptions)
        _, h, w, _ = self.shape(ins[0])
        kh, kw, sh, sw = opts.FilterHeight(), opts.FilterWidth(), opts.StrideH(), opts.StrideW()
        if opts.Padding() == Padding.SAME:
            (pt, pb), (pl, pr) = same_pads(h, kh, sh), same_pads(w, kw, sw)
        else:
            pt = pb = pl = pr = 0
        extra = {"count_include_pad": 0} if onnx_op == "AveragePool" else {}
        out = self.activated(outs[0], opts.FusedActivationFunction())
        self.add(
            onnx_op,
            [self.name(ins[0])],
            [out],
            kernel_shape=[kh, kw],
            strides=[sh, sw],
            pads=[pt, pl, pb, pr],
            **extra,
        )

    def op_average_pool_2d(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._pool(op, ins, outs, "AveragePool")

    def op_max_pool_2d(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._pool(op, ins, outs, "MaxPool")

    def _unary(self, onnx_op: str, ins: list[int], outs: list[int]) -> None:
        self.add(onnx_op, [self.name(ins[0])], [self.name(outs[0])])

    def op_relu(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._unary("Relu", ins, outs)

    def op_hard_swish(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._unary("HardSwish", ins, outs)

    def op_logistic(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._unary("Sigmoid", ins, outs)

    def op_prelu(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        rank = len(self.shape(ins[0]))
        self.add("PRelu", [self.name(ins[0]), self.operand(ins[1], rank)], [self.name(outs[0])])

    def _binary(self, op: tflite.Operator, ins: list[int], outs: list[int], onnx_op: str, cls: type) -> None:
        rank = max(len(self.shape(i)) for i in ins)
        out = self.activated(outs[0], _options(op, cls).FusedActivationFunction())
        self.add(onnx_op, [self.operand(ins[0], rank), self.operand(ins[1], rank)], [out])

    def op_add(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._binary(op, ins, outs, "Add", tflite.AddOptions)

    def op_mul(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._binary(op, ins, outs, "Mul", tflite.MulOptions)

    def op_resize_bilinear(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        opts = _options(op, tflite.ResizeBilinearOptions)
        if opts.AlignCorners():
            mode = "align_corners"
        elif opts.HalfPixelCenters():
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        _, h, w, _ = self.shape(ins[0])
        _, oh, ow, _ = self.shape(outs[0])
        scales = self.initializer(np.array([1.0, 1.0, oh / h, ow / w], np.float32), "resize_scales")
        self.add(
            "Resize",
            [self.name(ins[0]), "", scales],
            [self.name(outs[0])],
            mode="linear",
            coordinate_transformation_mode=mode,
        )

    def op_pad(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        paddings = self.const(ins[1])
        if paddings is None:
            raise UnsupportedTFLite("PAD needs constant paddings")
        paddings = paddings.astype(np.int64)
        if paddings.shape[0] == 4:
            paddings = paddings[list(_TO_NCHW)]
        pads = self.initializer(np.concatenate([paddings[:, 0], paddings[:, 1]]), "pads")
        self.add("Pad", [self.name(ins[0]), pads], [self.name(outs[0])], mode="constant")

    def op_reshape(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        source = self.name(ins[0])
        if len(self.shape(ins[0])) == 4:
            nhwc = self.fresh(source + "_nhwc")
            self.add("Transpose", [source], [nhwc], perm=list(_TO_NHWC))
            source = nhwc
        out_shape = list(self.shape(outs[0]))
        target = self.initializer(np.array([-1, *out_shape[1:]], np.int64), "reshape_shape")
        if len(out_shape) == 4:
            flat = self.fresh(self.name(outs[0]) + "_nhwc")
            self.add("Reshape", [source, target], [flat])
            self.add("Transpose", [flat], [self.name(outs[0])], perm=list(_TO_NCHW))
        else:
            self.add("Reshape", [source, target], [self.name(outs[0])])

    def op_concatenation(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        opts = _options(op, tflite.ConcatenationOptions)
        rank = len(self.shape(outs[0]))
        axis = opts.Axis() % rank
        if rank == 4:
            axis = _NHWC_TO_NCHW_AXIS[axis]
        out = self.activated(outs[0], opts.FusedActivationFunction())
        self.add("Concat", [self.operand(i, rank) for i in ins], [out], axis=axis)

    # -- graph ---------------------------------------------------------------------------------------
    def value_info(self, idx: int) -> onnx.ValueInfoProto:
        shape = list(self.shape(idx))
        if len(shape) == 4:
            shape = [shape[i] for i in _TO_NCHW]
        dims: list[int | str] = [BATCH, *shape[1:]]
        return helper.make_tensor_value_info(self.name(idx), TensorProto.FLOAT, dims)

    def convert(self) -> onnx.ModelProto:
        inputs = [self.graph.Inputs(i) for i in range(self.graph.InputsLength())]
        outputs = [self.graph.Outputs(i) for i in range(self.graph.OutputsLength())]
        for idx in inputs + outputs:
            self.name(idx)
        for i in range(self.graph.OperatorsLength()):
            self.convert_op(self.graph.Operators(i))
        graph = helper.make_graph(
            self.nodes,
            "tflite_converted",
            [self.value_info(i) for i in inputs],
            [self.value_info(i) for i in outputs],
            initializer=self.initializers,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="idphoto-ray.tflite_to_onnx"
        )
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def _index_vector(vector_type: int, table: object) -> np.ndarray:
    """A DimensionMetadata segments/indices union (int32, uint16 or uint8 vector) as an int64 array."""
    classes = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}
    if vector_type not in classes:
        raise UnsupportedTFLite(f"sparse index vector type {vector_type} is not supported")
    vec = classes[vector_type]()
    vec.Init(table.Bytes, table.Pos)
    return vec.ValuesAsNumpy().astype(np.int64)


def densify(
    values: np.ndarray, shape: tuple[int, ...], sparsity: tflite.SparsityParameters, name: str = "?"
) -> np.ndarray:
    """Expand a TFLite sparse constant (TACO-style per-dimension DENSE / SPARSE_CSR metadata) to dense.

    The stored values follow a depth-first walk of the dimensions in traversal order: a dense level visits
    every coordinate, a CSR level visits indices[segments[p]:segments[p + 1]] of its parent position p.
    Expanding level by level in row order gives the same sequence. Block-sparse layouts (block_map) are
    not used by MediaPipe's face detector and are refused.
    """
    if sparsity.BlockMapLength():
        raise UnsupportedTFLite(f"tensor {name!r}: block-sparse constants are not supported")
    order = [int(d) for d in sparsity.TraversalOrderAsNumpy()]
    if sorted(order) != list(range(len(shape))) or sparsity.DimMetadataLength() != len(shape):
        raise UnsupportedTFLite(f"tensor {name!r}: sparsity metadata does not match shape {shape}")
    parents = np.zeros(1, np.int64)  # position of each partial walk in its level's storage
    coords = np.zeros((1, 0), np.int64)  # the dense coordinates chosen so far, in traversal order
    for level in range(len(shape)):
        meta = sparsity.DimMetadata(level)
        if meta.Format() == DimensionType.DENSE:
            size = int(meta.DenseSize())
            children = np.arange(size, dtype=np.int64)
            parents = (parents[:, None] * size + children[None, :]).ravel()
            coords = np.concatenate(
                [np.repeat(coords, size, axis=0), np.tile(children, len(coords))[:, None]], axis=1
            )
        else:
            segments = _index_vector(meta.ArraySegmentsType(), meta.ArraySegments())
            indices = _index_vector(meta.ArrayIndicesType(), meta.ArrayIndices())
            starts, stops = segments[parents], segments[parents + 1]
            counts = stops - starts
            positions = np.repeat(stops - counts.cumsum(), counts) + np.arange(int(counts.sum()))
            coords = np.concatenate([np.repeat(coords, counts, axis=0), indices[positions][:, None]], axis=1)
            parents = positions
    if len(coords) != values.size:
        raise UnsupportedTFLite(
            f"tensor {name!r}: {values.size} stored values for {len(coords)} sparse positions"
        )
    dense = np.zeros(shape, values.dtype)
    original = np.empty_like(coords)
    original[:, order] = coords
    dense[tuple(original.T)] = values
    return dense


def list_ops(tflite_bytes: bytes) -> dict[str, int]:
    """Op histogram of a TFLite file (custom ops as `CUSTOM:<name>`), to see what a converter must cover."""
    model = tflite.Model.GetRootAsModel(tflite_bytes, 0)
    counts: dict[str, int] = {}
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for i in range(graph.OperatorsLength()):
            code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
            kind = _OP_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
            if kind == "CUSTOM":
                kind = "CUSTOM:" + code.CustomCode().decode()
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def convert_tflite(tflite_bytes: bytes) -> onnx.ModelProto:
    """Convert a float (fp32/fp16-weight) TFLite model to an NCHW ONNX model with a dynamic batch."""
    return _Converter(tflite_bytes).convert()
