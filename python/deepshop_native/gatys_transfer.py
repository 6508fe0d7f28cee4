"""Gatys et al.'s optimisation-based style transfer, run by the native engine.

    result = ds.gatys("photo.jpg", "painting.jpg")                   # HED's VGG16, 512 px, L-BFGS-B
    result = ds.gatys(photo, [style_a, style_b], style_weights=[0.7, 0.3], length=1024,
                      original_colors=True, callback=show, callback_every=10)
    result.image                                                     # H x W x 3 uint8

The image's pixels are optimised until its VGG features match the content photo's and the Gram
matrices of its features match the style image's.  Each evaluation of the loss and of its gradient
with respect to the pixels is one run of the exported loss-and-gradient graph
(``deepshop-export gatys``, family ``gatys_vgg``: see deepshop_export.families.gatys) on the
engine; the optimisers are the native ones of :mod:`deepshop_native.optim` (L-BFGS-B with the
pixel bounds 0..255, memory 8, or projected Adam).  Nothing of torch runs here.

Targets: the content photo's features at the content layers, and the style images' Gram matrices at
the style layers, blended by the style weights; both are outputs of the same graph run on those
images.

Weights.  ``ratio`` is the style-to-content ratio of Gatys et al. and fzliu/style-transfer, whose
normalisations it keeps: content ``1/2 sum (F - P)^2``, style ``sum_l 1/L * 1/(4 N_l^2 M_l^2) sum (G_l -
A_l)^2`` with the unnormalised Gram matrices ``G = F F'`` (N_l channels, M_l positions), total
``content + ratio * style``.  The graph computes means instead (``mean((F - P)^2)`` and the mean of
the squared differences of ``F F' / (N M)``), so the driver gives it the content weight 1 and the
style layer weights ``ratio / L * N_l^2 / (2 N_c M_ref)``, the same objective divided by
``N_c M_ref / 2`` (N_c: channels of the content layer).  M_ref is the content layer's positions at
a 512 x 512 output (64 x 64 for relu4_2): fixed, so that a ratio means the same balance at every
size and at every coarse-to-fine level (fzliu's balance shifts towards the content as the image grows).
``tv_weight`` weighs the total variation ``1/2 sum (dx^2 + dy^2)`` on 0..255 RGB per pixel value
(the graph is given ``tv_weight / (3 H W)``), so it too is independent of the size.

Coarse to fine: an output longer than ``coarse_length`` is first optimised at half its size (or a
quarter, ...: the largest halving not above ``coarse_length``) for ``iterations``, then upsampled
and refined at each doubling for ``refine_iterations`` (default a quarter of ``iterations``: a
level of twice the side costs four times as much per iteration).  The targets are recomputed at
every level from the photo and the style images resized to it.

Tiles: a level too large for one run of the graph is evaluated tile by tile in two passes
(TiledGatysModel, the "Tiled evaluation" comment below; ``tile=``).
"""
from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from . import model_metadata as mm
from . import options
from .errors import Cancelled, ImageError, ModelError, OptionError
from .models import missing_export_error, read_model_metadata, user_models_dir

__all__ = ["gatys", "GatysModel", "TiledGatysModel", "GatysResult", "GatysProgress", "resolve_model", "pink_noise",
           "transfer_luminance", "MODELS_ENV", "MODEL_NAMES"]

FAMILY = "gatys_vgg"
#: Folder of exported graphs that model names resolve to (else ~/.cache/deepshop/gatys).
MODELS_ENV = "DEEPSHOP_GATYS_MODELS"
MODEL_NAMES = ("hed", "vgg16", "vgg19")
POOLINGS = ("max", "avg")
INITS = ("content", "mixed", "noise")
OPTIMIZERS = ("lbfgs", "adam")
#: Positions of the content layer at which the ratio keeps fzliu's balance (relu4_2 at 512 x 512).
REFERENCE_POSITIONS = 64 * 64
DEFAULT_TV_WEIGHT = 1e-2
DEFAULT_COARSE_LENGTH = 512
# Graph input/output names (deepshop_export.families.gatys.gradient_graph; the metadata's roles list them).
_IMAGE, _GRADIENT, _LOSS = "image", "gradient", "loss"
_CONTENT_LOSSES, _STYLE_LOSSES, _TV_LOSS = "content_losses", "style_losses", "tv_loss"
_CONTENT_WEIGHTS, _STYLE_WEIGHTS, _TV_WEIGHT = "content_weights", "style_weights", "tv_weight"


# ---------------------------------------------------------------------------------------------
# Model files

def default_models_dir() -> Path:
    return user_models_dir(MODELS_ENV, "gatys")


def model_file_name(name: str, pooling: str) -> str:
    return f"gatys-{name}-{pooling}.onnx"


def export_command(name: str, pooling: str, path: Path) -> str:
    """The ``deepshop-export gatys`` command that writes the graph a model name resolves to."""
    weights = {"vgg16": " --weights vgg16-397923af.pth", "vgg19": " --weights vgg19-dcbb9e9d.pth"}.get(name, "")
    return f"deepshop-export gatys --model {name}{weights} --pooling {pooling} -o {shlex.quote(str(path))}"


