"""The model registry: the one place that maps a model file to the pipeline of its family.

    pipeline = open_model("mosaic.onnx", device="cpu")     # a Stylizer for transformer_net
    family_of("msgnet.onnx"), pipeline_class("msgnet")     # what a file is, and its class

The family is the model's ``deepshop.family`` metadata (deepshop_native.core.metadata), read
from the file without building a session.  A model without a family is a feedforward stylizer
when it declares no I/O roles (one image in, one image out), and otherwise a generic pipeline
(tiled when it has an image input).  Add a family with register_family
(docs/design/adding-a-family.md).

This folder also holds the bundled models (default_style.onnx, lineart.onnx; their paths are
deepshop_native.core.paths').
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Dict, Tuple

from ..core import metadata as mm
from ..core.errors import ModelError
from ..core.metadata import read_model_metadata

# family -> (module, class): imported only when a model of that family is opened.
_FAMILIES: Dict[str, Tuple[str, str]] = {
    "transformer_net": ("deepshop_native.pipelines.stylizer", "Stylizer"),
    "msgnet": ("deepshop_native.pipelines.stylenet", "StyleNet"),   # style image at run time (either graph of the pair)
    "arbitrary_style": ("deepshop_native.pipelines.arbitrary", "ArbitraryStyle"),   # any painting, a style vector
    "multistyle": ("deepshop_native.pipelines.multistyle", "MultiStyle"),           # built-in styles by weights
    "lineart": ("deepshop_native.pipelines.colorize", "Colorizer"),  # line drawing -> colour classes
    "hed": ("deepshop_native.pipelines.hed", "HedEdges"),            # photo -> edge probability (deepshop-export hed)
    # Models whose roles say all there is to know: tiled image-to-image (any channels, aux
    # inputs, class scores) and whole named runs (loss graphs, encoders).
    "generic_tiled": ("deepshop_native.pipelines.generic", "TiledPipeline"),
    "generic_session": ("deepshop_native.pipelines.generic", "SessionPipeline"),
    # Gatys loss-and-gradient graphs (deepshop-export gatys): targets, loss and gradient.
    "gatys_vgg": ("deepshop_native.pipelines.gatys.model", "GatysModel"),
    "gatys_vgg_tiled": ("deepshop_native.pipelines.gatys.tiled", "TiledGatysModel"),   # its tile graph
}


def register_family(family: str, module: str, class_name: str) -> None:
    """Map `family` to the pipeline class `class_name` of `module` (imported on first use)."""
    _FAMILIES[family] = (module, class_name)


def known_families() -> list:
    return sorted(_FAMILIES)


def pipeline_class(family: str, path="") -> type:
    """The pipeline class of a family; ModelError naming the file, the family and the known ones."""
    if family not in _FAMILIES:
        raise ModelError(f"{path}: unknown model family '{family}' (metadata {mm.key('family')}); "
                         f"known families: {', '.join(known_families())}")
    module, name = _FAMILIES[family]
    return getattr(importlib.import_module(module), name)


def family_of(path) -> str:
    """The family a model file runs as (see the module doc), from its metadata alone."""
    metadata = read_model_metadata(path)
    family = metadata.get(mm.key("family"))
    if family:
        return family
    declares_roles = mm.key("inputs") in metadata or mm.key("outputs") in metadata
    if not declares_roles:
        return "transformer_net"
    try:
        roles = json.loads(metadata.get(mm.key("inputs"), "{}"))
    except ValueError:
        roles = {}  # the engine names the bad value when the session is built
    return "generic_tiled" if mm.ROLE_IMAGE in getattr(roles, "values", lambda: ())() else "generic_session"


def class_of(path) -> type:
    """The pipeline class a model file opens as."""
    return pipeline_class(family_of(path), path)


def open_model(path, **options):
    """The pipeline object of the model at `path` (its family's class), built with `options`."""
    path = Path(os.fspath(path))
    return class_of(path)(path, **options)
