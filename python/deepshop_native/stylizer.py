"""Feedforward stylization: the Python face of the native engine.

    st = Stylizer("mosaic.onnx", device="auto", tile=1024)
    out = st(image)                       # numpy HxWx3 (uint8/uint16/float), PIL image or path

Data flows one way: the image is brought to a contiguous RGB array (alpha set aside), the
native engine cuts it into tiles, runs them through ONNX Runtime and blends them back, and the
result is returned in the caller's type with alpha put back.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from . import _native
from ._runtime import (available_providers, ensure_runtime, execution_devices, find_openvino_library,
                       find_openvino_plugin)
from . import options
from .errors import DeepshopError, ModelError, OptionError
from .pipelines import session_options, tile_options
from .image import check_regular_file, read_image, resize_max_side, to_depth, to_rgb_array, write_image

# Tiling defaults live with the engine (cpp/engine/tiled_runner.h, TileOptions, where their
# reasons are written down); read here so the two can never disagree.
_ENGINE_DEFAULTS = _native.TileOptions()
#: Network window, in pixels per side, on the CPU and CUDA providers (tile="auto" takes each
#: provider's own: Stylizer.tile says which).
DEFAULT_TILE = _ENGINE_DEFAULTS.tile
#: Least overlap between neighbouring tiles, blended with linear ramps.
DEFAULT_OVERLAP = _ENGINE_DEFAULTS.overlap
#: Longer side of the thumbnail whose colours tiles of instance-norm models are pulled to.
DEFAULT_HARMONIZE = _ENGINE_DEFAULTS.harmonize
#: Longer side of the thumbnail whose statistics global-statistics models use (thumbnail mode).
DEFAULT_STATISTICS_SIZE = _ENGINE_DEFAULTS.statistics_size

#: Devices and precisions Stylizer(device=..., precision=...) takes ("cuda:N" besides these).
DEVICES = ("auto", "cpu", "cuda", "openvino", "openvino:CPU", "openvino:GPU", "openvino:NPU")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
#: The error precision="auto" stays within, on 0..255 against the same network in torch fp32:
#: (mean abs, max abs).  Measured per provider and precision: README, "Execution providers".
AUTO_PRECISION_BOUND = (0.5, 8.0)

BUNDLED_MODELS = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = BUNDLED_MODELS / "default_style.onnx"

ImageLike = Union[np.ndarray, "os.PathLike[str]", str, "PIL.Image.Image"]  # noqa: F821
Progress = Callable[[int, int], Optional[bool]]


def resolve_model(model) -> Path:
    """The model file to use: the given path, or the bundled default style when None."""
    if model is None:
        if not DEFAULT_MODEL.is_file():
            raise ModelError(f"{DEFAULT_MODEL}: no model given and no default style is bundled with this install; "
                             "pass a model (.onnx, e.g. made with deepshop-export)")
        return DEFAULT_MODEL
    if not isinstance(model, (str, os.PathLike)):
        raise OptionError(f"model: expected a path to an .onnx file, got {type(model).__name__}")
    path = Path(os.fspath(model))
    # Only a regular file: a named pipe would block the loader forever; a symlink loop or a
    # directory gets its own reason rather than "no such file".
    check_regular_file(str(path), "model", error=ModelError)
    return path


@contextlib.contextmanager
def _tiling_errors_as_option_errors():
    """The engine refuses some tile settings only once it knows the model's halo ("tile size 32
    is too small for a halo of 28 ..."), as a plain ValueError from C++: an option error."""
    try:
        yield
    except ValueError as e:
        if isinstance(e, DeepshopError) or "tile" not in str(e):
            raise
        raise OptionError(f"tile: {e}") from e


def _checked_precision(precision) -> str:
    if not isinstance(precision, str) or precision.lower() not in PRECISIONS:
        raise OptionError(f"precision: {precision!r} is not one of " + ", ".join(repr(p) for p in PRECISIONS))
    return precision.lower()


def _openvino_plugin_for(device: str) -> dict:
    """The engine's openvino_library / openvino_missing arguments: the plugin is looked up only
    where the device may use it; the engine checks device and precision."""
    if device in ("cpu", "cuda") or device.startswith("cuda:"):
        return {"openvino_library": "", "openvino_missing": "not asked for",
                "openvino_direct_library": "", "openvino_direct_missing": "not asked for"}
    library, missing = find_openvino_plugin()
    # OpenVINO's own library: called directly where the plugin serves no device (non-Intel CPUs).
    direct, direct_missing = find_openvino_library()
    return {"openvino_library": library, "openvino_missing": missing,
            "openvino_direct_library": direct, "openvino_direct_missing": direct_missing}