def resolve_model(model: Union[str, os.PathLike] = "hed", pooling: Optional[str] = None) -> Path:
    """The graph file of ``model``: a name (hed, vgg16, vgg19) looked up as
    ``gatys-NAME-POOLING.onnx`` in $DEEPSHOP_GATYS_MODELS or ~/.cache/deepshop/gatys (nothing is
    downloaded: a missing graph is a ModelError with the command that exports it), or an .onnx path."""
    if pooling is not None and pooling not in POOLINGS:
        raise OptionError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    text = os.fspath(model)
    if text in MODEL_NAMES:
        path = default_models_dir() / model_file_name(text, pooling or "max")
        if not path.is_file():
            raise missing_export_error(path, f"{text} graph for Gatys style transfer",
                                       export_command(text, pooling or 'max', path), MODELS_ENV)
        return path
    path = Path(text).expanduser()
    if not path.is_file():
        if path.suffix.lower() != ".onnx" and os.sep not in text:
            raise OptionError(f"model must be one of {', '.join(MODEL_NAMES)} or an .onnx file, not {text!r}")
        raise ModelError(f"{path}: no such model file")
    return path


#: Precisions GatysModel / gatys(precision=...) take.
PRECISIONS = ("auto", "fp32", "bf16")


def gradient_precision(precision: str) -> str:
    """The engine precision for the loss-and-gradient graph (checked; "auto": AUTO_PRECISION)."""
    if not isinstance(precision, str) or precision.lower() not in PRECISIONS:
        raise OptionError(f"precision: {precision!r} is not one of " + ", ".join(repr(p) for p in PRECISIONS))
    precision = precision.lower()
    return AUTO_PRECISION if precision == "auto" else precision


# precision="auto" is fp32 on every route, bf16 only when asked for.  bf16 is much faster where
# the CPU has AMX or AVX512-BF16 (OpenVINO direct, 192 px, HED VGG16: 0.12 against 0.55 s per
# evaluation under load ~3 on 2 cores) and L-BFGS-B's line search copes with it: astronaut photo,
# composition_vii, 200 iterations from the photo, loss 11.43 (bf16, re-evaluated in fp32) against
# 11.39 (fp32), the same 201 evaluations; 256 px, 40 iterations: 13.03 bf16, 13.31 OpenVINO fp32,
# 13.18 ONNX Runtime fp32.  But the style gradient is (G - A) F, and bf16 rounds the Gram matrix
# G to 8 significant bits: where G nears its target A, which is where the optimisation goes, the
# rounding is most of G - A (tests/test_gatys_providers.py: 0.83 relative L2 on style-only
# weights for images whose Grams agree to ~0.2%; 0.12 at the start of the run above).  A default
# should not depend on that luck.
AUTO_PRECISION = "fp32"


def _layers_and_multiple(path: str, meta: dict, what: str):
    """({content layer: channels}, {style layer: channels}, stride multiple) from a graph's metadata."""
    try:
        content_layers: Dict[str, int] = json.loads(meta[mm.key("content_layers")])
        style_layers: Dict[str, int] = json.loads(meta[mm.key("style_layers")])
        return content_layers, style_layers, int(meta[mm.key("stride_multiple")])
    except (KeyError, ValueError) as e:
        raise ModelError(f"{path}: {what} metadata incomplete or invalid ({e})") from None


