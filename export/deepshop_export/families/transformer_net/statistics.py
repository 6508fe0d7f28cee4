"""The global-statistics graph of an instance-norm network: every tile can be normalised with
statistics other than its own, and every run measures the statistics it met.

Why.  Instance norm normalises each tile with that tile's own mean and variance, so a tiled image
is a different painting from the whole-image one.  Given each instance-norm layer's statistics of
the *whole* image, every tile computes exactly what the whole-image run computes on it (up to its
halo), so tiled output equals whole-image output (issue 12; URST, Chen et al. AAAI 2022).

Graph interface (names are the ONNX input/output names; L = number of instance-norm layers,
C = sum of their channel counts; ``deepshop.statistics`` in the metadata gives the packing):

inputs
    ``input``      N x 3 x H x W   the image tile, exactly as the plain graph takes it
    ``stat_mean``  C               per-channel means of every layer's input, packed layer after
                                   layer in network order (layer k at offset ``offsets[k]``)
    ``stat_var``   C               per-channel *biased* variances, packed the same way
    ``stat_mix``   1               0: each layer uses the tile's own statistics (exactly the
                                   original network); 1: the given ones; in between, a blend of
                                   mean and variance
    ``stat_mask``  N x 1 x H x W   weights of the region whose statistics are *measured*: 1 on
                                   the tile's kept span, 0 on its halo (1 everywhere for a whole
                                   image).  Average-pooled inside the graph to each layer's
                                   resolution (``scale`` 1, 2 or 4): exact 0/1 when the kept span
                                   starts and ends on multiples of the stride.
outputs
    ``output``          N x 3 x H x W  the image
    ``measured_count``  N x L          per layer, the (pooled) mask weight total
    ``measured_mean``   N x C          per layer and channel, the mask-weighted mean of the layer's
                                       input *as the network ran* (with the mix chosen)
    ``measured_m2``     N x C          the mask-weighted sum of squared deviations from that mean

Count, mean and M2 rather than sums of x and x^2: the engine adds tiles up with Chan et al.'s
parallel formula (:func:`combine`) in double precision, where E[x^2] - E[x]^2 in float32 would
cancel badly on activations of a few hundred.  Variance = M2 / count (biased, as instance norm).

Instance norm is written out as (x - m) * (gamma / sqrt(v + eps)) + beta, eps taken from the torch
layer, with the per-channel work done on N x C x 1 x 1 tensors and the tile's own statistics
taken from the same sums as the measurement (StatisticsNorm.forward says why: peak memory).
Working memory on ONNX Runtime's CPU provider, one 1024 x 1024 window, random TransformerNet:
plain network ~530 bytes per pixel, this graph ~920 (the textbook write-out: ~1580).  OpenVINO's
CPU plugin (through its ONNX Runtime execution provider) holds ~2.4 KB per pixel on this graph
against ~340 bytes on the plain one: it does not reuse memory across the written-out operators.  How the engine uses the graph:

* thumbnail mode: run a thumbnail of the whole image with mix 0 and mask 1 (its own, sequential
  statistics: each layer's after the earlier layers were normalised with the thumbnail's own),
  take var = M2 / count and the means, then run every tile with mix 1 and those statistics.
* exact mode (per-layer schedule): start from the thumbnail's statistics; pass k (k = 0..L-1)
  runs every tile with mix 1 and the current statistics, whose layers < k are exact, and
  Chan-combines the tiles' kept-span measurements of layer k into layer k's exact statistics; pass
  L runs with all of them exact and gives the output.  So L + 1 passes (16 for TransformerNet),
  as issue 12 predicts; on the test photo the output reached 41.7 dB at pass 15 (thumbnail
  alone: 22.7 dB).  A Jacobi schedule (every layer replaced after every pass) is no shortcut:
  layer j's measurement was taken under the earlier layers' old statistics, and on the test
  network it fell to 7..15 dB until the last passes.  A pass could stop the network after layer k
  (a cheaper truncated graph): not done yet.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ...onnx.export import GraphInterface

INPUT_NAMES = ("input", "stat_mean", "stat_var", "stat_mix", "stat_mask")
OUTPUT_NAMES = ("output", "measured_count", "measured_mean", "measured_m2")
#: Roles of the shared contract (deepshop.inputs / deepshop.outputs).
INPUT_ROLES = {"input": "image", "stat_mean": "aux", "stat_var": "aux", "stat_mix": "aux", "stat_mask": "tile_mask"}
OUTPUT_ROLES = {"output": "image", "measured_count": "aux", "measured_mean": "aux", "measured_m2": "aux"}
#: Guards the division of an empty mask region (a tile with no kept pixel at a coarse layer).
_TINY = 1e-12


class _RunState:
    """What one forward call shares with the norm layers: the given statistics, the mix, the
    mask pooled per scale, and the statistics measured so far.  A plain object (not a module)
    so that the layers hold no tensors between calls."""

    def __init__(self, mean, var, mix, mask):
        self.mean, self.var, self.mix, self.mask = mean, var, mix, mask
        self.pooled: dict[int, torch.Tensor] = {}
        self.measured: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # by layer index

    def mask_at(self, scale: int) -> torch.Tensor:
        if scale not in self.pooled:
            self.pooled[scale] = self.mask if scale == 1 else F.avg_pool2d(self.mask, scale)
        return self.pooled[scale]


def _weighted_sums(d: torch.Tensor, sqrt_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel, sum(w d) and sum(w d^2) over H and W (N x C each), given sqrt(w) (N x 1 x H x W).
    One full-size temporary, e = sqrt(w) d: sum(w d) = <e, sqrt(w)> is a matrix-vector product
    and sum(w d^2) = |e|^2 one ReduceL2, where (w * d * d).sum() would write three."""
    n, c = d.shape[0], d.shape[1]
    e = d * sqrt_w
    first = torch.matmul(e.reshape(n, c, -1), sqrt_w.reshape(n, -1, 1)).reshape(n, c)
    second = torch.linalg.vector_norm(e, dim=(2, 3)) ** 2
    return first, second