def _checked_progress(progress: Optional[Progress]) -> Optional[Progress]:
    """The progress callback, wrapped so that a return value other than None/True/False is an
    OptionError naming it (rather than a pybind11 cast error from deep inside a run)."""
    if progress is None:
        return None
    if not callable(progress):
        raise OptionError(f"progress: expected a callable progress(done, total), got {type(progress).__name__}")

    def call(done: int, total: int) -> Optional[bool]:
        answer = progress(done, total)
        if answer is None or isinstance(answer, (bool, np.bool_)):
            return None if answer is None else bool(answer)
        raise OptionError(f"progress: the callback must return None, True or False (False cancels), "
                          f"got {answer!r}")
    return call


class Stylizer:
    """One style model loaded on one device, callable on images; usable from several threads.

    tile: network window in pixels per side ("auto": the provider's fastest within the memory
    bound, DEFAULT_TILE on the CPU provider; 0 or None: the whole image in one run, which needs
    memory in proportion to its area).  halo: context pixels around each tile (None: derived
    from the model's receptive field).  overlap: least blended overlap between tiles (capped at half a
    tile's kept span).
    batch: tiles per network call.  threads: ONNX Runtime intra-op threads (0: its default).
    device: "auto" (the fastest provider usable here: CUDA, then OpenVINO, then ONNX Runtime's CPU
    provider; `provider`, `device_used` and `fallback_reason` say what it chose and why not the
    others), "cpu", "cuda", "cuda:N", "openvino", "openvino:CPU|GPU|NPU".  precision: "auto" (the
    provider's fastest mode within the documented error: bf16 on OpenVINO's CPU device where the
    CPU has bf16 instructions, else int8 where the CPU has VNNI/AMX-INT8 and the model's int8 file
    NAME.int8.onnx (deepshop-export quantize) is beside it, current and within the int8 error bound;
    fp16 on OpenVINO GPU/NPU, the model's own on CUDA, else fp32; `precision_reason` says why),
    "fp32", "bf16", "fp16", "int8" (the int8 file, on OpenVINO's CPU device or the CPU provider); a
    precision the provider cannot do, or "int8" without a current int8 file, raises DeviceError.
    harmonize: for instance-norm models cut into several tiles, the longer side of a thumbnail
    that is stylized first and whose low-frequency colours every tile takes, so that tiles agree
    (each tile is otherwise normalised with its own statistics and gets its own colour cast);
    0 turns it off.  statistics: for models with a global-statistics graph (deepshop-export
    --statistics), how tiles are normalised: "thumbnail" (the statistics of a thumbnail whose
    longer side is statistics_size, measured in one extra run), "exact" (the full image's, one
    tiled pass per instance-norm layer: the tiled output is the whole-image one), "off" (each tile
    its own, harmonized) or "auto" (the default: thumbnail); plan() says which runs.  Models
    without the graph always harmonize.  memory_arena: keep ONNX Runtime's CPU memory arena (about 15% faster on
    small images, but it holds far more memory with large tiles: off by default).
    value_range / channel_order / mean / stride_multiple: how the network takes pixels, needed
    only for models without deepshop metadata (they override the metadata otherwise).
    """

    def __init__(self, model=None, *, device: str = "auto", precision: str = "auto",
                 tile: Union[int, str, None] = "auto",
                 halo: Optional[int] = None, overlap: int = DEFAULT_OVERLAP, batch: int = 1, threads: int = 0,
                 harmonize: int = DEFAULT_HARMONIZE, statistics: str = "auto",
                 statistics_size: int = DEFAULT_STATISTICS_SIZE, memory_arena: bool = False,
                 value_range: Optional[Sequence[float]] = None, channel_order: Optional[str] = None,
                 mean: Optional[Sequence[float]] = None, stride_multiple: Optional[int] = None):
        # Options are checked at this edge first (OptionError naming the option), before the model
        # file is even looked at; the engine checks them again.
        tile_auto = isinstance(tile, str) and tile.lower() == "auto"
        if isinstance(tile, str) and not tile_auto:
            raise OptionError(f"tile: must be 'auto', a window size in pixels, or 0/None for the whole image, "
                              f"got {tile!r}")
        tiling = dict(halo=halo, overlap=overlap, batch=batch, harmonize=harmonize, statistics=statistics,
                      statistics_size=statistics_size)
        self._tiles = tile_options(tile=0 if tile_auto else tile, **tiling)
        precision = _checked_precision(precision)
        engine_kwargs = session_options(
            "", device=device, threads=threads, memory_arena=memory_arena, value_range=value_range,
            channel_order=channel_order, mean=mean, stride_multiple=stride_multiple)
        self.model_path = resolve_model(model)
        ensure_runtime()
        self._engine = _native.Engine(**{**engine_kwargs, "model": str(self.model_path)}, precision=precision,
                                      **_openvino_plugin_for(engine_kwargs["device"]))
        self._whole_up_to = 0  # images of at most this many pixels run as one window (tile="auto" only)
        if tile_auto:  # the provider's own window size
            self._tiles = tile_options(tile=self._engine.default_tile, **tiling)
            if self._engine.provider == "OpenVINO":
                # OpenVINO called directly: its memory follows the window's pixel count, so an image
                # no larger in area than one square window (a 1080p frame in bf16) runs whole, in
                # the same memory: one compiled shape, no thumbnail.
                self._whole_up_to = self._engine.default_tile ** 2
                self._whole_tiles = tile_options(tile=0, **tiling)

    # --- what the model and the engine are -------------------------------------------------
    @property
    def provider(self) -> str:
        """The ONNX Runtime execution provider in use, e.g. "OpenVINOExecutionProvider", or
        "OpenVINO" for OpenVINO called directly (where ONNX Runtime's plugin serves no device)."""
        return self._engine.provider

    @property
    def device_used(self) -> str:
        """The device in use, in device= terms: "cpu", "cuda:0", "openvino:CPU"."""
        return self._engine.device

    @property
    def precision(self) -> str:
        """The precision the provider computes in: "fp32", "bf16", "fp16" or "int8"."""
        return self._engine.precision

    @property
    def precision_reason(self) -> str:
        """Why precision="auto" computes in `precision` here ("" when a precision was named)."""
        return self._engine.precision_reason

    @property
    def tile(self) -> int:
        """The network window in use, pixels per side (0: the whole image).  OpenVINO called
        directly with tile="auto" runs images of at most tile x tile pixels in area whole."""
        return self._tiles.tile

    @property
    def metadata(self) -> dict:
        return dict(self._engine.metadata)

    @property
    def fallback_reason(self) -> str:
        """Why device="auto" did not use each faster provider, one "PROVIDER: reason" clause each,
        joined by "; " ("" when it took the fastest, or when a device was named)."""
        return self._engine.fallback_reason

    def plan(self, height: int, width: int) -> dict:
        """How an image of this size will be tiled: counts, window, halo, tile starts, and how the
        tiles are normalised: "statistics" (the mode that runs: thumbnail, exact or off),
        "passes" (tiled passes over the image) and "harmonize"."""
        height = options.check_size("height", height, lo=1)
        width = options.check_size("width", width, lo=1)
        with _tiling_errors_as_option_errors():
            return dict(self._engine.plan(height=height, width=width, tiles=self._tiles_for(height, width)))

    def _tiles_for(self, height: int, width: int):
        return self._whole_tiles if height * width <= self._whole_up_to else self._tiles

    # --- running ----------------------------------------------------------------------------
    def __call__(self, image: ImageLike, *, strength: float = 1.0, preserve_colors: bool = False,
                 max_side: Optional[int] = None, progress: Optional[Progress] = None):
        """Stylize an image.  Returns the caller's type: a numpy array of the input's dtype
        (grayscale comes back as RGB, RGBA keeps its alpha), a PIL image for a PIL image, and a
        numpy array for a path.  strength in [0, 1] blends with the input; preserve_colors keeps
        the input's colours and takes only the stylized luminance; max_side downscales first;
        progress(done, total) is called after each batch of tiles (return False to cancel)."""
        strength = options.check_strength(strength)
        max_side = options.check_max_side(max_side)
        progress = _checked_progress(progress)
        is_pil = type(image).__module__.startswith("PIL.")
        # float64 arrays run in float32 (to_rgb_array converts them) and are given back as float64.
        out_dtype = image.dtype if isinstance(image, np.ndarray) and image.dtype == np.float64 else None
        pixels, alpha = to_rgb_array(image)
        if max_side is not None:
            pixels = resize_max_side(pixels, max_side)
            if alpha is not None:
                alpha = resize_max_side(alpha, max_side)
        with _tiling_errors_as_option_errors():
            styled = self._engine.run(image=pixels, tiles=self._tiles_for(*pixels.shape[:2]), strength=float(strength),
                                      preserve_colors=bool(preserve_colors), progress=progress)
        if out_dtype is not None:
            styled = styled.astype(out_dtype)
        if alpha is not None:
            styled = np.concatenate([styled, alpha.reshape(*alpha.shape[:2], 1).astype(styled.dtype)], axis=2)
        if is_pil:
            from PIL import Image
            return Image.fromarray(to_depth(styled, 8))
        return styled


