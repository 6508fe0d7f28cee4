"""Model families: opening a model gives the pipeline object its family needs.

    pipeline = open_model("mosaic.onnx", device="cpu")     # a Stylizer for transformer_net

The family is the model's ``deepshop.family`` metadata (deepshop_native.model_metadata), read
from the file without building a session.  A model without a family is a feedforward stylizer
when it declares no I/O roles (one image in, one image out), and otherwise a generic pipeline
(tiled when it has an image input).  Add a family with register_family (docs/design/engine.md).

This folder also holds the bundled default style model (default_style.onnx).
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Dict, Tuple

from .. import model_metadata as mm
from ..errors import ModelError

# family -> (module, class): imported only when a model of that family is opened.
_FAMILIES: Dict[str, Tuple[str, str]] = {
    "transformer_net": ("deepshop_native.stylizer", "Stylizer"),
    "msgnet": ("deepshop_native.stylenet", "StyleNet"),     # style image at run time (either graph of the pair)
    "lineart": ("deepshop_native.colorize", "Colorizer"),   # line drawing -> colour classes
    "hed": ("deepshop_native.hed", "HedEdges"),             # photo -> edge probability (deepshop-export hed)
    # Models whose roles say all there is to know: tiled image-to-image (any channels, aux
    # inputs, class scores) and whole named runs (loss graphs, encoders).
    "generic_tiled": ("deepshop_native.pipelines", "TiledPipeline"),
    "generic_session": ("deepshop_native.pipelines", "SessionPipeline"),
    # Gatys loss-and-gradient graphs (deepshop-export gatys): targets, loss and gradient.
    "gatys_vgg": ("deepshop_native.gatys_transfer", "GatysModel"),
    "gatys_vgg_tiled": ("deepshop_native.gatys_transfer", "TiledGatysModel"),   # its tile graph
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


def read_model_metadata(path) -> Dict[str, str]:
    """A model file's metadata; ModelError naming the file and why it cannot be read."""
    try:
        return mm.read_metadata(path)
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not an ONNX model file") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot be read ({e.strerror or e})") from None
    except mm.MetadataReadError as e:
        raise ModelError(f"{path}: not an ONNX model ({e})") from None


def family_of(path) -> str:
    """The family a model file runs as (see the module doc), from its metadata alone."""
    metadata = read_model_metadata(path)
    family = metadata.get(mm.key("family"))
    if family:
        return family
    declares_roles = mm.key("inputs") in metadata or mm.key("outputs") in metadata
    if not declares_roles:
        return "transformer_net"
    import json
    try:
        roles = json.loads(metadata.get(mm.key("inputs"), "{}"))
    except ValueError:
        roles = {}  # the engine names the bad value when the session is built
    return "generic_tiled" if mm.ROLE_IMAGE in getattr(roles, "values", lambda: ())() else "generic_session"


def user_models_dir(env: str, folder: str) -> Path:
    """Where models the user exports (not bundled: too large, or made from weights on their
    machine) are looked up by name: the folder in $``env`` when set, else ~/.cache/deepshop/``folder``.
    Nothing is ever downloaded there."""
    value = os.environ.get(env)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "deepshop" / folder


def missing_export_error(path, what: str, command: str, env: str) -> ModelError:
    """The error for a named model that has not been exported yet: the file looked for, and the
    command that writes it."""
    return ModelError(f"{path}: no exported {what}; make it with\n  {command}\n(or set ${env} to the folder "
                      f"that holds it)")


def open_model(path, **options):
    """The pipeline object of the model at `path` (its family's class), built with `options`."""
    path = Path(os.fspath(path))
    return pipeline_class(family_of(path), path)(path, **options)
