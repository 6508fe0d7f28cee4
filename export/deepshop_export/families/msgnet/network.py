"""MSG-Net, the multi-style generative network of Zhang & Dana 2017 ("Multi-style Generative
Network for Real-time Transfer"), with the module names of the authors' PyTorch release
(``experiments/net.py``), so that ``21styles.model`` loads by name.

Layout (images BGR in 0..255, nothing subtracted; H and W multiples of 4):

    model1 (the siamese encoder, shared by the style and the content path):
        ConvLayer 7x7/1 3 -> 64, InstanceNorm, ReLU,
        Bottleneck(64 -> 32*4, stride 2), Bottleneck(128 -> ngf*4, stride 2)     (1/4 resolution)
    model = [model1, Inspiration(ngf*4), 6 x Bottleneck(ngf*4), UpBottleneck(ngf*4 -> 32*4),
             UpBottleneck(128 -> 16*4), InstanceNorm, ReLU, ConvLayer 7x7/1 64 -> 3]

Bottlenecks are pre-activation (norm, ReLU, conv) x 3 with 1x1 / 3x3 / 1x1 convolutions and a 1x1
(strided) residual convolution where the shape changes; up-sampling bottlenecks use nearest x2
then a convolution on both branches.  Every InstanceNorm has no affine parameters.  Convolutions
wider than 1x1 are preceded by reflection padding.

The Inspiration (CoMatch) layer: with G the Gram matrix of the style's encoder features divided
by C*h*w, Y = (W G)^T X on the content features X (C x h*w).  Here G is an explicit input of
``forward`` (the engine computes it with its native Gram kernel), so one network serves any style.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

# Reflection padding then convolution, with the state_dict names (reflection_pad, conv2d) the
# published MSG-Net weights use too: the same layer as TransformerNet's.
from ..transformer_net.network import ConvLayer  # noqa: E402

VALUE_RANGE = (0.0, 255.0)
CHANNEL_ORDER = "BGR"
MEAN = (0.0, 0.0, 0.0)
#: Two stride-2 stages: H and W must be multiples of 4 to come back at the same size.
STRIDE_MULTIPLE = 4
EXPANSION = 4
N_BLOCKS = 6


class UpsampleConvLayer(nn.Module):
    """Nearest x``upsample``, reflection padding (none for 1x1), convolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, upsample: int):
        super().__init__()
        self.upsample = upsample
        self.padding = kernel_size // 2
        if self.padding:
            self.reflection_pad = nn.ReflectionPad2d(self.padding)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        if self.padding:
            x = self.reflection_pad(x)
        return self.conv2d(x)


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