def stylize(image: ImageLike, model=None, output=None, *, overwrite: bool = False, quality: int = 95,
            strength: float = 1.0, preserve_colors: bool = False, max_side: Optional[int] = None, style=None,
            **engine_options):
    """One-shot stylization: ``stylize("in.jpg", "style.onnx", "out.jpg")``.  The output file
    (optional) is written atomically and never overwritten unless ``overwrite=True``; EXIF and
    ICC profile of an input file are kept.  Returns the stylized image as a numpy array (with
    alpha when the input had it).  ``style=`` (an image or a list, with ``style_weights=`` and
    ``style_size=``): the style image of an MSG-Net model (deepshop_native.stylenet)."""
    from .stylenet import is_msgnet, stylize_with_style
    if style is not None or (model is not None and is_msgnet(resolve_model(model))):
        if style is None:
            raise OptionError(f"style: {model} is an MSG-Net model, which takes the style image at run time: "
                              "pass style=IMAGE")
        return stylize_with_style(image, model, output, style=style, overwrite=overwrite, quality=quality,
                                  strength=strength, preserve_colors=preserve_colors, max_side=max_side,
                                  **engine_options)
    quality = options.check_quality(quality)
    strength = options.check_strength(strength)
    max_side = options.check_max_side(max_side)
    is_file = isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)) or callable(getattr(image, "read", None))
    loaded = read_image(image) if is_file else None
    if loaded is not None:
        image = loaded.pixels if loaded.alpha is None else np.dstack([loaded.pixels, loaded.alpha])
    styled = Stylizer(model, **engine_options)(image, strength=strength, preserve_colors=preserve_colors,
                                               max_side=max_side)
    if output is not None:
        rgba = styled.ndim == 3 and styled.shape[2] == 4
        write_image(output, styled[..., :3] if rgba else styled, alpha=styled[..., 3] if rgba else None,
                    quality=quality, overwrite=overwrite, exif=loaded.exif if loaded else None,
                    icc_profile=loaded.icc_profile if loaded else None)
    return styled


