"""Receptive field of a fully convolutional image network, computed two independent ways.

``receptive_field`` is exact and analytic: it traces the module with torch.fx and walks the graph
backwards from one output pixel, mapping index intervals through each layer (convolution and
pooling: kernel, stride, dilation, padding; padding layers: a shift; nearest upsampling by an
integer factor: floor division), merging branches (residual additions) by their hull.  Pixels are
indexed on an unbounded plane, so border handling (reflection, zeros) does not shrink the result.

``numeric_receptive_field`` is the cross-check: on a float64 copy with random weights and every
normalisation layer replaced by identity, it back-propagates one output pixel to the input and
measures the extent of the non-zero gradient.

Normalisation layers are treated as per-pixel.  InstanceNorm really couples every pixel of an image
through its mean and variance; that global effect is what the ``normalization`` metadata key
("instance") tells the tiling engine about, separately from the local receptive field here.
"""
from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

# Layers whose output pixel depends only on the same input pixel (per-pixel in space).
_POINTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
    nn.Hardtanh, nn.Identity, nn.Dropout, nn.Dropout2d,
    nn.InstanceNorm2d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm,
)
_NORM_MODULES = (nn.InstanceNorm2d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)
_POINTWISE_FUNCTIONS = {
    F.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.dropout, torch.relu, torch.tanh,
    torch.sigmoid, torch.clamp, torch.add, torch.sub, torch.mul, torch.div,
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg,
    F.instance_norm, F.batch_norm,
}
_POINTWISE_METHODS = {"relu", "clamp", "clamp_", "add", "sub", "mul", "div", "tanh", "sigmoid",
                      "neg", "contiguous", "float", "double", "relu_", "add_", "mul_"}

# One axis' interval of pixel indices, inclusive at both ends.
Interval = tuple[int, int]


