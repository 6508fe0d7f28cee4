"""MSG-Net checkpoints in the two layouts users have, read into our MSGNet (families/msgnet):

* PyTorch ``21styles.model`` (zhanghang1989/PyTorch-Multi-Style-Transfer): a state_dict in which
  every encoder parameter appears twice (``model1.*`` and ``model.0.*``, the same module
  registered under both names) and the Inspiration weight twice (``ins.weight`` and
  ``model.1.weight``); files saved by old torch versions carry InstanceNorm ``running_mean`` /
  ``running_var`` buffers, which the network (no running statistics) does not use: dropped.
* PaddleHub ``msgnet`` ``.pdparams``: ``paddle.save``'s pickle of a dict of numpy arrays (plus a
  ``StructuredToParameterName@@`` name table).  PaddleHub's network extends ``model`` with the
  encoder's layers one by one, so the encoder is ``model.0-4``, the Inspiration layer ``model.5``
  and everything after it is shifted by 4 against the PyTorch layout; ``model1.*`` / ``ins.*``
  may be present as well.  Its InstanceNorm layers carry ``scale`` / ``bias`` parameters fixed at
  1 / 0 (not trained): checked to be so and dropped.  Read with a restricted unpickler (numpy
  arrays and plain containers only), so PaddlePaddle is not needed and the file cannot run code.

Both duplicate copies are checked to agree: a file whose copies differ was not saved from one
network, and is refused rather than guessed at.
"""
from __future__ import annotations

import io
import os
import pickle
import re
from typing import Mapping

import numpy as np
import torch

from deepshop_native.core.errors import ModelError

from . import read_source
from ..families.msgnet import network as mn

_LEGACY_STATS = re.compile(r"\.(running_mean|running_var|num_batches_tracked)$")
#: PaddleHub InstanceNorm parameters (fixed at 1 and 0 there).
_PADDLE_NORM = re.compile(r"\.(scale|bias)$")
ENCODER_LAYERS = 5        # model1 = ConvLayer, InstanceNorm, ReLU, Bottleneck, Bottleneck


def infer_ngf(state: Mapping[str, np.ndarray], path: str) -> int:
    key = "ins.weight"
    if key not in state:
        raise ModelError(f"{path}: not an MSG-Net checkpoint (no Inspiration weight 'ins.weight' / 'model.1.weight')")
    c = int(np.asarray(state[key]).shape[-1])
    if c % mn.EXPANSION:
        raise ModelError(f"{path}: Inspiration weight of {c} channels is not a multiple of {mn.EXPANSION}")
    return c // mn.EXPANSION


def _count_blocks(state: Mapping[str, np.ndarray]) -> int:
    """Bottlenecks between the Inspiration layer (model.1) and the two up-sampling blocks."""
    idx = {int(m.group(1)) for k in state for m in [re.match(r"model\.(\d+)\.", k)] if m}
    return max(idx) - 1 - 2 - 3   # last = ConvLayer; before it ReLU, norm, 2 up-blocks


def _load_into(state: dict, path: str, layout: str) -> mn.MSGNet:
    """Build the network from a canonical state (our names, each tensor once) and load it strictly."""
    ngf = infer_ngf(state, path)
    n_blocks = _count_blocks(state)
    if n_blocks < 1:
        raise ModelError(f"{path}: {layout}: cannot find the residual blocks (model.N.* keys)")
    net = mn.MSGNet(ngf=ngf, n_blocks=n_blocks)
    expected = net.state_dict()
    tensors = {}
    for k, v in state.items():
        if k not in expected:
            raise ModelError(f"{path}: {layout}: unexpected parameter {k!r} for MSG-Net ngf={ngf}")
        t = torch.as_tensor(np.asarray(v, dtype=np.float32))
        if tuple(t.shape) != tuple(expected[k].shape):
            raise ModelError(f"{path}: {layout}: {k} has shape {tuple(t.shape)}, expected {tuple(expected[k].shape)}")
        tensors[k] = t
    # model.0.* / model.1.* are the same tensors as model1.* / ins.*: filled from them.
    for k in expected:
        alias = _alias_of(k)
        if k not in tensors and alias in tensors:
            tensors[k] = tensors[alias]
    missing = sorted(k for k in expected if k not in tensors)
    if missing:
        raise ModelError(f"{path}: {layout}: missing parameters {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    net.load_state_dict(tensors, strict=True)
    return net.eval()


def _alias_of(key: str) -> str:
    if key.startswith("model.0."):
        return "model1." + key[len("model.0."):]
    if key == "model.1.weight":
        return "ins.weight"
    if key.startswith("model1."):
        return "model.0." + key[len("model1."):]
    if key == "ins.weight":
        return "model.1.weight"
    return key


def _merge_duplicates(state: dict, path: str, layout: str) -> dict:
    """One copy of each tensor under our canonical names (model1.*, ins.weight), checking that
    duplicate copies agree."""
    out = {}
    for k, v in state.items():
        canon = k
        if k.startswith("model.0."):
            canon = "model1." + k[len("model.0."):]
        elif k == "model.1.weight":
            canon = "ins.weight"
        v = np.asarray(v)
        if canon in out:
            if out[canon].shape != v.shape or not np.array_equal(out[canon], v):
                raise ModelError(f"{path}: {layout}: {k} and {canon} should be the same tensor but differ")
            continue
        out[canon] = v
    return out


# --------------------------------------------------------------------------- PyTorch 21styles.model


def state_from_pytorch(state: Mapping[str, torch.Tensor], path: str) -> dict:
    arrays = {k: v.detach().cpu().float().numpy() for k, v in state.items()
              if isinstance(v, torch.Tensor) and not _LEGACY_STATS.search(k)}
    return _merge_duplicates(arrays, path, "PyTorch MSG-Net")


def load_pytorch_msgnet(path: str | os.PathLike) -> mn.MSGNet:
    path = os.fspath(path)
    data = read_source(path)
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):   # a deepshop-train msgnet checkpoint.pt
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise ModelError(f"{path}: expected a state_dict, found {type(obj).__name__}")
    state = state_from_pytorch(obj, path)
    return _load_into(state, path, "PyTorch MSG-Net")


