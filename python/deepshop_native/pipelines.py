"""Generic pipelines on the engine's named sessions: for models whose family needs nothing beyond
what the metadata roles say (python/deepshop_native/model_metadata.py).

    TiledPipeline    image inputs tiled, aux inputs passed whole to every tile; image outputs come
                     back as pixels, classes outputs as argmax labels (and colours with a palette),
                     aux, scalar and features outputs once per network call; tile_mask inputs
                     made by the engine for every tile.
    SessionPipeline  one whole run on named arrays (loss-and-gradient graphs, style encoders).

Families with their own behaviour (the feedforward Stylizer, ...) have their own module and are
mapped to their class in deepshop_native.models.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, Mapping, Optional, Sequence

import numpy as np

from . import _native, options
from ._runtime import ensure_runtime
from .errors import ModelError, OptionError

Progress = Callable[[int, int], Optional[bool]]


def session_options(model, *, device: str = "auto", threads: int = 0, memory_arena: bool = False,
                    value_range: Optional[Sequence[float]] = None, channel_order: Optional[str] = None,
                    mean: Optional[Sequence[float]] = None, stride_multiple: Optional[int] = None,
                    receptive_field: Optional[int] = None) -> dict:
    """Keyword arguments of _native.Session / _native.Engine, checked at the edge (options.py)."""
    return dict(
        model=os.fspath(model), device=options.check_device(device), threads=options.check_threads(threads),
        value_range=options.check_value_range(value_range), channel_order=options.check_channel_order(channel_order),
        mean=options.check_mean(mean),
        stride_multiple=None if stride_multiple is None else options.check_size("stride_multiple", stride_multiple, lo=1),
        receptive_field=None if receptive_field is None else options.check_size("receptive_field", receptive_field),
        cpu_memory_arena=bool(memory_arena))


def tile_options(*, tile: Optional[int], halo: Optional[int], overlap: int, batch: int, harmonize: int = 0,
                 statistics: str = "auto", statistics_size: Optional[int] = None):
    """A checked _native.TileOptions (tile 0/None: the whole image in one window)."""
    o = options.engine_options(tile=tile, halo=halo, overlap=overlap, batch=batch, harmonize=harmonize,
                               statistics=statistics, statistics_size=statistics_size)
    return _native.TileOptions(tile=o["tile"], halo=-1 if o["halo"] is None else o["halo"], overlap=o["overlap"],
                               batch=o["batch"], harmonize=o["harmonize"], statistics=o["statistics"],
                               statistics_size=_native.TileOptions().statistics_size if o["statistics_size"] is None
                               else o["statistics_size"])


def pixels_as_unit_float(name: str, array) -> np.ndarray:
    """An H x W or H x W x C pixel array as C-contiguous float32 in [0, 1] (uint8 / 255,
    uint16 / 65535, floats as they are)."""
    a = np.asarray(array)
    if a.ndim not in (2, 3) or a.size == 0:
        raise OptionError(f"{name}: expected an H x W or H x W x C image array, got shape {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a, dtype=np.float32) / np.float32(255)
    if a.dtype == np.uint16:
        return np.ascontiguousarray(a, dtype=np.float32) / np.float32(65535)
    if a.dtype.kind == "f":
        return np.ascontiguousarray(a, dtype=np.float32)
    raise OptionError(f"{name}: image dtype must be uint8, uint16 or float, got {a.dtype}")


class SessionPipeline:
    """One model on one device, run whole on named float32 arrays: ``outputs = p(x=..., g=...)``."""

    def __init__(self, model, *, device: str = "auto", threads: int = 0, memory_arena: bool = False,
                 precision: str = "auto", auto_openvino: bool = False, **pixel_format):
        self.model_path = os.fspath(model)
        ensure_runtime()
        engine_kwargs = session_options(model, device=device, threads=threads, memory_arena=memory_arena,
                                        **pixel_format)
        # OpenVINO only where asked for by name: "auto" stays ONNX Runtime's here (fp32), as the
        # pipelines' outputs are not all images whose bf16 error is documented; a family whose
        # error is measured (auto_openvino: the Gatys graph) lets "auto" take it too.
        device_name = engine_kwargs["device"].lower()
        if device_name.startswith("openvino") or (auto_openvino and device_name == "auto"):
            from .stylizer import _openvino_plugin_for
            engine_kwargs.update(_openvino_plugin_for(engine_kwargs["device"]))
        from .stylizer import _checked_precision
        self._session = _native.Session(**engine_kwargs, precision=_checked_precision(precision))

    @property
    def precision(self) -> str:
        """The precision the provider computes in: "fp32", "bf16" or "fp16"."""
        return self._session.precision

    @property
    def inputs(self) -> list:
        """Each input as a dict: name, type, shape (-1: dynamic), role."""
        return list(self._session.inputs)

    @property
    def outputs(self) -> list:
        return list(self._session.outputs)

    @property
    def metadata(self) -> dict:
        return dict(self._session.metadata)

    @property
    def family(self) -> str:
        return self._session.family

    @property
    def provider(self) -> str:
        return self._session.provider

    def __call__(self, inputs: Optional[Mapping[str, np.ndarray]] = None, *, outputs: Optional[Sequence[str]] = None,
                 **named: np.ndarray) -> Dict[str, np.ndarray]:
        feeds = {**(inputs or {}), **named}
        return dict(self._session.run(inputs=feeds, outputs=None if outputs is None else list(outputs)))


class TiledPipeline(SessionPipeline):
    """A model with image inputs run through the tiled runner.  Call with the image inputs by name
    (H x W or H x W x C arrays: uint8, uint16 or float in [0, 1]; all of one size) and the aux
    inputs in `aux`.  Returns {'images': {name: H x W x C float32 in [0, 1]}, 'labels': {name: H x W
    int32}, 'colours': {name: H x W x 3 uint8, for classes outputs given a palette},
    'whole': {name: [one array per network call, tiles in raster order]}}."""

    def __init__(self, model, *, device: str = "auto", tile: Optional[int] = None, halo: Optional[int] = None,
                 overlap: int = 64, batch: int = 1, threads: int = 0, memory_arena: bool = False,
                 palettes: Optional[Mapping[str, np.ndarray]] = None, **pixel_format):
        super().__init__(model, device=device, threads=threads, memory_arena=memory_arena, **pixel_format)
        if not any(t["role"] == "image" for t in self.inputs):
            raise ModelError(f"{self.model_path}: the model has no image input to tile; run it with SessionPipeline")
        self._tiles = tile_options(tile=_native.TileOptions().tile if tile is None else tile, halo=halo,
                                   overlap=overlap, batch=batch)
        self._palettes = dict(palettes or {})

    def plan(self, height: int, width: int) -> dict:
        """How an image of this size is tiled: counts, window, halo, tile starts."""
        return dict(self._session.plan(height=int(height), width=int(width), tiles=self._tiles))

    def __call__(self, images: Optional[Mapping[str, np.ndarray]] = None, *, aux: Optional[Mapping[str, np.ndarray]] = None,
                 outputs: Optional[Sequence[str]] = None, palettes: Optional[Mapping[str, np.ndarray]] = None,
                 progress: Optional[Progress] = None, temperatures: Optional[Mapping[str, float]] = None,
                 **named: np.ndarray) -> dict:
        """`temperatures` {classes output: T}: decode its colours by the annealed mean (T > 0)
        instead of the argmax class's colour (0, the default)."""
        temps = {name: options.check_number(f"temperature of '{name}'", t, 0.0, 1e6)
                 for name, t in (temperatures or {}).items()}
        spatial = {name: pixels_as_unit_float(name, a) for name, a in {**(images or {}), **named}.items()}
        aux_arrays = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in (aux or {}).items()}
        pal = {**self._palettes, **(palettes or {})}
        result = self._session.run_tiled(spatial=spatial, aux=aux_arrays, tiles=self._tiles,
                                         palettes={k: np.ascontiguousarray(v, dtype=np.uint8) for k, v in pal.items()},
                                         outputs=None if outputs is None else list(outputs), progress=progress,
                                         temperatures=temps)
        return {part: dict(values) for part, values in result.items()}
