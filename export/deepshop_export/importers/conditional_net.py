"""Reads a conditional-instance-norm style network (Dumoulin et al. 2017; Ghiasi et al.'s transfer
network) out of an ONNX graph into the layer list of families/multistyle/network.py.

The walk starts at the image input and follows the data path:

* an NHWC prefix (tf2onnx): a Pad on the NHWC image, then the Transpose to NCHW;
* layers: ``Resize`` (nearest, an integer scale; scale 1 is no upsampling) -> ``Pad`` (reflect,
  the same amount on every side of H and W) -> ``Conv`` (no padding of its own) -> the conditional
  instance norm, if any -> ``Relu`` / ``Sigmoid``, if any;
* residual blocks: a tensor feeding both a layer and an ``Add``; the layers up to that Add;
* the end: the graph output, or a Transpose to NHWC that is the graph output.

A conditional instance norm is recognised by what it does, not by how an exporter spelt it: the
region of per-channel arithmetic (means, Sub, Mul, Pow, Add, Sqrt, Reciprocal, Div, reshapes)
hanging off a convolution's output X, whose other inputs are constants and two tensors computed
from the style input alone.  The constant added to a mean of squares is eps; the style tensor that
enters a Mul is gamma (the scale), the one that enters an Add or Sub is beta (the shift).  Each is
then read back to the style input as an affine map: a 1x1 Conv on the reshaped style vector
(tf2onnx's form: W s + b), or a weighted sum of a table of per-style rows (Mul with the unsqueezed
weights, ReduceSum over the styles: s @ G).  Anything else is refused with a ModelError naming
the file and the tensor.  The rebuilt network is checked against the source graph by the caller.
"""
from __future__ import annotations

import numpy as np

from ..families.multistyle.network import LayerSpec, NormSpec, ResidualSpec
from .onnx_graph import Graph

_NORM_OPS = {"GlobalAveragePool", "ReduceMean", "Sub", "Mul", "Pow", "Add", "Sqrt", "Reciprocal", "Div", "Reshape",
             "Unsqueeze", "Squeeze"}
_MEAN_OPS = {"GlobalAveragePool", "ReduceMean"}
_SHAPE_OPS = {"Reshape", "Transpose", "Unsqueeze", "Squeeze", "Flatten"}


