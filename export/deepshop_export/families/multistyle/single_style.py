"""A conditional-instance-norm network narrowed to one style, and which of its parameters a
fine-tune trains.

Both pretrained conditional networks (the 26-style network, Magenta's transfer network;
network.py) compute every norm's scale and shift as an affine map of a style input:
gamma = W s (+ b).  For one fixed style s0 the map is a constant per channel, so the network of
that style alone is the same network whose norms take a 1-vector ``[1]`` with gamma = W' [1],
W' = the column W s0 (+ b).  ``single_style_net`` builds it: its output equals the original's
with s0, and its norm parameters are exactly the per-channel scales and shifts of the one style
(Dumoulin et al.: a new style is a new set of them).

Freeze modes (``--freeze`` of ``deepshop-train finetune``):

* ``none``: every parameter trains;
* ``encoder``: the convolutions of the contracting layers (the layers before the first residual
  block: 9x9 stride 1, 3x3 stride 2, 3x3 stride 2) stay fixed; their norms' scales and shifts,
  which carry the style, still train.  This is the counterpart of the MSG-Net fine-tune that
  froze "the first 26 parameter tensors" (PaddleHub's count of MSG-Net's encoder: its
  convolutions and instance-norm parameters before the style enters); in these networks the
  style enters at every norm, so only the convolutions are frozen;
* ``all-but-norm``: only the norms' scales and shifts train (the cheapest: a new style is a new
  set of scale/shift vectors; the convolutions are the pretrained ones).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .network import ConditionalInstanceNorm, ConditionalStyleNet, ConvLayer, ResidualBlock

FREEZE_MODES = ("none", "encoder", "all-but-norm")


def single_style_net(net: ConditionalStyleNet, style: torch.Tensor) -> ConditionalStyleNet:
    """A copy of ``net`` whose norms take a style input of one value (1.0 is ``style``): each
    norm's gamma and beta become Linear(1, C) without bias, weight = the original's map at
    ``style`` (S values, or 1 x S)."""
    style = style.detach().float().reshape(1, net.style_dim)
    out = copy.deepcopy(net).float()
    with torch.no_grad():
        for module in out.modules():
            if isinstance(module, ConditionalInstanceNorm):
                for name in ("gamma", "beta"):
                    old = getattr(module, name)
                    new = nn.Linear(1, module.channels, bias=False)
                    new.weight.copy_(old(style).reshape(module.channels, 1))
                    setattr(module, name, new)
                module.style_dim = 1
    out.style_dim = 1
    return out


def encoder_layers(net: ConditionalStyleNet) -> list:
    """The contracting layers: the ConvLayers before the first residual block."""
    layers = []
    for block in net.blocks:
        if isinstance(block, ResidualBlock):
            break
        layers.append(block)
    return layers


def trainable_names(net: ConditionalStyleNet, freeze: str) -> list:
    """Names of the parameters that train under ``freeze`` (FREEZE_MODES), in registration order."""
    if freeze not in FREEZE_MODES:
        raise ValueError(f"freeze mode {freeze!r}: one of {', '.join(FREEZE_MODES)}")
    names = [n for n, _ in net.named_parameters()]
    if freeze == "none":
        return names
    if freeze == "all-but-norm":
        return [n for n in names if ".cin." in n]
    frozen = set()
    for layer in encoder_layers(net):
        assert isinstance(layer, ConvLayer)
        frozen.update(id(p) for p in layer.conv.parameters())
    return [n for n, p in net.named_parameters() if id(p) not in frozen]


def apply_freeze(net: ConditionalStyleNet, freeze: str) -> list:
    """Set requires_grad per ``freeze``; returns the trainable parameters."""
    keep = set(trainable_names(net, freeze))
    params = []
    for name, p in net.named_parameters():
        p.requires_grad_(name in keep)
        if name in keep:
            params.append(p)
    return params
