"""MSG-Net to ONNX as a pipeline of two graphs:

    <stem>.encoder.onnx   style image (N x 3 x H x W, BGR 0..255) -> "features" (N x C x H/4 x W/4)
    <stem>.onnx           "input" (content image) + "gram" (1 x C x C, aux) -> "output" (image)

Between them the runtime computes the Gram matrix of the encoder features with the native kernel
(``ds.gram(features, normalize="CN")``: F F^T / (C h w), as MSG-Net does), blends several styles as
a weighted sum of Grams and caches it per style file.  Both graphs have dynamic height and width;
the engine pads the content to a multiple of 4 (the stride) and crops back, so any aspect ratio
comes back at its own size.  The pairing is the ``deepshop.pipeline`` metadata of each file (the
other file's name, and on the generator the encoder's sha256 so that a mismatched pair is refused).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from deepshop_native.core import metadata as mm
from deepshop_native.core.errors import OptionError, OutputExistsError
from deepshop_native.core.files import output_exists_message

from deepshop_native.core.files import sha256_of

from ...onnx.export import ExportReport, GraphInterface, export_module, sampled_interface
from ...receptive_field import receptive_field
from ..transformer_net.export import image_metadata
from . import network as mn

FAMILY = "msgnet"
GRAM_NORMALIZE = "CN"


def encoder_path_for(generator_path: str | os.PathLike) -> str:
    """msgnet.onnx -> msgnet.encoder.onnx (beside it)."""
    p = Path(os.fspath(generator_path))
    stem = p.name[:-len(".onnx")] if p.name.lower().endswith(".onnx") else p.name
    return str(p.with_name(stem + ".encoder.onnx"))


def _local_path(net: mn.MSGNet) -> nn.Module:
    """The content path with the Inspiration layer left out: it mixes channels per position, so
    it does not change the receptive field, and fx cannot follow its reshapes."""
    return nn.Sequential(net.model1, *net.model[2:])


def _random_gram(channels: int, gen: torch.Generator) -> torch.Tensor:
    f = torch.rand(1, channels, 16, 16, generator=gen) * 4
    return mn.gram_matrix(f)


def encoder_interface() -> GraphInterface:
    def make_inputs(h, w, gen):
        return (torch.rand(1, 3, h, w, generator=gen) * 255,)

    return sampled_interface(["input"], ["features"], make_inputs)


def generator_interface(channels: int) -> GraphInterface:
    def make_inputs(h, w, gen):
        return (torch.rand(1, 3, h, w, generator=gen) * 255, _random_gram(channels, gen))

    return sampled_interface(["input", "gram"], ["output"], make_inputs)


def export_msgnet(net: mn.MSGNet, out_path: str | os.PathLike, *, name: str, provenance: dict,
                  license: str = "unknown", fp16: bool = False, opset: int = 17, validate: bool = True,
                  overwrite: bool = False, statistics: bool = False,
                  encoder_statistics: bool | None = None) -> tuple[ExportReport, ExportReport]:
    """Write the encoder graph (``encoder_path_for(out_path)``) and the generator graph
    (``out_path``); returns their reports (encoder, generator).  Neither file is replaced without
    ``overwrite``; the encoder is written first and the generator records its sha256.
    ``statistics``: both graphs as global-statistics graphs; ``encoder_statistics`` (default: as
    ``statistics``) decides for the encoder alone."""
    encoder_statistics = statistics if encoder_statistics is None else encoder_statistics
    if (statistics or encoder_statistics) and fp16:
        raise OptionError("--statistics with --fp16: not supported yet (the statistics graph is float32 only)")
    out_path = os.fspath(out_path)
    enc_path = encoder_path_for(out_path)
    for p in (out_path, enc_path):
        if os.path.exists(p) and not overwrite:
            raise OutputExistsError(output_exists_message(p))
    net = net.float().cpu().eval()
    channels = net.feature_channels
    rf = receptive_field(_local_path(net))
    base = dict(value_range=mn.VALUE_RANGE, channel_order=mn.CHANNEL_ORDER, mean=mn.MEAN,
                stride_multiple=mn.STRIDE_MULTIPLE, family=FAMILY)
    common = dict(provenance={"ngf": net.ngf, **provenance}, fp16=fp16, opset=opset, validate=validate,
                  overwrite=overwrite)

    enc_meta = image_metadata(name, license, receptive_field_px=receptive_field(net.model1), **base)
    enc_meta["inputs"] = mm.encode_roles({"input": mm.ROLE_IMAGE}, outputs=False)
    enc_meta["outputs"] = mm.encode_roles({"features": mm.ROLE_FEATURES}, outputs=True)
    enc_meta["pipeline"] = json.dumps({"part": "encoder", "generator": os.path.basename(out_path),
                                       "feature_channels": channels, "gram_normalize": GRAM_NORMALIZE},
                                      sort_keys=True)
    enc_module, enc_io = mn.Encoder(net), encoder_interface()
    if encoder_statistics:
        # The encoder as a global-statistics graph too: style images larger than StyleNet's
        # style_tile get the whole image's Gram from window-by-window runs (exact statistics).
        from .statistics import encoder_statistics_graph
        enc_module, enc_io, enc_stats_meta = encoder_statistics_graph(net)
        enc_meta.update(enc_stats_meta)
    enc_report = export_module(enc_module, enc_io, enc_path, metadata=enc_meta,
                               receptive_field=int(enc_meta["receptive_field"]), **common)

    gen_meta = image_metadata(name, license, receptive_field_px=rf, **base)
    if statistics:
        # The generator as a global-statistics graph (statistics.py): tiles normalised with a
        # thumbnail's instance-norm statistics instead of their own.
        from .statistics import generator_statistics_graph
        gen_module, gen_io, stats_meta = generator_statistics_graph(net)
        gen_meta.update(stats_meta)
    else:
        gen_module, gen_io = mn.Generator(net), generator_interface(channels)
        gen_meta["inputs"] = mm.encode_roles({"input": mm.ROLE_IMAGE, "gram": mm.ROLE_AUX}, outputs=False)
        gen_meta["outputs"] = mm.encode_roles({"output": mm.ROLE_IMAGE}, outputs=True)
    gen_meta["pipeline"] = json.dumps({"part": "generator", "encoder": os.path.basename(enc_path),
                                       "encoder_sha256": sha256_of(enc_path), "gram_input": "gram",
                                       "feature_channels": channels, "gram_normalize": GRAM_NORMALIZE},
                                      sort_keys=True)
    try:
        gen_report = export_module(gen_module, gen_io, out_path, metadata=gen_meta,
                                   receptive_field=rf, **common)
    except Exception:
        # A generator that failed leaves no orphan encoder behind.
        try:
            os.unlink(enc_path)
        except OSError:
            pass
        raise
    return enc_report, gen_report


class PairReport:
    """The two reports as one for the CLI."""

    def __init__(self, reports):
        self.reports = reports

    def summary(self) -> str:
        return "\n".join(r.summary() for r in self.reports)