class GatysModel:
    """An exported Gatys loss-and-gradient graph (family ``gatys_vgg``) on one device.

    ``targets(image)`` gives an image's content features and style Gram matrices;
    ``evaluate(x, ...)`` the loss, its terms and the gradient with respect to ``x``.  Images are
    (1, 3, H, W) float32 RGB 0..255 with H and W multiples of ``stride_multiple``."""

    def __init__(self, model, *, device: str = "auto", precision: str = "auto", threads: int = 0,
                 memory_arena: bool = True):
        from .pipelines import SessionPipeline

        self.model_path = os.fspath(model)
        meta = read_model_metadata(self.model_path)
        if meta.get(mm.key("family")) != FAMILY:
            raise ModelError(f"{self.model_path}: not a Gatys loss-and-gradient graph (family "
                             f"{meta.get(mm.key('family'))!r}, expected {FAMILY!r}; export one with deepshop-export gatys)")
        self.content_layers, self.style_layers, self.stride_multiple = _layers_and_multiple(
            self.model_path, meta, "Gatys graph")
        # The contract spells it "average"; the options say "avg".
        self.pooling = {"average": "avg"}.get(meta.get(mm.key("pooling"), ""), meta.get(mm.key("pooling"), ""))
        self.name = meta.get(mm.key("name"), Path(self.model_path).stem)
        self.feature_network = meta.get(mm.key("feature_network"), "")
        device = options.check_device(device)
        self.precision_option, self.threads = precision, threads
        if not _openvino_safe(meta):
            # Older graphs' ConvTranspose adjoints give OpenVINO a wrong gradient
            # (deepshop_export.families.gatys.gradient_graph): ONNX Runtime only.
            if device.lower().startswith("openvino"):
                raise ModelError(f"{self.model_path}: this graph's gradient is wrong on OpenVINO (exported before "
                                 f"deepshop-export gatys wrote flipped-convolution adjoints); export it again, or use "
                                 f"device='cpu'")
            if device == "auto":
                device = "cpu"
        self.device = device
        self._pipeline = SessionPipeline(self.model_path, device=device, threads=threads, memory_arena=memory_arena,
                                         precision=gradient_precision(precision), auto_openvino=True)

    @property
    def provider(self) -> str:
        return self._pipeline.provider

    @property
    def precision(self) -> str:
        """The precision the provider computes the loss and gradient in: "fp32" or "bf16"."""
        return self._pipeline.precision

    def _feeds(self, x, content_targets, style_targets, content_weights, style_weights, tv_weight) -> dict:
        feeds = {_IMAGE: np.ascontiguousarray(x, dtype=np.float32),
                 _CONTENT_WEIGHTS: np.asarray(content_weights, np.float32).reshape(len(self.content_layers)),
                 _STYLE_WEIGHTS: np.asarray(style_weights, np.float32).reshape(len(self.style_layers)),
                 _TV_WEIGHT: np.asarray([tv_weight], np.float32)}
        for layer in self.content_layers:
            feeds[f"content_target_{layer}"] = np.ascontiguousarray(content_targets[layer], dtype=np.float32)
        for layer in self.style_layers:
            feeds[f"style_target_{layer}"] = np.ascontiguousarray(style_targets[layer], dtype=np.float32)
        return feeds

    def targets(self, image: np.ndarray):
        """({content layer: (1, C, h, w) features}, {style layer: (C, C) Gram}) of ``image``."""
        self._check_size(image)
        zero_c = {l: np.zeros((1, c, 1, 1), np.float32) for l, c in self.content_layers.items()}
        zero_s = {l: np.zeros((c, c), np.float32) for l, c in self.style_layers.items()}
        names = [f"features_{l}" for l in self.content_layers] + [f"gram_{l}" for l in self.style_layers]
        out = self._pipeline(self._feeds(image, zero_c, zero_s, np.zeros(len(self.content_layers)),
                                         np.zeros(len(self.style_layers)), 0.0), outputs=names)
        return ({l: out[f"features_{l}"] for l in self.content_layers},
                {l: out[f"gram_{l}"] for l in self.style_layers})

    def evaluate(self, x, content_targets, style_targets, content_weights, style_weights, tv_weight) -> dict:
        """The graph's loss, content_losses, style_losses, tv_loss and gradient at ``x``."""
        out = self._pipeline(self._feeds(x, content_targets, style_targets, content_weights, style_weights, tv_weight),
                             outputs=[_LOSS, _CONTENT_LOSSES, _STYLE_LOSSES, _TV_LOSS, _GRADIENT])
        return out

    def _check_size(self, image) -> None:
        h, w = image.shape[-2:]
        m = self.stride_multiple
        if h % m or w % m or h < m or w < m:
            raise OptionError(f"{self.model_path}: image size {w}x{h} is not a positive multiple of {m}")


# ---------------------------------------------------------------------------------------------
# Tiled evaluation (outputs beyond what one run of the graph fits in memory)
#
# The style loss couples every position through the image's Gram matrices, so each evaluation
# takes two passes over tiles of the image, each tile with a halo of twice the network's reach
# (the receptive field's half, plus the largest stride), on the tile graph (deepshop-export gatys
# --tiled, family gatys_vgg_tiled, beside the graph as NAME-tiled.onnx):
#   (a) features of each tile; their kept region (the tile less its halo; tiles' kept regions
#       cover the image once) goes into a GramAccumulator per style layer and into the content
#       sums, so the Gram matrices and the loss are the whole image's;
#   (b) the gradient of each tile given S_l = 2 sw_l (E + E') / (C^2 C M_l) (E = G - A, the whole
#       image's Gram error; M_l its positions) and s_l = 2 cw_l / (C M_l), cropped to the kept
#       region and stitched.
# A feature at a kept position is exact once the tile reaches `reach` pixels beyond it; the
# gradient at a kept pixel sums injections from features up to `reach` away, each exact only
# `reach` further in: hence the halo of 2 * reach.  Tile borders fall on multiples of the stride
# multiple, so every pooling grid is the whole image's.  The total variation is computed here, on
# the whole image.  Each evaluation costs two runs per tile plus the halos' area.

TILED_FAMILY = FAMILY + "_tiled"
# The whole graph holds every activation and its gradient at once: 4.2 GB peak RSS at 1024 x 1024
# (HED VGG16 to relu5_1, ONNX Runtime CPU; ~4 KB per pixel), so ~17 GB at 2048 x 2048.
#: tile="auto" tiles a level with more pixels than this (~10 GB whole) where the tile graph is there.
AUTO_TILE_PIXELS = 1536 * 1536
#: Kept tile side of tile="auto": 768 + 2 x 176 halo = 1120 px regions, ~5 GB.
DEFAULT_TILE = 768


def tiled_model_path(model_path) -> Path:
    """Where the tile graph of a graph is looked for: beside it, as NAME-tiled.onnx."""
    path = Path(model_path)
    return path.with_name(f"{path.stem}-tiled{path.suffix}")


