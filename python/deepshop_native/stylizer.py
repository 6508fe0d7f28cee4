"""Feedforward stylization: the Python face of the native engine.

    st = Stylizer("mosaic.onnx", device="auto", tile=1024)
    out = st(image)                       # numpy HxWx3 (uint8/uint16/float), PIL image or path

Data flows one way: the image is brought to a contiguous RGB array (alpha set aside), the
native engine cuts it into tiles, runs them through ONNX Runtime and blends them back, and the
result is returned in the caller's type with alpha put back.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from . import _native
from ._runtime import available_providers, ensure_runtime
from .errors import ModelError, OptionError
from .pipelines import session_options, tile_options
from .imageio import read_image, resize_max_side, to_depth, to_rgb_array, write_image

# Tiling defaults live with the engine (cpp/engine/tiled_runner.h, TileOptions, where their
# reasons are written down); read here so the two can never disagree.
_ENGINE_DEFAULTS = _native.TileOptions()
#: Network window, in pixels per side.
DEFAULT_TILE = _ENGINE_DEFAULTS.tile
#: Least overlap between neighbouring tiles, blended with linear ramps.
DEFAULT_OVERLAP = _ENGINE_DEFAULTS.overlap
#: Longer side of the thumbnail whose colours tiles of instance-norm models are pulled to.
DEFAULT_HARMONIZE = _ENGINE_DEFAULTS.harmonize
#: Longer side of the thumbnail whose statistics global-statistics models use (thumbnail mode).
DEFAULT_STATISTICS_SIZE = _ENGINE_DEFAULTS.statistics_size

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
    path = Path(os.fspath(model))
    if not path.exists():
        raise ModelError(f"{path}: no such model file")
    return path


class Stylizer:
    """One style model loaded on one device, callable on images; usable from several threads.

    tile: network window in pixels per side (0 or None: the whole image in one run, which needs
    memory in proportion to its area).  halo: context pixels around each tile (None: derived
    from the model's receptive field).  overlap: least blended overlap between tiles.
    batch: tiles per network call.  threads: ONNX Runtime intra-op threads (0: its default).
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

    def __init__(self, model=None, *, device: str = "auto", tile: Optional[int] = DEFAULT_TILE,
                 halo: Optional[int] = None, overlap: int = DEFAULT_OVERLAP, batch: int = 1, threads: int = 0,
                 harmonize: int = DEFAULT_HARMONIZE, statistics: str = "auto",
                 statistics_size: int = DEFAULT_STATISTICS_SIZE, memory_arena: bool = False,
                 value_range: Optional[Sequence[float]] = None, channel_order: Optional[str] = None,
                 mean: Optional[Sequence[float]] = None, stride_multiple: Optional[int] = None):
        self.model_path = resolve_model(model)
        ensure_runtime()
        # Options are checked at this edge (OptionError naming the option), then by the engine.
        self._engine = _native.Engine(**session_options(
            self.model_path, device=device, threads=threads, memory_arena=memory_arena, value_range=value_range,
            channel_order=channel_order, mean=mean, stride_multiple=stride_multiple))
        self._tiles = tile_options(tile=tile, halo=halo, overlap=overlap, batch=batch, harmonize=harmonize,
                                   statistics=statistics, statistics_size=statistics_size)

    # --- what the model and the engine are -------------------------------------------------
    @property
    def provider(self) -> str:
        """The ONNX Runtime execution provider in use, e.g. "CPUExecutionProvider"."""
        return self._engine.provider

    @property
    def metadata(self) -> dict:
        return dict(self._engine.metadata)

    @property
    def fallback_reason(self) -> str:
        """Why device="auto" did not use CUDA ("" when it did, or when not asked to)."""
        return self._engine.fallback_reason

    def plan(self, height: int, width: int) -> dict:
        """How an image of this size will be tiled: counts, window, halo, tile starts, and how the
        tiles are normalised: "statistics" (the mode that runs: thumbnail, exact or off),
        "passes" (tiled passes over the image) and "harmonize"."""
        return dict(self._engine.plan(height=int(height), width=int(width), tiles=self._tiles))

    # --- running ----------------------------------------------------------------------------
    def __call__(self, image: ImageLike, *, strength: float = 1.0, preserve_colors: bool = False,
                 max_side: Optional[int] = None, progress: Optional[Progress] = None):
        """Stylize an image.  Returns the caller's type: a numpy array of the input's dtype
        (grayscale comes back as RGB, RGBA keeps its alpha), a PIL image for a PIL image, and a
        numpy array for a path.  strength in [0, 1] blends with the input; preserve_colors keeps
        the input's colours and takes only the stylized luminance; max_side downscales first;
        progress(done, total) is called after each batch of tiles (return False to cancel)."""
        if not 0.0 <= strength <= 1.0:
            raise OptionError(f"strength must be within [0, 1], got {strength}")
        is_pil = type(image).__module__.startswith("PIL.")
        # float64 arrays run in float32 (to_rgb_array converts them) and are given back as float64.
        out_dtype = image.dtype if isinstance(image, np.ndarray) and image.dtype == np.float64 else None
        pixels, alpha = to_rgb_array(image)
        if max_side:
            pixels = resize_max_side(pixels, max_side)
            if alpha is not None:
                alpha = resize_max_side(alpha, max_side)
        styled = self._engine.run(image=pixels, tiles=self._tiles, strength=float(strength),
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
            strength: float = 1.0, preserve_colors: bool = False, max_side: Optional[int] = None, **engine_options):
    """One-shot stylization: ``stylize("in.jpg", "style.onnx", "out.jpg")``.  The output file
    (optional) is written atomically and never overwritten unless ``overwrite=True``; EXIF and
    ICC profile of an input file are kept.  Returns the stylized image as a numpy array (with
    alpha when the input had it)."""
    loaded = read_image(image) if isinstance(image, (str, os.PathLike)) else None
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


def model_info(model=None, *, device: str = "cpu") -> dict:
    """What `deepshop info` prints: the model's metadata, inputs and the runtime's providers."""
    st = Stylizer(model, device=device)
    e = st._engine
    return {
        "model": str(st.model_path),
        "input": e.input_name,
        "output": e.output_name,
        "value_range": tuple(e.value_range),
        "channel_order": e.channel_order,
        "mean": tuple(e.mean),
        "stride_multiple": e.stride_multiple,
        "receptive_field": e.receptive_field,
        "metadata": st.metadata,
        "statistics": "global-statistics graph: " + ", ".join(
            f"{side}x{side} -> {st.plan(side, side)['statistics']}" for side in (1024, 4096))
        if "deepshop.statistics" in st.metadata else "none (tiles are harmonized)",
        "onnxruntime_version": ensure_runtime(),
        "onnxruntime_library": _native.runtime_library(),
        "available_providers": available_providers(),
    }
