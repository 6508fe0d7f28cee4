"""The conditional-instance-norm style network of Dumoulin, Shlens & Kudlur 2017 ("A Learned
Representation for Artistic Style"), NCHW, RGB in 0..1, output in 0..1 (sigmoid).

The layout is whatever the importer reads from a file (importers/multistyle26.py,
importers/magenta.py): a list of layers, each

    [nearest upsampling x k] -> [reflection pad p] -> conv -> [conditional instance norm] -> [ReLU | sigmoid]

and residual blocks of two such layers whose output is added to their input.  Dumoulin's
network is: three contracting layers (9x9 stride 1, 3x3 stride 2, 3x3 stride 2), five residual
blocks, two upsampling layers and a 9x9 output layer; Ghiasi et al.'s arbitrary-style transfer
network (families/arbitrary_style) is the same network with its contracting layers' batch norm
folded into the convolutions (bias, no norm).

Conditional instance norm: y = (x - mean) / sqrt(var + eps) * gamma(s) + beta(s), mean and
(biased) variance per image and channel, with gamma and beta affine functions of the style input
s: for the 26-style network s is the vector of style weights and gamma = s @ G (a weighted mean
of the learned per-style parameters, no bias); for the arbitrary-style network s is the 100-d
style embedding and gamma = W s + b.  Both are an ``nn.Linear``.  The normalisation itself is an
``nn.InstanceNorm2d`` without affine parameters, so that the global-statistics machinery
(families/transformer_net/statistics.py) finds and replaces it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

VALUE_RANGE = (0.0, 1.0)
CHANNEL_ORDER = "RGB"
MEAN = (0.0, 0.0, 0.0)

_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, None: nn.Identity}


# ------------------------------------------------------------------ what a reader produces

@dataclass
class NormSpec:
    """A conditional instance norm as read: eps and the affine maps of the style input
    (``gamma_weight`` C x S, ``gamma_bias`` C or None; the same for beta)."""
    eps: float
    gamma_weight: np.ndarray
    gamma_bias: np.ndarray | None
    beta_weight: np.ndarray
    beta_bias: np.ndarray | None


@dataclass
class LayerSpec:
    weight: np.ndarray                 # out x in x k x k
    bias: np.ndarray | None
    stride: int = 1
    pad: int = 0                       # reflection padding on every side, before the conv
    upsample: int = 1                  # nearest upsampling factor, before the padding
    norm: NormSpec | None = None
    activation: str | None = None      # "relu", "sigmoid" or None
    name: str = ""


@dataclass
class ResidualSpec:
    layers: list = field(default_factory=list)   # two LayerSpec; output = input + layers(input)
    name: str = ""


# ------------------------------------------------------------------ modules

def _parameter(a: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))


class ConditionalInstanceNorm(nn.Module):
    def __init__(self, channels: int, style_dim: int, eps: float, bias: bool):
        super().__init__()
        self.channels, self.style_dim = channels, style_dim
        self.norm = nn.InstanceNorm2d(channels, eps=eps, affine=False)
        self.gamma = nn.Linear(style_dim, channels, bias=bias)
        self.beta = nn.Linear(style_dim, channels, bias=bias)

    @classmethod
    def from_spec(cls, spec: NormSpec) -> "ConditionalInstanceNorm":
        channels, style_dim = spec.gamma_weight.shape
        m = cls(channels, style_dim, spec.eps, bias=spec.gamma_bias is not None)
        m.gamma.weight, m.beta.weight = _parameter(spec.gamma_weight), _parameter(spec.beta_weight)
        if spec.gamma_bias is not None:
            m.gamma.bias, m.beta.bias = _parameter(spec.gamma_bias), _parameter(spec.beta_bias)
        return m

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = style.reshape(-1, self.style_dim)                 # 1 x S: shared by the batch
        gamma = self.gamma(s).reshape(-1, self.channels, 1, 1)
        beta = self.beta(s).reshape(-1, self.channels, 1, 1)
        return self.norm(x) * gamma + beta


class ConvLayer(nn.Module):
    def __init__(self, spec: LayerSpec):
        super().__init__()
        out_c, in_c, k, k2 = spec.weight.shape
        if k != k2:
            raise ValueError(f"{spec.name}: non-square kernel {k}x{k2}")
        self.upsample = nn.Upsample(scale_factor=spec.upsample, mode="nearest") if spec.upsample > 1 else nn.Identity()
        self.pad = nn.ReflectionPad2d(spec.pad) if spec.pad else nn.Identity()
        self.conv = nn.Conv2d(in_c, out_c, k, stride=spec.stride, bias=spec.bias is not None)
        self.conv.weight = _parameter(spec.weight)
        if spec.bias is not None:
            self.conv.bias = _parameter(spec.bias)
        self.cin = ConditionalInstanceNorm.from_spec(spec.norm) if spec.norm is not None else None
        self.activation = _ACTIVATIONS[spec.activation]()

    def spatial(self, x):
        """The layer without its norm (per pixel): the path the receptive field follows."""
        return self.activation(self.conv(self.pad(self.upsample(x))))

    def forward(self, x, style):
        x = self.conv(self.pad(self.upsample(x)))
        if self.cin is not None:
            x = self.cin(x, style)
        return self.activation(x)


class ResidualBlock(nn.Module):
    def __init__(self, spec: ResidualSpec):
        super().__init__()
        self.layers = nn.ModuleList(ConvLayer(s) for s in spec.layers)

    def spatial(self, x):
        y = x
        for layer in self.layers:
            y = layer.spatial(y)
        return x + y

    def forward(self, x, style):
        y = x
        for layer in self.layers:
            y = layer(y, style)
        return x + y


class _Spatial(nn.Module):
    """The network with its norms left out, traceable by torch.fx (receptive_field)."""

    def __init__(self, net: "ConditionalStyleNet"):
        super().__init__()
        self.blocks = net.blocks

    def forward(self, x):
        for block in self.blocks:
            x = block.spatial(x)
        return x


class ConditionalStyleNet(nn.Module):
    """forward(image N x 3 x H x W in 0..1, style: S values (or 1 x S) shared by the batch)."""

    def __init__(self, blocks: list, style_dim: int):
        super().__init__()
        self.style_dim = style_dim
        self.blocks = nn.ModuleList(ResidualBlock(b) if isinstance(b, ResidualSpec) else ConvLayer(b) for b in blocks)

    @property
    def stride_multiple(self) -> int:
        """Product of the strides: H and W multiples of it come back at their own size."""
        strides = [m.conv.stride[0] for m in self.modules() if isinstance(m, ConvLayer)]
        return int(np.prod(strides))

    def spatial(self) -> nn.Module:
        return _Spatial(self)

    def forward(self, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = image
        for block in self.blocks:
            x = block(x, style)
        return x
