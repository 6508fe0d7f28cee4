"""Dumoulin et al.'s 26-style network to ONNX: one graph,

    "input" (N x 3 x H x W, RGB 0..1, image) + "style_weights" (26, aux) -> "output" (N x 3 x H x W, 0..1)

with dynamic H and W (multiples of 4 come back at their own size; the engine pads to them).
``style_weights`` is shared by every tile: the conditional instance norms take the weighted sum
of the 26 styles' learned scales and shifts, so a one-hot vector is one style and weights summing
to 1 blend them (the network was trained on one-hot vectors; blends are interpolations in its
parameter space, Dumoulin et al. section 4).  ``deepshop.styles`` names the 26 styles in order.

With ``statistics`` the graph is the global-statistics one (transformer_net/statistics.py: the
extra ``stat_*`` inputs and ``measured_*`` outputs), so tiles can be normalised with the whole
image's statistics.
"""
from __future__ import annotations

import json
import os

import torch

from deepshop_native.core import metadata as mm

from ...onnx.export import ExportReport, GraphInterface, export_module, sampled_interface
from ...receptive_field import receptive_field
from ..transformer_net.export import image_metadata
from . import network as nw

FAMILY = "multistyle"
STYLE_INPUT = "style_weights"
#: The styles of TensorFlow's Android stylize demo (the ``stylize_quantized.pb`` model), in the
#: order of the network's style_weights.  The demo shows a thumbnail of each and publishes no
#: titles or artists; the names and descriptions here say what each looks like on a photo (a
#: contact sheet rendered with `deepshop styles --sheet`), nothing more.
STYLES = [{"name": name, "description": description} for name, description in [
    ('pastel', 'soft pastel: pale blues and warm yellows, gentle strokes'),
    ('bold-ink', 'heavy black ink outlines over flat yellow and white'),
    ('charcoal', 'grey charcoal and ink wash on pale paper'),
    ('fauve', 'vivid red, blue and orange brush strokes on black'),
    ('red-pastel', 'red, white and pale blue pastel patches'),
    ('rosy-oil', 'warm oil paint in rose, orange and blue'),
    ('indigo-spots', 'deep indigo ground scattered with dark spots'),
    ('blue-gold', 'dark blue and gold, heavy expressive strokes'),
    ('white-sketch', 'mostly white paper with fine coloured scribbles'),
    ('teal-mosaic', 'teal and red fragments, like broken tiles'),
    ('sepia-oil', 'brown and sepia oil paint, old-master tones'),
    ('yellow-lines', 'brown line drawing on warm yellow'),
    ('watercolour', 'pale, washed-out watercolour'),
    ('green-expression', 'green, yellow and teal expressionist strokes'),
    ('pale-blue', 'light, airy blue-grey wash'),
    ('leaded-glass', 'pastel panes separated by dark lead lines'),
    ('pointillism', 'blue and violet dabs with yellow highlights'),
    ('bauhaus-grid', 'red, orange and blue blocks on a rectilinear grid'),
    ('woodgrain', "beige and brown, like a woodcut's grain"),
    ('swirls', "swirling blue and yellow strokes, after Van Gogh's night skies"),
    ('red-oil', 'almost monochrome red oil paint'),
    ('cubist', 'black, white and pink planes, cubist fragments'),
    ('graphic-blue', 'black, white and blue, poster-like graphic shapes'),
    ('dusk', 'dark grey and black with a pale glow'),
    ('etching', 'pale blue and cream, fine etched lines'),
    ('mosaic', 'brown, blue and ochre fragments, a stone mosaic'),
]]


def _random_weights(n: int, gen: torch.Generator) -> torch.Tensor:
    """A blend of a few styles (non-negative, summing to 1), as the runtime gives."""
    w = torch.rand(n, generator=gen) ** 4
    return w / w.sum()


def interface(style_dim: int) -> GraphInterface:
    def make_inputs(h, w, gen):
        return torch.rand(1, 3, h, w, generator=gen), _random_weights(style_dim, gen)

    return sampled_interface(["input", STYLE_INPUT], ["output"], make_inputs)


def styles_metadata(style_dim: int, styles=None) -> str:
    styles = STYLES if styles is None else styles
    if len(styles) != style_dim:
        raise ValueError(f"{len(styles)} style names for a network of {style_dim} styles")
    return json.dumps({"input": STYLE_INPUT, "styles": styles})


def export_multistyle(net: nw.ConditionalStyleNet, out_path: str | os.PathLike, *, name: str, provenance: dict,
                      license: str, statistics: bool = False, opset: int = 17, validate: bool = True,
                      overwrite: bool = False, styles=None) -> ExportReport:
    """Write ``net`` (image 0..1, style weights) to ``out_path``; see the module docstring."""
    net = net.float().cpu().eval()
    meta = image_metadata(name, license, value_range=nw.VALUE_RANGE, channel_order=nw.CHANNEL_ORDER, mean=nw.MEAN,
                          stride_multiple=net.stride_multiple, receptive_field_px=receptive_field(net.spatial()),
                          family=FAMILY)
    meta["styles"] = styles_metadata(net.style_dim, styles)
    if statistics:
        from ..transformer_net.statistics import aux_statistics_graph
        module, io_, stats_meta = aux_statistics_graph(
            net, STYLE_INPUT, lambda gen: _random_weights(net.style_dim, gen), value_scale=1.0)
        meta.update(stats_meta)
    else:
        module, io_ = net, interface(net.style_dim)
        meta["inputs"] = mm.encode_roles({"input": mm.ROLE_IMAGE, STYLE_INPUT: mm.ROLE_AUX}, outputs=False)
        meta["outputs"] = mm.encode_roles({"output": mm.ROLE_IMAGE}, outputs=True)
    return export_module(module, io_, out_path, metadata=meta, provenance=provenance,
                         receptive_field=int(meta["receptive_field"]), opset=opset, validate=validate,
                         overwrite=overwrite)
