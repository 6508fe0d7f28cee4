"""Johnson et al.'s fast-neural-style networks from their Torch7 ``.t7`` files, rebuilt in torch.

The public files (``instance_norm/{candy,feathers,la_muse,mosaic,the_scream,udnie}.t7`` and
``eccv16/{composition_vii,la_muse,starry_night,the_wave}.t7``, the ones OpenCV's
``fast_neural_style.py`` sample runs with ``cv.dnn.readNetFromTorch``) hold either the ``nn``
module itself or a checkpoint table ``{model = <module>, opt = {...}}``.  The module tree is
rebuilt layer by layer (:data:`SUPPORTED`); anything else is refused with its class name.

The networks take BGR images in 0..255 with the ImageNet mean (103.939, 116.779, 123.680)
subtracted and give the same back (OpenCV's sample subtracts the mean with blobFromImage and adds
it to the output): the metadata says so, and the engine does both.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import nn

from deepshop_native.core.errors import ModelError

from .torch7 import TorchObject, load_t7, lua_list

#: Input convention of the released networks (fast-neural-style's "vgg" preprocessing).
CHANNEL_ORDER = "BGR"
MEAN = (103.939, 116.779, 123.680)
VALUE_RANGE = (0.0, 255.0)


class ConcatTable(nn.Module):
    """Torch7 nn.ConcatTable: every branch applied to the same input; the list of their outputs."""

    def __init__(self, branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return [branch(x) for branch in self.branches]


class CAddTable(nn.Module):
    """Torch7 nn.CAddTable: the sum of a list of tensors."""

    def forward(self, xs):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total


class MulConstant(nn.Module):
    def __init__(self, constant: float):
        super().__init__()
        self.constant = float(constant)

    def forward(self, x):
        return x * self.constant


class ShaveImage(nn.Module):
    """fast-neural-style's nn.ShaveImage: ``size`` pixels cut from every side (the shortcut of a
    residual block whose two 3x3 convolutions are unpadded)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = int(size)

    def forward(self, x):
        s = self.size
        return x[:, :, s:x.shape[2] - s, s:x.shape[3] - s] if s else x


class _Walk:
    """Receptive field and stride of the network, walked analytically while it is rebuilt: per
    layer, ``scale`` = image pixels per feature pixel, ``reach`` = how far (image pixels) an
    output pixel's field extends on each side, rounded up."""

    def __init__(self, scale: float = 1.0, reach: float = 0.0):
        self.scale, self.reach, self.coarsest = scale, reach, scale


def _need(obj: TorchObject, *keys):
    missing = [k for k in keys if obj.get(k) is None]
    if missing:
        raise ModelError(f"{obj.class_name} has no {', '.join(missing)}")
    return [obj.get(k) for k in keys]


def _tensor(obj: TorchObject, key: str, shape=None) -> torch.Tensor:
    value = obj.get(key)
    if not isinstance(value, np.ndarray):
        raise ModelError(f"{obj.class_name} has no tensor {key}")
    t = torch.from_numpy(value.astype(np.float32))
    if shape is not None:
        if t.numel() != math.prod(shape):
            raise ModelError(f"{obj.class_name}.{key} has {t.numel()} values, expected {tuple(shape)}")
        t = t.reshape(shape)
    return t


def _conv(obj, walk: _Walk) -> nn.Module:
    n_in, n_out, kw, kh, dw, dh = _need(obj, "nInputPlane", "nOutputPlane", "kW", "kH", "dW", "dH")
    pw, ph = obj.get("padW", 0), obj.get("padH", 0)
    bias = isinstance(obj.get("bias"), np.ndarray) and obj.get("bias").size > 0
    conv = nn.Conv2d(n_in, n_out, (kh, kw), (dh, dw), (ph, pw), bias=bias)
    with torch.no_grad():
        conv.weight.copy_(_tensor(obj, "weight", (n_out, n_in, kh, kw)))   # older files store it 2-D
        if bias:
            conv.bias.copy_(_tensor(obj, "bias", (n_out,)))
    walk.reach += (max(kh, kw) - 1) / 2 * walk.scale
    walk.scale *= max(dh, dw)
    walk.coarsest = max(walk.coarsest, walk.scale)
    return conv


