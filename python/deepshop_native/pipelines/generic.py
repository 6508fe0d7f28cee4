"""Generic pipelines on the engine's named sessions: for models whose family needs nothing beyond
what the metadata roles say (deepshop_native.core.metadata).

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
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from ..core import options
from ..core.errors import ModelError
from ..core.session import DEFAULT_OVERLAP, DEFAULT_TILE, Progress, open_session, pixels_as_unit_float, tile_options
from .base import Pipeline


class SessionPipeline(Pipeline):
    """One model on one device, run whole on named float32 arrays: ``outputs = p(x=..., g=...)``."""

    def __init__(self, model, *, device: str = "auto", threads: int = 0, memory_arena: bool = False,
                 precision: str = "auto", auto_openvino: bool = False, **pixel_format):
        self.model_path = Path(os.fspath(model))
        # OpenVINO only where asked for by name: "auto" stays ONNX Runtime's here (fp32), as the
        # pipelines' outputs are not all images whose bf16 error is documented; a family whose
        # error is measured (auto_openvino: the Gatys graph) lets "auto" take it too.
        self._session = open_session(self.model_path, precision=precision, openvino=auto_openvino, device=device,
                                     threads=threads, memory_arena=memory_arena, **pixel_format)

    @property
    def inputs(self) -> list:
        """Each input as a dict: name, type, shape (-1: dynamic), role."""
        return list(self._session.inputs)

    @property
    def outputs(self) -> list:
        return list(self._session.outputs)

    def __call__(self, inputs: Optional[Mapping[str, np.ndarray]] = None, *, outputs: Optional[Sequence[str]] = None,
                 **named: np.ndarray) -> Dict[str, np.ndarray]:
        return self.run({**(inputs or {}), **named}, outputs=outputs)

    def run(self, inputs: Mapping[str, np.ndarray], outputs: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
        """One whole run on named float32 arrays (every input); the outputs named (None: all)."""
        return dict(self._session.run(inputs=dict(inputs), outputs=None if outputs is None else list(outputs)))


class TiledPipeline(SessionPipeline):
    """A model with image inputs run through the tiled runner.  Call with the image inputs by name
    (H x W or H x W x C arrays: uint8, uint16 or float in [0, 1]; all of one size) and the aux
    inputs in `aux`.  Returns {'images': {name: H x W x C float32 in [0, 1]}, 'labels': {name: H x W
    int32}, 'colours': {name: H x W x 3 uint8, for classes outputs given a palette},
    'whole': {name: [one array per network call, tiles in raster order]}}."""

    def __init__(self, model, *, device: str = "auto", tile: Optional[int] = None, halo: Optional[int] = None,
                 overlap: int = DEFAULT_OVERLAP, batch: int = 1, threads: int = 0, memory_arena: bool = False,
                 palettes: Optional[Mapping[str, np.ndarray]] = None, **pixel_format):
        super().__init__(model, device=device, threads=threads, memory_arena=memory_arena, **pixel_format)
        if not any(t["role"] == "image" for t in self.inputs):
            raise ModelError(f"{self.model_path}: the model has no image input to tile; run it with SessionPipeline")
        self._tiles = tile_options(tile=DEFAULT_TILE if tile is None else tile, halo=halo,
                                   overlap=overlap, batch=batch)
        self._palettes = dict(palettes or {})

    def __call__(self, images: Optional[Mapping[str, np.ndarray]] = None, **kwargs) -> dict:
        return self.run_images(images, **kwargs)

    def run_images(self, images: Optional[Mapping[str, np.ndarray]] = None, *,
                   aux: Optional[Mapping[str, np.ndarray]] = None, outputs: Optional[Sequence[str]] = None,
                   palettes: Optional[Mapping[str, np.ndarray]] = None, progress: Optional[Progress] = None,
                   temperatures: Optional[Mapping[str, float]] = None, **named: np.ndarray) -> dict:
        """The tiled run (class doc).  `temperatures` {classes output: T}: decode its colours by the
        annealed mean (T > 0) instead of the argmax class's colour (0, the default)."""
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