class StatisticsNorm(nn.Module):
    """An affine InstanceNorm2d whose mean and variance can come from outside, and which records
    the statistics of its input over the mask region."""

    def __init__(self, norm: nn.InstanceNorm2d, index: int, offset: int, scale: int):
        super().__init__()
        if not norm.affine or norm.track_running_stats:
            raise ValueError("StatisticsNorm replaces affine instance norms without running statistics only")
        self.index, self.channels, self.offset, self.scale = index, norm.num_features, offset, scale
        self.eps = float(norm.eps)
        self.weight, self.bias = norm.weight, norm.bias
        self.state: _RunState | None = None

    def forward(self, x):
        s, c = self.state, self.channels
        n, hw = x.shape[0], x.shape[2] * x.shape[3]
        # Per-channel work first (N x C x 1 x 1 tensors), so that few full-size tensors are alive
        # at once: the graph runs large tiles, and each full-size temporary costs as much memory as
        # the activation itself (an earlier, textbook write-out held ~3x the plain network's peak).
        # Sums divided by the size rather than means: ReduceMean changed in opset 18, ReduceSum did not.
        own_mean = x.sum(dim=(2, 3), keepdim=True) / hw
        given_mean = s.mean[self.offset:self.offset + c].reshape(1, c, 1, 1)
        given_var = s.var[self.offset:self.offset + c].reshape(1, c, 1, 1)
        mix = s.mix.reshape(1, 1, 1, 1)
        # (1 - mix) * a + mix * b is exactly a at mix 0 and exactly b at mix 1.
        m = (1 - mix) * own_mean + mix * given_mean
        # Everything below works on d = x - m, which is all the normalisation needs, and which
        # keeps the sums of squares well conditioned: m is the tile's own mean (mix 0) or the
        # whole image's (mix 1), close to the mean of any region, so sum(d^2) - sum(d)^2 / n does
        # not cancel the way sum(x^2) - sum(x)^2 / n would on activations of a few hundred.
        d = x - m
        # The sums over the measured region (weights w) and over the rest (1 - w) add up to the
        # tile's own sums.  Taking the own statistics from them is not only economical: it makes
        # the normalised output depend on the measurement, so that ONNX Runtime (whose default
        # order is a depth-first walk back from the graph's outputs) measures each layer while
        # its input is still in memory, rather than holding every layer's input for the
        # measured_* outputs at the end (which cost ~3x the plain network's peak memory).
        w = s.mask_at(self.scale)                                     # N x 1 x h x w
        count = w.sum(dim=(2, 3))                                     # N x 1
        sum_wd, sum_wd2 = _weighted_sums(d, torch.sqrt(w))
        sum_rd, sum_rd2 = _weighted_sums(d, torch.sqrt((1 - w).clamp_min(0)))
        own_dmean = ((sum_wd + sum_rd) / hw).reshape(n, c, 1, 1)
        own_var = ((sum_wd2 + sum_rd2) / hw).reshape(n, c, 1, 1) - own_dmean * own_dmean
        v = (1 - mix) * own_var + mix * given_var

        mean_d = sum_wd / count.clamp_min(_TINY)
        s.measured[self.index] = (count, m.reshape(-1, c) + mean_d, (sum_wd2 - sum_wd * mean_d).clamp_min(0))

        scale = self.weight.reshape(1, c, 1, 1) / torch.sqrt(v + self.eps)
        return d * scale + self.bias.reshape(1, c, 1, 1)