def _full_conv(obj, walk: _Walk) -> nn.Module:
    n_in, n_out, kw, kh, dw, dh = _need(obj, "nInputPlane", "nOutputPlane", "kW", "kH", "dW", "dH")
    pw, ph, aw, ah = obj.get("padW", 0), obj.get("padH", 0), obj.get("adjW", 0), obj.get("adjH", 0)
    bias = isinstance(obj.get("bias"), np.ndarray) and obj.get("bias").size > 0
    conv = nn.ConvTranspose2d(n_in, n_out, (kh, kw), (dh, dw), (ph, pw), output_padding=(ah, aw), bias=bias)
    with torch.no_grad():
        conv.weight.copy_(_tensor(obj, "weight", (n_in, n_out, kh, kw)))   # same layout as torch's
        if bias:
            conv.bias.copy_(_tensor(obj, "bias", (n_out,)))
    # Output pixel j reads inputs (j + pad - m) / stride for taps m < k: ceil((k-1)/2/stride) on each side.
    walk.reach += math.ceil((max(kh, kw) - 1) / 2 / max(dh, dw)) * walk.scale
    walk.scale /= max(dh, dw)
    return conv


def _instance_norm(obj, walk) -> nn.Module:
    n = obj.get("nOutput") or (obj.get("weight").size if isinstance(obj.get("weight"), np.ndarray) else None)
    if not n:
        raise ModelError(f"{obj.class_name} has neither nOutput nor weight")
    affine = isinstance(obj.get("weight"), np.ndarray) and obj.get("weight").size > 0
    norm = nn.InstanceNorm2d(n, eps=float(obj.get("eps", 1e-5)), affine=affine)
    if affine:
        with torch.no_grad():
            norm.weight.copy_(_tensor(obj, "weight", (n,)))
            norm.bias.copy_(_tensor(obj, "bias", (n,)))
    return norm


def _batch_norm(obj, walk) -> nn.Module:
    mean = _tensor(obj, "running_mean")
    n, eps = mean.numel(), float(obj.get("eps", 1e-5))
    if isinstance(obj.get("running_var"), np.ndarray):
        var = _tensor(obj, "running_var", (n,))
    elif isinstance(obj.get("running_std"), np.ndarray):   # torch7 nn before 2016 stored 1/sqrt(var + eps)
        var = _tensor(obj, "running_std", (n,)).pow(-2) - eps
    else:
        raise ModelError(f"{obj.class_name} has neither running_var nor running_std")
    affine = isinstance(obj.get("weight"), np.ndarray) and obj.get("weight").size > 0
    norm = nn.BatchNorm2d(n, eps=eps, affine=affine).eval()
    with torch.no_grad():
        norm.running_mean.copy_(mean)
        norm.running_var.copy_(var)
        if affine:
            norm.weight.copy_(_tensor(obj, "weight", (n,)))
            norm.bias.copy_(_tensor(obj, "bias", (n,)))
    return norm


def _sequential(obj, walk) -> nn.Module:
    return nn.Sequential(*(_build(m, walk) for m in lua_list(obj.get("modules"))))


def _concat_table(obj, walk: _Walk) -> nn.Module:
    branches, walks = [], []
    for m in lua_list(obj.get("modules")):
        w = _Walk(walk.scale, walk.reach)
        branches.append(_build(m, w))
        walks.append(w)
    if not branches:
        raise ModelError(f"{obj.class_name} has no branches")
    walk.reach = max(w.reach for w in walks)
    walk.scale = walks[0].scale
    walk.coarsest = max([walk.coarsest] + [w.coarsest for w in walks])
    return ConcatTable(branches)


def _upsample_nearest(obj, walk: _Walk) -> nn.Module:
    factor = int(obj.get("scale_factor", 2))
    walk.scale /= factor
    return nn.Upsample(scale_factor=factor, mode="nearest")


def _reflection_pad(obj, walk) -> nn.Module:
    pads = [int(obj.get(k, 0)) for k in ("pad_l", "pad_r", "pad_t", "pad_b")]
    return nn.ReflectionPad2d(tuple(pads))


