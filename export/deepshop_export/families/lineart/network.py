"""The line-art colouriser: a fully convolutional U-Net from one edge channel to K class scores.

Encoder: `depth` levels of two 3x3 conv + batch-norm + ReLU blocks, each followed by 2x2 max
pooling; a bottleneck block; decoder: nearest 2x upsampling, concatenation with the encoder's
feature map of that scale (skip connection), two conv blocks; a 1x1 conv to the class scores.
No fully connected layer and no global pooling, so any input whose sides are multiples of
2^depth runs, and tiles computed apart agree with the whole image within the receptive field
(batch norm is a per-channel affine map in eval mode; no per-image statistics).

With the defaults (base 24, depth 3, 27 classes) it has about 1.1 M parameters, against the
tutorial's 290 M for a fixed 128 x 128 input.
"""
from __future__ import annotations

import torch
from torch import nn


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LineArtUNet(nn.Module):
    """N x 1 x H x W edges in [0, 1] -> N x K x H x W class scores (logits); H, W multiples of
    ``stride_multiple`` (2^depth)."""

    def __init__(self, classes: int = 27, base: int = 24, depth: int = 3, in_channels: int = 1):
        super().__init__()
        if depth < 1 or base < 1 or classes < 2:
            raise ValueError(f"LineArtUNet: depth >= 1, base >= 1, classes >= 2 (got {depth}, {base}, {classes})")
        self.classes, self.base, self.depth, self.in_channels = classes, base, depth, in_channels
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths[:-1]:
            self.down.append(conv_block(cin, w))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = conv_block(widths[-2], widths[-1])
        self.up = nn.ModuleList()
        self.reduce = nn.ModuleList()
        for i in range(depth - 1, -1, -1):
            # 1x1 conv after upsampling halves the channels, then the skip is concatenated.
            self.reduce.append(nn.Conv2d(widths[i + 1], widths[i], 1))
            self.up.append(conv_block(2 * widths[i], widths[i]))
        self.head = nn.Conv2d(widths[0], classes, 1)

    @property
    def stride_multiple(self) -> int:
        return 2 ** self.depth

    def config(self) -> dict:
        return {"classes": self.classes, "base": self.base, "depth": self.depth, "in_channels": self.in_channels}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for reduce, block, skip in zip(self.reduce, self.up, reversed(skips)):
            x = reduce(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