def _statistics_summary(session) -> str:
    """How tiles of this model are normalised, for `deepshop info`."""
    if "deepshop.statistics" not in session.metadata:
        return "none (tiles are harmonized)"
    tiles = tile_options(tile=DEFAULT_TILE, halo=None, overlap=DEFAULT_OVERLAP, batch=1)
    return "global-statistics graph: " + ", ".join(
        f"{side}x{side} -> {session.plan(height=side, width=side, tiles=tiles)['statistics']}" for side in (1024, 4096))


def _openvino_direct_summary() -> str:
    """OpenVINO called directly (the `openvino` wheel): its version and devices, or why it is off."""
    from ._runtime import openvino_direct_devices
    version, devices, why = openvino_direct_devices()
    return f"OpenVINO {version}: {', '.join(devices) or 'no device'}" if not why else f"unavailable ({why})"


def model_info(model=None, *, device: str = "auto", precision: str = "auto") -> dict:
    """What `deepshop info` prints: the model's family, inputs and outputs with their roles, pixel
    format, metadata, the runtime's providers, and the provider the device/precision choose (with
    why not the faster ones).  Any model family (a session is built, no pipeline)."""
    engine_kwargs = session_options("", device=device)
    precision = _checked_precision(precision)
    path = resolve_model(model)
    ensure_runtime()
    s = _native.Session(**{**engine_kwargs, "model": str(path)}, precision=precision,
                        **_openvino_plugin_for(engine_kwargs["device"]))

    def describe(tensors):
        return [f"{t['name']} ({t['role']}, {t['type']}, "
                f"{'x'.join('?' if d < 0 else str(d) for d in t['shape']) or 'scalar'})" for t in tensors]

    def first_image(tensors):
        return next((t["name"] for t in tensors if t["role"] == "image"), tensors[0]["name"] if tensors else "")

    return {
        "model": str(path),
        "family": s.family or "(none: a feedforward stylizer)",
        "input": first_image(s.inputs),
        "output": first_image(s.outputs),
        "inputs": describe(s.inputs),
        "outputs": describe(s.outputs),
        "value_range": tuple(s.value_range),
        "channel_order": s.channel_order,
        "mean": tuple(s.mean),
        "stride_multiple": s.stride_multiple,
        "receptive_field": s.receptive_field,
        "metadata": dict(s.metadata),
        "statistics": _statistics_summary(s),
        "onnxruntime_version": ensure_runtime(),
        "onnxruntime_library": _native.runtime_library(),
        "available_providers": available_providers(),
        "devices": [f"{p} {t} ({v})" for p, t, v in execution_devices()],
        "openvino_direct": _openvino_direct_summary(),
        "cpu_bf16": bool(_native.cpu_has_bf16()),
        "cpu_features": _native.cpu_features(),
        "provider": s.provider,
        "device": s.device,
        "precision": s.precision,
        "precision_reason": s.precision_reason,
        "fallback_reason": s.fallback_reason,
    }
