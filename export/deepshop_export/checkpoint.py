"""Loading a fast_neural_style ``.pth`` into a TransformerNet with errors that say what is wrong:
no such file, not a torch checkpoint at all, or a checkpoint of another network."""
from __future__ import annotations

import os
from typing import Mapping

import torch

from deepshop_native.core.errors import ModelError

from deepshop_native.core.files import sha256_of  # noqa: F401  (re-exported: the export side's callers)

from .families.transformer_net.network import TransformerNet, clean_state_dict


def _state_dict_in(obj):
    """The state_dict inside what torch.load returned: a bare one, or one under a usual key."""
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model", "model_state_dict", "net"):
            if isinstance(obj.get(key), Mapping):
                return obj[key]
    return obj


def load_checkpoint(path: str | os.PathLike) -> TransformerNet:
    """TransformerNet in eval mode with the weights of ``path``; old checkpoints' InstanceNorm
    running statistics are dropped.  Raises ModelError naming the file and the reason."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelError(f"{path}: no such checkpoint file")
    if not os.path.isfile(path):
        raise ModelError(f"{path}: is not a file")
    try:
        # weights_only: a checkpoint is data; never run code from a downloaded pickle.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # text files give KeyError, others UnpicklingError/RuntimeError/EOFError
        raise ModelError(f"{path}: not a torch checkpoint (torch.load failed: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from e
    state = _state_dict_in(obj)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: not a TransformerNet checkpoint: expected a state_dict of tensors, "
                         f"found {type(state).__name__}")
    net = TransformerNet()
    expected = net.state_dict()
    state = clean_state_dict(state)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelError(f"{path}: a checkpoint of another architecture, not TransformerNet: "
                         f"{len(missing)} missing keys {missing[:4]}, {len(unexpected)} unexpected keys {unexpected[:4]}")
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise ModelError(f"{path}: a checkpoint of another architecture (TransformerNet key names, other shapes): "
                         + "; ".join(wrong[:3]))
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.eval()


def training_provenance(path: str | os.PathLike) -> dict:
    """What deepshop-train recorded about a checkpoint: the ``provenance`` entry of a training
    checkpoint, or the ``<stem>.json`` it writes beside ``model.pth``; {} for other checkpoints."""
    import json

    path = os.fspath(path)
    sidecar = os.path.splitext(path)[0] + ".json"
    if os.path.isfile(sidecar):
        try:
            with open(sidecar, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise ModelError(f"{sidecar}: unreadable training record beside the checkpoint ({e})") from e
        return data if isinstance(data, dict) else {}
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # load_checkpoint reports unreadable files
        return {}
    found = obj.get("provenance") if isinstance(obj, Mapping) else None
    return dict(found) if isinstance(found, Mapping) else {}