class ConditionalNetReader:
    def __init__(self, graph: Graph, image: str, style: str):
        self.g, self.image, self.style = graph, image, style
        self._image_memo: dict = {}

    # -------------------------------------------------------------- the walk

    def read(self) -> tuple[list, int, str]:
        """(blocks, style_dim, output layout "NCHW" or "NHWC")."""
        g = self.g
        shape = g.shapes.get(self.image, ())
        layout = "NHWC" if len(shape) == 4 and shape[3] == 3 else "NCHW"
        t, pad = self.image, 0
        while layout == "NHWC":
            node = g.only_user(t, ("Pad", "Transpose"))
            if node.op_type == "Transpose":
                if list(g.attrs(node).get("perm", [])) != [0, 3, 1, 2]:
                    raise g.fail(f"{node.output[0]!r}: a Transpose that is not NHWC -> NCHW")
                layout = "NCHW"
            else:
                pad += self._reflect_pad(node, axes=(1, 2))
            t = node.output[0]
        blocks = []
        while True:
            users = g.users(t)
            if t in g.outputs and not users:
                return blocks, self._style_dim(), "NCHW"
            if len(users) == 1 and users[0].op_type == "Transpose":
                node = users[0]
                if list(g.attrs(node).get("perm", [])) != [0, 2, 3, 1] or node.output[0] not in g.outputs:
                    raise g.fail(f"{node.output[0]!r}: a Transpose inside the network")
                return blocks, self._style_dim(), "NHWC"
            adds = [u for u in users if u.op_type == "Add"]
            if len(users) == 2 and len(adds) == 1:
                block, t = self._residual(t, next(u for u in users if u is not adds[0]), adds[0])
                blocks.append(block)
                continue
            if len(users) != 1:
                raise g.fail(f"{t!r} feeds {[u.op_type for u in users]}: not a layer or residual block")
            layer, t = self._layer(users[0], pad)
            pad = 0
            blocks.append(layer)

    def _residual(self, t: str, first, add) -> tuple[ResidualSpec, str]:
        layers = self.g.residual_branch(t, first, add, lambda node: self._layer(node, 0))
        return ResidualSpec(layers=layers, name=add.output[0]), add.output[0]

    def _layer(self, node, pad: int) -> tuple[LayerSpec, str]:
        g = self.g
        upsample = 1
        while node.op_type in ("Resize", "Pad"):
            if node.op_type == "Resize":
                if pad:
                    raise g.fail(f"{node.output[0]!r}: upsampling after padding")
                upsample *= self._nearest_scale(node)
            else:
                pad += self._reflect_pad(node, axes=(2, 3))
            node = g.only_user(node.output[0])
        if node.op_type != "Conv":
            raise g.fail(f"{node.output[0]!r}: expected a Conv, found {node.op_type}")
        a = g.attrs(node)
        weight = g.const(node.input[1], "convolution weights")
        bias = g.const(node.input[2], "a convolution bias") if len(node.input) > 2 and node.input[2] else None
        strides = list(a.get("strides", [1, 1]))
        if (any(a.get("pads", [0] * 4)) or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID")
                or a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])) or strides[0] != strides[1]):
            raise g.fail(f"{node.output[0]!r}: a Conv with its own padding, groups, dilation or unequal strides")
        y, norm = node.output[0], None
        if any(u.op_type in _MEAN_OPS for u in g.users(y)):
            norm, y = self._conditional_norm(y)
        activation = None
        users = g.users(y)
        if len(users) == 1 and users[0].op_type in ("Relu", "Sigmoid"):
            activation = users[0].op_type.lower()
            y = users[0].output[0]
        return LayerSpec(weight=weight.astype(np.float32), bias=None if bias is None else bias.astype(np.float32),
                         stride=int(strides[0]), pad=pad, upsample=upsample, norm=norm, activation=activation,
                         name=node.output[0]), y

    def _reflect_pad(self, node, axes: tuple[int, int]) -> int:
        g = self.g
        a = g.attrs(node)
        pads = a.get("pads") if len(node.input) < 2 or not node.input[1] else g.const(node.input[1], "pads")
        if a.get("mode", "constant") != "reflect" or len(node.input) > 3 and node.input[3]:
            raise g.fail(f"{node.output[0]!r}: only reflection padding of all axes is read")
        pads = [int(p) for p in np.asarray(pads).ravel()]
        rank = len(pads) // 2
        amounts = {pads[i] for i in axes} | {pads[i + rank] for i in axes}
        others = [pads[i] for i in range(rank) if i not in axes] + [pads[i + rank] for i in range(rank) if i not in axes]
        if len(amounts) != 1 or any(others):
            raise g.fail(f"{node.output[0]!r}: padding {pads} is not the same on every side of H and W")
        return amounts.pop()

    def _nearest_scale(self, node) -> int:
        g = self.g
        a = g.attrs(node)
        if (a.get("mode") != "nearest" or a.get("coordinate_transformation_mode", "half_pixel") != "asymmetric"
                or a.get("nearest_mode", "round_prefer_floor") != "floor"):
            raise g.fail(f"{node.output[0]!r}: only nearest upsampling (asymmetric, floor) is read, found {a}")
        if len(node.input) < 3 or not node.input[2] or len(node.input) > 3 and node.input[3]:
            raise g.fail(f"{node.output[0]!r}: an upsampling to a fixed size, not by a scale")
        scales = [float(s) for s in g.const(node.input[2], "upsampling scales")]
        k = scales[2]
        if scales[:2] != [1.0, 1.0] or scales[3] != k or k != int(k) or k < 1:
            raise g.fail(f"{node.output[0]!r}: upsampling scales {scales}: not one integer factor on H and W")
        return int(k)

    # -------------------------------------------------------------- conditional instance norm

    def _on_image_path(self, tensor: str) -> bool:
        return self.g.depends_on(tensor, self.image, self._image_memo)

    def _conditional_norm(self, x: str) -> tuple[NormSpec, str]:
        g = self.g
        region, made = [], {x}
        changed = True
        while changed:
            changed = False
            for t in list(made):
                for node in g.users(t):
                    if node in region or node.op_type not in _NORM_OPS:
                        continue
                    if all(i in made or g.is_const(i) or not self._on_image_path(i) for i in node.input if i):
                        region.append(node)
                        made.update(node.output)
                        changed = True
        exits = {o for n in region for o in n.output
                 if o in g.outputs or any(u not in region for u in g.users(o))}
        if len(exits) != 1:
            raise g.fail(f"the instance norm of {x!r} has {len(exits)} outputs {sorted(exits)}, not one")
        y = exits.pop()
        style_in = {i for n in region for i in n.input if i and i not in made and not g.is_const(i)}
        gamma = [t for t in style_in if any(u.op_type == "Mul" for u in g.users(t) if u in region)]
        beta = [t for t in style_in if any(u.op_type in ("Add", "Sub") for u in g.users(t) if u in region)]
        if len(style_in) != 2 or len(gamma) != 1 or len(beta) != 1 or gamma == beta:
            raise g.fail(f"the instance norm of {x!r}: cannot tell its scale and shift from {sorted(style_in)}")
        eps = None
        for n in region:
            if n.op_type == "Add":
                consts = [i for i in n.input if g.is_const(i)]
                others = [g.made_by(i) for i in n.input if not g.is_const(i)]
                if len(consts) == 1 and others and others[0] is not None and others[0].op_type in _MEAN_OPS:
                    eps = float(np.asarray(g.consts[consts[0]]).ravel()[0])
        if eps is None:
            raise g.fail(f"the instance norm of {x!r}: no eps added to a mean of squares")
        gw, gb = self._style_affine(gamma[0])
        bw, bb = self._style_affine(beta[0])
        return NormSpec(eps=eps, gamma_weight=gw, gamma_bias=gb, beta_weight=bw, beta_bias=bb), y

    def _style_affine(self, tensor: str) -> tuple[np.ndarray, np.ndarray | None]:
        """``tensor`` as W s + b of the style input s: (W C x S, b C or None)."""
        g = self.g
        t = tensor
        while (node := g.made_by(t)) is not None and node.op_type in _SHAPE_OPS:
            t = node.input[0]
        node = g.made_by(t)
        if node is not None and node.op_type == "Conv" and self._is_style(node.input[0]):
            w = g.const(node.input[1], "style projection weights")
            if w.ndim != 4 or w.shape[2:] != (1, 1):
                raise g.fail(f"{tensor!r}: the style projection is not a 1x1 convolution")
            b = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0], np.float32)
            return w[:, :, 0, 0].astype(np.float32), b.astype(np.float32)
        if node is not None and node.op_type == "ReduceSum":
            axes = g.attrs(node).get("axes")
            if axes is None and len(node.input) > 1 and node.input[1]:
                axes = g.const(node.input[1], "reduction axes")
            mul = g.made_by(node.input[0])
            if list(np.asarray(axes).ravel()) == [0] and mul is not None and mul.op_type == "Mul":
                table = [i for i in mul.input if g.is_const(i)]
                weights = [i for i in mul.input if not g.is_const(i)]
                if len(table) == 1 and len(weights) == 1 and self._is_style(weights[0]):
                    rows = g.consts[table[0]]
                    if rows.ndim == 2:
                        return rows.T.astype(np.float32), None
        raise g.fail(f"{tensor!r}: the style scale/shift is neither a 1x1 convolution of the style vector "
                     "nor a weighted sum of per-style rows")

    def _is_style(self, tensor: str) -> bool:
        """Whether ``tensor`` is the style input, up to reshapes."""
        g = self.g
        while tensor != self.style:
            node = g.made_by(tensor)
            if node is None or node.op_type not in _SHAPE_OPS:
                return False
            tensor = node.input[0]
        return True

    def _style_dim(self) -> int:
        return int(np.prod([d for d in self.g.shapes.get(self.style, ()) if d]))
