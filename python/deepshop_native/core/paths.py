"""Where models are: the files bundled with the package, the user's model folders (models made on
the user's machine from weights they have: nothing is ever downloaded there), and a model path
given by the caller, checked to be a regular file."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelError, OptionError
from .files import check_regular_file

#: The models bundled with the package (python/deepshop_native/models/).
BUNDLED_MODELS = Path(__file__).resolve().parent.parent / "models"
#: The default style of `deepshop stylize` and Stylizer() without a model.
DEFAULT_MODEL = BUNDLED_MODELS / "default_style.onnx"
#: The line-art model of `deepshop colorize` and Colorizer() without a model.
DEFAULT_LINEART_MODEL = BUNDLED_MODELS / "lineart.onnx"


def user_models_dir(env: str, folder: str) -> Path:
    """Where models the user exports (not bundled: too large, or made from weights on their
    machine) are looked up by name: the folder in $``env`` when set, else ~/.cache/deepshop/``folder``."""
    value = os.environ.get(env)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "deepshop" / folder


def missing_export_error(path, what: str, command: str, env: str) -> ModelError:
    """The error for a named model that has not been exported yet: the file looked for, and the
    command that writes it."""
    return ModelError(f"{path}: no exported {what}; make it with\n  {command}\n(or set ${env} to the folder "
                      f"that holds it)")


def resolve_model(model, default: Path = DEFAULT_MODEL) -> Path:
    """The model file to use: the given path (a regular file: a named pipe would block the loader
    forever, a directory or a symlink loop gets its own reason), or ``default`` when None."""
    if model is None:
        if not default.is_file():
            raise ModelError(f"{default}: no model given and none is bundled with this install; pass a model "
                             "(.onnx, e.g. made with deepshop-export)")
        return default
    if not isinstance(model, (str, os.PathLike)):
        raise OptionError(f"model: expected a path to an .onnx file, got {type(model).__name__}")
    path = Path(os.fspath(model))
    check_regular_file(str(path), "model", error=ModelError)
    return path
