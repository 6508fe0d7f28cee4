"""Where models are: the files bundled with the package, the user's model folders (models made on
the user's machine from weights they have: nothing is ever downloaded there), models made there
on first use by the exporter, and a model path given by the caller, checked to be a regular file."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

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


#: The folder of the pretrained networks converted by `deepshop-export pretrained` (else
#: ~/.cache/deepshop/pretrained).
PRETRAINED_ENV = "DEEPSHOP_PRETRAINED_MODELS"


def pretrained_dir() -> Path:
    return user_models_dir(PRETRAINED_ENV, "pretrained")


def made_on_first_use(path: Path, command: Sequence[str], what: str, env: str) -> Path:
    """``path``, made first by running the exporter's ``command`` (``deepshop-export ...``
    arguments) when it is missing: one line on stderr saying what is made, where, and the time it
    took.  The exporter runs as its own process (the run-time package never imports it); where it
    cannot (torch or the weight package missing), its one-line reason is the ModelError's."""
    if path.is_file():
        return path
    shown = "deepshop-export " + " ".join(command)
    print(f"deepshop: making the {what} on first use: {shown}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        run = subprocess.run([sys.executable, "-m", "deepshop_export", *command], capture_output=True, text=True)
    except OSError as e:
        raise ModelError(f"{path}: could not run the exporter to make the {what} ({e})") from None
    if run.returncode != 0 or not path.is_file():
        reason = (run.stderr or run.stdout).strip().splitlines()
        raise missing_export_error(path, what, shown, env) if not reason else ModelError(
            f"{path}: no {what}; making it failed: {reason[-1]}\n(make it with: {shown}, or set ${env} to the "
            "folder that holds it)")
    print(f"deepshop: made {path} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return path


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
