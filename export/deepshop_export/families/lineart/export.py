"""The line-art colouriser to ONNX: one edge channel in ("edges", N x 1 x H x W in [0, 1]), K
class scores out ("scores", N x K x H x W, role ``classes``), with the palette and the default
decoding in the metadata, so the engine tiles it and decodes the blended scores to colours."""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from deepshop_native.errors import OptionError

from ...onnx.export import ExportReport, GraphInterface, export_module
from ...receptive_field import receptive_field

FAMILY = "lineart"
INPUT_NAME, OUTPUT_NAME = "edges", "scores"
DECODINGS = ("argmax", "annealed_mean")


def interface(stride_multiple: int) -> GraphInterface:
    """Random binary edge maps; sizes are rounded up to the network's stride multiple (the shared
    validation sizes 132 x 100 and 64 x 96 are multiples of 4, not of 8)."""
    def make_inputs(h, w, gen):
        h, w = -(-h // stride_multiple) * stride_multiple, -(-w // stride_multiple) * stride_multiple
        return ((torch.rand(1, 1, h, w, generator=gen) < 0.15).float(),)

    return GraphInterface(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          sample_inputs=make_inputs(64, 64, torch.Generator().manual_seed(0)),
                          dynamic_dims=[{0: "batch", 2: "height", 3: "width"}], make_inputs=make_inputs)


def lineart_metadata(net, palette: np.ndarray, *, name: str, license: str, decoding: str = "argmax",
                     temperature: float = 0.0, space: str = "rgb") -> dict[str, str]:
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) != net.classes:
        raise OptionError(f"palette: expected {net.classes} x 3 colours (one per class), got shape {palette.shape}")
    if decoding not in DECODINGS:
        raise OptionError(f"decoding: one of {', '.join(DECODINGS)}, got {decoding!r}")
    return {
        "family": FAMILY, "name": name, "input_layout": "NCHW", "value_range": "0,1", "channel_order": "RGB",
        "mean": "0,0,0", "stride_multiple": str(net.stride_multiple), "receptive_field": str(receptive_field(net)),
        "normalization": "none", "license": license,
        "inputs": json.dumps({INPUT_NAME: "image"}), "outputs": json.dumps({OUTPUT_NAME: "classes"}),
        "palette": json.dumps([[int(c) for c in row] for row in palette]),
        "palette_space": space, "decoding": decoding, "temperature": f"{float(temperature):g}",
    }


def export_lineart(net: torch.nn.Module, out_path: str | os.PathLike, palette: np.ndarray, *, name: str,
                   provenance: dict, license: str = "unknown", decoding: str = "argmax", temperature: float = 0.0,
                   space: str = "rgb", fp16: bool = False, opset: int = 17, validate: bool = True,
                   overwrite: bool = False) -> ExportReport:
    """Export a LineArtUNet with its palette (K x 3 uint8, class k's colour) to `out_path`."""
    meta = lineart_metadata(net, palette, name=name, license=license, decoding=decoding, temperature=temperature,
                            space=space)
    return export_module(net, interface(net.stride_multiple), out_path, metadata=meta,
                         provenance={"network": {"family": FAMILY, **net.config()}, **provenance},
                         receptive_field=int(meta["receptive_field"]), fp16=fp16, opset=opset, validate=validate,
                         overwrite=overwrite)
