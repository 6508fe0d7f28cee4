"""TransformerNet of Johnson et al. 2016, with the parameter names of the PyTorch
fast_neural_style example, so that the ``.pth`` checkpoints people already have load as they are.

Layout (input: N x 3 x H x W RGB in 0..255, output the same, H and W multiples of 4):
    conv1 9x9/1 (32) -> conv2 3x3/2 (64) -> conv3 3x3/2 (128) -> res1..res5 (128)
    -> deconv1 (nearest x2, 3x3, 64) -> deconv2 (nearest x2, 3x3, 32) -> deconv3 9x9/1 (3)
Every convolution is preceded by reflection padding; in1..in5 are affine InstanceNorms.
"""
from __future__ import annotations

import re
from typing import Mapping

import torch
from torch import nn
import torch.nn.functional as F

#: Input value range, channel order and mean the network was trained with (see the example's
#: ``transforms.Lambda(lambda x: x.mul(255))``): plain RGB in 0..255, nothing subtracted.
VALUE_RANGE = (0.0, 255.0)
CHANNEL_ORDER = "RGB"
MEAN = (0.0, 0.0, 0.0)
#: Two stride-2 convolutions: H and W must be multiples of 4 to come back at the same size.
STRIDE_MULTIPLE = 4


class ConvLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3, 1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x):
        y = F.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(y))


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour upsampling then a convolution: avoids the checkerboard of transposed convs."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, upsample: int | None = None):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        if self.upsample:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = ConvLayer(3, 32, 9, 1)
        self.in1 = nn.InstanceNorm2d(32, affine=True)
        self.conv2 = ConvLayer(32, 64, 3, 2)
        self.in2 = nn.InstanceNorm2d(64, affine=True)
        self.conv3 = ConvLayer(64, 128, 3, 2)
        self.in3 = nn.InstanceNorm2d(128, affine=True)
        self.res1 = ResidualBlock(128)
        self.res2 = ResidualBlock(128)
        self.res3 = ResidualBlock(128)
        self.res4 = ResidualBlock(128)
        self.res5 = ResidualBlock(128)
        self.deconv1 = UpsampleConvLayer(128, 64, 3, 1, upsample=2)
        self.in4 = nn.InstanceNorm2d(64, affine=True)
        self.deconv2 = UpsampleConvLayer(64, 32, 3, 1, upsample=2)
        self.in5 = nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, 9, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


# Checkpoints saved by PyTorch < 0.4 carry running statistics for the InstanceNorm layers, which
# the affine, statistics-free InstanceNorm of today neither has nor needs.
_STALE_NORM_KEY = re.compile(r"(^|\.)in\d+\.running_(mean|var)$")


def clean_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the stale InstanceNorm running statistics of old fast_neural_style checkpoints."""
    return {k: v for k, v in state_dict.items() if not _STALE_NORM_KEY.search(k)}
