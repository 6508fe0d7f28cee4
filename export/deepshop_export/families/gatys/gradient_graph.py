"""The Gatys loss and its gradient with respect to the image, as one ONNX graph.

ONNX has no automatic differentiation, so the backward pass is written out layer by layer with
ordinary operators, each the adjoint (transpose) of its forward layer:

==================  ==========================  ==============================================
forward             backward (adjoint)          why
==================  ==========================  ==============================================
Conv 3x3, pad 1     Conv 3x3, pad 1 with the    a convolution is a linear map W; its transpose
                    weight's in/out swapped     is the transposed convolution with W, which for
                    and kernel flipped          stride 1 and pad 1 is this convolution (*)
ReLU                Where(relu_out > 0, g, 0)   ReLU's derivative is 1 where the output is
                                                positive, 0 elsewhere (also at 0, as torch)
MaxPool 2x2 /2      Where(x == up(pool(x)),     the gradient goes to the maximum of each window;
                    up(g), 0)                   ties share it (rare, except at ReLU zeros,
                                                where the next ReLU adjoint drops it anyway)
AveragePool 2x2 /2  up(g) / 4                   each input holds a quarter of the mean
(x - shift) * s     g * s                       channel reorder (RGB->BGR) is its own adjoint
==================  ==========================  ==============================================

(*) Not ConvTranspose on the forward weight: OpenVINO's CPU plugin (2026.4) computes a wrong
gradient when one weight initializer feeds both a Conv and a ConvTranspose (relative L2 error ~1
in fp32), and ConvTranspose with its own copy is still wrong in bf16 (~0.9); the flipped Conv is
right on every provider (~4e-7 fp32, ~4e-2 bf16 against ONNX Runtime's CPU provider), and as fast
on ONNX Runtime's.  It stores every weight twice.  Graphs say so in their provenance
(``ADJOINT_CONVOLUTION``): deepshop_native runs older ones on ONNX Runtime only.

``up`` is a nearest-neighbour 2x upsampling.  Height and width stay dynamic; they must be
multiples of ``2 ** pools`` (``FeatureNetwork.stride_multiple``) so that pooling halves exactly.

The objective (Gatys et al. 2016, with the normalisations of neural-style):

* content, per content layer l: ``mean((F_l - P_l)^2)`` over the C x h x w features;
* style, per style layer l: ``mean((G_l - A_l)^2)`` over the C x C entries, with the Gram matrix
  ``G_l = F F' / (C h w)`` of the features F (C x hw);
* total variation of the image (RGB, 0..255): ``0.5 * (sum dx^2 + sum dy^2)`` over all pairs of
  horizontal and vertical neighbours;
* ``loss = sum_l cw_l content_l + sum_l sw_l style_l + tv_weight * tv``.

Inputs (batch 1): ``image`` (1, 3, H, W) RGB 0..255; ``content_target_<l>`` (1, C, h, w) per
content layer; ``style_target_<l>`` (C, C) per style layer; ``content_weights`` (Nc,),
``style_weights`` (Ns,), ``tv_weight`` (1,).
Outputs: ``loss`` (scalar), ``content_losses`` (Nc,) and ``style_losses`` (Ns,) unweighted,
``tv_loss`` (scalar, unweighted), ``gradient`` (1, 3, H, W) = dloss/dimage, and the image's own
``features_<l>`` (content layers) and ``gram_<l>`` (style layers): running the graph on the content
photo and on a style image gives the targets.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .feature_network import FeatureNetwork

OPSET = 17
#: Provenance entry ("adjoint_convolution") of graphs whose backward convolutions are flipped Convs.
ADJOINT_CONVOLUTION = "flipped-conv"
#: IR version 8 (ONNX 1.10): loadable by every ONNX Runtime that runs opset 17.
IR_VERSION = 8

IMAGE = "image"
GRADIENT = "gradient"
LOSS = "loss"
CONTENT_LOSSES = "content_losses"
STYLE_LOSSES = "style_losses"
TV_LOSS = "tv_loss"
CONTENT_WEIGHTS = "content_weights"
STYLE_WEIGHTS = "style_weights"
TV_WEIGHT = "tv_weight"


def content_target_name(layer: str) -> str:
    return f"content_target_{layer}"


def style_target_name(layer: str) -> str:
    return f"style_target_{layer}"


def features_name(layer: str) -> str:
    return f"features_{layer}"


def gram_name(layer: str) -> str:
    return f"gram_{layer}"


class _GraphBuilder:
    """Nodes and initializers with unique names; each ``op`` call returns its output's name."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value, hint: str = "const", dtype=np.float32) -> str:
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], output: str | None = None, **attrs) -> str:
        output = output or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=self._name(op_type), **attrs))
        return output