class StatisticsNet(nn.Module):
    """``net`` with every InstanceNorm2d replaced by a StatisticsNorm; forward takes and returns
    the tensors of the module docstring's interface."""

    def __init__(self, net: nn.Module, sample_hw: tuple[int, int] = (64, 64)):
        super().__init__()
        net = copy.deepcopy(net).float().cpu().eval()
        norms = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.InstanceNorm2d)]
        if not norms:
            raise ValueError("the network has no InstanceNorm2d layer: a statistics graph would be the plain one")
        scales = _input_scales(net, [m for _, m in norms], sample_hw)
        self.layers: list[dict] = []
        offset = 0
        # Packed in named_modules() order, which need not be the order they run in: each layer
        # files its measurement under its own index.
        for index, ((name, norm), scale) in enumerate(zip(norms, scales)):
            replacement = StatisticsNorm(norm, index, offset, scale)
            parent_name, _, attr = name.rpartition(".")
            setattr(net.get_submodule(parent_name) if parent_name else net, attr, replacement)
            self.layers.append({"name": name, "channels": norm.num_features, "offset": offset,
                                "eps": float(norm.eps), "scale": scale})
            offset += norm.num_features
        self.total_channels = offset
        self.net = net
        self._norms = sorted((m for m in net.modules() if isinstance(m, StatisticsNorm)), key=lambda m: m.index)

    def forward(self, input, stat_mean, stat_var, stat_mix, stat_mask):
        state = _RunState(stat_mean, stat_var, stat_mix, stat_mask)
        for norm in self._norms:
            norm.state = state
        try:
            output = self.net(input)
        finally:
            for norm in self._norms:
                norm.state = None
        if sorted(state.measured) != list(range(len(self._norms))):
            raise RuntimeError("an instance-norm layer did not run: its statistics would be missing")
        counts, means, m2s = zip(*(state.measured[i] for i in range(len(self._norms))))
        return output, torch.cat(counts, dim=1), torch.cat(means, dim=1), torch.cat(m2s, dim=1)

    def metadata(self) -> dict:
        """The ``deepshop.statistics`` record: how the statistics are packed and named."""
        return {
            "layers": self.layers,
            "total_channels": self.total_channels,
            "variance": "biased",
            "inputs": {"mean": "stat_mean", "var": "stat_var", "mix": "stat_mix", "mask": "stat_mask"},
            "outputs": {"count": "measured_count", "mean": "measured_mean", "m2": "measured_m2"},
        }


