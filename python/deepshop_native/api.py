"""One-call functions on top of the registry: ``ds.stylize`` (any style family, a file in and a
file out) and ``ds.model_info`` (what `deepshop info` prints)."""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

from . import _native
from .core import options
from .core.files import check_not_an_input
from .core.paths import resolve_model
from .core.runtime import available_providers, ensure_runtime, execution_devices, openvino_direct_devices
from .core.session import DEFAULT_OVERLAP, DEFAULT_TILE, check_precision, open_session, session_options, tile_options
from .image import read_image, write_image
from .models.styles import open_styled
from .pipelines.base import image_in, image_out


#: Options of one family or another (models/styles.open_styled passes each to the family that takes it).
FAMILY_OPTIONS = ("style_size", "style_tile", "style_statistics")


def stylize(image, model=None, output=None, *, overwrite: bool = False, quality: int = 95, strength: float = 1.0,
            preserve_colors: bool = False, max_side: Optional[int] = None, style=None, style_weights=None,
            **engine_options):
    """One-shot stylization: ``stylize("in.jpg", output="out.jpg", style="painting.jpg")``.  The
    output file (optional) is written atomically and never overwritten unless ``overwrite=True``;
    EXIF and ICC profile of an input file are kept.  Returns the stylized image as a numpy array
    (with alpha when the input had it).  ``style`` (one or a list, blended by ``style_weights``): a
    painting (an image file or array: the arbitrary-style network, or MSG-Net's style with an
    MSG-Net ``model``) or a built-in style's name or number; neither style nor model: the default
    style (models/styles.py).  ``engine_options`` go to the pipeline (device, tile, working_size,
    ..., and its family's own, e.g. ``style_size``)."""
    quality = options.check_quality(quality)
    strength = options.check_strength(strength)
    max_side = options.check_max_side(max_side)
    styles = [] if style is None else list(style) if isinstance(style, (list, tuple)) else [style]
    if output is not None:   # before any work: the output is none of the files read
        check_not_an_input(output, [image, model, *styles])
    family = {k: engine_options.pop(k) for k in FAMILY_OPTIONS if k in engine_options}
    pipeline = open_styled(model, styles, style_weights, family_options=family, **engine_options)
    is_file = isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)) or callable(getattr(image, "read", None))
    loaded = read_image(image) if is_file else None
    given = image_in(loaded if loaded is not None else image, max_side)
    styled = pipeline.run(given.pixels, strength=strength, preserve_colors=preserve_colors)
    if output is not None:
        write_image(output, styled, alpha=given.alpha, quality=quality, overwrite=overwrite,
                    exif=loaded.exif if loaded else None, icc_profile=loaded.icc_profile if loaded else None)
    return image_out(dataclasses.replace(given, pil=False), styled)   # an array, whatever came in


def _statistics_summary(session) -> str:
    """How tiles of this model are normalised, for `deepshop info`."""
    if "deepshop.statistics" not in session.metadata:
        return "none (tiles are harmonized)"
    tiles = tile_options(tile=DEFAULT_TILE, halo=None, overlap=DEFAULT_OVERLAP, batch=1)
    return "global-statistics graph: " + ", ".join(
        f"{side}x{side} -> {session.plan(height=side, width=side, tiles=tiles)['statistics']}" for side in (1024, 4096))


def _openvino_direct_summary() -> str:
    """OpenVINO called directly (the `openvino` wheel): its version and devices, or why it is off."""
    version, devices, why = openvino_direct_devices()
    return f"OpenVINO {version}: {', '.join(devices) or 'no device'}" if not why else f"unavailable ({why})"


def model_info(model=None, *, device: str = "auto", precision: str = "auto") -> dict:
    """What `deepshop info` prints: the model's family, inputs and outputs with their roles, pixel
    format, metadata, the runtime's providers, and the provider the device/precision choose (with
    why not the faster ones).  Any model family (a session is built, no pipeline)."""
    checked = session_options("", device=device)
    precision = check_precision(precision)
    path = resolve_model(model)
    s = open_session(path, precision=precision, checked=checked)

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
