"""The one session opener: a model file on a device and precision, as the engine's ``Session``
(named inputs and outputs) or ``Engine`` (the image path), with every option checked here, at the
edge, so that a bad value is an OptionError naming it before the model is even read.  Also the
engine's tiling defaults (read from C++, so the two can never disagree) and the small conversions
every pipeline shares: tile options, pixel arrays in [0, 1], a checked progress callback."""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Optional, Sequence

import numpy as np

from .. import _native
from . import options
from .errors import DeepshopError, ModelError, OptionError
from .files import check_regular_file
from .metadata import MetadataReadError, external_data_locations
from .runtime import ensure_runtime, find_openvino_library, find_openvino_plugin

Progress = Callable[[int, int], Optional[bool]]

# Tiling defaults live with the engine (cpp/engine/tile_plan.h, TileOptions, where their reasons
# are written down).
_ENGINE_DEFAULTS = _native.TileOptions()
#: Network window, in pixels per side, on the CPU and CUDA providers (tile="auto" takes each
#: provider's own: a pipeline's ``tile`` says which).
DEFAULT_TILE = _ENGINE_DEFAULTS.tile
#: Least overlap between neighbouring tiles, blended with linear ramps.
DEFAULT_OVERLAP = _ENGINE_DEFAULTS.overlap
#: Longer side of the thumbnail whose colours tiles of instance-norm models are pulled to.
DEFAULT_HARMONIZE = _ENGINE_DEFAULTS.harmonize
#: Longer side of the thumbnail whose statistics global-statistics models use (thumbnail mode).
DEFAULT_STATISTICS_SIZE = _ENGINE_DEFAULTS.statistics_size

#: Devices and precisions the pipelines take ("cuda:N" besides these).
DEVICES = ("auto", "cpu", "cuda", "openvino", "openvino:CPU", "openvino:GPU", "openvino:NPU")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


def check_precision(precision, allowed: Sequence[str] = PRECISIONS) -> str:
    """``precision`` lower-cased, or an OptionError listing the allowed ones."""
    if not isinstance(precision, str) or precision.lower() not in allowed:
        raise OptionError(f"precision: {precision!r} is not one of " + ", ".join(repr(p) for p in allowed))
    return precision.lower()


def openvino_libraries(device: str) -> dict:
    """The engine's openvino_library / openvino_missing arguments: the plugin and OpenVINO's own
    library are looked up only where the device may use them; the engine checks device and precision."""
    if device in ("cpu", "cuda") or device.startswith("cuda:"):
        return {"openvino_library": "", "openvino_missing": "not asked for",
                "openvino_direct_library": "", "openvino_direct_missing": "not asked for"}
    library, missing = find_openvino_plugin()
    # OpenVINO's own library: called directly where the plugin serves no device (non-Intel CPUs).
    direct, direct_missing = find_openvino_library()
    return {"openvino_library": library, "openvino_missing": missing,
            "openvino_direct_library": direct, "openvino_direct_missing": direct_missing}


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


def open_session(model, *, image_path: bool = False, precision: str = "auto", openvino: bool = True,
                 checked: Optional[dict] = None, **session_kwargs):
    """A ``_native.Engine`` (``image_path``: one RGB image in and out) or ``_native.Session`` of
    ``model``.  ``checked``: session_options() already made (options checked before the model
    file was looked at); else they are checked from ``session_kwargs``.  ``openvino=False`` keeps
    device="auto" off OpenVINO (pipelines whose outputs' bf16 error is not documented); a device
    that names OpenVINO always gets it."""
    kwargs = dict(checked) if checked is not None else session_options(model, **session_kwargs)
    kwargs["model"] = os.fspath(model)
    precision = check_precision(precision)
    # Every model path comes through here: a NUL byte, a pipe, a folder are named before the engine sees them.
    check_regular_file(kwargs["model"], "model", error=ModelError)
    ensure_runtime()
    device = kwargs["device"].lower()
    if openvino or device.startswith("openvino"):
        kwargs.update(openvino_libraries(kwargs["device"]))
    cls = _native.Engine if image_path else _native.Session
    try:
        return cls(**kwargs, precision=precision)
    except ModelError as e:
        missing = missing_external_data(kwargs["model"])
        if missing:
            raise ModelError(f"{kwargs['model']}: ONNX Runtime could not load the model: {missing}") from e
        raise


def missing_external_data(model: str) -> str:
    """Why the external data files the model names (its weights kept beside the .onnx) cannot be
    read, naming the first that is missing or no file; "" when they are all there."""
    try:
        locations = external_data_locations(model)
    except (OSError, MetadataReadError):
        return ""
    folder = os.path.dirname(os.path.abspath(model))
    for location in locations:
        full = os.path.join(folder, location)
        if not os.path.exists(full):
            return (f"the external data file {location!r} that holds its weights is missing (expected at {full}; "
                    f"keep it beside the .onnx, under the name the model gives it)")
        if not os.path.isfile(full):
            return f"the external data file {location!r} that holds its weights is not a regular file ({full})"
    return ""


def tile_options(*, tile: Optional[int], halo: Optional[int] = None, overlap: int = DEFAULT_OVERLAP, batch: int = 1,
                 harmonize: int = 0, statistics: str = "auto", statistics_size: Optional[int] = None,
                 tile_area: int = 0, whole_area: int = 0):
    """A checked _native.TileOptions (tile 0/None: the whole image in one window; tile_area > 0:
    windows of any shape within that many pixels, in place of square ``tile`` ones; whole_area > 0
    with it: an image of at most that many pixels runs whole)."""
    o = options.engine_options(tile=tile, halo=halo, overlap=overlap, batch=batch, harmonize=harmonize,
                               statistics=statistics, statistics_size=statistics_size)
    return _native.TileOptions(tile=o["tile"], halo=-1 if o["halo"] is None else o["halo"], overlap=o["overlap"],
                               batch=o["batch"], harmonize=o["harmonize"], statistics=o["statistics"],
                               statistics_size=DEFAULT_STATISTICS_SIZE if o["statistics_size"] is None
                               else o["statistics_size"], tile_area=tile_area, whole_area=whole_area)


def check_tile(tile) -> bool:
    """Whether ``tile`` is "auto" (the provider's own window); OptionError for another string."""
    if isinstance(tile, str):
        if tile.lower() == "auto":
            return True
        raise OptionError(f"tile: must be 'auto', a window size in pixels, or 0/None for the whole image, got {tile!r}")
    return False


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


def checked_progress(progress: Optional[Progress]) -> Optional[Progress]:
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


@contextlib.contextmanager
def tiling_errors_as_option_errors():
    """The engine refuses some tile settings only once it knows the model's halo ("tile size 32
    is too small for a halo of 28 ..."), as a plain ValueError from C++: an option error."""
    try:
        yield
    except ValueError as e:
        if isinstance(e, DeepshopError) or "tile" not in str(e):
            raise
        raise OptionError(f"tile: {e}") from e
