"""Feedforward stylization: one style network (Johnson et al.'s TransformerNet and the like:
one RGB image in, one out), the Python face of the engine's image path.

    st = Stylizer("mosaic.onnx", device="auto", tile=1024)
    out = st(image)                       # numpy HxWx3 (uint8/uint16/float), PIL image or path

Data flows one way: the image is brought to a contiguous RGB array (alpha set aside), the
native engine cuts it into tiles, runs them and blends them back, and the result is returned in
the caller's type with alpha put back (pipelines/base.py).
"""
from __future__ import annotations

from .base import StylePipeline

#: The error precision="auto" stays within, on 0..255 against the same network in torch fp32:
#: (mean abs, max abs).  Measured per provider and precision: docs/results/precision.md.
AUTO_PRECISION_BOUND = (0.5, 8.0)


class Stylizer(StylePipeline):
    """One style model loaded on one device, callable on images; usable from several threads.
    ``model``: an .onnx file (None: the bundled default style).

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
    without the graph always harmonize.  memory_arena: keep ONNX Runtime's CPU memory arena (faster on
    small images, but it holds far more memory with large tiles: off by default).
    value_range / channel_order / mean / stride_multiple: how the network takes pixels, needed
    only for models without deepshop metadata (they override the metadata otherwise).
    """
