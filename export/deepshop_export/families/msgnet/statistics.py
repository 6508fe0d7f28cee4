"""MSG-Net's generator as a global-statistics graph: the TransformerNet machinery
(families/transformer_net/statistics.py, its interface and packing) applied to the generator,
whose extra input, the style Gram, rides along.

Two adaptations, neither changing what the network computes:
* MSG-Net's instance norms have no affine parameters; StatisticsNorm expects them, so each is
  given weight 1 and bias 0 (y * 1 + 0): transformer_net.statistics.with_unit_affine.
* StatisticsNet calls its network with the image alone; the Gram reaches the generator through
  a holder set for the duration of each call (transformer_net.statistics.AuxStatisticsNet, which
  the conditional-instance-norm networks use for their style input too).

Graph inputs: ``input`` (image), ``gram`` (aux), ``stat_mean``, ``stat_var``, ``stat_mix`` (aux),
``stat_mask`` (tile_mask); outputs ``output`` and the ``measured_*`` statistics.  The runtime
(deepshop_native.pipelines.stylenet) uses it in thumbnail mode: one untiled run of a thumbnail with mix 0
measures every layer, then every tile runs with mix 1 and those statistics.
"""
from __future__ import annotations

import json

import torch

from ...onnx.export import GraphInterface
from ..transformer_net.statistics import (OUTPUT_NAMES, OUTPUT_ROLES, AuxStatisticsNet, StatisticsNet,
                                          aux_statistics_graph, with_unit_affine)
from . import network as mn


def generator_statistics_graph(net: mn.MSGNet) -> tuple[AuxStatisticsNet, GraphInterface, dict]:
    c = net.feature_channels
    # The Gram rides along as the aux input ("gram"); a random one for validation.
    return aux_statistics_graph(net, "gram", lambda gen: mn.gram_matrix(torch.rand(1, c, 16, 16, generator=gen) * 4),
                                method="generate")


# ------------------------------------------------------------------ the encoder (style path)

ENCODER_OUTPUT_NAMES = ("features",) + OUTPUT_NAMES[1:]
ENCODER_INPUT_ROLES = {"input": "image", "stat_mean": "aux", "stat_var": "aux", "stat_mix": "aux",
                       "stat_mask": "tile_mask"}
ENCODER_OUTPUT_ROLES = {"features": "features", **{k: v for k, v in OUTPUT_ROLES.items() if k != "output"}}


def encoder_statistics_graph(net: mn.MSGNet) -> tuple[StatisticsNet, GraphInterface, dict]:
    """The siamese encoder as a global-statistics graph, for the Gram of a style image too large to
    encode whole: the runtime (stylenet.StyleNet, exact style statistics) runs it window by window,
    one measuring pass per instance-norm layer (7) with the kept spans masked, so that the last
    pass normalises every window with the whole style image's statistics and the Gram summed over
    the windows is the whole image's.  The packing runs in network order here (a Sequential whose
    bottlenecks hold their norms in the order they run), which that schedule relies on."""
    snet = StatisticsNet(with_unit_affine(net).model1)
    total = snet.total_channels
    channels = [layer["channels"] for layer in snet.layers]

    def make_inputs(h, w, gen):
        x = torch.rand(1, 3, h, w, generator=gen) * 255
        other = torch.rand(1, 3, h, w, generator=gen) * 255
        with torch.no_grad():
            _, count, mean, m2 = snet(other, torch.zeros(total), torch.ones(total), torch.zeros(1),
                                      torch.ones(1, 1, h, w))
        var = m2[0] / torch.repeat_interleave(count[0], torch.tensor(channels))
        mask = torch.zeros(1, 1, h, w)
        mask[..., 8:h - 8, 4:w - 12] = 1
        return x, mean[0], var, torch.ones(1), mask

    io_ = GraphInterface(
        input_names=("input", "stat_mean", "stat_var", "stat_mix", "stat_mask"), output_names=ENCODER_OUTPUT_NAMES,
        sample_inputs=make_inputs(132, 100, torch.Generator().manual_seed(0)),
        dynamic_dims=[{0: "batch", 2: "height", 3: "width"}, {}, {}, {}, {0: "batch", 2: "height", 3: "width"}],
        make_inputs=make_inputs)
    meta = {"inputs": json.dumps(ENCODER_INPUT_ROLES, sort_keys=True),
            "outputs": json.dumps(ENCODER_OUTPUT_ROLES, sort_keys=True),
            "statistics": json.dumps(snet.metadata(), sort_keys=True)}
    return snet, io_, meta
