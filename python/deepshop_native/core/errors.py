"""Exceptions of deepshop_native.  Every error a user can cause names the file and the reason.

This module imports nothing else of the package (no C++ extension): the export side uses it."""


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


class Cancelled(DeepshopError):
    """A long run was stopped by its progress callback returning False."""


class ArrayError(DeepshopError, ValueError):
    """An array given to a kernel (features, image, palette, labels) has the wrong dtype, shape or values."""


class MissingDependencyError(DeepshopError, ImportError):
    """An optional package a feature needs is not installed (message names it and how to get it)."""
