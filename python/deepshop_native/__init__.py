"""Deepshop: turn photographs into artwork with neural networks.

    import deepshop_native as ds
    st = ds.Stylizer("style.onnx", device="auto")
    out = st(image)                              # numpy / PIL / path / bytes in, same kind out
    ds.stylize("photo.jpg", "style.onnx", "photo_styled.jpg")
    pipeline = ds.open_model("any.onnx")         # the pipeline of the model's family

The engine is C++ on ONNX Runtime (CPU, CUDA or OpenVINO), tiled so that any resolution runs in
bounded memory.  Only numpy, Pillow and onnxruntime (or onnxruntime-gpu) are needed at run time;
onnxruntime-ep-openvino adds OpenVINO.

Importing this package loads nothing native: the names below that need the C++ extension
(``Stylizer``, the kernels, the runtime queries) load it on first use, so that
``deepshop_native.errors``, ``.files``, ``.options``, ``.image`` and ``.model_metadata`` stay light
for the export side.
"""
__version__ = "0.1.0"

import importlib  # noqa: E402

from .errors import (  # noqa: E402
    ArrayError, Cancelled, DeepshopError, DeviceError, ImageError, ModelError, OptionError, OutputError, OutputExistsError,
    RuntimeNotFoundError,
)

# name -> the submodule that defines it (imported, with the C++ extension, on first access)
_LAZY = {
    **dict.fromkeys(("available_providers", "runtime_library", "runtime_version"), "._runtime"),
    **dict.fromkeys(("DEFAULT_HARMONIZE", "DEFAULT_MODEL", "DEFAULT_OVERLAP", "DEFAULT_TILE", "Stylizer", "model_info",
                     "stylize"), ".stylizer"),
    **dict.fromkeys(("GramAccumulator", "decode_labels", "gram", "palette_from_image", "posterize",
                     "uniform_palette"), ".kernels"),
    **dict.fromkeys(("open_model", "known_families"), ".models"),
    **dict.fromkeys(("gatys", "GatysModel", "GatysResult", "GatysProgress"), ".gatys_transfer"),
}
_LAZY.update(dict.fromkeys(("StyleNet", "predict"), ".stylenet"))   # MSG-Net: the style at run time


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Stylizer", "stylize", "model_info", "open_model", "known_families",
    "gram", "GramAccumulator", "posterize", "palette_from_image", "decode_labels", "uniform_palette",
    "runtime_version", "runtime_library", "available_providers",
    "DEFAULT_TILE", "DEFAULT_OVERLAP", "DEFAULT_HARMONIZE", "DEFAULT_MODEL",
    "DeepshopError", "ImageError", "ModelError", "DeviceError", "RuntimeNotFoundError", "OutputError", "OutputExistsError",
    "Cancelled", "ArrayError", "OptionError",
    "gatys", "GatysModel", "GatysResult", "GatysProgress",
    "edges", "colorize", "Colorizer",
]
__all__ += ["StyleNet", "predict"]

# ds.edges and ds.colorize are functions named like their modules (pure Python, nothing native at
# import): imported here so that the package attribute is the function whichever is imported first.
from .edges import edges  # noqa: E402
from .colorize import Colorizer, colorize  # noqa: E402
