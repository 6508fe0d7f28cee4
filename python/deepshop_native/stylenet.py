"""Style at run time: MSG-Net (Zhang & Dana 2017), one model for any style image.

    net = StyleNet("msgnet.onnx")                 # the generator; msgnet.encoder.onnx beside it
    net.set_style("painting.jpg")                 # one encoder pass + one native Gram (cached per file)
    net.set_style(["a.jpg", "b.jpg"], [0.7, 0.3]) # a blend: the weighted mean of the Grams
    out = net(photo)                              # tiled through the engine, any size and aspect
    ds.stylize("photo.jpg", "msgnet.onnx", "out.jpg", style="painting.jpg")
    net.predict([bgr_array, "photo.jpg"], style="painting.jpg")   # PaddleHub's msgnet call

The model is a pipeline of two graphs written by ``deepshop-export msgnet`` (metadata
``deepshop.pipeline``): the encoder (image -> features) and the generator (image + Gram -> image).
Between them the Gram matrix G = F F^T / (C h w) of the style's features is computed by the
native kernel (ds.gram), and handed to every tile of the content image as a non-spatial aux input.
A new style costs one encoder pass and one Gram, not a model reload.  Style images larger than
``style_tile`` (default 1024, after resizing to ``style_size``) go through the encoder window by
window, the Gram summed over the windows' kept spans (ds.GramAccumulator); with an encoder exported
with ``--statistics`` the windows are normalised with the whole image's statistics (one measuring
pass per encoder layer), which makes the Gram the whole image's.

Tiling: instance norm sees each tile's own statistics, so a tiled image differs from a whole-image
run as it does for the feedforward stylizer (see README); images up to the tile size (1536 px on
the CPU provider) run whole.  A generator exported with ``--statistics`` runs the tiles of larger
images with a thumbnail's instance-norm statistics instead (thumbnail mode; exact mode would need
33 tiled passes and is not offered).  Otherwise (plain generators, or statistics="off") tiles can be
harmonized as the stylizer's are (``harmonize=N``, off by default for MSG-Net; see StyleNet): each
tile's low-frequency colour is pulled to that of a stylized thumbnail, which the engine runs with
the same style Gram.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from . import _native, options
from . import model_metadata as mm
from ._runtime import ensure_runtime
from .errors import ImageError, ModelError, OptionError
from .files import sha256_of
from .image import read_image, resize_to, to_depth, to_rgb_array, write_image
from .kernels import GramAccumulator, gram
from .pipelines import pixels_as_unit_float, session_options, tile_options

FAMILY = "msgnet"
#: Longer side the style image is resized to before the encoder (upstream MSG-Net: 512).
DEFAULT_STYLE_SIZE = 512
#: Style images larger than this (after resizing to style_size) go through the encoder in windows
#: of at most this many pixels a side, and their Gram is accumulated over the windows' kept spans
#: (ds.GramAccumulator), so that a large style_size does not need the encoder's activations of the
#: whole image at once.  The encoder's instance norm then sees each window's statistics, not the
#: image's: the Gram differs from the whole image's by a few 1e-3 relative (README, MSG-Net).
DEFAULT_STYLE_TILE = 1024
#: The smallest style image side accepted: below it there is no texture to speak of, and the
#: encoder's 1/4-resolution features would be a few pixels.
MIN_STYLE_SIDE = 16
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F", "P;L")


def is_msgnet(path) -> bool:
    """Whether the model file is one graph of an MSG-Net pipeline (by its metadata alone)."""
    try:
        meta = mm.read_metadata(path)
    except (OSError, mm.MetadataReadError):
        return False
    return meta.get(mm.key("family")) == FAMILY


def _pipeline_of(path: Path) -> dict:
    try:
        meta = mm.read_metadata(path)
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except (OSError, mm.MetadataReadError) as e:
        raise ModelError(f"{path}: not a readable ONNX model ({e})") from None
    if meta.get(mm.key("family")) != FAMILY:
        raise ModelError(f"{path}: not an MSG-Net model (family {meta.get(mm.key('family'), 'none')!r}); it has no "
                         "style input, so a style image cannot be given to it")
    try:
        pipe = json.loads(meta.get(mm.key("pipeline"), ""))
        if not isinstance(pipe, dict) or pipe.get("part") not in ("encoder", "generator"):
            raise ValueError("no part")
    except ValueError:
        raise ModelError(f"{path}: MSG-Net model without a valid {mm.key('pipeline')} entry "
                         "(re-export it with deepshop-export msgnet)") from None
    return pipe


def resolve_pair(model) -> tuple:
    """(encoder path, generator path, generator's pipeline entry) from either file of the pair."""
    from .stylizer import resolve_model
    path = resolve_model(model)
    pipe = _pipeline_of(path)
    if pipe["part"] == "encoder":
        generator = path.with_name(str(pipe.get("generator", "")))
        if not generator.is_file():
            raise ModelError(f"{path}: the MSG-Net encoder's generator {generator.name!r} is not beside it")
        path, pipe = generator, _pipeline_of(generator)
        if pipe["part"] != "generator":
            raise ModelError(f"{path}: expected the MSG-Net generator graph, found the {pipe['part']}")
    encoder = path.with_name(str(pipe.get("encoder", "")))
    if not pipe.get("encoder") or not encoder.is_file():
        raise ModelError(f"{path}: the MSG-Net generator needs its encoder {pipe.get('encoder')!r} beside it "
                         "(deepshop-export msgnet writes both)")
    if pipe.get("encoder_sha256") and sha256_of(encoder) != pipe["encoder_sha256"]:
        raise ModelError(f"{encoder}: is not the encoder {path.name} was exported with (sha256 differs); "
                         "re-export the pair")
    return encoder, path, pipe


def _style_pixels(style, style_size: int) -> tuple:
    """(RGB float32 [0,1] of the style resized to the longer side style_size, rounded to multiples
    of 4, name for messages).  Refuses unreadable, grayscale, transparent and tiny images."""
    name = os.fspath(style) if isinstance(style, (str, os.PathLike)) else f"<{type(style).__name__}>"
    if isinstance(style, (str, os.PathLike, bytes, bytearray, memoryview)) or callable(getattr(style, "read", None)):
        img = read_image(style)       # ImageError naming the file when unreadable
        name = img.path or name
        gray = img.mode in _GRAY_MODES
        pixels, alpha = img.pixels, img.alpha
    else:
        if isinstance(style, np.ndarray):
            gray = style.ndim == 2 or (style.ndim == 3 and style.shape[2] == 1)
        else:
            gray = getattr(style, "mode", "RGB") in _GRAY_MODES
        pixels, alpha = to_rgb_array(style)
    if gray:
        raise ImageError(f"{name}: the style image is grayscale; MSG-Net takes its colours from the style, "
                         "give a colour image")
    if alpha is not None:
        raise ImageError(f"{name}: the style image has an alpha channel (transparency); flatten it onto a "
                         "background first (the encoder takes RGB only)")
    h, w = pixels.shape[:2]
    if min(h, w) < MIN_STYLE_SIDE:
        raise ImageError(f"{name}: the style image is too small ({w}x{h}); at least {MIN_STYLE_SIDE} px on each side")
    scale = style_size / max(h, w)
    nh, nw = (max(4, int(round(h * scale / 4)) * 4), max(4, int(round(w * scale / 4)) * 4))
    pixels = pixels_as_unit_float(name, pixels)
    if (nh, nw) != (h, w):
        pixels = resize_to(pixels, nh, nw)
    return np.ascontiguousarray(np.clip(pixels, 0.0, 1.0), dtype=np.float32), name


def _cache_key(style, style_size: int, style_tile: int):
    if isinstance(style, (str, os.PathLike)):
        p = os.path.abspath(os.fspath(style))
        try:
            st = os.stat(p)
        except OSError:
            return None
        return (p, st.st_mtime_ns, st.st_size, style_size, style_tile)
    return None


def style_spans(length: int, kept: int, align: int) -> list:
    """[(start, end)] cutting 0..length (a multiple of align) into the fewest spans of at most
    ``kept`` pixels, of near-equal lengths that are multiples of align (no sliver at the end, whose
    instance-norm statistics would be a few pixels')."""
    kept = max(align, kept // align * align)
    n = -(-length // kept)
    edges = [int(round(i * length / n / align)) * align for i in range(n + 1)]
    edges[-1] = length
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


class StyleNet:
    """An MSG-Net model: ``set_style`` then call on photos.  Options as for Stylizer (device,
    tile, halo, overlap, batch, threads, memory_arena; precision "auto"/"fp32"); style_size: the
    longer side the style image is resized to (default 512); style_tile: styles larger than this
    (after resizing) run the encoder in windows of at most style_tile px with a halo of the
    encoder's receptive-field radius, the Gram summed over the windows' kept spans ("auto":
    DEFAULT_STYLE_TILE; 0 or None: always whole); style_statistics: how those windows are
    normalised: "exact" (the whole style image's instance-norm statistics, measured over the
    windows in one pass per encoder layer: the Gram is the whole image's; needs an encoder exported
    with --statistics), "off" (each window its own: one pass, the Gram differs by several per cent)
    or "auto" (exact where the encoder allows it).  statistics: for generators exported
    with --statistics, "auto"/"thumbnail" (tiles normalised with the instance-norm statistics of a
    thumbnail whose longer side is statistics_size, default 1024) or "off" (each tile its own);
    harmonize: when tiles run with their own statistics (plain generators, statistics="off"), the
    longer side of the stylized thumbnail whose low-frequency colour every tile is pulled to, as
    Stylizer's; 0 (the default here): off.  Measured on a random MSG-Net (README): it helps only
    when the thumbnail is at least half the image's size; at 512 px for a 2048 px image it lowered
    PSNR against the whole image, the thumbnail rendering colours differently at that scale.
    Thread-safe for calls; set_style swaps the Gram atomically."""

    def __init__(self, model, *, device: str = "auto", precision: str = "auto",
                 tile: Union[int, str, None] = "auto", halo: Optional[int] = None, overlap: int = 64,
                 batch: int = 1, threads: int = 0, memory_arena: bool = False,
                 style_size: int = DEFAULT_STYLE_SIZE, style_tile: Union[int, str, None] = "auto",
                 style_statistics: Optional[str] = "auto", harmonize: int = 0, statistics: Optional[str] = "auto",
                 statistics_size: Optional[int] = None, **pixel_format):
        from .stylizer import _checked_precision, _openvino_plugin_for
        tile_auto = isinstance(tile, str) and tile.lower() == "auto"
        if isinstance(tile, str) and not tile_auto:
            raise OptionError(f"tile: must be 'auto', a window size in pixels, or 0/None for the whole image, got {tile!r}")
        self.style_size = options.check_size("style_size", style_size, lo=MIN_STYLE_SIDE)
        if isinstance(style_tile, str) and style_tile.lower() == "auto":
            style_tile = DEFAULT_STYLE_TILE
        elif isinstance(style_tile, str):
            raise OptionError(f"style_tile: must be 'auto', a window size in pixels, or 0/None for the whole style "
                              f"image, got {style_tile!r}")
        self.style_tile = 0 if style_tile is None else options.check_size("style_tile", style_tile)
        self._tiling = dict(halo=halo, overlap=overlap, batch=batch, harmonize=harmonize)
        self._tiles = tile_options(tile=0 if tile_auto else tile, **self._tiling)
        precision = _checked_precision(precision)
        kw = session_options("", device=device, threads=threads, memory_arena=memory_arena, **pixel_format)
        self.encoder_path, self.model_path, pipe = resolve_pair(model)
        ensure_runtime()
        extra = dict(precision=precision, **_openvino_plugin_for(kw["device"]))
        self._encoder = _native.Session(**{**kw, "model": str(self.encoder_path)}, **extra)
        self._generator = _native.Session(**{**kw, "model": str(self.model_path)}, **extra)
        self._gram_input = str(pipe.get("gram_input", "gram"))
        self.channels = int(pipe.get("feature_channels", 0)) or None
        if tile_auto:
            self._tiles = tile_options(tile=self._generator.default_tile, **self._tiling)
        self._whole = tile_options(tile=0, **{**self._tiling, "halo": None, "harmonize": 0})
        self._init_statistics(statistics, statistics_size, halo, tile_auto)
        self._output = next((t["name"] for t in self._generator.outputs if t["role"] == mm.ROLE_IMAGE), None)
        if self._output is None:
            raise ModelError(f"{self.model_path}: the MSG-Net generator has no image output")
        self._features = next((t["name"] for t in self._encoder.outputs if t["role"] == mm.ROLE_FEATURES), None)
        if self._features is None:
            raise ModelError(f"{self.encoder_path}: the MSG-Net encoder has no features output")
        # Style windows: a halo of the encoder's receptive-field radius (13 px for MSG-Net's) on the
        # stride grid, so that each kept span's features are what the whole image gives them, but
        # for instance norm's statistics.
        stride = max(1, int(self._encoder.stride_multiple))
        self._style_stride = stride
        self._style_halo = -(-((int(self._encoder.receptive_field) + 1) // 2) // stride) * stride
        if self.style_tile and self.style_tile - 2 * self._style_halo < 4 * stride:
            raise OptionError(f"style_tile: {self.style_tile} px leaves no room inside the encoder's halo of "
                              f"{self._style_halo} px on each side; give at least {2 * self._style_halo + 4 * stride}, "
                              "or 0 for the whole style image")
        self._init_style_statistics(style_statistics)
        self._cache: dict = {}
        self._lock = threading.Lock()
        self._gram: Optional[np.ndarray] = None
        self.style_names: list = []

    def _init_style_statistics(self, style_statistics) -> None:
        """Encoders exported with --statistics are global-statistics graphs (families/msgnet/
        statistics.py): windows of a large style image can be normalised with the whole image's
        statistics."""
        mode = "auto" if style_statistics is None else str(style_statistics).lower()
        if mode not in ("auto", "exact", "off"):
            raise OptionError(f"style_statistics: must be 'auto', 'exact' or 'off', got {style_statistics!r}")
        text = self._encoder.metadata.get(mm.key("statistics"))
        self._enc_stats = None
        if text:
            try:
                self._enc_stats = json.loads(text)
                self._enc_stat_channels = [int(layer["channels"]) for layer in self._enc_stats["layers"]]
                self._enc_stat_names, self._enc_stat_outputs = self._enc_stats["inputs"], self._enc_stats["outputs"]
            except (ValueError, KeyError, TypeError) as e:
                raise ModelError(f"{self.encoder_path}: bad {mm.key('statistics')} metadata ({e})") from None
        if mode == "exact" and self._enc_stats is None:
            raise OptionError(f"style_statistics: 'exact' needs an encoder exported with deepshop-export msgnet "
                              f"--statistics; {self.encoder_path} is the plain graph")
        self.style_statistics = "exact" if self._enc_stats is not None and mode != "off" else "off"

    def _init_statistics(self, statistics, statistics_size, halo, tile_auto) -> None:
        """Generators exported with --statistics: tiles normalised with a thumbnail's instance-norm
        statistics ("thumbnail", the default, also "auto") or their own ("off")."""
        text = self._generator.metadata.get(mm.key("statistics"))
        mode = options.engine_options(statistics=statistics)["statistics"] if statistics is not None else "auto"
        self.statistics_size = 1024 if statistics_size is None else options.check_size("statistics_size",
                                                                                      statistics_size, lo=16)
        self._stats = None
        self._thumbnail_statistics = mode != "off"
        if not text:
            return
        if mode == "exact":
            raise OptionError("statistics: 'exact' is not available for MSG-Net (32 instance-norm layers: 33 tiled "
                              "passes); use 'thumbnail' or 'off'")
        try:
            self._stats = json.loads(text)
            self._stat_names = self._stats["inputs"]
            self._stat_outputs = self._stats["outputs"]
            self._stat_channels = [int(layer["channels"]) for layer in self._stats["layers"]]
        except (ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{self.model_path}: bad {mm.key('statistics')} metadata ({e})") from None
        if halo is None and self._thumbnail_statistics:
            # With the image's statistics, a tile's kept span computes the whole-image result
            # only if its halo covers the receptive field's radius (not the quarter taken otherwise).
            radius = (int(self._generator.receptive_field) + 1) // 2
            self._tiling = {**self._tiling, "halo": radius}
        if self._thumbnail_statistics:
            # Tiles normalised with the thumbnail's statistics agree already: no harmonize pass.
            self._tiling = {**self._tiling, "harmonize": 0}
        self._tiles = tile_options(tile=self._tiles.tile, **self._tiling)

    def _statistics_inputs(self, unit: np.ndarray, g: np.ndarray) -> dict:
        """The statistics aux inputs for an image: the plain network's (mix 0) when it runs in
        one window or has no statistics graph, else a thumbnail's measured statistics (mix 1)."""
        if self._stats is None:
            return {}
        total = int(self._stats["total_channels"])
        plain = {self._stat_names["mean"]: np.zeros(total, np.float32), self._stat_names["var"]: np.ones(total, np.float32),
                 self._stat_names["mix"]: np.zeros(1, np.float32)}
        plan = self.plan(*unit.shape[:2])
        if not self._thumbnail_statistics or plan["tiles_x"] * plan["tiles_y"] <= 1:
            return plain
        h, w = unit.shape[:2]
        scale = min(1.0, self.statistics_size / max(h, w))
        thumb = unit if scale == 1.0 else _box_resize(unit, max(4, round(h * scale)), max(4, round(w * scale)))
        measured = self._generator.run_tiled(spatial={"input": thumb}, aux={self._gram_input: g, **plain},
                                             tiles=self._whole, outputs=list(self._stat_outputs.values()))["whole"]
        count = np.repeat(measured[self._stat_outputs["count"]][0][0].astype(np.float64), self._stat_channels)
        mean = measured[self._stat_outputs["mean"]][0][0]
        var = measured[self._stat_outputs["m2"]][0][0] / np.maximum(count, 1e-12)
        return {self._stat_names["mean"]: np.ascontiguousarray(mean, np.float32),
                self._stat_names["var"]: np.ascontiguousarray(var, np.float32),
                self._stat_names["mix"]: np.ones(1, np.float32)}

    # --- what runs -----------------------------------------------------------------------------
    @property
    def provider(self) -> str:
        return self._generator.provider

    @property
    def device_used(self) -> str:
        return self._generator.device

    @property
    def precision(self) -> str:
        return self._generator.precision

    @property
    def fallback_reason(self) -> str:
        return self._generator.fallback_reason

    @property
    def tile(self) -> int:
        return self._tiles.tile

    @property
    def metadata(self) -> dict:
        return dict(self._generator.metadata)

    @property
    def gram(self) -> Optional[np.ndarray]:
        """The current style's Gram matrix (C x C float32), None before set_style."""
        return self._gram

    def plan(self, height: int, width: int) -> dict:
        return dict(self._generator.plan(height=options.check_size("height", height, lo=1),
                                         width=options.check_size("width", width, lo=1), tiles=self._tiles))

    # --- styles --------------------------------------------------------------------------------
    def style_gram(self, style) -> np.ndarray:
        """The Gram matrix of one style image (path, array, PIL image), cached per style file
        (path, modification time, size and style_size)."""
        key = _cache_key(style, self.style_size, self.style_tile)
        if key is not None and key in self._cache:
            return self._cache[key]
        pixels, _name = _style_pixels(style, self.style_size)
        g = self._encoded_gram(pixels)
        if key is not None:
            self._cache[key] = g
        return g

    def _plain_encoder_statistics(self) -> dict:
        """A statistics encoder's aux inputs that make it the plain network (mix 0)."""
        if self._enc_stats is None:
            return {}
        total = int(self._enc_stats["total_channels"])
        return {self._enc_stat_names["mean"]: np.zeros(total, np.float32),
                self._enc_stat_names["var"]: np.ones(total, np.float32),
                self._enc_stat_names["mix"]: np.zeros(1, np.float32)}

    def _encode(self, pixels: np.ndarray) -> np.ndarray:
        result = self._encoder.run_tiled(spatial={"input": np.ascontiguousarray(pixels)}, tiles=self._whole,
                                         aux=self._plain_encoder_statistics(), outputs=[self._features])
        return result["whole"][self._features][0][0]          # C x h x w

    def _network_input(self, pixels: np.ndarray) -> np.ndarray:
        """Unit RGB H x W x 3 -> the encoder's 1 x 3 x H x W input (its value range, channel order
        and mean), as the engine encodes tiles."""
        lo, hi = self._encoder.value_range
        x = pixels[..., ::-1] if self._encoder.channel_order == "BGR" else pixels
        x = (np.float32(hi - lo) * x + np.float32(lo)) - np.asarray(self._encoder.mean, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)

    def _encoded_gram(self, pixels: np.ndarray) -> np.ndarray:
        """The Gram of the encoder's features of a style image (H, W multiples of the stride):
        one encoder run when it fits in style_tile, else window by window, each window's kept span
        (its halo cropped off, on the feature grid) added to a GramAccumulator."""
        h, w = pixels.shape[:2]
        if not self.style_tile or max(h, w) <= self.style_tile:
            return gram(self._encode(pixels), normalize="CN")
        s, halo = self._style_stride, self._style_halo
        kept = self.style_tile - 2 * halo
        # Windows stop at the image's edges (no reflected context there): the encoder pads at the
        # image border as it does on the whole image.  Each: (window slice, kept span in it).
        windows = []
        for y0, y1 in style_spans(h, kept, s):
            for x0, x1 in style_spans(w, kept, s):
                wy0, wy1, wx0, wx1 = max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo)
                windows.append(((slice(wy0, wy1), slice(wx0, wx1)), (y0 - wy0, y1 - wy0, x0 - wx0, x1 - wx0)))
        statistics = self._exact_style_statistics(pixels, windows) if self.style_statistics == "exact" else None
        acc = GramAccumulator(normalize="CN")
        for window, (ky0, ky1, kx0, kx1) in windows:
            if statistics is None:
                features = self._encode(pixels[window])
            else:
                features = self._encoder.run(inputs=self._window_inputs(pixels[window], None, statistics, 1.0),
                                             outputs=[self._features])[self._features][0]
            wh, ww = window[0].stop - window[0].start, window[1].stop - window[1].start
            if features.shape[1] * s != wh or features.shape[2] * s != ww:
                raise ModelError(f"{self.encoder_path}: features of {features.shape[1]}x{features.shape[2]} for "
                                 f"a {wh}x{ww} window; expected 1/{s} of it")
            acc.add(features, crop=(ky0 // s, ky1 // s, kx0 // s, kx1 // s))
        return acc.result()

    def _window_inputs(self, window_pixels: np.ndarray, kept, statistics, mix: float) -> dict:
        """A statistics encoder's inputs for one window: the pixels, the statistics (mean, var) to
        normalise with at ``mix``, and the mask measured over (1 on the kept span; None: all)."""
        x = self._network_input(window_pixels)
        mask = np.ones((1, 1) + x.shape[2:], np.float32)
        if kept is not None:
            mask[:] = 0
            mask[..., kept[0]:kept[1], kept[2]:kept[3]] = 1
        names = self._enc_stat_names
        return {"input": x, names["mean"]: statistics[0], names["var"]: statistics[1],
                names["mix"]: np.full(1, mix, np.float32), names["mask"]: mask}

    def _exact_style_statistics(self, pixels: np.ndarray, windows: list) -> tuple:
        """The whole style image's instance-norm statistics (packed means and biased variances),
        measured window by window: pass 0 runs every window with its own statistics, which makes
        layer 0's measurement (over the kept spans, added up) exact and gives the other layers a
        first guess; pass k runs with layers < k exact and makes layer k exact.  One pass per layer
        (7 for MSG-Net's encoder); the packing follows the network's order (statistics.py)."""
        total = int(self._enc_stats["total_channels"])
        mean, var = np.zeros(total, np.float32), np.ones(total, np.float32)
        offsets = np.cumsum([0] + self._enc_stat_channels)
        outs = self._enc_stat_outputs
        for k in range(len(self._enc_stat_channels)):
            counts, means, m2s = [], [], []
            for window, kept in windows:
                r = self._encoder.run(inputs=self._window_inputs(pixels[window], kept, (mean, var), 0.0 if k == 0 else 1.0),
                                      outputs=[outs["count"], outs["mean"], outs["m2"]])
                counts.append(np.repeat(r[outs["count"]][0].astype(np.float64), self._enc_stat_channels))
                means.append(r[outs["mean"]][0].astype(np.float64))
                m2s.append(r[outs["m2"]][0].astype(np.float64))
            n, m_, m2 = _combine_statistics(np.stack(counts), np.stack(means), np.stack(m2s))
            layer = slice(0, total) if k == 0 else slice(offsets[k], offsets[k + 1])
            mean[layer] = m_[layer]
            var[layer] = (m2 / np.maximum(n, 1e-12))[layer]
        return mean, var

    def set_style(self, style, weights: Optional[Sequence[float]] = None) -> "StyleNet":
        """Use one style image, or several blended: the Gram is the weights' weighted mean of the
        styles' Grams (weights >= 0, not all 0; default equal).  Returns self."""
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise OptionError("style: no style image given")
        if weights is None:
            w = np.full(len(styles), 1.0 / len(styles))
        else:
            w = np.asarray(list(weights), dtype=np.float64)
            if w.shape != (len(styles),):
                raise OptionError(f"style_weights: {len(w)} weights for {len(styles)} style images")
            if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise OptionError(f"style_weights: must be finite, >= 0 and not all 0, got {list(w)}")
            w = w / w.sum()
        grams = [self.style_gram(s) for s in styles]
        blended = np.zeros_like(grams[0], dtype=np.float64)
        for wi, g in zip(w, grams):
            blended += wi * g
        with self._lock:
            self._gram = np.ascontiguousarray(blended[None], dtype=np.float32)
            self.style_names = [os.fspath(s) if isinstance(s, (str, os.PathLike)) else f"<{type(s).__name__}>"
                                for s in styles]
        return self

    # --- running -------------------------------------------------------------------------------
    def __call__(self, image, *, strength: float = 1.0, preserve_colors: bool = False,
                 max_side: Optional[int] = None, progress=None, style=None, style_weights=None):
        """Stylize ``image`` (as Stylizer: arrays of uint8/uint16/float, PIL images, paths; alpha
        kept; the result in the input's dtype) with the current style (or ``style=``)."""
        from .image import resize_max_side
        from .stylizer import _checked_progress
        strength = options.check_strength(strength)
        max_side = options.check_max_side(max_side)
        progress = _checked_progress(progress)
        if style is not None:
            self.set_style(style, style_weights)
        g = self._gram
        if g is None:
            raise OptionError(f"{self.model_path}: no style: call set_style(image) first (MSG-Net takes the style "
                              "image at run time)")
        is_pil = type(image).__module__.startswith("PIL.")
        out_dtype = image.dtype if isinstance(image, np.ndarray) and image.dtype == np.float64 else None
        pixels, alpha = to_rgb_array(image)
        if max_side is not None:
            pixels = resize_max_side(pixels, max_side)
            alpha = None if alpha is None else resize_max_side(alpha, max_side)
        unit = pixels_as_unit_float("image", pixels)
        aux = {self._gram_input: g, **self._statistics_inputs(unit, g)}
        result = self._generator.run_tiled(spatial={"input": unit}, aux=aux, tiles=self._tiles, progress=progress,
                                           outputs=[self._output])
        styled = np.clip(result["images"][self._output], 0.0, 1.0)
        if preserve_colors:
            styled = _keep_colours(unit, styled)
        if strength < 1.0:
            styled = strength * styled + (1.0 - strength) * unit
        styled = styled.astype(np.float32)
        if pixels.dtype == np.uint8:
            styled = to_depth(styled, 8)
        elif pixels.dtype == np.uint16:
            styled = to_depth(styled, 16)
        if out_dtype is not None:
            styled = styled.astype(out_dtype)
        if alpha is not None:
            styled = np.concatenate([styled, alpha.reshape(*alpha.shape[:2], 1).astype(styled.dtype)], axis=2)
        if is_pil:
            from PIL import Image
            return Image.fromarray(to_depth(styled, 8))
        return styled

    def predict(self, images: Sequence, style, *, visualization: bool = False, save_path: str = "style_transfer",
                channel_order: str = "BGR", overwrite: bool = False) -> list:
        """PaddleHub's ``msgnet.predict(images, style=path)``: a list of images (paths, or H x W x 3
        uint8 arrays in ``channel_order``, BGR as cv2.imread gives them) -> a list of stylised
        uint8 arrays in the same channel order, each at its own size (no square outputs).
        ``visualization`` writes each result into ``save_path`` as ndarray_N.png / NAME.png."""
        channel_order = options.check_channel_order(channel_order)
        self.set_style(style)
        results = []
        for i, item in enumerate(images):
            if isinstance(item, np.ndarray) and channel_order == "BGR" and item.ndim == 3 and item.shape[2] >= 3:
                item = np.ascontiguousarray(np.concatenate([item[..., 2::-1], item[..., 3:]], axis=2))
            out = self(item)
            if out.dtype != np.uint8:
                out = to_depth(out if out.dtype == np.uint16 else out.astype(np.float32), 8)
            if visualization:
                os.makedirs(save_path, exist_ok=True)
                stem = Path(os.fspath(item)).stem if isinstance(item, (str, os.PathLike)) else f"ndarray_{i}"
                write_image(os.path.join(save_path, stem + ".png"), out[..., :3],
                            alpha=out[..., 3] if out.shape[2] == 4 else None, overwrite=overwrite)
            if channel_order == "BGR":
                out = np.ascontiguousarray(np.concatenate([out[..., 2::-1], out[..., 3:]], axis=2))
            results.append(out)
        return results


def _combine_statistics(counts: np.ndarray, means: np.ndarray, m2s: np.ndarray) -> tuple:
    """The (count, mean, M2) of the union of P parts' (P x C each, float64), the parallel-variance
    identity in closed form: M2 = sum M2_i + sum n_i (mean_i - mean)^2."""
    n = counts.sum(axis=0)
    mean = (counts * means).sum(axis=0) / np.maximum(n, 1e-12)
    m2 = m2s.sum(axis=0) + (counts * (means - mean) ** 2).sum(axis=0)
    return n, mean, m2


def _box_resize(unit: np.ndarray, height: int, width: int) -> np.ndarray:
    """Box-filtered (area-averaging) downscale of an H x W x 3 float image, per channel."""
    from PIL import Image
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(unit[..., c])).resize((width, height), Image.BOX))
                     for c in range(unit.shape[2])], axis=-1).astype(np.float32)


def _keep_colours(photo: np.ndarray, styled: np.ndarray) -> np.ndarray:
    """The styled image's luminance with the photo's chroma (BT.601 YCbCr), as the Stylizer's
    preserve_colors does."""
    m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
    y_styled = styled @ m[0]
    ycc = photo @ m.T
    ycc[..., 0] = y_styled
    return np.clip(ycc @ np.linalg.inv(m).T.astype(np.float32), 0.0, 1.0)


def stylize_with_style(image, model, output=None, *, style, style_weights=None, style_size: int = DEFAULT_STYLE_SIZE,
                       overwrite: bool = False, quality: int = 95, strength: float = 1.0,
                       preserve_colors: bool = False, max_side: Optional[int] = None, **engine_options):
    """ds.stylize(..., style=...) for MSG-Net models (see stylizer.stylize)."""
    quality = options.check_quality(quality)
    is_file = isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)) or callable(getattr(image, "read", None))
    loaded = read_image(image) if is_file else None
    if loaded is not None:
        image = loaded.pixels if loaded.alpha is None else np.dstack([loaded.pixels, loaded.alpha])
    net = StyleNet(model, style_size=style_size, **engine_options).set_style(style, style_weights)
    styled = net(image, strength=strength, preserve_colors=preserve_colors, max_side=max_side)
    if output is not None:
        rgba = styled.ndim == 3 and styled.shape[2] == 4
        write_image(output, styled[..., :3] if rgba else styled, alpha=styled[..., 3] if rgba else None,
                    quality=quality, overwrite=overwrite, exif=loaded.exif if loaded else None,
                    icc_profile=loaded.icc_profile if loaded else None)
    return styled


def predict(images: Sequence, style, model, **options_) -> list:
    """PaddleHub-style one call: ``ds.predict([img], style="sand.jpg", model="msgnet.onnx")``
    (see StyleNet.predict for visualization, save_path and channel_order)."""
    keys = ("visualization", "save_path", "channel_order", "overwrite")
    call = {k: options_.pop(k) for k in keys if k in options_}
    return StyleNet(model, **options_).predict(images, style, **call)
