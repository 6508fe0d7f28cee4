"""Tiled evaluation of the Gatys loss, for outputs beyond what one run of the graph fits in memory:
the tile graph (family ``gatys_vgg_tiled``, ``deepshop-export gatys --tiled``, beside the graph as
NAME-tiled.onnx) run tile by tile by the engine (engine/gatys_tiles.h says how: two passes over the
tiles of the one tile planner, the Gram matrices and content sums of the whole image in between)."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import List

import numpy as np

from ... import _native
from ...core import metadata as mm
from ...core import options
from ...core.errors import ModelError
from ..generic import SessionPipeline
from .model import (CONTENT_LOSSES, FAMILY, GRADIENT, LOSS, STYLE_LOSSES, TV_LOSS, GatysModel, gradient_precision,
                    graph_metadata)

TILED_FAMILY = FAMILY + "_tiled"
# The whole graph holds every activation and its gradient at once, about 4 KB per pixel on a VGG to
# relu5_1 (docs/results/gatys.md): tiles bound that.
#: tile="auto" tiles a level with more pixels than this where the tile graph is there.
AUTO_TILE_PIXELS = 1536 * 1536
#: Kept tile side of tile="auto" (with a VGG's 176 px halo: regions of 1120 px).
DEFAULT_TILE = 768


def tiled_model_path(model_path) -> Path:
    """Where the tile graph of a graph is looked for: beside it, as NAME-tiled.onnx."""
    path = Path(model_path)
    return path.with_name(f"{path.stem}-tiled{path.suffix}")


class TiledGatysModel(SessionPipeline):
    """The tile graph of a Gatys model (family ``gatys_vgg_tiled``) and its tiled evaluation by the
    engine: ``targets`` and ``evaluate`` as GatysModel's, for images split into tiles of at most
    ``tile`` kept pixels per side, each run with ``halo`` pixels of context (twice the network's
    reach: the receptive field's half plus the largest stride, on the stride grid)."""

    def __init__(self, model, *, device: str = "auto", precision: str = "auto", threads: int = 0):
        self.model_path = Path(str(model))
        meta, self.content_layers, self.style_layers, self.stride_multiple = graph_metadata(
            self.model_path, TILED_FAMILY, "Gatys tile graph", "deepshop-export gatys --tiled", "Gatys tile graph")
        try:
            receptive_field = int(meta[mm.key("receptive_field")])
        except (KeyError, ValueError) as e:
            raise ModelError(f"{self.model_path}: Gatys tile graph metadata incomplete or invalid ({e})") from None
        m = self.stride_multiple
        self.halo = -(-2 * (receptive_field // 2 + m) // m) * m
        layers = list(dict.fromkeys(list(self.content_layers) + list(self.style_layers)))
        # VGG layer reluB_K follows B - 1 poolings (feature_network: one before each block after the first).
        try:
            self._strides = {l: 2 ** (int(l[len("relu"):].split("_")[0]) - 1) for l in layers}
        except ValueError:
            raise ModelError(f"{self.model_path}: Gatys tile graph layers {layers} are not VGG's reluB_K") from None
        super().__init__(self.model_path, device=options.check_device(device), threads=threads,
                         precision=gradient_precision(precision), auto_openvino=True)

    def _tiles(self):
        """The engine's tiled evaluation with the current halo."""
        def layers(of):
            return [(l, int(c), self._strides[l]) for l, c in of.items()]
        return _native.GatysTiles(session=self._session, content=layers(self.content_layers),
                                  style=layers(self.style_layers), halo=self.halo, stride_multiple=self.stride_multiple)

    def plan(self, height: int, width: int, tile: int) -> List[tuple]:
        """Tiles as ((y0, y1, x0, x1) region run, (y0, y1, x0, x1) kept), in pixels, raster order."""
        return list(self._tiles().plan(height, width, tile))

    def targets(self, image: np.ndarray, tile: int):
        """({content layer: (1, C, h, w) features}, {style layer: (C, C) Gram}) of ``image``, tile by tile."""
        content, grams = self._tiles().targets(np.ascontiguousarray(image, np.float32), tile)
        return dict(zip(self.content_layers, content)), dict(zip(self.style_layers, grams))

    def evaluate(self, x, content_targets, style_targets, content_weights, style_weights, tv_weight,
                 tile: int) -> dict:
        """The loss, its terms and the gradient at ``x`` (as GatysModel.evaluate), tile by tile."""
        out = self._tiles().evaluate(
            np.ascontiguousarray(x, np.float32),
            [np.ascontiguousarray(content_targets[l], np.float32) for l in self.content_layers],
            [np.ascontiguousarray(style_targets[l], np.float32) for l in self.style_layers],
            [float(w) for w in content_weights], [float(w) for w in style_weights], float(tv_weight), tile)
        return {LOSS: np.float32(out["loss"]), CONTENT_LOSSES: np.asarray(out["content_losses"], np.float32),
                STYLE_LOSSES: np.asarray(out["style_losses"], np.float32), TV_LOSS: np.float32(out["tv_loss"]),
                GRADIENT: out["gradient"]}


def tiled_model_of(net: GatysModel) -> TiledGatysModel:
    """The tile graph beside ``net``'s graph, on the same device and precision, checked to have its layers."""
    path = tiled_model_path(net.model_path)
    if not path.is_file():
        raise ModelError(f"{path}: no tile graph for the tiled evaluation of {net.model_path}; export it with "
                         f"deepshop-export gatys --tiled and the options {Path(net.model_path).name} was exported "
                         f"with, -o {shlex.quote(str(path))} (or give tile=0)")
    tiled = TiledGatysModel(path, device=net.device, precision=net.precision_option, threads=net.threads)
    if (tiled.content_layers, tiled.style_layers) != (net.content_layers, net.style_layers):
        raise ModelError(f"{path}: the tile graph's layers ({list(tiled.content_layers)}, {list(tiled.style_layers)}) "
                         f"are not those of {net.model_path} ({list(net.content_layers)}, {list(net.style_layers)})")
    return tiled


