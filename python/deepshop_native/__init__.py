"""Deepshop: turn photographs into artwork with neural networks.

    import deepshop_native as ds
    st = ds.Stylizer("style.onnx", device="auto")
    out = st(image)                              # numpy / PIL / path in, same kind out
    ds.stylize("photo.jpg", "style.onnx", "photo_styled.jpg")
    pipeline = ds.open_model("any.onnx")         # the pipeline of the model's family

The engine is C++ on ONNX Runtime (CPU or CUDA), tiled so that any resolution runs in bounded
memory.  Only numpy, Pillow and onnxruntime (or onnxruntime-gpu) are needed at run time.

The package init stays light: the errors are imported here, everything else on first use
(PEP 562), so that ``import deepshop_native.errors`` / ``.model_metadata`` / ``.files`` (the
export side's needs) do not load the C++ extension.
"""
import importlib

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ArrayError, Cancelled, DeepshopError, DeviceError, ImageError, ModelError, OptionError, OutputError, OutputExistsError,
    RuntimeNotFoundError,
)

# Public name -> the module that defines it, imported when the name is first used.
_LAZY = {
    **dict.fromkeys(("Stylizer", "stylize", "model_info", "DEFAULT_TILE", "DEFAULT_OVERLAP", "DEFAULT_HARMONIZE",
                     "DEFAULT_MODEL"), ".stylizer"),
    **dict.fromkeys(("gram", "GramAccumulator", "posterize", "palette_from_image", "decode_labels", "uniform_palette"),
                    ".kernels"),
    **dict.fromkeys(("runtime_version", "runtime_library", "available_providers"), "._runtime"),
    **dict.fromkeys(("open_model", "known_families"), ".models"),
}

__all__ = [
    "Stylizer", "stylize", "model_info", "open_model", "known_families",
    "gram", "GramAccumulator", "posterize", "palette_from_image", "decode_labels", "uniform_palette",
    "runtime_version", "runtime_library", "available_providers",
    "DEFAULT_TILE", "DEFAULT_OVERLAP", "DEFAULT_HARMONIZE", "DEFAULT_MODEL",
    "DeepshopError", "ImageError", "ModelError", "DeviceError", "RuntimeNotFoundError", "OutputError", "OutputExistsError",
    "Cancelled", "ArrayError", "OptionError",
]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'deepshop_native' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