def _input_scales(net: nn.Module, norms: list[nn.Module], sample_hw: tuple[int, int]) -> list[int]:
    """Each norm layer's downsampling factor against the image, from one run at ``sample_hw``."""
    sizes: list[tuple[int, int]] = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: sizes.append(tuple(args[0].shape[2:]))) for m in norms]
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, *sample_hw))
    finally:
        for h in hooks:
            h.remove()
    if len(sizes) != len(norms):
        raise ValueError("every instance-norm layer must run exactly once per forward call")
    scales = []
    for (h, w) in sizes:
        if sample_hw[0] % h or sample_hw[1] % w or sample_hw[0] // h != sample_hw[1] // w:
            raise ValueError(f"an instance-norm layer runs at {h}x{w} for a {sample_hw} image: not an integer scale")
        scales.append(sample_hw[0] // h)
    return scales


def statistics_graph(net: nn.Module) -> tuple[StatisticsNet, GraphInterface, dict[str, str]]:
    """(module, interface, metadata entries) for exporting ``net``'s statistics graph."""
    snet = StatisticsNet(net)
    total = snet.total_channels
    stats_net = snet

    def make_inputs(h, w, gen):
        """A random image with statistics of the right magnitude: those of another random image
        (mix 1), and a mask that is 1 on an inner, stride-aligned span."""
        x = torch.rand(1, 3, h, w, generator=gen) * 255
        other = torch.rand(1, 3, h, w, generator=gen) * 255
        ones = torch.ones(1, 1, h, w)
        with torch.no_grad():
            _, count, mean, m2 = stats_net(other, torch.zeros(total), torch.ones(total), torch.zeros(1), ones)
        var = m2[0] / torch.repeat_interleave(count[0], torch.tensor([l["channels"] for l in snet.layers]))
        mask = torch.zeros(1, 1, h, w)
        mask[..., 8:h - 8, 4:w - 12] = 1
        return x, mean[0], var, torch.ones(1), mask

    sample = make_inputs(132, 100, torch.Generator().manual_seed(0))
    io_ = GraphInterface(
        input_names=INPUT_NAMES, output_names=OUTPUT_NAMES, sample_inputs=sample,
        dynamic_dims=[{0: "batch", 2: "height", 3: "width"}, {}, {}, {}, {0: "batch", 2: "height", 3: "width"}],
        make_inputs=make_inputs)
    meta = {"inputs": json.dumps(INPUT_ROLES), "outputs": json.dumps(OUTPUT_ROLES),
            "statistics": json.dumps(snet.metadata(), sort_keys=True)}
    return snet, io_, meta


# ------------------------------------------------------------------ networks with an aux input

def with_unit_affine(net: nn.Module) -> nn.Module:
    """A float32 CPU copy of ``net`` whose InstanceNorm2d layers without affine parameters have
    weight 1 and bias 0 (y * 1 + 0: the same function), as StatisticsNorm expects.  MSG-Net's
    norms and the conditional instance norms (families/multistyle/network.py, whose style-given
    scale and shift follow the norm) are such layers."""
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


class _HeldAux(nn.Module):
    """``net.method(image, aux)`` called as ``held(image)``: the aux tensor (a style Gram, a
    style vector) is held for the duration of each call, as the statistics state reaches the
    norms.  ``probe`` stands in for it outside a call (StatisticsNet's shape probe)."""

    def __init__(self, net: nn.Module, probe: torch.Tensor, method: str):
        super().__init__()
        self.net, self.probe, self.method = net, probe, method
        self.aux: torch.Tensor | None = None

    def forward(self, x):
        return getattr(self.net, self.method)(x, self.aux if self.aux is not None else self.probe)


class AuxStatisticsNet(nn.Module):
    """The global-statistics graph of a network taking an image and one aux input (the same
    for every tile): forward(input, aux, stat_mean, stat_var, stat_mix, stat_mask), outputs as
    StatisticsNet's.  Norms without affine parameters are given unit ones first.  ``method``:
    the method of ``net`` that takes (image, aux); layer names in the metadata are "net." and
    their names in ``net``."""

    def __init__(self, net: nn.Module, probe_aux: torch.Tensor, method: str = "forward"):
        super().__init__()
        self.stats = StatisticsNet(_HeldAux(with_unit_affine(net), probe_aux, method))
        self.holder: _HeldAux = self.stats.net        # StatisticsNet's own (deep) copy

    def forward(self, input, aux, stat_mean, stat_var, stat_mix, stat_mask):
        self.holder.aux = aux
        try:
            return self.stats(input, stat_mean, stat_var, stat_mix, stat_mask)
        finally:
            self.holder.aux = None

    def metadata(self) -> dict:
        return self.stats.metadata()


def aux_statistics_graph(net: nn.Module, aux_name: str, make_aux, *, value_scale: float = 255.0,
                         method: str = "forward") -> tuple[AuxStatisticsNet, GraphInterface, dict[str, str]]:
    """(module, interface, metadata entries) of the statistics graph of ``net(image, aux)``.
    Graph inputs: ``input`` (image), ``aux_name`` (aux), then the statistics inputs of the
    module docstring.  ``make_aux(gen)`` makes a random aux value for validation;
    ``value_scale``: the images' range (255 for 0..255 networks, 1 for 0..1 ones)."""
    snet = AuxStatisticsNet(net, make_aux(torch.Generator().manual_seed(99)), method)
    total = snet.stats.total_channels
    channels = torch.tensor([l["channels"] for l in snet.metadata()["layers"]])

    def make_inputs(h, w, gen):
        x = torch.rand(1, 3, h, w, generator=gen) * value_scale
        other = torch.rand(1, 3, h, w, generator=gen) * value_scale
        aux = make_aux(gen)
        with torch.no_grad():
            _, count, mean, m2 = snet(other, aux, torch.zeros(total), torch.ones(total), torch.zeros(1),
                                      torch.ones(1, 1, h, w))
        var = m2[0] / torch.repeat_interleave(count[0], channels)
        mask = torch.zeros(1, 1, h, w)
        mask[..., 8:h - 8, 4:w - 12] = 1
        return x, aux, mean[0], var, torch.ones(1), mask

    names = ("input", aux_name) + INPUT_NAMES[1:]
    roles = {"input": "image", aux_name: "aux", **{k: v for k, v in INPUT_ROLES.items() if k != "input"}}
    io_ = GraphInterface(
        input_names=names, output_names=OUTPUT_NAMES,
        sample_inputs=make_inputs(132, 100, torch.Generator().manual_seed(0)),
        dynamic_dims=[{0: "batch", 2: "height", 3: "width"}, {}, {}, {}, {}, {0: "batch", 2: "height", 3: "width"}],
        make_inputs=make_inputs)
    meta = {"inputs": json.dumps(roles, sort_keys=True), "outputs": json.dumps(OUTPUT_ROLES, sort_keys=True),
            "statistics": json.dumps(snet.metadata(), sort_keys=True)}
    return snet, io_, meta


# ------------------------------------------------------------------ combining tiles (reference)

def combine(counts, means, m2s):
    """Chan et al.'s parallel combination of P parts' (count, mean, M2), in float64: the
    reference the engine's accumulation follows.  ``counts``, ``means``, ``m2s``: P x C (per-layer
    counts spread to their channels with :func:`expand_counts`).  Returns the union's (count,
    mean, M2), each of length C."""
    counts, means, m2s = (np.asarray(a, dtype=np.float64) for a in (counts, means, m2s))
    n, mean, m2 = counts[0], means[0], m2s[0]
    for nb, mb, m2b in zip(counts[1:], means[1:], m2s[1:]):
        total = n + nb
        safe = np.where(total > 0, total, 1.0)
        delta = mb - mean
        mean = np.where(total > 0, mean + delta * nb / safe, 0.0)
        m2 = m2 + m2b + delta * delta * n * nb / safe
        n = total
    return n, mean, m2


def expand_counts(counts, layers: list[dict]) -> np.ndarray:
    """measured_count (... x L) to one count per channel (... x C), following the packing."""
    return np.repeat(np.asarray(counts), [l["channels"] for l in layers], axis=-1)
