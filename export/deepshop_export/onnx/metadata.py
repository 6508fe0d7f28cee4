"""Read and write the ``deepshop.*`` entries of an ONNX model's ``metadata_props``.

The keys and their meaning are the contract in ``deepshop_native.core.metadata``; this module only
moves strings in and out of the protobuf, so that the exporter, the training script and the tests
all agree on spelling.
"""
from __future__ import annotations

import os
from typing import Mapping

import onnx

from deepshop_native.core.errors import ModelError
from deepshop_native.core.metadata import KEYS, PREFIX


def write_metadata(model: onnx.ModelProto, values: Mapping[str, str]) -> onnx.ModelProto:
    """Set ``deepshop.<key>`` = value for each entry (keys given without the prefix), replacing
    entries of the same key and keeping every other metadata entry.  Values must be strings, and
    keys must be in the contract: a misspelt key would silently never be read by the engine."""
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ValueError(f"metadata keys {unknown} are not in the deepshop metadata contract {list(KEYS)}")
    for key, value in values.items():
        if not isinstance(value, str):
            raise TypeError(f"metadata value of {key!r} must be a string, got {type(value).__name__}")
    full = {PREFIX + k: v for k, v in values.items()}
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in full]
    del model.metadata_props[:]
    for key, value in kept + list(full.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def metadata_of(model: onnx.ModelProto) -> dict[str, str]:
    """The ``deepshop.*`` entries of a loaded model, keys without the prefix."""
    return {p.key[len(PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(PREFIX)}


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``deepshop.*`` entries of the ONNX file at ``path`` (empty for a model without them).
    Weights are not loaded."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError, onnx may raise others
        raise ModelError(f"{path}: not an ONNX model ({e})") from e
    return metadata_of(model)
