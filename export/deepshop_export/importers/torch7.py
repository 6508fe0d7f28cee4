"""A reader of Torch7's binary serialisation (``torch.save`` in Lua), enough for network files.

The format is a stream of typed objects, little-endian, ``int`` = 4 bytes, ``long`` = 8 bytes:

    object   := int type, then by type:
                0 nil | 1 number: double | 5 boolean: int | 2 string: int length, bytes
                3 table: int memo index, int n, n x (key object, value object)
                4 torch object: int memo index, string "V <version>", string class name, then
                  tensors:  int ndim, ndim x long size, ndim x long stride, long offset (1-based),
                            storage object
                  storages: long n, n elements raw
                  anything else (nn modules, ...): one object, its field table
                6 / 7 / 8 function: Lua byte code (refused: network files have none)

An object whose memo index was seen before is not repeated: the index refers back to it (shared
tensors, cycles).  Tables become dicts (integral number keys as ints), torch objects
:class:`TorchObject`, tensors numpy arrays.  The ASCII variant of the format is not read.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import numpy as np

from deepshop_native.core.errors import ModelError

from . import read_source

_NIL, _NUMBER, _STRING, _TABLE, _TORCH, _BOOLEAN, _FUNCTION, _LEGACY_RECUR_FUNCTION, _RECUR_FUNCTION = range(9)

#: Element type of each tensor/storage class (CUDA ones are stored the same way as their CPU kin).
_ELEMENT_TYPES = {
    "Double": "<f8", "Float": "<f4", "Half": "<f2", "Long": "<i8", "Int": "<i4", "Short": "<i2",
    "Char": "<i1", "Byte": "<u1", "Cuda": "<f4", "CudaDouble": "<f8", "CudaHalf": "<f2", "CudaLong": "<i8",
    "CudaInt": "<i4", "CudaShort": "<i2", "CudaChar": "<i1", "CudaByte": "<u1",
}
#: Deeper nesting than this is not a network file (and would exhaust Python's stack).
_MAX_DEPTH = 200


@dataclass
class TorchObject:
    """A serialised Torch7 class instance other than a tensor: its class name (``nn.ReLU``) and
    its fields."""
    class_name: str
    version: int = 0
    fields: dict = field(default_factory=dict)

    def get(self, key, default=None):
        return self.fields.get(key, default)


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data, self.pos, self.name = data, 0, name
        self.memo: dict[int, object] = {}

    def _fail(self, why: str):
        raise ModelError(f"{self.name}: not a readable Torch7 file: {why} (at byte {self.pos})")

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            self._fail(f"needs {n} more bytes, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def _int(self) -> int:
        return struct.unpack("<i", self._take(4))[0]

    def _long(self) -> int:
        return struct.unpack("<q", self._take(8))[0]

    def _string(self) -> str:
        return self._take(self._int()).decode("latin-1")

    def read(self, depth: int = 0):
        if depth > _MAX_DEPTH:
            self._fail(f"objects nested deeper than {_MAX_DEPTH}")
        kind = self._int()
        if kind == _NIL:
            return None
        if kind == _NUMBER:
            value = struct.unpack("<d", self._take(8))[0]
            return int(value) if value.is_integer() and abs(value) < 2 ** 53 else value
        if kind == _BOOLEAN:
            return self._int() == 1
        if kind == _STRING:
            return self._string()
        if kind in (_TABLE, _TORCH):
            index = self._int()
            if index in self.memo:
                return self.memo[index]
            return self._table(index, depth) if kind == _TABLE else self._torch(index, depth)
        if kind in (_FUNCTION, _LEGACY_RECUR_FUNCTION, _RECUR_FUNCTION):
            self._fail("it contains a Lua function, which a network file does not")
        self._fail(f"unknown object type {kind}")

    def _table(self, index: int, depth: int) -> dict:
        table: dict = {}
        self.memo[index] = table          # before the contents: a table may contain itself
        for _ in range(self._int()):
            key = self.read(depth + 1)
            table[key] = self.read(depth + 1)
        return table

    def _torch(self, index: int, depth: int):
        version_or_class = self._string()
        if version_or_class.startswith("V "):
            version, class_name = int(version_or_class[2:]), self._string()
        else:
            version, class_name = 0, version_or_class
        if class_name.startswith("torch.") and class_name.endswith(("Tensor", "Storage")):
            kind = class_name[len("torch."):]
            is_tensor = kind.endswith("Tensor")
            dtype = _ELEMENT_TYPES.get(kind[:-len("Tensor")] if is_tensor else kind[:-len("Storage")])
            if dtype is None:
                self._fail(f"unsupported tensor type {class_name}")
            value = self._tensor(np.dtype(dtype), depth) if is_tensor else self._storage(np.dtype(dtype))
            self.memo[index] = value
            return value
        obj = TorchObject(class_name, version)
        self.memo[index] = obj
        fields = self.read(depth + 1)
        if not isinstance(fields, dict):
            self._fail(f"{class_name} has no field table")
        obj.fields = fields
        return obj

    def _storage(self, dtype: np.dtype) -> np.ndarray:
        n = self._long()
        return np.frombuffer(self._take(n * dtype.itemsize), dtype=dtype).copy() if n else np.zeros(0, dtype)

    def _tensor(self, dtype: np.dtype, depth: int) -> np.ndarray:
        ndim = self._int()
        if not 0 <= ndim <= 16:
            self._fail(f"a tensor with {ndim} dimensions")
        shape = [self._long() for _ in range(ndim)]
        strides = [self._long() for _ in range(ndim)]
        offset = self._long() - 1
        storage = self.read(depth + 1)
        if ndim == 0 or storage is None or 0 in shape:
            return np.zeros(shape if ndim else (0,), dtype)
        if not isinstance(storage, np.ndarray) or storage.dtype != dtype:
            self._fail("a tensor whose storage is not of its type")
        last = offset + sum((s - 1) * st for s, st in zip(shape, strides))
        if offset < 0 or min(shape) < 0 or min(strides) < 0 or last >= len(storage):
            self._fail(f"a tensor {shape} (strides {strides}, offset {offset}) beyond its storage of {len(storage)}")
        view = np.lib.stride_tricks.as_strided(storage[offset:], shape, [st * dtype.itemsize for st in strides])
        return np.array(view)


def load_t7(path: str | os.PathLike):
    """The object serialised in the Torch7 binary file ``path`` (ModelError naming the file when
    it is missing or not readable as such)."""
    path = os.fspath(path)
    data = read_source(path)
    if data[:4].isdigit():   # the ASCII variant writes the type as text
        raise ModelError(f"{path}: a Torch7 file in ASCII format; only the binary format is read")
    return _Reader(data, path).read()


def lua_list(table) -> list:
    """A Lua array (a table keyed 1..n) as a list."""
    if isinstance(table, list):
        return table
    if not isinstance(table, dict):
        return []
    return [table[i] for i in range(1, len(table) + 1) if i in table]