def tile_spans(length: int, tile: int, multiple: int) -> List[tuple]:
    """Kept spans [a, b) covering 0..length once, as many as spans of ``tile`` (rounded down to a
    multiple of ``multiple``, at least one) need, of equal length up to the rounding of their
    borders to multiples of ``multiple`` (so at most ``tile + multiple`` long)."""
    tile = max(multiple, tile // multiple * multiple)
    n = -(-length // tile)
    cuts = [min(length, round(i * length / n / multiple) * multiple) for i in range(n + 1)]
    cuts[-1] = length
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


class TiledGatysModel:
    """The tile graph of a Gatys model (family ``gatys_vgg_tiled``) and the two-pass tiled
    evaluation (module comment above): ``targets`` and ``evaluate`` as GatysModel's, for images
    split into tiles of at most ``tile`` kept pixels per side."""

    def __init__(self, model, *, device: str = "auto", precision: str = "auto", threads: int = 0):
        from .pipelines import SessionPipeline

        self.model_path = os.fspath(model)
        meta = read_model_metadata(self.model_path)
        if meta.get(mm.key("family")) != TILED_FAMILY:
            raise ModelError(f"{self.model_path}: not a Gatys tile graph (family {meta.get(mm.key('family'))!r}, "
                             f"expected {TILED_FAMILY!r}; export one with deepshop-export gatys --tiled)")
        self.content_layers, self.style_layers, self.stride_multiple = _layers_and_multiple(
            self.model_path, meta, "Gatys tile graph")
        try:
            receptive_field = int(meta[mm.key("receptive_field")])
        except (KeyError, ValueError) as e:
            raise ModelError(f"{self.model_path}: Gatys tile graph metadata incomplete or invalid ({e})") from None
        m = self.stride_multiple
        self.halo = -(-2 * (receptive_field // 2 + m) // m) * m
        self.layers = list(dict.fromkeys(list(self.content_layers) + list(self.style_layers)))
        # VGG layer reluB_K follows B - 1 poolings (feature_network: one before each block after the first).
        try:
            self._strides = {l: 2 ** (int(l[len("relu"):].split("_")[0]) - 1) for l in self.layers}
        except ValueError:
            raise ModelError(f"{self.model_path}: Gatys tile graph layers {self.layers} are not VGG's reluB_K") from None
        self._pipeline = SessionPipeline(self.model_path, device=options.check_device(device), threads=threads,
                                         precision=gradient_precision(precision), auto_openvino=True)

    @property
    def provider(self) -> str:
        return self._pipeline.provider

    @property
    def precision(self) -> str:
        return self._pipeline.precision

    def plan(self, height: int, width: int, tile: int) -> List[tuple]:
        """Tiles as ((y0, y1, x0, x1) region run, (y0, y1, x0, x1) kept), in pixels."""
        tiles = []
        for ky0, ky1 in tile_spans(height, tile, self.stride_multiple):
            for kx0, kx1 in tile_spans(width, tile, self.stride_multiple):
                region = (max(0, ky0 - self.halo), min(height, ky1 + self.halo),
                          max(0, kx0 - self.halo), min(width, kx1 + self.halo))
                tiles.append((region, (ky0, ky1, kx0, kx1)))
        return tiles

    def _run(self, x, region, content_targets, content_scales, style_gradients) -> dict:
        y0, y1, x0, x1 = region
        feeds = {_IMAGE: np.ascontiguousarray(x[:, :, y0:y1, x0:x1], dtype=np.float32),
                 "content_scales": np.asarray(content_scales, np.float32).reshape(len(self.content_layers))}
        for layer in self.content_layers:
            feeds[f"content_target_{layer}"] = content_targets[layer]
        for layer in self.style_layers:
            feeds[f"style_gradient_{layer}"] = style_gradients[layer]
        return self._pipeline(feeds)

    def _layer_box(self, layer, box, origin=(0, 0)) -> tuple:
        """A pixel box (y0, y1, x0, x1), relative to ``origin``, in the layer's positions."""
        s = self._strides[layer]
        return ((box[0] - origin[0]) // s, (box[1] - origin[0]) // s, (box[2] - origin[1]) // s,
                (box[3] - origin[1]) // s)

    def _features_pass(self, x, tiles, content_targets=None):
        """Pass (a): (GramAccumulators of the style layers, content features cropped per tile or the
        content sums of squared differences)."""
        from .kernels import GramAccumulator

        grams = {l: GramAccumulator(c, normalize="CN") for l, c in self.style_layers.items()}
        zero_s = {l: np.zeros((c, c), np.float32) for l, c in self.style_layers.items()}
        content = {l: [] for l in self.content_layers}
        squares = {l: 0.0 for l in self.content_layers}
        for region, kept in tiles:
            targets = self._targets_for(region, content_targets)
            out = self._run(x, region, targets, np.zeros(len(self.content_layers)), zero_s)
            origin = (region[0], region[2])
            for layer in self.style_layers:
                y0, y1, x0, x1 = self._layer_box(layer, kept, origin)
                grams[layer].add(out[f"features_{layer}"][0], crop=(y0, y1, x0, x1))
            for layer in self.content_layers:
                y0, y1, x0, x1 = self._layer_box(layer, kept, origin)
                f = out[f"features_{layer}"][0, :, y0:y1, x0:x1]
                if content_targets is None:
                    content[layer].append((kept, f.copy()))
                else:
                    ty0, ty1, tx0, tx1 = self._layer_box(layer, kept)
                    d = f.astype(np.float64) - content_targets[layer][0, :, ty0:ty1, tx0:tx1]
                    squares[layer] += float(np.sum(d * d))
        return grams, content, squares

    def _targets_for(self, region, content_targets) -> dict:
        """The content targets cropped to a tile's region (zeros before there are targets)."""
        out = {}
        for layer, c in self.content_layers.items():
            y0, y1, x0, x1 = self._layer_box(layer, region)
            out[layer] = (np.zeros((1, c, y1 - y0, x1 - x0), np.float32) if content_targets is None else
                          np.ascontiguousarray(content_targets[layer][:, :, y0:y1, x0:x1]))
        return out

    def targets(self, image: np.ndarray, tile: int):
        """({content layer: (1, C, h, w) features}, {style layer: (C, C) Gram}) of ``image``, tile by tile."""
        h, w = image.shape[-2:]
        tiles = self.plan(h, w, tile)
        grams, content, _ = self._features_pass(image, tiles)
        stitched = {}
        for layer, pieces in content.items():
            s = self._strides[layer]
            full = np.zeros((1, self.content_layers[layer], h // s, w // s), np.float32)
            for kept, f in pieces:
                y0, y1, x0, x1 = self._layer_box(layer, kept)
                full[0, :, y0:y1, x0:x1] = f
            stitched[layer] = full
        return stitched, {l: g.result(np.float32) for l, g in grams.items()}

    def evaluate(self, x, content_targets, style_targets, content_weights, style_weights, tv_weight,
                 tile: int) -> dict:
        """The loss, its terms and the gradient at ``x`` (as GatysModel.evaluate), tile by tile."""
        h, w = x.shape[-2:]
        tiles = self.plan(h, w, tile)
        grams, _, squares = self._features_pass(x, tiles, content_targets)
        content_losses, scales = [], []
        for (layer, c), weight in zip(self.content_layers.items(), content_weights):
            n = c * (h // self._strides[layer]) * (w // self._strides[layer])
            content_losses.append(squares[layer] / n)
            scales.append(2.0 * weight / n)
        style_losses, style_gradients = [], {}
        for (layer, c), weight in zip(self.style_layers.items(), style_weights):
            error = grams[layer].result(np.float64) - style_targets[layer].astype(np.float64)
            style_losses.append(float(np.sum(error * error)) / (c * c))
            positions = (h // self._strides[layer]) * (w // self._strides[layer])
            style_gradients[layer] = (2.0 * weight * (error + error.T) / (c * c * c * positions)).astype(np.float32)
        gradient = np.zeros(x.shape, np.float32)
        for region, kept in tiles:
            out = self._run(x, region, self._targets_for(region, content_targets), scales, style_gradients)
            y0, y1, x0, x1 = kept
            gradient[:, :, y0:y1, x0:x1] = out[_GRADIENT][:, :, y0 - region[0]:y1 - region[0],
                                                           x0 - region[2]:x1 - region[2]]
        tv, tv_gradient = total_variation(x)
        gradient += np.float32(tv_weight) * tv_gradient
        loss = (float(np.dot(content_weights, content_losses)) + float(np.dot(style_weights, style_losses))
                + tv_weight * tv)
        return {_LOSS: np.float32(loss), _CONTENT_LOSSES: np.asarray(content_losses, np.float32),
                _STYLE_LOSSES: np.asarray(style_losses, np.float32), _TV_LOSS: np.float32(tv), _GRADIENT: gradient}


def total_variation(x: np.ndarray) -> tuple:
    """(0.5 * (sum dx^2 + sum dy^2), its gradient) of a (1, 3, H, W) image, as the graph's term."""
    x = x.astype(np.float64)
    dx, dy = np.diff(x, axis=3), np.diff(x, axis=2)
    gradient = np.zeros_like(x)
    gradient[..., :, 1:] += dx
    gradient[..., :, :-1] -= dx
    gradient[..., 1:, :] += dy
    gradient[..., :-1, :] -= dy
    return 0.5 * (float(np.sum(dx * dx)) + float(np.sum(dy * dy))), gradient.astype(np.float32)


def _openvino_safe(meta: dict) -> bool:
    """Whether the graph's backward convolutions are flipped Convs (its provenance says so)."""
    try:
        provenance = json.loads(meta.get(mm.key("provenance"), "{}"))
    except ValueError:
        return False
    return isinstance(provenance, dict) and provenance.get("adjoint_convolution") == "flipped-conv"


# ---------------------------------------------------------------------------------------------
# Pixels

def pink_noise(height: int, width: int, rng: np.random.Generator, channels: int = 3) -> np.ndarray:
    """Noise with a 1/f amplitude spectrum (power 1/f^2, as natural images), (channels, H, W)
    float64 of mean 0 and standard deviation 1 per channel: white Gaussian noise shaped in the
    Fourier domain."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    f[0, 0] = np.inf                         # no DC: the mean is set afterwards
    out = np.empty((channels, height, width))
    for c in range(channels):
        spectrum = np.fft.rfft2(rng.standard_normal((height, width))) / f
        plane = np.fft.irfft2(spectrum, s=(height, width))
        out[c] = (plane - plane.mean()) / max(plane.std(), 1e-12)
    return out


def _initial_image(init: str, content: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(1, 3, H, W) float32 0..255 start: the photo, 1/f noise (mean 127.5, std 48), or their mean."""
    if init == "content":
        return content.copy()
    noise = np.clip(127.5 + 48.0 * pink_noise(content.shape[2], content.shape[3], rng), 0, 255)[None]
    if init == "noise":
        return noise.astype(np.float32)
    return (0.5 * content + 0.5 * noise).astype(np.float32)


def _to_rgb_0_255(name: str, source) -> np.ndarray:
    """Any image the package reads (path, array, PIL image, bytes) as H x W x 3 float32 0..255."""
    from .image import read_image, to_rgb_array

    if isinstance(source, (str, os.PathLike, bytes)) or hasattr(source, "read"):
        pixels = read_image(source).pixels
    else:
        pixels, _ = to_rgb_array(source)
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) * np.float32(255 / 65535)
    return np.clip(pixels.astype(np.float32), 0, 1) * np.float32(255)


def _resize(rgb255: np.ndarray, height: int, width: int) -> np.ndarray:
    """H x W x 3 float32 0..255 resized with Lanczos (resize_to works on 0..1 floats)."""
    from .image import resize_to

    if rgb255.shape[:2] == (height, width):
        return rgb255
    return resize_to(rgb255 / np.float32(255), height, width) * np.float32(255)


def _chw(rgb255: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb255.transpose(2, 0, 1)[None], dtype=np.float32)


def _hwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x[0].transpose(1, 2, 0))


def fit_length(height: int, width: int, length: int) -> tuple:
    """(h, w) with the longer side ``length``, the aspect ratio kept."""
    scale = length / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _network_size(height: int, width: int, multiple: int) -> tuple:
    """The nearest size whose sides are positive multiples of ``multiple``."""
    return (max(multiple, multiple * round(height / multiple)), max(multiple, multiple * round(width / multiple)))


_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def transfer_luminance(result: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The result's luminance with the content's chroma (YCbCr of JPEG, BT.601 full range), both
    H x W x 3 float 0..255 of one size: neural-style's ``original_colors``."""
    y = result.astype(np.float64) @ _YCBCR[0]
    cbcr = content.astype(np.float64) @ _YCBCR[1:].T
    ycc = np.concatenate([y[..., None], cbcr], axis=-1)
    return np.clip(ycc @ np.linalg.inv(_YCBCR).T, 0, 255).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The driver

@dataclass
class GatysProgress:
    """What the callback is given: where the run is, the loss and its unweighted terms, and the
    current image (``preview``, H x W x 3 uint8 at the level's size, original colours applied)."""
    level: int                      # 0-based level index (coarse to fine)
    levels: int
    size: tuple                     # (height, width) of this level
    iteration: int                  # 1-based within the level
    iterations: int                 # of this level
    loss: float
    content_losses: List[float]
    style_losses: List[float]
    tv_loss: float
    _pixels: np.ndarray = field(repr=False, default=None)
    _content: Optional[np.ndarray] = field(repr=False, default=None)

    @property
    def preview(self) -> np.ndarray:
        image = _hwc(self._pixels)
        if self._content is not None:
            image = transfer_luminance(image, self._content)
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)


@dataclass
class GatysResult:
    image: np.ndarray               # H x W x 3 uint8, the longer side `length`
    loss: float                     # at the last evaluation of the finest level
    content_losses: List[float]
    style_losses: List[float]
    tv_loss: float
    levels: List[dict]              # per level: size, iterations, evaluations, reason, seconds
    model: str
    provider: str
    seconds: float
    precision: str = "fp32"


def _style_list(style) -> list:
    if isinstance(style, (list, tuple)):
        if not style:
            raise OptionError("style: no style image given")
        return list(style)
    return [style]


def _blend_weights(n: int, style_weights) -> np.ndarray:
    if style_weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray([float(v) for v in style_weights], dtype=np.float64)
    if len(w) != n:
        raise OptionError(f"style_weights: {len(w)} weight(s) for {n} style image(s); give one weight per style")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise OptionError(f"style_weights must be finite, >= 0 and not all 0, got {list(style_weights)}")
    return w / w.sum()


def loss_weights(net: "GatysModel", ratio: float):
    """(content layer weights, style layer weights) given to the graph for ``ratio`` (module doc)."""
    content = np.full(len(net.content_layers), 1.0 / len(net.content_layers))
    n_c = next(iter(net.content_layers.values()))
    style = np.array([ratio / len(net.style_layers) * n * n / (2.0 * n_c * REFERENCE_POSITIONS)
                      for n in net.style_layers.values()])
    return content, style


def level_sizes(length: int, coarse_length: int) -> List[int]:
    """Longer sides of the coarse-to-fine levels, ending with ``length``."""
    sizes = [length]
    while sizes[0] > coarse_length and sizes[0] // 2 >= 1:
        sizes.insert(0, sizes[0] // 2)
    return sizes


def gatys(content, style, *, model: Union[str, os.PathLike, GatysModel] = "hed", style_weights=None,
          ratio: float = 1e4, iterations: int = 512, length: int = 512, init: str = "content",
          pooling: Optional[str] = None, tv_weight: float = DEFAULT_TV_WEIGHT, style_scale: float = 1.0,
          original_colors: bool = False, optimizer: str = "lbfgs", learning_rate: float = 10.0,
          seed: int = 0, coarse_to_fine: bool = True, coarse_length: int = DEFAULT_COARSE_LENGTH,
          refine_iterations: Optional[int] = None,
          callback: Optional[Callable[[GatysProgress], Optional[bool]]] = None, callback_every: int = 1,
          device: str = "auto", precision: str = "auto", threads: int = 0,
          tile: Optional[int] = None) -> GatysResult:
    """Style transfer by optimisation (module doc).  ``content``/``style``: anything the package
    reads as an image (path, numpy array, PIL image, bytes); ``style`` may be a list, blended by
    ``style_weights`` (normalised to sum 1).  ``model``: hed, vgg16, vgg19 (exported graphs, see
    resolve_model), an .onnx path or a GatysModel; ``pooling`` picks the named model's graph
    (a file's pooling is what it was exported with: a different ``pooling`` is an error).
    ``callback(progress)`` runs every ``callback_every`` iterations and after each level's last;
    returning False (or raising) stops the run: Cancelled (or the exception) is raised.
    ``device``/``precision``: where the graph runs ("auto": OpenVINO called directly where the
    openvino package is installed, else ONNX Runtime's CPU provider; "cpu", "openvino", ...;
    precision "auto" = fp32, or "bf16": see AUTO_PRECISION); ignored when ``model`` is a GatysModel.
    ``tile``: evaluate levels tile by tile (TiledGatysModel, the tile graph beside the graph as
    NAME-tiled.onnx): None ("auto") for levels of more than AUTO_TILE_PIXELS pixels where the tile
    graph is there, with tiles of DEFAULT_TILE; N > 0: tiles of N pixels (kept, per side) for
    every level larger than that (the tile graph must be there); 0: never."""
    started = time.perf_counter()
    ratio = options.check_number("ratio", ratio, 0.0, 1e30)
    iterations = options.check_integer("iterations", iterations, 1, 10 ** 7)
    length = options.check_integer("length", length, 1, 1 << 16)
    tv_weight = options.check_number("tv_weight", tv_weight, 0.0, 1e30)
    style_scale = options.check_number("style_scale", style_scale, 1e-3, 100.0)
    callback_every = options.check_integer("callback_every", callback_every, 1, 10 ** 7)
    coarse_length = options.check_integer("coarse_length", coarse_length, 1, 1 << 16)
    refine_iterations = (max(1, iterations // 4) if refine_iterations is None else
                         options.check_integer("refine_iterations", refine_iterations, 1, 10 ** 7))
    learning_rate = options.check_number("learning_rate", learning_rate, 1e-12, 1e12)
    seed = options.check_integer("seed", seed, 0, 2 ** 63 - 1)
    if init not in INITS:
        raise OptionError(f"init must be one of {', '.join(INITS)}, not {init!r}")
    if optimizer not in OPTIMIZERS:
        raise OptionError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}")
    styles = _style_list(style)
    blend = _blend_weights(len(styles), style_weights)

    gradient_precision(precision)
    net = model if isinstance(model, GatysModel) else GatysModel(resolve_model(model, pooling), device=device,
                                                                 precision=precision, threads=threads)
    if pooling is not None and net.pooling != pooling:
        raise OptionError(f"{net.model_path}: the graph was exported with {net.pooling} pooling, not {pooling} "
                          f"(export another with deepshop-export gatys --pooling {pooling})")
    m = net.stride_multiple
    content_name = content if isinstance(content, (str, os.PathLike)) else "content image"
    content_rgb = _checked_image(content_name, _to_rgb_0_255(content_name, content), m)
    style_rgbs = []
    for i, s in enumerate(styles):
        name = s if isinstance(s, (str, os.PathLike)) else f"style image {i + 1}"
        style_rgbs.append(_checked_image(name, _to_rgb_0_255(name, s), m))
    if length < m:
        raise OptionError(f"length must be at least {m} (the network's stride multiple), got {length}")
    if tile is not None:
        tile = options.check_integer("tile", tile, 0, 1 << 16)
        if 0 < tile < m:
            raise OptionError(f"tile must be 0 or at least {m} (the network's stride multiple), got {tile}")
    tiled_net: List[TiledGatysModel] = []       # made on the first level that is tiled

    def level_tile(height: int, width: int) -> int:
        if tile == 0 or (tile is None and (height * width <= AUTO_TILE_PIXELS or
                                           not tiled_model_path(net.model_path).is_file())):
            return 0
        size = DEFAULT_TILE if tile is None else tile
        if height <= size and width <= size:
            return 0
        if not tiled_net:
            tiled_net.append(_tiled_model_of(net))
        return size

    out_h, out_w = fit_length(*content_rgb.shape[:2], length)
    sides = level_sizes(length, coarse_length) if coarse_to_fine else [length]
    sides = [s for s in sides if s >= 2 * m] or [length]      # a level must leave the network some room
    content_weights, style_layer_weights = loss_weights(net, ratio)
    rng = np.random.default_rng(seed)
    x = None
    report, last = [], {}
    for level, side in enumerate(sides):
        h, w = _network_size(*fit_length(*content_rgb.shape[:2], side), m)
        tiles = level_tile(h, w)
        if tiles:
            evaluator = tiled_net[0]

            def targets_of(image, tiles=tiles):
                return tiled_net[0].targets(image, tiles)

            def evaluate(*args, tiles=tiles):
                return tiled_net[0].evaluate(*args, tile=tiles)
        else:
            evaluator, targets_of, evaluate = net, net.targets, net.evaluate
        content_level = _resize(content_rgb, h, w)
        content_targets, _ = targets_of(_chw(content_level))
        style_targets = {l: np.zeros((c, c), np.float64) for l, c in net.style_layers.items()}
        for weight, s in zip(blend, style_rgbs):
            sh, sw = _network_size(*fit_length(*s.shape[:2], max(m, round(side * style_scale))), m)
            _, grams = targets_of(_chw(_resize(s, sh, sw)))
            for l in style_targets:
                style_targets[l] += weight * grams[l].astype(np.float64)
        style_targets = {l: g.astype(np.float32) for l, g in style_targets.items()}
        if x is None:
            x = _initial_image(init, _chw(content_level), rng)
        else:
            x = _chw(np.clip(_resize(_hwc(x), h, w), 0, 255))
        n_iter = iterations if level == 0 else refine_iterations
        tv_level = tv_weight / (3.0 * h * w)
        recent: list = []        # (loss, terms) of the last evaluations: the callback's terms

        def objective(xv):
            out = evaluate(xv, content_targets, style_targets, content_weights, style_layer_weights, tv_level)
            loss = float(out[_LOSS])
            terms = dict(content_losses=[float(v) for v in out[_CONTENT_LOSSES]],
                         style_losses=[float(v) for v in out[_STYLE_LOSSES]], tv_loss=float(out[_TV_LOSS]))
            recent.append((loss, terms))
            del recent[:-32]
            return loss, out[_GRADIENT]

        def terms_of(loss):
            for value, terms in reversed(recent):
                if value == loss or np.isclose(value, loss, rtol=1e-6):
                    return terms
            return recent[-1][1]

        def on_iteration(iteration, loss, xv, level=level, h=h, w=w, n_iter=n_iter, content_level=content_level):
            if callback is None or (iteration % callback_every and iteration != n_iter):
                return True
            progress = GatysProgress(level=level, levels=len(sides), size=(h, w), iteration=iteration,
                                     iterations=n_iter, loss=float(loss), **terms_of(loss), _pixels=xv,
                                     _content=content_level if original_colors else None)
            return callback(progress) is not False

        t0 = time.perf_counter()
        from .optim import minimize_adam, minimize_lbfgsb
        if optimizer == "lbfgs":
            res = minimize_lbfgsb(objective, x, 0.0, 255.0, m=8, max_iterations=n_iter,
                                  max_evaluations=max(15000, 2 * n_iter), callback=on_iteration)
        else:
            res = minimize_adam(objective, x, 0.0, 255.0, lr=learning_rate, max_iterations=n_iter,
                                callback=on_iteration)
        if res.reason == "cancelled":
            raise Cancelled(f"Gatys style transfer cancelled by the callback at level {level + 1} of {len(sides)}, "
                            f"iteration {res.iterations}")
        x = np.asarray(res.x, dtype=np.float32)
        last = terms_of(res.loss)
        report.append(dict(size=(h, w), tiles=len(evaluator.plan(h, w, tiles)) if tiles else 1,
                           iterations=res.iterations, evaluations=res.evaluations, reason=res.reason,
                           loss=float(res.loss), seconds=time.perf_counter() - t0))
    image = _resize(np.clip(_hwc(x), 0, 255), out_h, out_w)
    if original_colors:
        image = transfer_luminance(image, _resize(content_rgb, out_h, out_w))
    return GatysResult(image=np.clip(np.rint(image), 0, 255).astype(np.uint8), loss=report[-1]["loss"],
                       levels=report, model=net.model_path, provider=net.provider, precision=net.precision,
                       seconds=time.perf_counter() - started, **last)


def _tiled_model_of(net: GatysModel) -> TiledGatysModel:
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


def _checked_image(name, rgb: np.ndarray, multiple: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if min(h, w) < multiple:
        raise ImageError(f"{name}: {w}x{h} is too small for the network: both sides must be at least {multiple} "
                         f"pixels (it pools the image {int(np.log2(multiple))} times)")
    return rgb
