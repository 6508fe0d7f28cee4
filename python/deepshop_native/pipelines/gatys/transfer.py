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

import os
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Union

import numpy as np

from ... import _native
from ...core import options
from ...core.errors import Cancelled, ImageError, OptionError
from ...image import LoadedImage, check_made_size, read_image, resize_to, to_rgb_array
from ...optim import minimize_adam, minimize_lbfgsb
from .model import (CONTENT_LOSSES, DEFAULT_MODEL, GRADIENT, LOSS, STYLE_LOSSES, TV_LOSS, GatysModel, bf16_sibling,
                    gradient_precision, resolve_model)
from .tiled import AUTO_TILE_PIXELS, DEFAULT_TILE, tiled_model_of, tiled_model_path

INITS = ("content", "mixed", "noise")
OPTIMIZERS = ("lbfgs", "adam")
#: Positions of the content layer at which the ratio keeps fzliu's balance (relu4_2 at 512 x 512).
REFERENCE_POSITIONS = 64 * 64
DEFAULT_TV_WEIGHT = 1e-2
DEFAULT_COARSE_LENGTH = 512


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


def transfer_luminance(result: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The result's luminance with the content's chroma (YCbCr of JPEG, BT.601 full range), both
    H x W x 3 float 0..255 of one size: neural-style's ``original_colors`` (the engine's transfer)."""
    return np.clip(_native.transfer_luminance(np.ascontiguousarray(result, np.float32),
                                              np.ascontiguousarray(content, np.float32)), 0, 255)


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
    levels: List[dict]              # per level: size, iterations, evaluations, reason, seconds, phases
                                    # (precision, iterations, evaluations of each)
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


def gatys(content, style, *, model: Union[str, os.PathLike, GatysModel] = DEFAULT_MODEL, style_weights=None,
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
    precision "auto" = fp32, but on OpenVINO's CPU device where the CPU has bf16: bf16, handing over to
    fp32 where bf16 stops short (model.bf16_sibling); "fp32" or "bf16" throughout); ignored when
    ``model`` is a GatysModel (whose own precision option then counts the same way).
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
    blend = options.check_blend_weights(len(styles), style_weights)

    gradient_precision(precision)
    net = model if isinstance(model, GatysModel) else GatysModel(resolve_model(model, pooling), device=device,
                                                                 precision=precision, threads=threads)
    if pooling is not None and net.pooling != pooling:
        raise OptionError(f"{net.model_path}: the graph was exported with {net.pooling} pooling, not {pooling} "
                          f"(export another with deepshop-export gatys --pooling {pooling})")
    m = net.stride_multiple
    content_name = _name_of(content, "content image")
    content_rgb = _checked_image(content_name, _to_rgb_0_255(content_name, content), m)
    style_rgbs, style_names = [], []
    for i, s in enumerate(styles):
        style_names.append(_name_of(s, f"style image {i + 1}"))
        style_rgbs.append(_checked_image(style_names[-1], _to_rgb_0_255(style_names[-1], s), m))
    if length < m:
        raise OptionError(f"length must be at least {m} (the network's stride multiple), got {length}")
    # What the run makes by resizing stays within the pixel limit, as what it reads does: the
    # finest level and the output (length), each style at it (style_scale).
    check_made_size("length", *_network_size(*fit_length(*content_rgb.shape[:2], length), m),
                    f"the output of {content_name}")
    check_made_size("length", *fit_length(*content_rgb.shape[:2], length), f"the output of {content_name}")
    for name, s in zip(style_names, style_rgbs):
        check_made_size("style_scale", *_network_size(*fit_length(*s.shape[:2], max(m, round(length * style_scale))), m),
                        f"the style image {name} at length {length}")
    if tile is not None:
        tile = options.check_integer("tile", tile, 0, 1 << 16)
        if 0 < tile < m:
            raise OptionError(f"tile must be 0 or at least {m} (the network's stride multiple), got {tile}")
    fast = bf16_sibling(net)
    tiled_nets: dict = {}       # id of a GatysModel -> its TiledGatysModel, made on the first tiled level

    def level_tile(height: int, width: int) -> int:
        if tile == 0 or (tile is None and (height * width <= AUTO_TILE_PIXELS or
                                           not tiled_model_path(net.model_path).is_file())):
            return 0
        size = DEFAULT_TILE if tile is None else tile
        return 0 if height <= size and width <= size else size

    def route(base: GatysModel, tiles: int):
        """(evaluator, targets_of, evaluate) of ``base`` at a level: whole, or tile by tile."""
        if not tiles:
            return base, base.targets, base.evaluate
        if id(base) not in tiled_nets:
            tiled_nets[id(base)] = tiled_model_of(base)
        t = tiled_nets[id(base)]
        return t, (lambda image: t.targets(image, tiles)), (lambda *args: t.evaluate(*args, tile=tiles))

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
        content_level = _resize(content_rgb, h, w)
        style_levels = [_resize(s, *_network_size(*fit_length(*s.shape[:2], max(m, round(side * style_scale))), m))
                        for s in style_rgbs]
        if x is None:
            x = _initial_image(init, _chw(content_level), rng)
        else:
            x = _chw(np.clip(_resize(_hwc(x), h, w), 0, 255))
        n_iter = iterations if level == 0 else refine_iterations
        tv_level = tv_weight / (3.0 * h * w)
        recent: list = []        # (loss, terms) of the last evaluations: the callback's terms
        t0 = time.perf_counter()
        done, evaluations, phases = 0, 0, []
        base = net if fast is None else fast
        while True:
            count = n_iter - done
            evaluator, targets_of, evaluate = route(base, tiles)
            content_targets, _ = targets_of(_chw(content_level))
            style_targets = {l: np.zeros((c, c), np.float64) for l, c in net.style_layers.items()}
            for weight, s in zip(blend, style_levels):
                _, grams = targets_of(_chw(s))
                for l in style_targets:
                    style_targets[l] += weight * grams[l].astype(np.float64)
            style_targets = {l: g.astype(np.float32) for l, g in style_targets.items()}

            def objective(xv, evaluate=evaluate, content_targets=content_targets, style_targets=style_targets):
                out = evaluate(xv, content_targets, style_targets, content_weights, style_layer_weights, tv_level)
                loss = float(out[LOSS])
                terms = dict(content_losses=[float(v) for v in out[CONTENT_LOSSES]],
                             style_losses=[float(v) for v in out[STYLE_LOSSES]], tv_loss=float(out[TV_LOSS]))
                recent.append((loss, terms))
                del recent[:-32]
                return loss, out[GRADIENT]

            def terms_of(loss):
                for value, terms in reversed(recent):
                    if value == loss or np.isclose(value, loss, rtol=1e-6):
                        return terms
                return recent[-1][1]

            def on_iteration(iteration, loss, xv, level=level, h=h, w=w, n_iter=n_iter, content_level=content_level,
                             offset=done):
                iteration += offset
                if callback is None or (iteration % callback_every and iteration != n_iter):
                    return True
                progress = GatysProgress(level=level, levels=len(sides), size=(h, w), iteration=iteration,
                                         iterations=n_iter, loss=float(loss), **terms_of(loss), _pixels=xv,
                                         _content=content_level if original_colors else None)
                return callback(progress) is not False

            if optimizer == "lbfgs":
                res = minimize_lbfgsb(objective, x, 0.0, 255.0, m=8, max_iterations=count,
                                      max_evaluations=max(15000, 2 * count), callback=on_iteration)
            else:
                res = minimize_adam(objective, x, 0.0, 255.0, lr=learning_rate, max_iterations=count,
                                    callback=on_iteration)
            if res.reason == "cancelled":
                raise Cancelled(f"Gatys style transfer cancelled by the callback at level {level + 1} of {len(sides)}, "
                                f"iteration {done + res.iterations}")
            x = np.asarray(res.x, dtype=np.float32)
            done += res.iterations
            evaluations += res.evaluations
            phases.append(dict(precision=base.precision, iterations=res.iterations, evaluations=res.evaluations,
                               reason=res.reason))
            last = terms_of(res.loss)
            if base is net or done >= n_iter:
                break
            base = net           # bf16 stopped short: fp32 goes on from here (model.py, bf16_sibling)
        report.append(dict(size=(h, w), tiles=len(evaluator.plan(h, w, tiles)) if tiles else 1,
                           iterations=done, evaluations=evaluations, reason=res.reason, loss=float(res.loss),
                           seconds=time.perf_counter() - t0, phases=phases))
    image = _resize(np.clip(_hwc(x), 0, 255), out_h, out_w)
    if original_colors:
        image = transfer_luminance(image, _resize(content_rgb, out_h, out_w))
    return GatysResult(image=np.clip(np.rint(image), 0, 255).astype(np.uint8), loss=report[-1]["loss"],
                       levels=report, model=net.model_path, provider=net.provider,
                       precision=net.precision if fast is None else "+".join(dict.fromkeys(
                           p["precision"] for level in report for p in level["phases"])),
                       seconds=time.perf_counter() - started, **last)


def _name_of(source, default: str) -> str:
    """A content or style image's name in messages: its path, else ``default``."""
    if isinstance(source, LoadedImage) and source.path:
        return source.path
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else default


def _checked_image(name, rgb: np.ndarray, multiple: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if min(h, w) < multiple:
        raise ImageError(f"{name}: {w}x{h} is too small for the network: both sides must be at least {multiple} "
                         f"pixels (it pools the image {int(np.log2(multiple))} times)")
    return rgb