class _Forward:
    """The forward pass's tensors that the backward pass needs."""

    def __init__(self):
        self.activations: dict[str, str] = {}      # ReLU output of each convolution
        self.pool_inputs: dict[str, str] = {}      # of the pooling before a convolution
        self.pool_outputs: dict[str, str] = {}
        self.adjoint_weights: dict[str, str] = {}  # flipped, in/out-swapped weights
        self.zero = self.scale = self.bgr_order = self.upsample_scales = ""


def _forward(b: _GraphBuilder, net: FeatureNetwork) -> _Forward:
    """The feature network on ``IMAGE``: preprocessing, convolutions, ReLUs and poolings."""
    fw = _Forward()
    fw.zero = b.const(0.0, "zero")
    fw.upsample_scales = b.const([1.0, 1.0, 2.0, 2.0], "upsample_scales")
    fw.bgr_order = b.const([2, 1, 0], "bgr_order", np.int64)
    shift = b.const(net.shift.reshape(1, 3, 1, 1), "shift")
    fw.scale = b.const(net.scale.reshape(1, 3, 1, 1), "scale")
    x = b.op("Gather", [IMAGE, fw.bgr_order], axis=1) if net.bgr else IMAGE
    h = b.op("Mul", [b.op("Sub", [x, shift]), fw.scale], "network_input")
    for conv in net.convs:
        if conv.pool_before:
            fw.pool_inputs[conv.name] = h
            pool_op = "MaxPool" if net.pooling == "max" else "AveragePool"
            h = b.op(pool_op, [h], kernel_shape=[2, 2], strides=[2, 2])
            fw.pool_outputs[conv.name] = h
        w = b.const(conv.weight, f"{conv.name}_weight")
        fw.adjoint_weights[conv.name] = b.const(
            np.ascontiguousarray(conv.weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]), f"{conv.name}_adjoint_weight")
        h = b.op("Relu", [b.op("Conv", [h, w, b.const(conv.bias, f"{conv.name}_bias")], kernel_shape=[3, 3],
                                pads=[1, 1, 1, 1])], conv.name)
        fw.activations[conv.name] = h
    return fw


def _backward(b: _GraphBuilder, net: FeatureNetwork, fw: _Forward, layer_grads: dict) -> str:
    """dloss/dimage given dloss/d(activation) of some layers (``layer_grads``: layer -> list of
    tensors added there): the adjoints from the deepest layer to the image."""
    def upsample(x: str) -> str:
        return b.op("Resize", [x, "", fw.upsample_scales], mode="nearest",
                    coordinate_transformation_mode="asymmetric", nearest_mode="floor")

    g = None
    for conv in reversed(net.convs):
        for term_grad in layer_grads.get(conv.name, []):
            g = term_grad if g is None else b.op("Add", [g, term_grad])
        g = b.op("Where", [b.op("Greater", [fw.activations[conv.name], fw.zero]), g, fw.zero])          # ReLU
        g = b.op("Conv", [g, fw.adjoint_weights[conv.name]], kernel_shape=[3, 3], pads=[1, 1, 1, 1])   # Conv's adjoint
        if conv.pool_before:
            if net.pooling == "max":
                winner = b.op("Equal", [fw.pool_inputs[conv.name], upsample(fw.pool_outputs[conv.name])])
                g = b.op("Where", [winner, upsample(g), fw.zero])
            else:
                g = b.op("Mul", [upsample(g), b.const(0.25, "quarter")])
    g = b.op("Mul", [g, fw.scale])
    if net.bgr:
        g = b.op("Gather", [g, fw.bgr_order], axis=1)
    return g


def _check_layers(net: FeatureNetwork, layers: Sequence[str]) -> None:
    names = [c.name for c in net.convs]
    for l in layers:
        if l not in names:
            raise ValueError(f"layer {l!r} is not in the feature network (it ends at {names[-1]})")