# --------------------------------------------------------------------------- PaddleHub .pdparams


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers, nothing else (no code can run)."""
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict"),
        ("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            import importlib
            return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are expected)")


def _paddle_to_canonical(key: str) -> str | None:
    """PaddleHub's names to ours, or None for a parameter to drop (InstanceNorm scale/bias are
    handled by the caller)."""
    m = re.match(r"model\.(\d+)\.(.*)$", key)
    if not m:
        return key      # model1.*, ins.weight
    i, rest = int(m.group(1)), m.group(2)
    if i < ENCODER_LAYERS:
        return f"model1.{i}.{rest}"
    if i == ENCODER_LAYERS:
        return f"ins.{rest}"
    return f"model.{i - ENCODER_LAYERS + 1}.{rest}"


def _is_norm_param(key: str, value: np.ndarray) -> bool:
    """An InstanceNorm scale/bias: a 1-D tensor named .scale/.bias (convolution biases are named
    .bias too, but belong to a layer that also has a .weight)."""
    return bool(_PADDLE_NORM.search(key)) and value.ndim == 1


def load_paddle_msgnet(path: str | os.PathLike) -> mn.MSGNet:
    path = os.fspath(path)
    data = read_source(path)
    layout = "PaddleHub msgnet .pdparams"
    try:
        obj = _ArraysOnly(io.BytesIO(data), encoding="latin1").load()
    except Exception as e:
        raise ModelError(f"{path}: not a readable .pdparams file (a pickled dict of numpy arrays): "
                         f"{type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise ModelError(f"{path}: {layout}: expected a dict of arrays, found {type(obj).__name__}")
    arrays = {k: np.asarray(v) for k, v in obj.items() if isinstance(v, np.ndarray)}
    weights = {k[:-len(".weight")] for k in arrays if k.endswith(".weight")}
    renamed = {}
    for k, v in arrays.items():
        owner = k.rsplit(".", 1)[0]
        if k.endswith(".scale") or (k.endswith(".bias") and owner not in weights):
            # InstanceNorm affine parameters: MSG-Net's norms have none; PaddleHub fixes them.
            expected = 1.0 if k.endswith(".scale") else 0.0
            if not np.allclose(v, expected, atol=1e-6):
                raise ModelError(f"{path}: {layout}: InstanceNorm parameter {k} is not fixed at {expected:g} "
                                 f"(range {float(v.min()):g}..{float(v.max()):g}); such a network is not MSG-Net")
            continue
        if _LEGACY_STATS.search(k) or k.endswith("_mean") or k.endswith("_variance"):
            continue
        renamed_key = _paddle_to_canonical(k)
        if renamed_key in renamed and not np.array_equal(renamed[renamed_key], v):
            raise ModelError(f"{path}: {layout}: {k} and {renamed_key} should be the same tensor but differ")
        renamed[renamed_key] = v
    state = _merge_duplicates(renamed, path, layout)
    return _load_into(state, path, layout)


def load_msgnet_file(path: str | os.PathLike) -> mn.MSGNet:
    """Either layout, by extension: .pdparams is PaddleHub's, anything else a torch file."""
    if os.fspath(path).lower().endswith(".pdparams"):
        return load_paddle_msgnet(path)
    return load_pytorch_msgnet(path)


def _export(load, path, out_path, *, name=None, license="unknown", provenance=None, fp16=False, opset=17,
            validate=True, overwrite=False, statistics=False):
    from ..checkpoint import sha256_of
    from ..families.msgnet.export import PairReport, export_msgnet
    net = load(path)
    prov = {"source": os.path.basename(os.fspath(path)), "source_sha256": sha256_of(path), **(provenance or {})}
    name = name or os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return PairReport(export_msgnet(net, out_path, name=name, provenance=prov, license=license, fp16=fp16,
                                    opset=opset, validate=validate, overwrite=overwrite, statistics=statistics))


def export_pytorch_msgnet(path, out_path, **kw):
    """``21styles.model`` (or any MSG-Net state_dict) to the encoder + generator pair."""
    return _export(load_pytorch_msgnet, path, out_path, **kw)


def export_paddle_msgnet(path, out_path, **kw):
    """PaddleHub ``msgnet`` ``.pdparams`` to the encoder + generator pair."""
    return _export(load_paddle_msgnet, path, out_path, **kw)
