"""Training checkpoints: written atomically, read back with ``torch.load(weights_only=True)`` (so
only plain types and tensors go in), with the RNG states that let ``--resume`` continue exactly."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from deepshop_native.core.errors import ModelError
from deepshop_native.core.files import atomic_write


def rng_state() -> dict:
    """The state of every generator a run draws from (torch, numpy, Python, CUDA)."""
    # Plain types and tensors only, so checkpoints load with torch.load(weights_only=True).
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    st = {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
          "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    kind, keys, pos, has_gauss, gauss = st["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def save_atomically(obj, path: str) -> None:
    """torch.save through the atomic writer (a reader never sees half a checkpoint)."""
    atomic_write(path, lambda f: torch.save(obj, f), overwrite=True)


def load_checkpoint(path: str, fmt: str) -> dict:
    """The checkpoint dict of ``path``, which must be of format ``fmt`` (ModelError otherwise)."""
    if not os.path.isfile(path):
        raise ModelError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{path}: cannot read the checkpoint ({first})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise ModelError(f"{path}: not a deepshop-train checkpoint (a model-only .pth cannot be resumed)")
    return ckpt
