"""A writer of Torch7's binary format (what Lua's ``torch.save`` writes), for tests: the importer's
reader is checked on files this writes, against OpenCV's readNetFromTorch and torchfile.  Written
from the format's description, independently of deepshop_export.importers.torch7.  Also the two
fast-neural-style architectures of Johnson et al. with random weights."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Obj:
    """A Torch7 class instance (an nn module): class name and field table."""
    class_name: str
    fields: dict = field(default_factory=dict)


class Strided:
    """A tensor written with the given strides over a larger storage (not contiguous)."""

    def __init__(self, storage: np.ndarray, shape, strides, offset=0):
        self.storage, self.shape, self.strides, self.offset = storage, shape, strides, offset


class _Writer:
    def __init__(self):
        self.out = bytearray()
        self.ids: dict[int, int] = {}      # id(python object) -> Torch7 memo index
        self.alive: list = []              # keeps those objects alive, so that no id is reused

    def i32(self, v):
        self.out += struct.pack("<i", v)

    def i64(self, v):
        self.out += struct.pack("<q", v)

    def string(self, s: str):
        b = s.encode()
        self.i32(len(b))
        self.out += b

    def _memo(self, obj, kind) -> bool:
        """Writes the type and index; True when the object was written before (a back-reference)."""
        self.i32(kind)
        seen = id(obj) in self.ids
        if not seen:
            self.ids[id(obj)] = len(self.ids) + 1
            self.alive.append(obj)
        self.i32(self.ids[id(obj)])
        return seen

    def obj(self, v):
        if v is None:
            self.i32(0)
        elif isinstance(v, bool):
            self.i32(5)
            self.i32(1 if v else 0)
        elif isinstance(v, (int, float)):
            self.i32(1)
            self.out += struct.pack("<d", float(v))
        elif isinstance(v, str):
            self.i32(2)
            self.string(v)
        elif isinstance(v, dict):
            if not self._memo(v, 3):
                self.i32(len(v))
                for k, x in v.items():
                    self.obj(k)
                    self.obj(x)
        elif isinstance(v, Obj):
            if not self._memo(v, 4):
                self.string("V 1")
                self.string(v.class_name)
                self.obj(v.fields)
        elif isinstance(v, np.ndarray):
            self.tensor(v, Strided(np.ascontiguousarray(v, np.float32).ravel(), v.shape,
                                   [int(np.prod(v.shape[i + 1:])) for i in range(v.ndim)]))
        elif isinstance(v, Strided):
            self.tensor(v, v)
        else:
            raise TypeError(type(v))

    def tensor(self, key, t: Strided):
        if self._memo(key, 4):
            return
        self.string("V 1")
        self.string("torch.FloatTensor")
        self.i32(len(t.shape))
        for s in t.shape:
            self.i64(s)
        for s in t.strides:
            self.i64(s)
        self.i64(t.offset + 1)
        if not self._memo(t.storage, 4):
            self.string("V 1")
            self.string("torch.FloatStorage")
            self.i64(t.storage.size)
            self.out += t.storage.astype("<f4").tobytes()


def write_t7(path, obj) -> str:
    w = _Writer()
    w.obj(obj)
    with open(path, "wb") as f:
        f.write(bytes(w.out))
    return str(path)


# ----------------------------------------------------------------- Johnson's two architectures

def lua_list(items) -> dict:
    return {i + 1: x for i, x in enumerate(items)}


class _Random:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def conv(self, n_in, n_out, k, stride=1, pad=0):
        fan_in = n_in * k * k
        return Obj("nn.SpatialConvolution", {
            "nInputPlane": n_in, "nOutputPlane": n_out, "kW": k, "kH": k, "dW": stride, "dH": stride,
            "padW": pad, "padH": pad, "train": False,
            "weight": (self.rng.normal(0, np.sqrt(2 / fan_in), (n_out, n_in, k, k))).astype(np.float32),
            "bias": self.rng.normal(0, 0.1, n_out).astype(np.float32)})

    def full_conv(self, n_in, n_out):
        return Obj("nn.SpatialFullConvolution", {
            "nInputPlane": n_in, "nOutputPlane": n_out, "kW": 3, "kH": 3, "dW": 2, "dH": 2,
            "padW": 1, "padH": 1, "adjW": 1, "adjH": 1,
            "weight": self.rng.normal(0, np.sqrt(2 / (n_in * 9 / 4)), (n_in, n_out, 3, 3)).astype(np.float32),
            "bias": self.rng.normal(0, 0.1, n_out).astype(np.float32)})

    def norm(self, n, batch):
        w = self.rng.uniform(0.5, 1.5, n).astype(np.float32)
        b = self.rng.uniform(-0.5, 0.5, n).astype(np.float32)
        if not batch:
            return Obj("nn.InstanceNormalization", {"nOutput": n, "eps": 1e-5, "weight": w, "bias": b,
                                                    "momentum": 0.0, "affine": True, "prev_batch_size": -1})
        fields = {"eps": 1e-5, "momentum": 0.1, "affine": True, "train": False, "weight": w, "bias": b,
                  "running_mean": self.rng.normal(0, 0.5, n).astype(np.float32)}
        var = self.rng.uniform(0.5, 2.0, n).astype(np.float32)
        if n == 64:   # the older convention on some layers: running_std = 1 / sqrt(var + eps)
            fields["running_std"] = (1 / np.sqrt(var + 1e-5)).astype(np.float32)
        else:
            fields["running_var"] = var
        return Obj("nn.SpatialBatchNormalization", fields)


def _relu():
    return Obj("nn.ReLU", {"inplace": True, "threshold": 0, "val": 0})


def _pad(p):
    return Obj("nn.SpatialReflectionPadding", {"pad_l": p, "pad_r": p, "pad_t": p, "pad_b": p})


class _Calibration:
    """Runs a calibration image through the layers as they are made (torch.nn.functional), so that
    each batch norm gets the running statistics of what reaches it, as training leaves them: with
    random statistics a random network's activations grow to ~1e4 and every output saturates."""

    def __init__(self, seed):
        import torch
        self.torch = torch
        self.x = torch.from_numpy(np.random.default_rng(seed).normal(0, 60, (1, 3, 96, 96)).astype(np.float32))

    def apply(self, layer: Obj, x=None):
        import torch.nn.functional as F
        torch, f = self.torch, layer.fields
        own = x is None       # the main path: the result becomes the calibration image
        x = self.x if own else x
        name = layer.class_name
        if name == "nn.SpatialReflectionPadding":
            y = F.pad(x, (f["pad_l"], f["pad_r"], f["pad_t"], f["pad_b"]), mode="reflect")
        elif name == "nn.SpatialConvolution":
            y = F.conv2d(x, torch.from_numpy(f["weight"]), torch.from_numpy(f["bias"]), f["dW"], f["padW"])
        elif name == "nn.SpatialFullConvolution":
            y = F.conv_transpose2d(x, torch.from_numpy(f["weight"]), torch.from_numpy(f["bias"]), 2, 1, 1)
        elif name == "nn.SpatialBatchNormalization":
            mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
            f["running_mean"] = mean.numpy().astype(np.float32)
            if "running_std" in f:
                f["running_std"] = (1 / np.sqrt(var.numpy() + 1e-5)).astype(np.float32)
            else:
                f["running_var"] = var.numpy().astype(np.float32)
            y = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-5)
            y = y * torch.from_numpy(f["weight"])[:, None, None] + torch.from_numpy(f["bias"])[:, None, None]
        elif name == "nn.InstanceNormalization":
            mean, var = x.mean(dim=(2, 3), keepdim=True), x.var(dim=(2, 3), unbiased=False, keepdim=True)
            y = (x - mean) / torch.sqrt(var + 1e-5)
            y = y * torch.from_numpy(f["weight"])[:, None, None] + torch.from_numpy(f["bias"])[:, None, None]
        elif name == "nn.ReLU":
            y = torch.relu(x)
        elif name == "nn.ShaveImage":
            y = x[:, :, 2:-2, 2:-2]
        else:
            y = x
        if own:
            self.x = y
        return y