@dataclass(frozen=True)
class _AxisOp:
    """How one layer maps an interval of its output pixels back to its input, on one axis."""
    kind: str           # "window" (conv/pool) or "upsample"
    kernel: int = 1
    stride: int = 1
    dilation: int = 1
    pad_before: int = 0  # input index = padded index - pad_before
    factor: int = 1

    def back(self, iv: Interval) -> Interval:
        lo, hi = iv
        if self.kind == "upsample":
            # nearest, integer factor: output pixel i reads input pixel floor(i / factor)
            return lo // self.factor, hi // self.factor
        return (lo * self.stride - self.pad_before,
                hi * self.stride + (self.kernel - 1) * self.dilation - self.pad_before)

    def period(self) -> int:
        return self.stride if self.kind == "window" else self.factor


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv_like(kernel, stride, padding, dilation) -> tuple[_AxisOp, _AxisOp]:
    k, s, d = _pair(kernel), _pair(stride), _pair(dilation)
    if padding == "valid":
        p = (0, 0)
    elif padding == "same":
        # torch puts the odd extra pixel after: before = total // 2
        p = tuple(d[i] * (k[i] - 1) // 2 for i in range(2))
    else:
        p = _pair(padding)
    return tuple(_AxisOp("window", k[i], s[i], d[i], p[i]) for i in range(2))  # (H, W)


def _shift(pad) -> tuple[_AxisOp, _AxisOp]:
    # F.pad / PadNd order for 2-D: (left, right, top, bottom)
    pad = (pad,) * 4 if isinstance(pad, int) else tuple(int(p) for p in pad)
    if len(pad) < 4:
        pad = tuple(pad) + (0,) * (4 - len(pad))
    return _AxisOp("window", pad_before=pad[2]), _AxisOp("window", pad_before=pad[0])


def _upsample(scale, mode, where: str) -> tuple[_AxisOp, _AxisOp]:
    if mode != "nearest":
        raise NotImplementedError(f"receptive field: {where}: only nearest upsampling is supported, not {mode!r}")
    factors = tuple(scale) if isinstance(scale, (tuple, list)) else (scale, scale)
    if any(float(f) != int(f) or int(f) < 1 for f in factors):
        raise NotImplementedError(f"receptive field: {where}: upsampling factor {scale!r} is not a positive integer")
    return tuple(_AxisOp("upsample", factor=int(f)) for f in factors)


def _module_ops(mod: nn.Module, where: str):
    """(H op, W op) for a spatial layer, None for a per-pixel one."""
    if isinstance(mod, nn.Conv2d):
        return _conv_like(mod.kernel_size, mod.stride, mod.padding, mod.dilation)
    if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
        dilation = getattr(mod, "dilation", 1)
        stride = mod.stride if mod.stride is not None else mod.kernel_size
        return _conv_like(mod.kernel_size, stride, mod.padding, dilation)
    if isinstance(mod, (nn.ReflectionPad2d, nn.ReplicationPad2d, nn.ZeroPad2d, nn.ConstantPad2d)):
        return _shift(mod.padding)
    if isinstance(mod, nn.Upsample):
        if mod.size is not None:
            raise NotImplementedError(f"receptive field: {where}: upsampling to a fixed size")
        return _upsample(mod.scale_factor, mod.mode, where)
    if isinstance(mod, _POINTWISE_MODULES):
        return None
    raise NotImplementedError(f"receptive field: {where}: layer type {type(mod).__name__} is not supported")


def _function_ops(node: fx.Node):
    fn = node.target
    if fn is F.interpolate:
        kw = dict(zip(("input", "size", "scale_factor", "mode"), node.args)) | dict(node.kwargs)
        if kw.get("size") is not None:
            raise NotImplementedError(f"receptive field: {node.name}: interpolation to a fixed size")
        return _upsample(kw.get("scale_factor"), kw.get("mode", "nearest"), node.name)
    if fn is F.pad:
        pad = node.args[1] if len(node.args) > 1 else node.kwargs["pad"]
        return _shift(pad)
    if fn is F.conv2d:
        raise NotImplementedError(f"receptive field: {node.name}: functional conv2d (use nn.Conv2d)")
    if fn in _POINTWISE_FUNCTIONS:
        return None
    if fn is torch.cat:
        # Concatenating channels (U-Net skip connections) is per-pixel; the branches merge by hull.
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        if dim in (1, -3):
            return None
        raise NotImplementedError(f"receptive field: {node.name}: concatenation along dim {dim} (only channels, dim 1)")
    raise NotImplementedError(f"receptive field: {node.name}: function {getattr(fn, '__name__', fn)} is not supported")


def _graph_ops(module: nn.Module) -> tuple[fx.Graph, dict[fx.Node, tuple | None]]:
    graph = fx.symbolic_trace(module).graph
    ops: dict[fx.Node, tuple | None] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            ops[node] = _module_ops(module.get_submodule(node.target), node.target)
        elif node.op == "call_function":
            ops[node] = _function_ops(node)
        elif node.op == "call_method":
            if node.target not in _POINTWISE_METHODS:
                raise NotImplementedError(f"receptive field: {node.name}: method .{node.target}() is not supported")
            ops[node] = None
        else:
            ops[node] = None
    return graph, ops


def _input_span(graph: fx.Graph, ops, axis: int, out_pixel: int) -> Interval:
    """Interval of input pixels on ``axis`` (0 = H, 1 = W) that output pixel ``out_pixel`` reads."""
    nodes = list(graph.nodes)  # topologically ordered
    need: dict[fx.Node, Interval] = {}
    output = next(n for n in nodes if n.op == "output")
    result = output.args[0]
    if not isinstance(result, fx.Node):
        raise NotImplementedError("receptive field: the module must return a single tensor")
    need[result] = (out_pixel, out_pixel)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    for node in reversed(nodes):
        if node not in need:
            continue
        iv = need[node]
        op = ops.get(node)
        if op is not None:
            iv = op[axis].back(iv)
        for arg in node.all_input_nodes:
            if arg.op == "get_attr":
                continue
            old = need.get(arg)
            need[arg] = iv if old is None else (min(old[0], iv[0]), max(old[1], iv[1]))
    if placeholders[0] not in need:
        raise NotImplementedError("receptive field: the output does not depend on the first input")
    return need[placeholders[0]]


def receptive_field_per_axis(module: nn.Module) -> tuple[int, int]:
    """Exact (height, width) receptive field in input pixels: the widest span over all output
    pixel positions (with strides and upsampling the span depends on the position's phase)."""
    graph, ops = _graph_ops(module)
    result = []
    for axis in range(2):
        # Positions repeat with the product of all strides and upsampling factors.
        period = math.prod(op[axis].period() for op in ops.values() if op is not None)
        spans = [_input_span(graph, ops, axis, x) for x in range(period)]
        result.append(max(hi - lo + 1 for lo, hi in spans))
    return result[0], result[1]


def receptive_field(module: nn.Module) -> int:
    """Receptive field width in input pixels (the larger of height and width)."""
    return max(receptive_field_per_axis(module))


def receptive_field_reach(module: nn.Module) -> tuple[tuple[int, int], tuple[int, int]]:
    """For a network whose output is on the input's pixel grid (same size, like TransformerNet):
    per axis (H, W), how far (before, after) an output pixel's field reaches from that pixel,
    maxed over positions.  With strides the field is not centred: this, not half the width, is
    the overlap a tile needs on each side."""
    graph, ops = _graph_ops(module)
    result = []
    for axis in range(2):
        period = math.prod(op[axis].period() for op in ops.values() if op is not None)
        spans = [(x, _input_span(graph, ops, axis, x)) for x in range(period)]
        result.append((max(x - lo for x, (lo, _) in spans), max(hi - x for x, (_, hi) in spans)))
    return result[0], result[1]


def input_spans(module: nn.Module, axis: int, out_pixels) -> list[Interval]:
    """The analytic input interval of each given output pixel position on ``axis`` (0 = H, 1 = W)."""
    graph, ops = _graph_ops(module)
    return [_input_span(graph, ops, axis, x) for x in out_pixels]


def _without_norms(module: nn.Module) -> nn.Module:
    for name, child in list(module.named_children()):
        if isinstance(child, _NORM_MODULES):
            setattr(module, name, nn.Identity())
        else:
            _without_norms(child)
    return module


def numeric_input_spans(module: nn.Module, in_channels: int, size: tuple[int, int], axis: int,
                        out_pixels, seed: int = 0) -> list[Interval]:
    """Input interval on ``axis`` of each output pixel, measured by autograd.

    A float64 copy of ``module`` gets random weights and identity in place of its normalisation
    layers; the gradient of one output pixel (summed over channels, at the centre of the other
    axis) with respect to a random input is non-zero exactly on that pixel's receptive field,
    as long as the field stays clear of the image border (reflection would fold it back)."""
    gen = torch.Generator().manual_seed(seed)
    net = _without_norms(copy.deepcopy(module)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5)
    x = torch.randn((1, in_channels, *size), generator=gen, dtype=torch.float64, requires_grad=True)
    y = net(x)
    other = 1 - axis
    centre = y.shape[2 + other] // 2
    spans = []
    for pos in out_pixels:
        index = [0, slice(None), 0, 0]
        index[2 + axis], index[2 + other] = pos, centre
        (grad,) = torch.autograd.grad(y[tuple(index)].sum(), x, retain_graph=True)
        # Non-zero anywhere across channels and the other axis.
        mask = grad.abs().sum(dim=(0, 1, 2 + other)) > 0
        nz = torch.nonzero(mask).flatten()
        if len(nz) == 0:
            raise RuntimeError(f"numeric receptive field: output pixel {pos} has a zero gradient")
        lo, hi = int(nz[0]), int(nz[-1])
        if lo == 0 or hi == size[axis] - 1:
            raise ValueError(f"numeric receptive field: the field of pixel {pos} touches the border; use a larger size")
        spans.append((lo, hi))
    return spans
