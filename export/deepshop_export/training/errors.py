"""The trainers' own errors (both DeepshopErrors: one line on the command line, exit status 1)."""
from __future__ import annotations

from deepshop_native.core.errors import DeepshopError


class TrainError(DeepshopError, ValueError):
    """A training setting or input (data folder, options, a resume that changes the losses) is unusable."""


class NoUsableImagesError(TrainError):
    """No file of the data folder can be cut into a training item (raised by a dataset, possibly in a
    worker process; the loop replaces it with the reasons counted over the folder)."""
