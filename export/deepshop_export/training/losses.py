"""Perceptual losses of Johnson et al. 2016 (fast neural style).

* content: mean squared difference of loss-network activations at one layer;
* style: mean squared difference of Gram matrices (channel correlations, normalised by
  C*H*W as in the PyTorch fast_neural_style example) summed over several layers;
* total variation: mean absolute difference of neighbouring pixels, which suppresses the
  high-frequency noise the generator otherwise learns to exploit.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C) Gram matrices divided by C*H*W."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(out_feats: torch.Tensor, target_feats: torch.Tensor) -> torch.Tensor:
    return torch.mean((out_feats - target_feats) ** 2)


def style_loss(out_feats: Mapping[str, torch.Tensor], style_grams: Mapping[str, torch.Tensor],
               layers: Sequence[str]) -> torch.Tensor:
    """Sum over ``layers`` of the MSE between the output's Gram matrices and the style's
    (``style_grams[layer]`` has shape (1, C, C) and is broadcast over the batch)."""
    total = out_feats[layers[0]].new_zeros(())
    for layer in layers:
        g = gram_matrix(out_feats[layer])
        total = total + torch.mean((g - style_grams[layer].expand_as(g)) ** 2)
    return total


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute horizontal plus vertical difference of neighbouring pixels."""
    dh = torch.mean(torch.abs(images[:, :, 1:, :] - images[:, :, :-1, :]))
    dw = torch.mean(torch.abs(images[:, :, :, 1:] - images[:, :, :, :-1]))
    return dh + dw


class PerceptualLoss(torch.nn.Module):
    """Weighted sum of content, style and TV losses with a fixed style image.

    ``forward(output, content)`` returns ``(total, {"content": .., "style": .., "tv": ..})``
    with the weighted terms (as floats are logged; tensors keep the graph)."""

    def __init__(self, loss_net: torch.nn.Module, style_rgb255: torch.Tensor, content_layer: str,
                 style_layers: Sequence[str], content_weight: float, style_weight: float,
                 tv_weight: float):
        super().__init__()
        self.loss_net = loss_net
        self.content_layer = content_layer
        self.style_layers = list(style_layers)
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        with torch.no_grad():
            feats = loss_net(style_rgb255)
            for layer in self.style_layers:
                self.register_buffer(f"gram_{layer}", gram_matrix(feats[layer]))

    def style_grams(self) -> dict[str, torch.Tensor]:
        return {l: getattr(self, f"gram_{l}") for l in self.style_layers}

    def forward(self, output: torch.Tensor, content: torch.Tensor):
        out_feats = self.loss_net(output)
        with torch.no_grad():
            target = self.loss_net(content)[self.content_layer]
        c = self.content_weight * content_loss(out_feats[self.content_layer], target)
        s = self.style_weight * style_loss(out_feats, self.style_grams(), self.style_layers)
        t = self.tv_weight * total_variation(output)
        return c + s + t, {"content": c, "style": s, "tv": t}
