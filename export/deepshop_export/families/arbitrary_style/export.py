"""Ghiasi et al.'s arbitrary-style network to ONNX as a pipeline of two graphs (as MSG-Net's,
families/msgnet/export.py), both NCHW RGB 0..1 with dynamic height and width:

    <stem>.predictor.onnx  "input" (N x 3 x H x W style image, image) -> "style" (N x 100, aux)
    <stem>.onnx            "input" (content, image) + "style" (1 x 100, aux) -> "output" (image)

Between them the runtime takes the predictor's vector of each style image (the network was
trained on 256 x 256 style images: ``style_size`` in the pipeline metadata), blends several
styles as a weighted mean of their vectors (the transfer network's scales and shifts are affine
in the vector, so a blend is a valid style; Ghiasi et al. section 4.3 interpolate the same way)
and feeds the vector to every tile of the content.  The generator's H and W are padded by the
engine to multiples of 4 (its strides) and cropped back.

The statistics generator (``statistics=True``: <stem>.statistics.onnx) is the generator as a
global-statistics graph (transformer_net/statistics.py): ``input``, ``style``, then the
``stat_*`` inputs; ``output`` and the ``measured_*`` outputs.

The pairing is the ``deepshop.pipeline`` metadata: on the predictor the generator files' names,
on each generator the predictor's name and sha256 (a mismatched pair is refused at run time).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from deepshop_native.core import metadata as mm
from deepshop_native.core.errors import OutputExistsError
from deepshop_native.core.files import output_exists_message, sha256_of

from ...onnx.export import ExportReport, GraphInterface, export_module, sampled_interface
from ...receptive_field import receptive_field
from ..multistyle.network import ConditionalStyleNet
from ..transformer_net.export import image_metadata
from . import network as nw

FAMILY = "arbitrary_style"
STYLE_INPUT = "style"
#: Sizes of the source graphs: style images of 256 px (the predictor's training size), content
#: of 384 px (the size the transfer graph was converted at; any multiple of 4 runs).
STYLE_SIZE, CONTENT_SIZE = 256, 384


def predictor_path_for(generator_path: str | os.PathLike) -> str:
    """arbitrary_style.onnx -> arbitrary_style.predictor.onnx (beside it)."""
    p = Path(os.fspath(generator_path))
    stem = p.name[:-len(".onnx")] if p.name.lower().endswith(".onnx") else p.name
    return str(p.with_name(stem + ".predictor.onnx"))


def statistics_path_for(generator_path: str | os.PathLike) -> str:
    """arbitrary_style.onnx -> arbitrary_style.statistics.onnx (beside it)."""
    p = Path(os.fspath(generator_path))
    stem = p.name[:-len(".onnx")] if p.name.lower().endswith(".onnx") else p.name
    return str(p.with_name(stem + ".statistics.onnx"))


def _random_style(style_dim: int, gen: torch.Generator) -> torch.Tensor:
    """A style vector of the predictor's typical magnitude (entries within about +-3)."""
    return torch.randn(1, style_dim, generator=gen)


def predictor_interface() -> GraphInterface:
    def make_inputs(h, w, gen):
        return (torch.rand(1, 3, h, w, generator=gen),)

    return sampled_interface(["input"], [STYLE_INPUT], make_inputs)


def generator_interface(style_dim: int) -> GraphInterface:
    def make_inputs(h, w, gen):
        return torch.rand(1, 3, h, w, generator=gen), _random_style(style_dim, gen)

    return sampled_interface(["input", STYLE_INPUT], ["output"], make_inputs)


def _base(net, name, license, family=FAMILY, **kw):
    return image_metadata(name, license, value_range=nw.VALUE_RANGE, channel_order=nw.CHANNEL_ORDER, mean=nw.MEAN,
                          family=family, **kw)


