"""MSG-Net's generator as a global-statistics graph: the TransformerNet machinery
(families/transformer_net/statistics.py, its interface and packing) applied to the generator,
whose extra input, the style Gram, rides along.

Two adaptations, neither changing what the network computes:
* MSG-Net's instance norms have no affine parameters; StatisticsNorm expects them, so each is
  given weight 1 and bias 0 (y * 1 + 0).
* StatisticsNet calls its network with the image alone; the Gram reaches the generator through
  a holder set for the duration of each call (as the statistics state reaches the norms).

Graph inputs: ``input`` (image), ``gram`` (aux), ``stat_mean``, ``stat_var``, ``stat_mix`` (aux),
``stat_mask`` (tile_mask); outputs ``output`` and the ``measured_*`` statistics.  The runtime
(deepshop_native.pipelines.stylenet) uses it in thumbnail mode: one untiled run of a thumbnail with mix 0
measures every layer, then every tile runs with mix 1 and those statistics.
"""
from __future__ import annotations

import copy
import json

import torch
from torch import nn

from ...onnx.export import GraphInterface
from ..transformer_net.statistics import OUTPUT_NAMES, OUTPUT_ROLES, StatisticsNet
from . import network as mn

INPUT_NAMES = ("input", "gram", "stat_mean", "stat_var", "stat_mix", "stat_mask")
INPUT_ROLES = {"input": "image", "gram": "aux", "stat_mean": "aux", "stat_var": "aux", "stat_mix": "aux",
               "stat_mask": "tile_mask"}


def _with_unit_affine(net: mn.MSGNet) -> mn.MSGNet:
    net = copy.deepcopy(net).float().cpu().eval()
    for name, m in list(net.named_modules()):
        if isinstance(m, nn.InstanceNorm2d) and not m.affine:
            affine = nn.InstanceNorm2d(m.num_features, eps=m.eps, affine=True)
            with torch.no_grad():
                affine.weight.fill_(1.0)
                affine.bias.zero_()
            parent, _, attr = name.rpartition(".")
            holder = net.get_submodule(parent) if parent else net
            if isinstance(holder, (nn.Sequential, nn.ModuleList)):
                holder[int(attr)] = affine
            else:
                setattr(holder, attr, affine)
    return net


class _Generate(nn.Module):
    """The content path with the Gram held outside forward()'s arguments."""

    def __init__(self, net: mn.MSGNet):
        super().__init__()
        self.net = net
        self.gram: torch.Tensor | None = None

    def forward(self, x):
        c = self.net.feature_channels
        gram = self.gram if self.gram is not None else torch.zeros(1, c, c)   # only for the shape probe
        return self.net.generate(x, gram)


class GeneratorStatistics(nn.Module):
    def __init__(self, net: mn.MSGNet):
        super().__init__()
        self.stats = StatisticsNet(_Generate(_with_unit_affine(net)))
        self.holder: _Generate = self.stats.net        # StatisticsNet's own (deep) copy

    def forward(self, input, gram, stat_mean, stat_var, stat_mix, stat_mask):
        self.holder.gram = gram
        try:
            return self.stats(input, stat_mean, stat_var, stat_mix, stat_mask)
        finally:
            self.holder.gram = None

    def metadata(self) -> dict:
        return self.stats.metadata()


def generator_statistics_graph(net: mn.MSGNet) -> tuple[GeneratorStatistics, GraphInterface, dict]:
    snet = GeneratorStatistics(net)
    layers = snet.metadata()["layers"]
    total = snet.stats.total_channels
    c = net.feature_channels

    def make_inputs(h, w, gen):
        x = torch.rand(1, 3, h, w, generator=gen) * 255
        other = torch.rand(1, 3, h, w, generator=gen) * 255
        gram = mn.gram_matrix(torch.rand(1, c, 16, 16, generator=gen) * 4)
        ones = torch.ones(1, 1, h, w)
        with torch.no_grad():
            _, count, mean, m2 = snet(other, gram, torch.zeros(total), torch.ones(total), torch.zeros(1), ones)
        var = m2[0] / torch.repeat_interleave(count[0], torch.tensor([l["channels"] for l in layers]))
        mask = torch.zeros(1, 1, h, w)
        mask[..., 8:h - 8, 4:w - 12] = 1
        return x, gram, mean[0], var, torch.ones(1), mask

    io_ = GraphInterface(
        input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
        sample_inputs=make_inputs(132, 100, torch.Generator().manual_seed(0)),
        dynamic_dims=[{0: "batch", 2: "height", 3: "width"}, {}, {}, {}, {}, {0: "batch", 2: "height", 3: "width"}],
        make_inputs=make_inputs)
    meta = {"inputs": json.dumps(INPUT_ROLES, sort_keys=True), "outputs": json.dumps(OUTPUT_ROLES, sort_keys=True),
            "statistics": json.dumps(snet.metadata(), sort_keys=True)}
    return snet, io_, meta


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
    snet = StatisticsNet(_with_unit_affine(net).model1)
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
