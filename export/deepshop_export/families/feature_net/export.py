"""A FeatureNet to ONNX: one image input, one output per feature map, named as in the network."""
from __future__ import annotations

import json
import math
import os

import torch
from torch import nn

from ...onnx.export import ExportReport, GraphInterface, export_module, sampled_interface
from ...receptive_field import receptive_field
from .network import FeatureNet

FAMILY = "feature_net"
#: Caffe VGG's input convention: BGR in 0..255 minus the ImageNet pixel mean (B, G, R).
CHANNEL_ORDER = "BGR"
MEAN = (103.939, 116.779, 123.680)
VALUE_RANGE = (0.0, 255.0)


def feature_interface(net: FeatureNet) -> GraphInterface:
    def make_inputs(h, w, gen):
        return (torch.rand(1, 3, h, w, generator=gen) * 255 - 128,)

    return sampled_interface(["input"], list(net.feature_names), make_inputs)


def export_feature_net(net: FeatureNet, out_path: str | os.PathLike, *, name: str, license: str, provenance: dict,
                       fp16: bool = False, opset: int = 17, validate: bool = True,
                       overwrite: bool = False) -> ExportReport:
    """Write ``net`` with the metadata of a Caffe-convention feature network."""
    rf = receptive_field(net.layers)
    # Every stride divides the size: H and W must be multiples of their product.
    strides = [m.stride if isinstance(m.stride, int) else m.stride[0] for m in net.layers
               if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]
    meta = {
        "family": FAMILY,
        "name": name,
        "input_layout": "NCHW",
        "value_range": ",".join(f"{v:g}" for v in VALUE_RANGE),
        "channel_order": CHANNEL_ORDER,
        "mean": ",".join(f"{v:g}" for v in MEAN),
        "stride_multiple": str(math.prod(strides)),
        "receptive_field": str(rf),
        "normalization": "none",
        "license": license,
        "inputs": json.dumps({"input": "image"}),
        "outputs": json.dumps({n: "features" for n in net.feature_names}),
        "features": json.dumps(net.feature_names),
        "pooling": net.pooling,
    }
    return export_module(net, feature_interface(net), out_path, metadata=meta, provenance=provenance,
                         receptive_field=rf, fp16=fp16, opset=opset, validate=validate, overwrite=overwrite)