def build_gradient_graph(net: FeatureNetwork, content_layers: Sequence[str], style_layers: Sequence[str]) -> onnx.ModelProto:
    """The loss-and-gradient graph of ``net`` for the given layers (see the module docstring)."""
    content_layers, style_layers = list(content_layers), list(style_layers)
    _check_layers(net, content_layers + style_layers)
    b = _GraphBuilder()
    half = b.const(0.5, "half")
    two = b.const(2.0, "two")
    fw = _forward(b, net)
    activations = fw.activations

    def scalar_from(vector: str, index: int) -> str:
        return b.op("Gather", [vector, b.const(index, "index", np.int64)], axis=0)

    def count_of(x: str) -> str:
        return b.op("Cast", [b.op("Size", [x])], to=TensorProto.FLOAT)

    def sum_all(x: str) -> str:
        return b.op("ReduceSum", [x], keepdims=0)

    # ---- loss terms and their gradients with respect to the activations --------------------
    layer_grads: dict[str, list[str]] = {}
    content_terms, weighted = [], []
    for i, layer in enumerate(content_layers):
        f = b.op("Identity", [activations[layer]], features_name(layer))
        diff = b.op("Sub", [f, content_target_name(layer)])
        n = count_of(f)
        term = b.op("Div", [sum_all(b.op("Mul", [diff, diff])), n])
        weight = scalar_from(CONTENT_WEIGHTS, i)
        content_terms.append(term)
        weighted.append(b.op("Mul", [weight, term]))
        # d(w mean(d^2))/dF = 2 w d / n
        layer_grads.setdefault(layer, []).append(b.op("Mul", [diff, b.op("Div", [b.op("Mul", [weight, two]), n])]))
    style_terms = []
    for i, layer in enumerate(style_layers):
        channels = net.channels(layer)
        f = b.op("Reshape", [activations[layer], b.const([channels, -1], "shape", np.int64)])   # C x hw
        cn = count_of(f)                                                                        # C * hw
        gram = b.op("Div", [b.op("MatMul", [f, b.op("Transpose", [f], perm=[1, 0])]), cn], gram_name(layer))
        err = b.op("Sub", [gram, style_target_name(layer)])
        cc = b.const(float(channels * channels), "channels_squared")
        term = b.op("Div", [sum_all(b.op("Mul", [err, err])), cc])
        weight = scalar_from(STYLE_WEIGHTS, i)
        style_terms.append(term)
        weighted.append(b.op("Mul", [weight, term]))
        # dL/dG = 2 w E / C^2;  dL/dF = (dL/dG + dL/dG') F / (C hw)
        d_gram = b.op("Mul", [err, b.op("Div", [b.op("Mul", [weight, two]), cc])])
        d_sym = b.op("Add", [d_gram, b.op("Transpose", [d_gram], perm=[1, 0])])
        d_f = b.op("Div", [b.op("MatMul", [d_sym, f]), cn])
        layer_grads.setdefault(layer, []).append(b.op("Reshape", [d_f, b.op("Shape", [activations[layer]])]))

    # ---- total variation of the image -------------------------------------------------------
    big = np.iinfo(np.int64).max

    def neighbour_difference(axis: int) -> str:
        ax = b.const([axis], "axis", np.int64)
        after = b.op("Slice", [IMAGE, b.const([1], "start", np.int64), b.const([big], "end", np.int64), ax])
        before = b.op("Slice", [IMAGE, b.const([0], "start", np.int64), b.const([-1], "end", np.int64), ax])
        return b.op("Sub", [after, before])

    def pad_on(x: str, axis: int, at_end: bool) -> str:
        pads = [0] * 8
        pads[axis + (4 if at_end else 0)] = 1
        return b.op("Pad", [x, b.const(pads, "pads", np.int64)])

    dx, dy = neighbour_difference(3), neighbour_difference(2)
    tv = b.op("Mul", [half, b.op("Add", [sum_all(b.op("Mul", [dx, dx])), sum_all(b.op("Mul", [dy, dy]))])], TV_LOSS)
    tv_weight = scalar_from(TV_WEIGHT, 0)
    weighted.append(b.op("Mul", [tv_weight, tv]))
    # d(0.5 sum d_j^2)/dx_k = d_{k-1} - d_k: each difference pulls its right pixel up, its left one down.
    tv_grad = b.op("Add", [b.op("Sub", [pad_on(dx, 3, False), pad_on(dx, 3, True)]),
                           b.op("Sub", [pad_on(dy, 2, False), pad_on(dy, 2, True)])])
    tv_grad = b.op("Mul", [tv_grad, tv_weight])

    total = weighted[0]
    for w in weighted[1:]:
        total = b.op("Add", [total, w])
    b.op("Identity", [total], LOSS)

    def stack(terms: list[str], name: str) -> str:
        axes = b.const([0], "axes", np.int64)
        return b.op("Concat", [b.op("Unsqueeze", [t, axes]) for t in terms], name, axis=0)
    stack(content_terms, CONTENT_LOSSES) if content_terms else b.op("Identity", [b.const(np.zeros(0), "none")], CONTENT_LOSSES)
    stack(style_terms, STYLE_LOSSES) if style_terms else b.op("Identity", [b.const(np.zeros(0), "none")], STYLE_LOSSES)

    g = _backward(b, net, fw, layer_grads)
    b.op("Add", [g, tv_grad], GRADIENT)

    # ---- interface -----------------------------------------------------------------------------
    def tensor(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    inputs = [tensor(IMAGE, [1, 3, "height", "width"])]
    inputs += [tensor(content_target_name(l), [1, net.channels(l), f"{l}_height", f"{l}_width"]) for l in content_layers]
    inputs += [tensor(style_target_name(l), [net.channels(l), net.channels(l)]) for l in style_layers]
    inputs += [tensor(CONTENT_WEIGHTS, [len(content_layers)]), tensor(STYLE_WEIGHTS, [len(style_layers)]),
               tensor(TV_WEIGHT, [1])]
    outputs = [tensor(LOSS, []), tensor(CONTENT_LOSSES, [len(content_layers)]),
               tensor(STYLE_LOSSES, [len(style_layers)]), tensor(TV_LOSS, []),
               tensor(GRADIENT, [1, 3, "height", "width"])]
    outputs += [tensor(features_name(l), [1, net.channels(l), f"{l}_height", f"{l}_width"]) for l in content_layers]
    outputs += [tensor(gram_name(l), [net.channels(l), net.channels(l)]) for l in style_layers]
    graph = helper.make_graph(b.nodes, "gatys_loss_and_gradient", inputs, outputs, b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="deepshop_export")
    return model


# ---- the tiled variant -------------------------------------------------------------------------
# The style loss couples every position through the image's Gram matrices, so a tile cannot
# compute its own loss or gradient.  The tiled driver (deepshop_native.pipelines.gatys) evaluates
# the loss in two passes over tiles with a halo: (a) the features of each tile's kept region (Gram
# matrices accumulated over the tiles, content differences summed); (b) the gradient, given what
# only the whole image knows: dloss/dF = S_l F at each style layer, with S_l = 2 sw_l (E + E') /
# (C^2 C M) from the whole image's Gram error E = G - A (M: the whole layer's positions), and
# dloss/dF = s_l (F - P) at each content layer, s_l = 2 cw_l / (C M).  This graph is both passes:
# it outputs the tile's features and the gradient with respect to its pixels for the S and s given
# (pass (a) gives zeros and reads only the features).  The total variation is left to the driver.

TILED_FAMILY_SUFFIX = "_tiled"
CONTENT_SCALES = "content_scales"


def style_gradient_name(layer: str) -> str:
    return f"style_gradient_{layer}"


def tiled_feature_layers(content_layers: Sequence[str], style_layers: Sequence[str]) -> list[str]:
    """The layers whose features the tiled graph outputs (``features_<layer>``), content first."""
    return list(dict.fromkeys(list(content_layers) + list(style_layers)))


def build_tiled_gradient_graph(net: FeatureNetwork, content_layers: Sequence[str],
                               style_layers: Sequence[str]) -> onnx.ModelProto:
    """The tile graph of the tiled evaluation (see above).  Inputs: ``image`` (1, 3, H, W) RGB
    0..255 (a tile with its halo), ``content_target_<l>`` (1, C, h, w) the content features of the
    same region, ``content_scales`` (Nc,), ``style_gradient_<l>`` (C, C).  Outputs:
    ``features_<l>`` (1, C, h, w) of every content and style layer, ``gradient`` (1, 3, H, W)."""
    content_layers, style_layers = list(content_layers), list(style_layers)
    _check_layers(net, content_layers + style_layers)
    b = _GraphBuilder()
    fw = _forward(b, net)
    layer_grads: dict[str, list[str]] = {}
    for i, layer in enumerate(content_layers):
        diff = b.op("Sub", [fw.activations[layer], content_target_name(layer)])
        scale = b.op("Gather", [CONTENT_SCALES, b.const(i, "index", np.int64)], axis=0)
        layer_grads.setdefault(layer, []).append(b.op("Mul", [diff, scale]))
    for layer in style_layers:
        f = b.op("Reshape", [fw.activations[layer], b.const([net.channels(layer), -1], "shape", np.int64)])
        d_f = b.op("MatMul", [style_gradient_name(layer), f])
        layer_grads.setdefault(layer, []).append(b.op("Reshape", [d_f, b.op("Shape", [fw.activations[layer]])]))
    b.op("Identity", [_backward(b, net, fw, layer_grads)], GRADIENT)
    feature_layers = tiled_feature_layers(content_layers, style_layers)
    for layer in feature_layers:
        b.op("Identity", [fw.activations[layer]], features_name(layer))

    def tensor(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    inputs = [tensor(IMAGE, [1, 3, "height", "width"])]
    inputs += [tensor(content_target_name(l), [1, net.channels(l), f"{l}_height", f"{l}_width"]) for l in content_layers]
    inputs += [tensor(CONTENT_SCALES, [len(content_layers)])]
    inputs += [tensor(style_gradient_name(l), [net.channels(l), net.channels(l)]) for l in style_layers]
    outputs = [tensor(GRADIENT, [1, 3, "height", "width"])]
    outputs += [tensor(features_name(l), [1, net.channels(l), f"{l}_height", f"{l}_width"]) for l in feature_layers]
    graph = helper.make_graph(b.nodes, "gatys_tiled_gradient", inputs, outputs, b.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                             producer_name="deepshop_export")
