"""A feature network: a chain of convolutions, ReLUs and poolings whose outputs are the named ReLU
feature maps, in network order."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from deepshop_native.core.errors import ModelError, OptionError

POOLINGS = ("max", "average")


class FeatureNet(nn.Module):
    """``layers`` (an nn.Sequential) run in order; forward returns the outputs of the layers
    named in ``feature_names`` (ReLU layers), as a tuple in network order.  The chain ends at the
    last of them."""

    def __init__(self, layers: nn.Sequential, feature_names: list[str], pooling: str):
        super().__init__()
        self.layers = layers
        self.feature_names = list(feature_names)
        self.pooling = pooling

    def forward(self, x):
        features = []
        for name, layer in self.layers.named_children():
            x = layer(x)
            if name in self.feature_names:
                features.append(x)
        return tuple(features)


def network_from_caffe(layers, pooling: str = "max") -> FeatureNet:
    """Rebuild Caffe Convolution / ReLU / Pooling layers (importers.caffe.CaffeLayer) as a
    FeatureNet; every pooling becomes ``pooling`` ("max" as VGG was trained, or "average", which
    Gatys et al. found gives smoother images), with Caffe's rounding up of the output size."""
    if pooling not in POOLINGS:
        raise OptionError(f"--pooling {pooling!r}: use one of {', '.join(POOLINGS)}")
    modules: dict[str, nn.Module] = {}
    features: list[str] = []
    channels = None
    for layer in layers:
        p = layer.params
        if layer.type == "Convolution":
            weight = torch.from_numpy(layer.blobs[0].astype("float32"))
            n_out = p["num_output"] or weight.shape[0]
            if weight.ndim != 4:   # legacy blobs may be stored flat
                weight = weight.reshape(n_out, -1, *p["kernel"])
            conv = nn.Conv2d(weight.shape[1] * p["group"], n_out, tuple(p["kernel"]), tuple(p["stride"]),
                             tuple(p["pad"]), tuple(p["dilation"]), p["group"], bias=p["bias"])
            if tuple(weight.shape) != tuple(conv.weight.shape):
                raise ModelError(f"convolution {layer.name!r}: weights of shape {tuple(weight.shape)}, "
                                 f"expected {tuple(conv.weight.shape)}")
            if channels is not None and conv.in_channels != channels:
                raise ModelError(f"convolution {layer.name!r} takes {conv.in_channels} channels, gets {channels}")
            with torch.no_grad():
                conv.weight.copy_(weight)
                if p["bias"]:
                    if len(layer.blobs) < 2 or layer.blobs[1].size != n_out:
                        raise ModelError(f"convolution {layer.name!r}: no bias of {n_out} values")
                    conv.bias.copy_(torch.from_numpy(layer.blobs[1].reshape(-1).astype("float32")))
            channels = n_out
            modules[layer.name] = conv
        elif layer.type == "ReLU":
            modules[layer.name] = nn.ReLU()
            features.append(layer.name)
        elif layer.type == "Pooling":
            kind = (nn.MaxPool2d if pooling == "max" else nn.AvgPool2d)
            kwargs = {} if pooling == "max" else {"count_include_pad": False}
            modules[layer.name] = kind(tuple(p["kernel"]), tuple(p["stride"]), tuple(p["pad"]), ceil_mode=True, **kwargs)
        else:
            raise ModelError(f"layer {layer.name!r} of type {layer.type} is not supported")
    first = next(m for m in modules.values() if isinstance(m, nn.Conv2d))
    if first.in_channels != 3:
        raise ModelError(f"the first convolution takes {first.in_channels} channels, not an image's 3")
    # Drop what follows the last feature: it would be computed for nothing.
    names = list(modules)
    names = names[:names.index(features[-1]) + 1]
    return FeatureNet(nn.Sequential(OrderedDict((n, modules[n]) for n in names)), features, pooling).eval()