class Bottleneck(nn.Module):
    """Pre-activation residual bottleneck; ``downsample`` adds the 1x1 residual convolution."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: bool = False):
        super().__init__()
        self.downsample = downsample
        if downsample:
            self.residual_layer = nn.Conv2d(inplanes, planes * EXPANSION, kernel_size=1, stride=stride)
        self.conv_block = nn.Sequential(
            _norm(inplanes), nn.ReLU(), nn.Conv2d(inplanes, planes, kernel_size=1, stride=1),
            _norm(planes), nn.ReLU(), ConvLayer(planes, planes, kernel_size=3, stride=stride),
            _norm(planes), nn.ReLU(), nn.Conv2d(planes, planes * EXPANSION, kernel_size=1, stride=1))

    def forward(self, x):
        residual = self.residual_layer(x) if self.downsample else x
        return residual + self.conv_block(x)


class UpBottleneck(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 2):
        super().__init__()
        self.residual_layer = UpsampleConvLayer(inplanes, planes * EXPANSION, kernel_size=1, stride=1, upsample=stride)
        self.conv_block = nn.Sequential(
            _norm(inplanes), nn.ReLU(), nn.Conv2d(inplanes, planes, kernel_size=1, stride=1),
            _norm(planes), nn.ReLU(), UpsampleConvLayer(planes, planes, kernel_size=3, stride=1, upsample=stride),
            _norm(planes), nn.ReLU(), nn.Conv2d(planes, planes * EXPANSION, kernel_size=1, stride=1))

    def forward(self, x):
        return self.residual_layer(x) + self.conv_block(x)


class Inspiration(nn.Module):
    """CoMatch: Y = (W G)^T X, X the content features as C x (h*w), G the style Gram (B x C x C)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, channels, channels).uniform_(0.0, 0.02))
        self.channels = channels

    def forward(self, x: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p = torch.matmul(self.weight, gram)                       # B x C x C (B = 1 or N)
        y = torch.matmul(p.transpose(1, 2), x.reshape(n, c, h * w))
        return y.reshape(n, c, h, w)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """B x C x C: F F^T / (C h w), as MSG-Net normalises it (ds.gram(..., normalize="CN"))."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return torch.matmul(f, f.transpose(1, 2)) / (c * h * w)


class MSGNet(nn.Module):
    """The whole network.  ``forward(content, gram)``; ``set_target(style)`` / ``forward(content)``
    keeps the authors' stateful use for training."""

    def __init__(self, ngf: int = 128, n_blocks: int = N_BLOCKS, input_nc: int = 3, output_nc: int = 3):
        super().__init__()
        self.ngf = ngf
        self.model1 = nn.Sequential(
            ConvLayer(input_nc, 64, kernel_size=7, stride=1), _norm(64), nn.ReLU(),
            Bottleneck(64, 32, 2, downsample=True), Bottleneck(32 * EXPANSION, ngf, 2, downsample=True))
        self.ins = Inspiration(ngf * EXPANSION)
        layers = [self.model1, self.ins]
        layers += [Bottleneck(ngf * EXPANSION, ngf, 1) for _ in range(n_blocks)]
        layers += [UpBottleneck(ngf * EXPANSION, 32, 2), UpBottleneck(32 * EXPANSION, 16, 2),
                   _norm(16 * EXPANSION), nn.ReLU(), ConvLayer(16 * EXPANSION, output_nc, kernel_size=7, stride=1)]
        # The authors' module list (state_dict keys model.N.*); model.0 is model1 and model.1 is ins,
        # so their parameters are listed twice, as in 21styles.model.
        self.model = nn.ModuleList(layers)
        self._target: torch.Tensor | None = None

    @property
    def feature_channels(self) -> int:
        return self.ngf * EXPANSION

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.model1(image)

    def style_gram(self, style: torch.Tensor) -> torch.Tensor:
        return gram_matrix(self.encode(style))

    def set_target(self, style: torch.Tensor) -> None:
        self._target = self.style_gram(style)

    def generate(self, content: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
        x = self.ins(self.model1(content), gram)
        for layer in self.model[2:]:
            x = layer(x)
        return x

    def forward(self, content: torch.Tensor, gram: torch.Tensor | None = None) -> torch.Tensor:
        if gram is None:
            if self._target is None:
                raise ValueError("MSGNet: no style: call set_target(style) or pass gram")
            gram = self._target
        return self.generate(content, gram)


class Encoder(nn.Module):
    """The style path's graph: image -> encoder features (N x ngf*4 x H/4 x W/4)."""

    def __init__(self, net: MSGNet):
        super().__init__()
        self.model1 = net.model1

    def forward(self, image):
        return self.model1(image)


class Generator(nn.Module):
    """The content path's graph: (image, Gram 1 x C x C) -> stylised image."""

    def __init__(self, net: MSGNet):
        super().__init__()
        self.net = net

    def forward(self, image, gram):
        return self.net.generate(image, gram)


def parameter_tensors(net: MSGNet) -> list:
    """The parameters in the authors' registration order, each once (model1 first: its 26
    tensors... see ENCODER_TENSORS), the order ``--freeze N`` counts in."""
    return list(net.parameters())
