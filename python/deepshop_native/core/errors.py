"""Exceptions of deepshop_native.  Every error a user can cause names the file and the reason.

This module imports nothing else of the package (no C++ extension): the export side uses it."""

import contextlib


class DeepshopError(Exception):
    """Base class of every error raised by deepshop_native."""


class ImageError(DeepshopError, ValueError):
    """An image could not be read, decoded or written (message names the file and why)."""


class ModelError(DeepshopError, ValueError):
    """A model file is missing, is not ONNX, or its inputs/outputs/metadata do not fit."""


class RuntimeNotFoundError(DeepshopError, ImportError):
    """No ONNX Runtime library could be found or loaded."""


class DeviceError(DeepshopError, RuntimeError):
    """The requested execution provider (e.g. CUDA) cannot run here."""


class OutputError(DeepshopError, OSError):
    """An output file could not be written (message names the file and why)."""


class OutputExistsError(DeepshopError, FileExistsError):
    """An output file exists already and overwriting was not asked for."""


class OptionError(DeepshopError, ValueError):
    """An option or argument value is out of range or of the wrong kind (message names the option)."""


class VideoError(ImageError):
    """A video could not be read, decoded or written (message names the file and why)."""


class Cancelled(DeepshopError):
    """A long run was stopped by its progress callback returning False."""


class ArrayError(DeepshopError, ValueError):
    """An array given to a kernel (features, image, palette, labels) has the wrong dtype, shape or values."""


class MissingDependencyError(DeepshopError, ImportError):
    """An optional package a feature needs is not installed (message names it and how to get it)."""


def failure_reason(e: BaseException, name: object) -> str:
    """The reason of one input's failure in a batch, without a leading "<name>: " (the report
    names the input): "out of memory", a DeepshopError's or OSError's message, or any other
    error's message after its type name."""
    if isinstance(e, MemoryError):
        return "out of memory"
    text = str(e).strip() or type(e).__name__
    if not isinstance(e, (DeepshopError, OSError)):
        text = f"{type(e).__name__}: {text}"
    prefix = f"{name}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def batch_exit_code(failed: bool, interrupted: bool) -> int:
    """A batch's exit status: 0 when every image was done, 1 when any failed, 130 after Ctrl-C
    (as shells do)."""
    if interrupted:
        return 130
    return 1 if failed else 0


@contextlib.contextmanager
def interruption_recorded(outcome, attribute: str):
    """Around a batch's loop: Ctrl-C sets ``outcome.interrupted`` and goes on up with ``outcome``
    (what was done so far) as the KeyboardInterrupt's ``attribute``."""
    try:
        yield outcome
    except KeyboardInterrupt as e:
        outcome.interrupted = True
        setattr(e, attribute, outcome)
        raise
