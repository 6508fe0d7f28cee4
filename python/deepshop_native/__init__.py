"""Deepshop: turn photographs into artwork with neural networks.

    import deepshop_native as ds
    st = ds.Stylizer("style.onnx", device="auto")
    out = st(image)                              # numpy / PIL / path / bytes in, same kind out
    ds.stylize("photo.jpg", "style.onnx", "photo_styled.jpg")
    pipeline = ds.open_model("any.onnx")         # the pipeline of the model's family

The engine is C++ on ONNX Runtime (CPU, CUDA or OpenVINO) and OpenVINO, tiled so that any
resolution runs in bounded memory.  Only numpy, Pillow and onnxruntime (or onnxruntime-gpu) are
needed at run time; openvino adds OpenVINO.

The package is layered; each layer imports only the ones below it (docs/design/layers.md):

    core/       errors, options, metadata contract, files, model paths, runtime loading, sessions
    image/      reading and writing images (numpy and Pillow only)
    kernels, optim   the native Gram / posterise kernels and the L-BFGS-B / Adam optimisers
    pipelines/  one pipeline per model family, on a common base
    models/     the registry: a model file's family -> its pipeline class
    api         ds.stylize, ds.model_info
    cli/        the `deepshop` command, one module per subcommand

Importing this package loads nothing native: the names below load their module (and the C++
extension) on first use, so that ``deepshop_native.core`` and ``.image`` stay light for the
export side.
"""
__version__ = "0.1.0"

import importlib  # noqa: E402

from .core.errors import (  # noqa: E402
    ArrayError, Cancelled, DeepshopError, DeviceError, ImageError, MissingDependencyError, ModelError, OptionError,
    OutputError, OutputExistsError, RuntimeNotFoundError,
)

# name -> the module that defines it (imported, with the C++ extension, on first access)
_LAZY = {
    **dict.fromkeys(("available_providers", "runtime_library", "runtime_version"), ".core.runtime"),
    **dict.fromkeys(("DEFAULT_HARMONIZE", "DEFAULT_OVERLAP", "DEFAULT_TILE", "DEFAULT_STATISTICS_SIZE"),
                    ".core.session"),
    "DEFAULT_MODEL": ".core.paths",
    "Stylizer": ".pipelines.stylizer",
    **dict.fromkeys(("StyleNet", "predict"), ".pipelines.stylenet"),   # MSG-Net: the style at run time
    **dict.fromkeys(("Colorizer", "colorize"), ".pipelines.colorize"),
    "edges": ".pipelines.edges",
    **dict.fromkeys(("stylize", "model_info"), ".api"),
    **dict.fromkeys(("GramAccumulator", "decode_labels", "gram", "palette_from_image", "posterize",
                     "uniform_palette"), ".kernels"),
    **dict.fromkeys(("open_model", "known_families"), ".models"),
    **dict.fromkeys(("gatys", "GatysModel", "GatysResult", "GatysProgress"), ".pipelines.gatys"),
}


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
    "Stylizer", "StyleNet", "predict", "stylize", "model_info", "open_model", "known_families",
    "gram", "GramAccumulator", "posterize", "palette_from_image", "decode_labels", "uniform_palette",
    "runtime_version", "runtime_library", "available_providers",
    "DEFAULT_TILE", "DEFAULT_OVERLAP", "DEFAULT_HARMONIZE", "DEFAULT_STATISTICS_SIZE", "DEFAULT_MODEL",
    "DeepshopError", "ImageError", "ModelError", "DeviceError", "RuntimeNotFoundError", "OutputError", "OutputExistsError",
    "Cancelled", "ArrayError", "OptionError", "MissingDependencyError",
    "gatys", "GatysModel", "GatysResult", "GatysProgress",
    "edges", "colorize", "Colorizer",
]
