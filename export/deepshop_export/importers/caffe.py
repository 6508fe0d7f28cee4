"""Caffe ``.caffemodel`` files (the VGG16 / VGG19 of the Gatys-era tools) to a feature network,
read without Caffe or a generated protobuf module: a small reader of the protobuf wire format
and the few field numbers of ``caffe.proto`` that a VGG needs.

Messages read (field numbers from caffe.proto):

    NetParameter      name 1, layers 2 (V1LayerParameter, the 2014 files), layer 100 (LayerParameter)
    LayerParameter    name 1, type 2 (string), bottom 3, top 4, blobs 7,
                      convolution_param 106, pooling_param 121
    V1LayerParameter  bottom 2, top 3, name 4, type 5 (enum: CONVOLUTION 4, POOLING 17, RELU 18, ...),
                      blobs 6, convolution_param 10, pooling_param 19
    BlobProto         num 1, channels 2, height 3, width 4 (legacy shape), data 5 (float, packed or
                      not), shape 7 (BlobShape: dim 1), double_data 8
    ConvolutionParameter  num_output 1, bias_term 2, pad 3, kernel_size 4, group 5, stride 6,
                          pad_h 9, pad_w 10, kernel_h 11, kernel_w 12, stride_h 13, stride_w 14,
                          dilation 18
    PoolingParameter  pool 1 (MAX 0, AVE 1), kernel_size 2, stride 3, pad 4, kernel_h 5,
                      kernel_w 6, stride_h 7, stride_w 8, pad_h 9, pad_w 10

The convolutional part (Convolution / ReLU / Pooling, up to the first fully connected layer) is
rebuilt as a :class:`~deepshop_export.families.feature_net.FeatureNet`; its outputs are the ReLU
layers' feature maps under their Caffe names (relu1_1, ...).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from deepshop_native.core.errors import ModelError

from . import read_source

# V1LayerParameter.LayerType values of the layers a VGG file holds.
_V1_TYPES = {4: "Convolution", 17: "Pooling", 18: "ReLU", 14: "InnerProduct", 6: "Dropout", 20: "Softmax",
             21: "SoftmaxWithLoss", 5: "Data", 1: "Accuracy", 15: "LRN", 8: "Flatten", 3: "Concat", 12: "ImageData",
             29: "MemoryData", 22: "Split"}
#: Layers that only feed data in; skipped.
_INPUT_TYPES = {"Data", "Input", "ImageData", "MemoryData", "DummyData", "HDF5Data", "WindowData"}
#: The fully connected head starts here: the feature network ends before it.
_HEAD_TYPES = {"InnerProduct", "Flatten", "Softmax", "SoftmaxWithLoss", "Accuracy"}


class _WireError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _WireError("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def parse_message(buf: bytes) -> dict[int, list]:
    """Field number -> values, in order: ints for varints, bytes for length-delimited fields,
    the raw 4 or 8 bytes for fixed-width ones."""
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise _WireError(f"wire type {wire} (groups) not expected in a caffemodel")
        if pos > len(buf):
            raise _WireError("a field runs past the end of its message")
        fields.setdefault(number, []).append(value)
    return fields


def _ints(fields, number) -> list[int]:
    """A repeated integer field, packed or not."""
    out = []
    for v in fields.get(number, []):
        if isinstance(v, int):
            out.append(v)
        else:   # packed
            pos = 0
            while pos < len(v):
                x, pos = _varint(v, pos)
                out.append(x)
    return out


def _floats(fields, number, fmt="<f", size=4) -> np.ndarray:
    parts = []
    for v in fields.get(number, []):
        # Packed (length-delimited, any multiple of the size) or one unpacked value.
        if len(v) % size:
            raise _WireError("float data of a length that is not a multiple of the element size")
        parts.append(np.frombuffer(v, dtype=fmt))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def _string(fields, number, default="") -> str:
    values = fields.get(number)
    return values[-1].decode("utf-8", "replace") if values else default


def _blob(buf: bytes) -> np.ndarray:
    f = parse_message(buf)
    data = _floats(f, 5)
    if data.size == 0 and 8 in f:
        data = _floats(f, 8, "<f8", 8)
    if 7 in f:
        shape = _ints(parse_message(f[7][-1]), 1)
    else:
        shape = [(_ints(f, n) or [1])[-1] for n in (1, 2, 3, 4)]
    if int(np.prod(shape)) != data.size:
        raise _WireError(f"a blob of shape {shape} holds {data.size} values")
    return data.reshape(shape)


@dataclass
class CaffeLayer:
    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    blobs: list[np.ndarray] = field(default_factory=list)
    params: dict = field(default_factory=dict)     # kernel, stride, pad, group, pool, ... (h, w pairs)


def _pair(f, single: int, h: int, w: int, default: int) -> tuple[int, int]:
    if h in f or w in f:
        return (_ints(f, h) or [default])[-1], (_ints(f, w) or [default])[-1]
    values = _ints(f, single)
    if len(values) > 2:
        raise _WireError("more than two spatial values (3-D convolution)")
    return (values[0], values[-1]) if values else (default, default)


def _conv_params(buf: bytes) -> dict:
    f = parse_message(buf)
    dilation = _ints(f, 18) or [1]
    return {"num_output": (_ints(f, 1) or [0])[-1], "bias": bool((_ints(f, 2) or [1])[-1]),
            "pad": _pair(f, 3, 9, 10, 0), "kernel": _pair(f, 4, 11, 12, 0), "stride": _pair(f, 6, 13, 14, 1),
            "group": (_ints(f, 5) or [1])[-1], "dilation": (dilation[0], dilation[-1])}


def _pool_params(buf: bytes) -> dict:
    f = parse_message(buf)
    pool = (_ints(f, 1) or [0])[-1]
    return {"pool": {0: "max", 1: "average"}.get(pool, f"method {pool}"), "kernel": _pair(f, 2, 5, 6, 0),
            "stride": _pair(f, 3, 7, 8, 1), "pad": _pair(f, 4, 9, 10, 0)}


def _layer(buf: bytes, v1: bool) -> CaffeLayer:
    f = parse_message(buf)
    if v1:
        code = (_ints(f, 5) or [0])[-1]
        kind = _V1_TYPES.get(code, f"V1 type {code}")
        name, bottoms, tops, blobs, conv, pool = 4, 2, 3, 6, 10, 19
    else:
        kind = _string(f, 2)
        name, bottoms, tops, blobs, conv, pool = 1, 3, 4, 7, 106, 121
    layer = CaffeLayer(_string(f, name), kind, [b.decode() for b in f.get(bottoms, [])],
                       [t.decode() for t in f.get(tops, [])], [_blob(b) for b in f.get(blobs, [])])
    if kind == "Convolution" and conv in f:
        layer.params = _conv_params(f[conv][-1])
    elif kind == "Pooling" and pool in f:
        layer.params = _pool_params(f[pool][-1])
    return layer


def read_caffemodel(path: str | os.PathLike) -> list[CaffeLayer]:
    """The layers of a binary ``.caffemodel`` (NetParameter) in file order; ModelError naming the
    file when it is missing or not one."""
    path = os.fspath(path)
    data = read_source(path)
    try:
        net = parse_message(data)
        layers = [_layer(b, v1=False) for b in net.get(100, [])] or [_layer(b, v1=True) for b in net.get(2, [])]
    except (_WireError, UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{path}: not a readable caffemodel ({e})") from e
    if not layers:
        raise ModelError(f"{path}: not a caffemodel: no layers in it (a .prototxt text file, or another format?)")
    return layers


def feature_layers(layers: list[CaffeLayer], name: str = "the file") -> list[CaffeLayer]:
    """The convolutional part: Convolution / ReLU / Pooling layers in a chain, up to the fully
    connected head (dropped); anything else there is refused with its name and type."""
    chain = []
    for layer in layers:
        if layer.type in _INPUT_TYPES:
            continue
        if layer.type in _HEAD_TYPES:
            break
        if layer.type not in ("Convolution", "ReLU", "Pooling"):
            raise ModelError(f"{name}: layer {layer.name!r} of type {layer.type} is not supported in the "
                             "convolutional part (a VGG has Convolution, ReLU and Pooling only)")
        if layer.type == "Convolution" and (len(layer.blobs) < 1 or not layer.params):
            raise ModelError(f"{name}: convolution {layer.name!r} has no weights (a deploy .prototxt, not weights?)")
        chain.append(layer)
    if not any(layer.type == "ReLU" for layer in chain):
        raise ModelError(f"{name}: no ReLU feature layer before the fully connected part")
    return chain


def export_caffemodel(path: str | os.PathLike, out_path: str | os.PathLike, *, name: str | None = None,
                      license: str = "unknown", provenance: dict | None = None, pooling: str = "max",
                      **export_options):
    """``path`` (.caffemodel) to an ONNX feature network (family ``feature_net``); see
    families/feature_net for its interface and metadata.  ``export_options``: fp16, opset,
    validate, overwrite."""
    from ..checkpoint import sha256_of
    from ..families.feature_net import export_feature_net, network_from_caffe

    path = os.fspath(path)
    net = network_from_caffe(feature_layers(read_caffemodel(path), path), pooling)
    prov = {"source": os.path.basename(path), "source_sha256": sha256_of(path), "source_format": "caffemodel",
            **(provenance or {})}
    return export_feature_net(net, out_path, name=name or os.path.splitext(os.path.basename(path))[0],
                              license=license, provenance=prov, **export_options)