def export_arbitrary_style(predictor: nw.StylePredictor, transfer: ConditionalStyleNet, out_path: str | os.PathLike,
                           *, name: str, provenance: dict, license: str, statistics: bool = True, opset: int = 17,
                           validate: bool = True, overwrite: bool = False, on_written=None) -> list[ExportReport]:
    """Write the predictor (``predictor_path_for(out_path)``), the generator (``out_path``) and,
    with ``statistics``, the statistics generator (``statistics_path_for(out_path)``); returns
    their reports in that order.  ``provenance``: {"predictor": {...}, "generator": {...}}, the
    source of each (both generators share the transfer network's).  No file is replaced without
    ``overwrite``; the predictor is written first, and one failing generator leaves no file of
    this pipeline behind.  ``on_written(report)`` is called after each file."""
    on_written = on_written or (lambda report: None)
    out_path = os.fspath(out_path)
    pred_path, stats_path = predictor_path_for(out_path), statistics_path_for(out_path)
    paths = [pred_path, out_path] + ([stats_path] if statistics else [])
    for p in paths:
        if os.path.exists(p) and not overwrite:
            raise OutputExistsError(output_exists_message(p))
    predictor, transfer = predictor.float().cpu().eval(), transfer.float().cpu().eval()
    style_dim = transfer.style_dim
    if predictor.style_dim != style_dim:
        raise ValueError(f"the predictor gives {predictor.style_dim}-d vectors, the transfer network takes {style_dim}")
    common = dict(opset=opset, validate=validate, overwrite=overwrite)

    # The predictor: global average pooling makes its field the whole image; the trunk's field
    # (the pixels one pooled feature reads) is what the metadata records.
    pred_meta = _base(predictor, name, license, stride_multiple=1, normalization="none",
                      receptive_field_px=receptive_field(predictor.trunk_twin()))
    pred_meta["inputs"] = mm.encode_roles({"input": mm.ROLE_IMAGE}, outputs=False)
    pred_meta["outputs"] = mm.encode_roles({STYLE_INPUT: mm.ROLE_AUX}, outputs=True)
    pipeline = {"part": "predictor", "generator": os.path.basename(out_path), "style_dim": style_dim,
                "style_output": STYLE_INPUT, "style_size": STYLE_SIZE}
    if statistics:
        pipeline["statistics_generator"] = os.path.basename(stats_path)
    pred_meta["pipeline"] = json.dumps(pipeline, sort_keys=True)
    reports = [export_module(predictor, predictor_interface(), pred_path, metadata=pred_meta,
                             provenance=provenance["predictor"], receptive_field=int(pred_meta["receptive_field"]),
                             **common)]
    on_written(reports[-1])

    rf = receptive_field(transfer.spatial())
    gen_pipeline = json.dumps({"part": "generator", "predictor": os.path.basename(pred_path),
                               "predictor_sha256": sha256_of(pred_path), "style_input": STYLE_INPUT,
                               "style_dim": style_dim, "content_size": CONTENT_SIZE}, sort_keys=True)
    try:
        meta = _base(transfer, name, license, stride_multiple=transfer.stride_multiple, receptive_field_px=rf)
        meta["inputs"] = mm.encode_roles({"input": mm.ROLE_IMAGE, STYLE_INPUT: mm.ROLE_AUX}, outputs=False)
        meta["outputs"] = mm.encode_roles({"output": mm.ROLE_IMAGE}, outputs=True)
        meta["pipeline"] = gen_pipeline
        reports.append(export_module(transfer, generator_interface(style_dim), out_path, metadata=meta,
                                     provenance=provenance["generator"], receptive_field=rf, **common))
        on_written(reports[-1])
        if statistics:
            from ..transformer_net.statistics import aux_statistics_graph
            module, io_, stats_meta = aux_statistics_graph(transfer, STYLE_INPUT,
                                                           lambda gen: _random_style(style_dim, gen), value_scale=1.0)
            meta = _base(transfer, name, license, stride_multiple=transfer.stride_multiple, receptive_field_px=rf)
            meta.update(stats_meta)
            meta["pipeline"] = gen_pipeline
            reports.append(export_module(module, io_, stats_path, metadata=meta, provenance=provenance["generator"],
                                         receptive_field=rf, **common))
            on_written(reports[-1])
    except BaseException:
        for report in reports:      # no half pipeline: the files written by this call go
            try:
                os.unlink(report.path)
            except OSError:
                pass
        raise
    return reports