def johnson_network(seed: int, batch_norm: bool, blocks: int = 5):
    """fast-neural-style's c9s1-32,d64,d128,R128 x blocks,u64,u32,c9s1-3 + Tanh, MulConstant(150),
    TotalVariation.  Instance norm: 'reflect' padding (reflection before every convolution,
    Identity shortcuts).  Batch norm (the eccv16 files): 'reflect-start' padding (40 px reflected
    once, zero padding in c9/d, unpadded residual convolutions with ShaveImage(2) shortcuts), its
    running statistics calibrated on a random image."""
    r = _Random(seed)
    cal = _Calibration(seed)
    seq = []

    def add(*layers):
        for layer in layers:
            seq.append(layer)
            if cal:
                cal.apply(layer)

    if batch_norm:
        add(_pad(40), r.conv(3, 32, 9, 1, 4))
    else:
        add(_pad(4), r.conv(3, 32, 9))
    add(r.norm(32, batch_norm), _relu(), r.conv(32, 64, 3, 2, 1), r.norm(64, batch_norm), _relu(),
        r.conv(64, 128, 3, 2, 1), r.norm(128, batch_norm), _relu())
    for _ in range(blocks):
        body = []
        x = cal.x.clone() if cal else None
        for j in range(2):
            layers = ([] if batch_norm else [_pad(1)]) + [r.conv(128, 128, 3), r.norm(128, batch_norm)]
            layers += [_relu()] if j == 0 else []
            for layer in layers:
                body.append(layer)
                if cal:
                    x = cal.apply(layer, x)
        shortcut = Obj("nn.ShaveImage", {"size": 2}) if batch_norm else Obj("nn.Identity", {})
        if cal:
            cal.x = x + cal.apply(shortcut, cal.x)
        concat = Obj("nn.ConcatTable", {"modules": lua_list([Obj("nn.Sequential", {"modules": lua_list(body)}),
                                                             shortcut])})
        seq.append(Obj("nn.Sequential", {"modules": lua_list([concat, Obj("nn.CAddTable", {"inplace": False})])}))
    add(r.full_conv(128, 64), r.norm(64, batch_norm), _relu(), r.full_conv(64, 32), r.norm(32, batch_norm), _relu())
    if batch_norm:
        add(r.conv(32, 3, 9, 1, 4))
    else:
        add(_pad(4), r.conv(32, 3, 9))
    # As trained: tanh mostly unsaturated (pre-tanh std 0.6), so the output spans 0..255 in shades.
    last = seq[-1].fields
    scale = 0.6 / float(cal.x.std())
    last["weight"] = (last["weight"] * scale).astype(np.float32)
    last["bias"] = (last["bias"] * scale).astype(np.float32)
    add(Obj("nn.Tanh", {}), Obj("nn.MulConstant", {"constant_scalar": 150.0, "inplace": False}),
        Obj("nn.TotalVariation", {"strength": 1e-6}))
    return Obj("nn.Sequential", {"modules": lua_list(seq), "train": False})
