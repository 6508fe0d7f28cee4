"""A foreign ONNX file read as a float graph that the family readers (magenta.py, multistyle26.py)
can walk: initializers as numpy arrays, quantized weights dequantized, constant subgraphs folded,
and, optionally, the activation quantization taken out.

Quantized graphs (tf2onnx's conversion of an int8 TFLite model) store every weight as an int8 or
int32 initializer behind a ``DequantizeLinear`` node, and wrap every activation in a
``QuantizeLinear`` -> ``DequantizeLinear`` pair (sometimes with a Transpose or Reshape of the int8
tensor in between).  Here:

* a ``DequantizeLinear`` of a constant becomes a float32 constant, x = (q - zero_point) * scale,
  per tensor or per ``axis`` as stored (:func:`dequantize`);
* with ``float_activations`` every ``QuantizeLinear`` / ``DequantizeLinear`` of an activation
  becomes an ``Identity`` (the int8 Transpose/Reshape between them then moves float values), so the
  graph computes in float what the quantized one computes in 8-bit steps.  Without it the pairs
  stay and the graph is the quantized one (the source as shipped).

:func:`float_model` gives the cleaned ModelProto (used as the parity reference run by ONNX
Runtime); :class:`Graph` indexes it for reading: producers, consumers, constants and the static
shapes of shape inference.
"""
from __future__ import annotations

import copy
import os
from typing import Iterable

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from deepshop_native.core.errors import ModelError

#: Operators folded when all their inputs are constants (shape arithmetic of exporters).
_FOLDABLE = {"Constant", "ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose", "Cast", "Unsqueeze",
             "Squeeze", "Gather", "Shape", "Identity", "Mul", "Add", "Sub", "Div", "Neg", "Range", "Expand",
             "QuantizeLinear", "DequantizeLinear"}


