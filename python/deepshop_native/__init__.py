"""Deepshop: turn photographs into artwork with neural networks.

    import deepshop_native as ds
    st = ds.Stylizer("style.onnx", device="auto")
    out = st(image)                              # numpy / PIL / path in, same kind out
    ds.stylize("photo.jpg", "style.onnx", "photo_styled.jpg")

The engine is C++ on ONNX Runtime (CPU, CUDA or OpenVINO), tiled so that any resolution runs in
bounded memory.  Only numpy, Pillow and onnxruntime (or onnxruntime-gpu) are needed at run time;
onnxruntime-ep-openvino adds OpenVINO.
"""
__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ArrayError, Cancelled, DeepshopError, DeviceError, ImageError, ModelError, OptionError, OutputError, OutputExistsError,
    RuntimeNotFoundError,
)
from ._runtime import available_providers, runtime_library, runtime_version  # noqa: E402
from .stylizer import DEFAULT_HARMONIZE, DEFAULT_MODEL, DEFAULT_OVERLAP, DEFAULT_TILE, Stylizer, model_info, stylize  # noqa: E402
from .kernels import (  # noqa: E402
    GramAccumulator, decode_labels, gram, palette_from_image, posterize, uniform_palette,
)

__all__ = [
    "Stylizer", "stylize", "model_info",
    "gram", "GramAccumulator", "posterize", "palette_from_image", "decode_labels", "uniform_palette",
    "runtime_version", "runtime_library", "available_providers",
    "DEFAULT_TILE", "DEFAULT_OVERLAP", "DEFAULT_HARMONIZE", "DEFAULT_MODEL",
    "DeepshopError", "ImageError", "ModelError", "DeviceError", "RuntimeNotFoundError", "OutputError", "OutputExistsError",
    "Cancelled", "ArrayError", "OptionError",
]
