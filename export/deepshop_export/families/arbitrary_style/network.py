"""Ghiasi, Lee, Kudlur, Dumoulin & Shlens 2017 ("Exploring the structure of a real-time, arbitrary
neural artistic stylization network"), as Magenta ships it for mobile: a style predictor that
maps a style image to a 100-d style vector, and a transfer network (Dumoulin's conditional
instance-norm network, families/multistyle/network.py) that paints a content image with the
style the vector describes.  Both NCHW, RGB in 0..1.

The predictor of the mobile release is a MobileNetV2-like trunk (distilled from the paper's
Inception-v3): convolutions with folded batch norm and ReLU6, depthwise 3x3 convolutions,
inverted residual blocks, a global average pool and a 1x1 bottleneck to the 100-d vector.  Its
layer list is read from the file (importers/magenta.py).  Its stride-2 convolutions pad the
TensorFlow "SAME" way, which depends on the input size (an even side is padded 0 before and 1
after, an odd side 1 and 1): :class:`SameConv2d` computes that from the input's shape, so the
graph runs at any style image size exactly as TensorFlow would.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..multistyle.network import CHANNEL_ORDER, MEAN, VALUE_RANGE, ConditionalStyleNet  # noqa: F401

#: The style vector's length in Magenta's release; the importer reads it from the file.
STYLE_DIM = 100


@dataclass
class ConvSpec:
    weight: np.ndarray                          # out x in/groups x k x k
    bias: np.ndarray | None
    stride: int = 1
    groups: int = 1
    padding: str | tuple = "same"               # "same" (TensorFlow) or (top, left, bottom, right)
    clip: tuple[float, float] | None = None     # activation clamp, (0, 6) for ReLU6
    name: str = ""


@dataclass
class ResidualConvs:
    convs: list = field(default_factory=list)   # output = input + convs(input)
    name: str = ""


def _parameter(a: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))


def same_padding(size, kernel: int, stride: int):
    """TensorFlow's SAME padding of one axis: (before, after), for an int or a symbolic size:
    in total max((ceil(size / stride) - 1) * stride + kernel - size, 0), the odd pixel after."""
    total = (size + stride - 1) // stride * stride - stride + kernel - size
    if kernel < stride:     # never negative otherwise: no max() for the exporter to carry
        total = torch.sym_max(total, 0) if not isinstance(size, int) else max(total, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Module):
    """A convolution with TensorFlow's padding: "same" (computed from the input size for a stride
    above 1, fixed and symmetric for stride 1) or explicit (top, left, bottom, right) zeros."""

    def __init__(self, spec: ConvSpec):
        super().__init__()
        out_c, in_c, k, k2 = spec.weight.shape
        if k != k2:
            raise ValueError(f"{spec.name}: non-square kernel {k}x{k2}")
        self.kernel, self.stride, self.same = k, spec.stride, spec.padding == "same"
        static = (k - 1) // 2 if self.same and spec.stride == 1 and k % 2 else 0
        self.explicit = None if self.same else tuple(int(p) for p in spec.padding)
        self.conv = nn.Conv2d(in_c * spec.groups, out_c, k, stride=spec.stride, padding=static, groups=spec.groups,
                              bias=spec.bias is not None)
        self.conv.weight = _parameter(spec.weight)
        if spec.bias is not None:
            self.conv.bias = _parameter(spec.bias)
        self.dynamic = self.same and (spec.stride > 1 or k % 2 == 0)
        lo, hi = spec.clip if spec.clip is not None else (None, None)
        self.activation = nn.Hardtanh(lo, hi) if spec.clip is not None else nn.Identity()

    def forward(self, x):
        if self.dynamic:
            top, bottom = same_padding(x.shape[2], self.kernel, self.stride)
            left, right = same_padding(x.shape[3], self.kernel, self.stride)
            x = F.pad(x, [left, right, top, bottom])
        elif self.explicit is not None and any(self.explicit):
            t, l, b, r = self.explicit
            x = F.pad(x, [l, r, t, b])
        return self.activation(self.conv(x))

    def static_twin(self) -> nn.Module:
        """The layer with the padding it has on an even-sized input, as fixed modules: what
        torch.fx (receptive_field) can follow."""
        if self.dynamic:
            top, bottom = same_padding(2 * self.stride * 8, self.kernel, self.stride)
            return nn.Sequential(nn.ZeroPad2d((top, bottom, top, bottom)), self.conv, self.activation)
        if self.explicit is not None and any(self.explicit):
            t, l, b, r = self.explicit
            return nn.Sequential(nn.ZeroPad2d((l, r, t, b)), self.conv, self.activation)
        return nn.Sequential(self.conv, self.activation)


class Residual(nn.Module):
    def __init__(self, spec: ResidualConvs):
        super().__init__()
        self.convs = nn.Sequential(*(SameConv2d(c) for c in spec.convs))

    def forward(self, x):
        return x + self.convs(x)


class _ResidualTwin(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class StylePredictor(nn.Module):
    """forward(style image N x 3 x H x W, RGB 0..1) -> N x STYLE_DIM style vectors."""

    def __init__(self, trunk: list, head: ConvSpec):
        super().__init__()
        self.trunk = nn.Sequential(*(Residual(b) if isinstance(b, ResidualConvs) else SameConv2d(b) for b in trunk))
        self.head = SameConv2d(head)
        self.style_dim = int(head.weight.shape[0])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.trunk(image)
        pooled = features.mean(dim=(2, 3), keepdim=True)
        return self.head(pooled).flatten(1)

    def trunk_twin(self) -> nn.Module:
        """The trunk with fixed paddings (see SameConv2d.static_twin), for receptive_field."""
        layers = []
        for m in self.trunk:
            if isinstance(m, Residual):
                layers.append(_ResidualTwin(nn.Sequential(*(c.static_twin() for c in m.convs))))
            else:
                layers.append(m.static_twin())
        return nn.Sequential(*layers)

    @property
    def stride_multiple(self) -> int:
        return int(np.prod([m.stride for m in self.modules() if isinstance(m, SameConv2d)]))
