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


#: The tutorial network's fixed input side and the channels of its 1 x 1 bottleneck (3^7).
TUTORIAL_SIZE, TUTORIAL_BOTTLENECK = 128, 2187
#: Encoder channels at 64, 32, 16, 8, 4, 2 px (full width); the decoder mirrors them.
TUTORIAL_WIDTHS = (64, 128, 256, 512, 1024, 2048)


class TutorialNet(nn.Module):
    """The baseline of issue 11: the line-drawing tutorial's network in form, a fixed 128 x 128
    single-channel input squeezed to 1 x 1 x 2187 and expanded back to 128 x 128 x K, with no skip
    connections.  Encoder: seven 4 x 4 stride-2 convolutions (128 -> 1 px; channels
    TUTORIAL_WIDTHS x ``width``, then 2187), decoder: seven 4 x 4 stride-2 transposed convolutions
    back (the last to the K class scores); batch norm + ReLU between, as in LineArtUNet.  The
    tutorial's exact layer list is not available here; at full width this is 233 M parameters
    (the tutorial states 290 M), and ``width`` < 1 narrows every layer but the bottleneck.

    Being fixed-size, it sees a larger input (sides multiples of 128) as independent 128 x 128
    blocks, which is how such a network is used on a larger image; the engine cannot tile it
    (no export)."""

    def __init__(self, classes: int = 27, width: float = 1.0, in_channels: int = 1):
        super().__init__()
        if classes < 2 or not 0 < width <= 1:
            raise ValueError(f"TutorialNet: classes >= 2 and 0 < width <= 1 (got {classes}, {width})")
        self.classes, self.width, self.in_channels = classes, width, in_channels
        chans = [in_channels] + [max(1, round(c * width)) for c in TUTORIAL_WIDTHS] + [TUTORIAL_BOTTLENECK]

        def block(layer, cout):
            return nn.Sequential(layer, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.encoder = nn.Sequential(*[block(nn.Conv2d(a, b, 4, 2, 1, bias=False), b)
                                       for a, b in zip(chans[:-1], chans[1:])])
        back = chans[::-1][:-1] + [classes]        # 2187, 2048w, ..., 64w, K
        layers = [block(nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), b) for a, b in zip(back[:-2], back[1:-1])]
        layers.append(nn.ConvTranspose2d(back[-2], back[-1], 4, 2, 1))
        self.decoder = nn.Sequential(*layers)

    @property
    def stride_multiple(self) -> int:
        return TUTORIAL_SIZE

    def config(self) -> dict:
        return {"arch": "tutorial", "classes": self.classes, "width": self.width, "in_channels": self.in_channels,
                "bottleneck": TUTORIAL_BOTTLENECK, "input_size": TUTORIAL_SIZE}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        s = TUTORIAL_SIZE
        if h % s or w % s:
            raise ValueError(f"TutorialNet takes {s} x {s} inputs (or multiples, as blocks), got {h} x {w}")
        by, bx = h // s, w // s
        blocks = x.reshape(n, c, by, s, bx, s).permute(0, 2, 4, 1, 3, 5).reshape(n * by * bx, c, s, s)
        out = self.decoder(self.encoder(blocks))
        k = out.shape[1]
        return out.reshape(n, by, bx, k, s, s).permute(0, 3, 1, 4, 2, 5).reshape(n, k, h, w)


ARCHITECTURES = ("unet", "tutorial")


def build_network(settings: dict, classes: int) -> nn.Module:
    """The network a run's settings ask for (runs from before --arch are U-Nets)."""
    if settings.get("arch", "unet") == "tutorial":
        return TutorialNet(classes, settings.get("width", 1.0))
    return LineArtUNet(classes, settings["base"], settings["depth"])
