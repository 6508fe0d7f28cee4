"""TransformerNet to ONNX: the family's interface and metadata for the generic export pipeline."""
from __future__ import annotations

import os

import torch

from deepshop_native.core.errors import OptionError

from ...onnx.export import ExportReport, GraphInterface, export_module, sampled_interface
from ...receptive_field import receptive_field
from . import network as tn

FAMILY = "transformer_net"


def image_interface() -> GraphInterface:
    """One image in ("input", N x 3 x H x W), one image out ("output")."""
    def make_inputs(h, w, gen):
        return (torch.rand(1, 3, h, w, generator=gen) * 255,)

    return sampled_interface(["input"], ["output"], make_inputs)


def image_metadata(name: str, license: str, *, value_range=tn.VALUE_RANGE, channel_order=tn.CHANNEL_ORDER,
                   mean=tn.MEAN, stride_multiple=tn.STRIDE_MULTIPLE, receptive_field_px: int,
                   normalization: str = "instance", family: str = FAMILY) -> dict[str, str]:
    """The metadata of an image-to-image network, as strings (see deepshop_native.core.metadata)."""
    return {
        "family": family,
        "name": name,
        "input_layout": "NCHW",
        "value_range": ",".join(f"{v:g}" for v in value_range),
        "channel_order": channel_order,
        "mean": ",".join(f"{v:g}" for v in mean),
        "stride_multiple": str(stride_multiple),
        "receptive_field": str(receptive_field_px),
        "normalization": normalization,
        "license": license,
    }


def export_transformer_net(net: torch.nn.Module, out_path: str | os.PathLike, *, name: str, provenance: dict,
                           license: str = "unknown", fp16: bool = False, opset: int = 17,
                           validate: bool = True, overwrite: bool = False,
                           statistics: bool = False) -> ExportReport:
    """Export ``net`` (a TransformerNet, input and output N x 3 x H x W RGB 0..255) to ``out_path``.

    With ``statistics`` the graph is the global-statistics one (statistics.py: extra inputs for
    given instance-norm statistics, extra outputs measuring them); without it, the plain network.
    See ``deepshop_export.onnx.export.export_module`` for provenance, validation and writing."""
    meta = image_metadata(name, license, receptive_field_px=receptive_field(net))
    return export_image_network(net, out_path, meta, provenance=provenance, fp16=fp16, opset=opset,
                                validate=validate, overwrite=overwrite, statistics=statistics)


def export_image_network(net: torch.nn.Module, out_path: str | os.PathLike, meta: dict, *, provenance: dict,
                         fp16: bool = False, opset: int = 17, validate: bool = True, overwrite: bool = False,
                         statistics: bool = False) -> ExportReport:
    """Export any feed-forward image network of this family (TransformerNet, Johnson's Torch7
    networks) with its metadata ``meta`` (:func:`image_metadata`); see export_transformer_net."""
    if statistics and fp16:
        # The statistics graph's sums of squares are plain ops, which fp16.py would convert: in
        # float16 they overflow on activations of a few hundred.
        raise OptionError("--statistics with --fp16: not supported yet (the statistics graph is float32 only)")
    if statistics:
        from .statistics import statistics_graph
        try:
            net, io_, stats_meta = statistics_graph(net)
        except ValueError as e:
            raise OptionError(f"--statistics: {e}") from e
        meta = {**meta, **stats_meta}
    else:
        io_ = image_interface()
    return export_module(net, io_, out_path, metadata=meta, provenance=provenance,
                         receptive_field=int(meta["receptive_field"]), fp16=fp16, opset=opset, validate=validate,
                         overwrite=overwrite)