def load(path: str | os.PathLike) -> onnx.ModelProto:
    """The ONNX file at ``path``; ModelError naming it when it is missing or not ONNX."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file")
    try:
        return onnx.load(path)
    except Exception as e:  # protobuf's DecodeError and onnx's own
        raise ModelError(f"{path}: not an ONNX model ({e})") from e


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int = 1) -> np.ndarray:
    """ONNX DequantizeLinear in float32: (q - zero_point) * scale, the scale and zero point one
    value (per tensor) or one per index of ``axis`` (per axis)."""
    q = np.asarray(q)
    scale = np.asarray(scale, dtype=np.float32)
    zp = np.zeros((), dtype=np.int64) if zero_point is None else np.asarray(zero_point).astype(np.int64)
    if scale.ndim == 0:
        return ((q.astype(np.int64) - zp.reshape(())).astype(np.float32) * scale).astype(np.float32)
    if scale.ndim != 1:
        raise ValueError(f"blocked quantization (scale of shape {scale.shape}) is not supported")
    axis = axis % q.ndim
    if q.shape[axis] != scale.shape[0] or zp.size not in (1, scale.shape[0]):
        raise ValueError(f"per-axis scale of {scale.shape[0]} values for axis {axis} of a {q.shape} tensor")
    shape = [1] * q.ndim
    shape[axis] = scale.shape[0]
    diff = (q.astype(np.int64) - zp.reshape(shape if zp.size > 1 else ())).astype(np.float32)
    return (diff * scale.reshape(shape)).astype(np.float32)


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _evaluate(node: onnx.NodeProto, values: list[np.ndarray], opset: int) -> list[np.ndarray]:
    """One node on constant inputs with ONNX's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    if node.op_type == "DequantizeLinear":
        axis = _attrs(node).get("axis", 1)
        return [dequantize(values[0], values[1], values[2] if len(values) > 2 else None, axis)]
    names = [f"in{i}" for i in range(len(values))]
    inputs = [n if n else "" for n in node.input]
    feeds, renamed = {}, []
    for i, (orig, v) in enumerate(zip(inputs, values)):
        if not orig:
            renamed.append("")
            continue
        renamed.append(names[i])
        feeds[names[i]] = v
    single = helper.make_node(node.op_type, renamed, [f"out{i}" for i in range(len(node.output))],
                              domain=node.domain or "")
    single.attribute.extend(node.attribute)
    graph = helper.make_graph([single], "fold", [helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None)
                                                 for n in feeds],
                              [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in single.output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return list(ReferenceEvaluator(model).run(None, feeds))


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def float_model(model: onnx.ModelProto, *, float_activations: bool = True) -> onnx.ModelProto:
    """A copy of ``model`` with constants folded into float32 initializers (quantized weights
    dequantized) and, with ``float_activations``, activation quantization replaced by Identity.
    Shape annotations (value_info) are dropped: the int8 ones no longer hold."""
    model = copy.deepcopy(model)
    graph = model.graph
    opset = default_opset(model)
    consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    kept: list[onnx.NodeProto] = []
    for node in graph.node:
        ins = [n for n in node.input if n]
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
            continue
        if node.op_type in _FOLDABLE and all(n in consts for n in ins):
            values = [consts[n] if n else None for n in node.input]
            for name, value in zip(node.output, _evaluate(node, values, opset)):
                consts[name] = np.asarray(value)
            continue
        if float_activations and node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            identity = helper.make_node("Identity", [node.input[0]], [node.output[0]], name=node.name)
            kept.append(identity)
            continue
        kept.append(node)
    used = {n for node in kept for n in node.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    for name, value in consts.items():
        if name in used:
            if value.dtype == np.float64:
                value = value.astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
    del graph.value_info[:]
    return model


def with_symbolic_size(model: onnx.ModelProto, inputs: Iterable[str], layout: str) -> onnx.ModelProto:
    """A copy of ``model`` whose image inputs (and every output of rank 4) have symbolic height
    and width ("height", "width"; ``layout`` "NHWC" or "NCHW"), so that ONNX Runtime runs it at
    any size.  Valid only where the graph holds no size-specific constant (a Reshape to a fixed
    spatial size, a padding that depends on the size): the callers say where that is so."""
    model = copy.deepcopy(model)
    axes = (1, 2) if layout == "NHWC" else (2, 3)
    targets = set(inputs)
    for vi in list(model.graph.input) + list(model.graph.output):
        if vi.name in targets or (vi in model.graph.output and len(vi.type.tensor_type.shape.dim) == 4):
            dims = vi.type.tensor_type.shape.dim
            for axis, name in zip(axes, ("height", "width")):
                dims[axis].ClearField("dim_value")
                dims[axis].dim_param = name
    del model.graph.value_info[:]
    return model


class Graph:
    """A float graph (:func:`float_model`) indexed for reading.  ``path`` names the file in errors."""

    def __init__(self, model: onnx.ModelProto, path: str, *, float_activations: bool = True):
        self.path = path
        self.source_opset = default_opset(model)
        self.model = float_model(model, float_activations=float_activations)
        self._drop_identities()
        try:
            inferred = shape_inference.infer_shapes(self.model)
        except Exception as e:
            raise ModelError(f"{path}: ONNX shape inference failed ({e})") from e
        self.shapes: dict[str, tuple] = {}
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
        g = self.model.graph
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.nodes = list(g.node)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.inputs = [i.name for i in g.input if i.name not in self.consts]
        self.outputs = [o.name for o in g.output]

    def _drop_identities(self) -> None:
        """Identity nodes (the removed quantization) rewired away: each consumer reads the
        Identity's input directly.  An Identity that makes a graph output hands the output's
        name to the node that computes its input instead."""
        g = self.model.graph
        outputs = {o.name for o in g.output}
        alias: dict[str, str] = {}
        kept = []
        for node in g.node:
            if node.op_type == "Identity":
                alias[node.output[0]] = alias.get(node.input[0], node.input[0])
                continue
            kept.append(node)
        for node in kept:
            for k, name in enumerate(node.input):
                if name in alias:
                    node.input[k] = alias[name]
        # Graph outputs: rename the real producer's output (and its readers) to the output name.
        rename = {alias[o]: o for o in outputs if o in alias}
        for node in kept:
            for k, name in enumerate(node.output):
                if name in rename:
                    node.output[k] = rename[name]
            for k, name in enumerate(node.input):
                if name in rename:
                    node.input[k] = rename[name]
        del g.node[:]
        g.node.extend(kept)

    # ------------------------------------------------------------------ reading helpers

    def fail(self, message: str) -> ModelError:
        return ModelError(f"{self.path}: {message}")

    def attrs(self, node: onnx.NodeProto) -> dict:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in _attrs(node).items()}

    def const(self, name: str, what: str = "a constant") -> np.ndarray:
        if name not in self.consts:
            raise self.fail(f"expected {what} at {name!r}, found a computed tensor")
        return self.consts[name]

    def is_const(self, name: str) -> bool:
        return name in self.consts

    def users(self, tensor: str) -> list[onnx.NodeProto]:
        return self.consumers.get(tensor, [])

    def only_user(self, tensor: str, op_types: str | tuple = ()) -> onnx.NodeProto:
        users = self.users(tensor)
        ops = (op_types,) if isinstance(op_types, str) else op_types
        if len(users) != 1 or (ops and users[0].op_type not in ops):
            found = ", ".join(f"{u.op_type} {u.name or u.output[0]!r}" for u in users) or "nothing"
            raise self.fail(f"{tensor!r} should feed one {'/'.join(ops) or 'node'}; it feeds {found}")
        return users[0]

    def made_by(self, tensor: str) -> onnx.NodeProto | None:
        return self.producer.get(tensor)

    def residual_branch(self, t: str, first: onnx.NodeProto, add: onnx.NodeProto, read, max_layers: int = 8) -> list:
        """The layers of a residual branch from ``t`` (starting at the node ``first``) to the
        ``add`` that sums it with ``t``: ``read(node)`` reads one layer, returning (layer, its
        output tensor); the branch must be a chain that ends in ``add``."""
        layers, node = [], first
        while True:
            layer, y = read(node)
            layers.append(layer)
            users = self.users(y)
            if len(users) == 1 and users[0] is add:
                if set(add.input) != {t, y}:
                    raise self.fail(f"{add.output[0]!r}: a residual Add of something else")
                return layers
            if len(users) != 1 or len(layers) >= max_layers:
                raise self.fail(f"the residual branch from {t!r} does not end in its Add")
            node = users[0]

    def depends_on(self, tensor: str, source: str, _memo: dict | None = None) -> bool:
        """Whether ``tensor`` is computed from the graph input ``source``."""
        memo = {} if _memo is None else _memo
        if tensor == source:
            return True
        if tensor in memo:
            return memo[tensor]
        node = self.producer.get(tensor)
        memo[tensor] = False
        result = node is not None and any(self.depends_on(i, source, memo) for i in node.input if i)
        memo[tensor] = result
        return result