#: Torch7 class (without its "nn." / "cudnn." prefix) -> builder(object, walk).
SUPPORTED = {
    "Sequential": _sequential,
    "ConcatTable": _concat_table,
    "CAddTable": lambda obj, walk: CAddTable(),
    "Identity": lambda obj, walk: nn.Identity(),
    "SpatialConvolution": _conv,
    "SpatialFullConvolution": _full_conv,
    "InstanceNormalization": _instance_norm,
    "SpatialBatchNormalization": _batch_norm,
    "ReLU": lambda obj, walk: nn.ReLU(),
    "Tanh": lambda obj, walk: nn.Tanh(),
    "MulConstant": lambda obj, walk: MulConstant(_need(obj, "constant_scalar")[0]),
    # A loss term during training (it only adds a gradient); the identity when stylizing.
    "TotalVariation": lambda obj, walk: nn.Identity(),
    "ShaveImage": lambda obj, walk: ShaveImage(obj.get("size", 0)),
    "SpatialReflectionPadding": _reflection_pad,
    "SpatialUpSamplingNearest": _upsample_nearest,
}


def _build(obj, walk: _Walk) -> nn.Module:
    if not isinstance(obj, TorchObject):
        raise ModelError(f"expected an nn module, found {type(obj).__name__}")
    short = obj.class_name.split(".", 1)[1] if obj.class_name.startswith(("nn.", "cudnn.")) else obj.class_name
    builder = SUPPORTED.get(short)
    if builder is None:
        raise ModelError(f"layer {obj.class_name} is not supported (supported: {', '.join(sorted(SUPPORTED))})")
    return builder(obj, walk)


class JohnsonNet(nn.Module):
    """A rebuilt fast-neural-style network: mean-subtracted BGR 0..255 in and out."""

    def __init__(self, body: nn.Module, receptive_field: int, stride_multiple: int, options: dict):
        super().__init__()
        self.body = body
        self.receptive_field = receptive_field
        self.stride_multiple = stride_multiple
        self.options = options

    def forward(self, x):
        return self.body(x)


def network_from_object(root, name: str = "the file") -> JohnsonNet:
    """Rebuild the network of a loaded ``.t7`` object (a module, or a checkpoint table with one
    under ``model``)."""
    options = {}
    if isinstance(root, dict):
        module = root.get("model")
        if isinstance(root.get("opt"), dict):
            options = {str(k): v for k, v in root["opt"].items() if isinstance(v, (str, int, float, bool))}
    else:
        module = root
    if not isinstance(module, TorchObject):
        raise ModelError(f"{name}: no nn module in it (expected a module or a table with 'model')")
    walk = _Walk()
    try:
        body = _build(module, walk)
    except ModelError as e:
        raise ModelError(f"{name}: {e}") from None
    if walk.scale != 1:
        raise ModelError(f"{name}: the network's output is not on the input's pixel grid (scale {walk.scale:g})")
    rf = 2 * math.ceil(walk.reach) + 1
    return JohnsonNet(body.eval(), rf, int(round(walk.coarsest)), options)


def load_johnson_t7(path: str | os.PathLike) -> JohnsonNet:
    path = os.fspath(path)
    return network_from_object(load_t7(path), path)


def export_t7(path: str | os.PathLike, out_path: str | os.PathLike, *, name: str | None = None,
              license: str = "unknown", provenance: dict | None = None, **export_options):
    """``path`` (.t7) to an ONNX model of the transformer_net family with the networks' BGR /
    mean-subtracted convention in its metadata.  ``export_options``: fp16, opset, validate,
    overwrite, statistics (see export_image_network)."""
    from ..checkpoint import sha256_of
    from ..families.transformer_net.export import export_image_network, image_metadata

    path = os.fspath(path)
    net = load_johnson_t7(path)
    normalization = "instance" if any(isinstance(m, nn.InstanceNorm2d) for m in net.modules()) else "none"
    meta = image_metadata(name or os.path.splitext(os.path.basename(path))[0], license,
                          value_range=VALUE_RANGE, channel_order=CHANNEL_ORDER, mean=MEAN,
                          stride_multiple=net.stride_multiple, receptive_field_px=net.receptive_field,
                          normalization=normalization)
    prov = {"source": os.path.basename(path), "source_sha256": sha256_of(path), "source_format": "torch7",
            "network": "Johnson et al. 2016, fast-neural-style", **{f"opt.{k}": v for k, v in net.options.items()},
            **(provenance or {})}
    return export_image_network(net, out_path, meta, provenance=prov, **export_options)
