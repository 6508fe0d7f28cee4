"""Export the Gatys loss-and-gradient graph of a VGG to an ONNX file with its metadata.

The file is written only after onnx.checker has passed and (``validate``) the gradient computed by
ONNX Runtime on a small image has matched torch.autograd on the same objective."""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import onnx

from deepshop_native.core.errors import ModelError, OutputExistsError
from deepshop_native.core.files import atomic_write, output_exists_message
from deepshop_native.core.metadata import FORMAT_VERSION

from ... import __version__ as EXPORTER_VERSION
from ...onnx.metadata import write_metadata
from . import gradient_graph as gg
from .feature_network import (DEFAULT_CONTENT_LAYERS, DEFAULT_MODEL, DEFAULT_STYLE_LAYERS, FeatureNetwork,
                              load_feature_network)

FAMILY = "gatys_vgg"


@dataclass
class GatysExportReport:
    path: str
    metadata: dict
    file_bytes: int = 0
    validation_error: float | None = None   # relative L2 error of the gradient against torch.autograd
    layers: list = field(default_factory=list)

    def summary(self) -> str:
        checked = ("not validated" if self.validation_error is None else
                   f"gradient checked against torch.autograd (relative L2 error {self.validation_error:.1e})")
        return (f"{self.path}: {self.metadata['name']}, {self.metadata['feature_network']} "
                f"({self.metadata['feature_weights']} weights, {self.metadata['pooling']} pooling), "
                f"{self.file_bytes / 1e6:.1f} MB, {checked}")


def io_roles(content_layers: Sequence[str], style_layers: Sequence[str]) -> tuple[dict, dict]:
    """The ``deepshop.inputs`` / ``deepshop.outputs`` role maps of the graph."""
    inputs = {gg.IMAGE: "image"}
    inputs.update({gg.content_target_name(l): "aux" for l in content_layers})
    inputs.update({gg.style_target_name(l): "aux" for l in style_layers})
    inputs.update({gg.CONTENT_WEIGHTS: "aux", gg.STYLE_WEIGHTS: "aux", gg.TV_WEIGHT: "aux"})
    outputs = {gg.LOSS: "scalar", gg.CONTENT_LOSSES: "aux", gg.STYLE_LOSSES: "aux", gg.TV_LOSS: "scalar",
               gg.GRADIENT: "gradient"}
    outputs.update({gg.features_name(l): "features" for l in content_layers})
    outputs.update({gg.gram_name(l): "aux" for l in style_layers})
    return inputs, outputs


def tiled_io_roles(content_layers: Sequence[str], style_layers: Sequence[str]) -> tuple[dict, dict]:
    """The role maps of the tiled variant (gradient_graph.build_tiled_gradient_graph)."""
    inputs = {gg.IMAGE: "image", gg.CONTENT_SCALES: "aux"}
    inputs.update({gg.content_target_name(l): "aux" for l in content_layers})
    inputs.update({gg.style_gradient_name(l): "aux" for l in style_layers})
    outputs = {gg.GRADIENT: "gradient"}
    outputs.update({gg.features_name(l): "features" for l in gg.tiled_feature_layers(content_layers, style_layers)})
    return inputs, outputs


def _torch_reference(net: FeatureNetwork, feeds: dict, content_layers, style_layers) -> np.ndarray:
    """dloss/dimage of the same objective written in torch and differentiated by autograd."""
    import torch
    import torch.nn.functional as F

    x = torch.tensor(feeds[gg.IMAGE], dtype=torch.float64, requires_grad=True)
    a = x.flip(1) if net.bgr else x
    a = (a - torch.tensor(net.shift, dtype=torch.float64).view(1, 3, 1, 1)) * \
        torch.tensor(net.scale, dtype=torch.float64).view(1, 3, 1, 1)
    features = {}
    for conv in net.convs:
        if conv.pool_before:
            a = F.max_pool2d(a, 2) if net.pooling == "max" else F.avg_pool2d(a, 2)
        a = torch.relu(F.conv2d(a, torch.from_numpy(conv.weight).double(), torch.from_numpy(conv.bias).double(),
                                padding=1))
        features[conv.name] = a
    loss = feeds[gg.TV_WEIGHT][0] * 0.5 * (((x[..., :, 1:] - x[..., :, :-1]) ** 2).sum() +
                                           ((x[..., 1:, :] - x[..., :-1, :]) ** 2).sum())
    for i, l in enumerate(content_layers):
        target = torch.from_numpy(feeds[gg.content_target_name(l)]).double()
        loss = loss + feeds[gg.CONTENT_WEIGHTS][i] * ((features[l] - target) ** 2).mean()
    for i, l in enumerate(style_layers):
        f = features[l].reshape(features[l].shape[1], -1)
        gram = f @ f.T / f.numel()
        loss = loss + feeds[gg.STYLE_WEIGHTS][i] * ((gram - torch.from_numpy(feeds[gg.style_target_name(l)]).double()) ** 2).mean()
    loss.backward()
    return x.grad.numpy()


def _cpu_session(model: onnx.ModelProto):
    """An ONNX Runtime CPU session of a graph being validated (a ModelError when it cannot load)."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelError(f"validation: ONNX Runtime {ort.__version__} cannot load the graph: {e}") from e


def _validate(model: onnx.ModelProto, net: FeatureNetwork, content_layers, style_layers) -> float:
    """Relative L2 error of the graph's gradient (ONNX Runtime, CPU) against torch.autograd on the
    same objective, on a small random image with random targets."""
    sess = _cpu_session(model)
    rng = np.random.default_rng(1234)
    side = net.stride_multiple * 2
    feeds = {gg.IMAGE: rng.uniform(0, 255, (1, 3, side, side)).astype(np.float32),
             gg.CONTENT_WEIGHTS: np.ones(len(content_layers), np.float32),
             gg.STYLE_WEIGHTS: np.full(len(style_layers), 1e3, np.float32), gg.TV_WEIGHT: np.array([1e-3], np.float32)}
    names = [c.name for c in net.convs]
    for l in content_layers:
        h = side >> sum(c.pool_before for c in net.convs[:names.index(l) + 1])
        feeds[gg.content_target_name(l)] = rng.uniform(0, 1, (1, net.channels(l), h, h)).astype(np.float32)
    for l in style_layers:
        feeds[gg.style_target_name(l)] = np.zeros((net.channels(l),) * 2, np.float32)
    (grad,) = sess.run([gg.GRADIENT], feeds)
    expected = _torch_reference(net, feeds, content_layers, style_layers)
    return float(np.linalg.norm(grad - expected) / max(np.linalg.norm(expected), 1e-30))


def _validate_tiled(model: onnx.ModelProto, net: FeatureNetwork, content_layers, style_layers) -> float:
    """Relative L2 error against torch.autograd of the tiled graph's gradient run on a whole small
    image as one tile: its features give the Gram matrices, S and s are formed from them as the
    tiled driver does, and the reference is the objective without total variation."""
    sess = _cpu_session(model)
    rng = np.random.default_rng(1234)
    side = net.stride_multiple * 2
    image = rng.uniform(0, 255, (1, 3, side, side)).astype(np.float32)
    cw, sw = np.ones(len(content_layers)), np.full(len(style_layers), 1e3)
    names = [c.name for c in net.convs]
    targets = {}
    for l in content_layers:
        h = side >> sum(c.pool_before for c in net.convs[:names.index(l) + 1])
        targets[l] = rng.uniform(0, 1, (1, net.channels(l), h, h)).astype(np.float32)
    feeds = {gg.IMAGE: image, gg.CONTENT_SCALES: np.zeros(len(content_layers), np.float32)}
    feeds.update({gg.content_target_name(l): t for l, t in targets.items()})
    feeds.update({gg.style_gradient_name(l): np.zeros((net.channels(l),) * 2, np.float32) for l in style_layers})
    features = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    scales = []
    for i, l in enumerate(content_layers):
        scales.append(2 * cw[i] / features[gg.features_name(l)].size)
    feeds[gg.CONTENT_SCALES] = np.array(scales, np.float32)
    for i, l in enumerate(style_layers):
        f = features[gg.features_name(l)].astype(np.float64).reshape(net.channels(l), -1)
        c, m = f.shape
        error = f @ f.T / (c * m)                      # the targets are zero: E = G
        feeds[gg.style_gradient_name(l)] = (2 * sw[i] * (error + error.T) / (c * c * c * m)).astype(np.float32)
    (grad,) = sess.run([gg.GRADIENT], feeds)
    reference = {gg.IMAGE: image, gg.CONTENT_WEIGHTS: cw, gg.STYLE_WEIGHTS: sw, gg.TV_WEIGHT: np.zeros(1)}
    reference.update({gg.content_target_name(l): t for l, t in targets.items()})
    reference.update({gg.style_target_name(l): np.zeros((net.channels(l),) * 2, np.float32) for l in style_layers})
    expected = _torch_reference(net, reference, content_layers, style_layers)
    return float(np.linalg.norm(grad - expected) / max(np.linalg.norm(expected), 1e-30))


def export_gatys(out_path: str | os.PathLike, *, model: str = DEFAULT_MODEL, weights: str | None = None,
                 pooling: str = "max", content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS,
                 style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS, name: str | None = None,
                 license: str | None = None, validate: bool = True, overwrite: bool = False,
                 tiled: bool = False, net: FeatureNetwork | None = None) -> GatysExportReport:
    """Write the loss-and-gradient graph of the VGG named by ``model`` (see
    ``feature_network.load_feature_network``) for the given layers to ``out_path``; ``tiled``: its
    tile graph for outputs evaluated tile by tile instead (family gatys_vgg_tiled,
    gradient_graph.build_tiled_gradient_graph).  ``license``: of the weights, default: what the
    weights' source says (CC-BY-4.0 for the ImageNet VGG19), else "unknown".  ``net``: the
    feature network already loaded (with these layers and pooling), instead of ``model``."""
    out_path = os.fspath(out_path)
    if os.path.exists(out_path) and not overwrite:
        raise OutputExistsError(output_exists_message(out_path))
    content_layers, style_layers = list(content_layers), list(style_layers)
    if net is None:
        net = load_feature_network(model, content_layers + style_layers, pooling, weights)
    license = license or net.license or "unknown"
    if tiled:
        graph = gg.build_tiled_gradient_graph(net, content_layers, style_layers)
        inputs, outputs = tiled_io_roles(content_layers, style_layers)
    else:
        graph = gg.build_gradient_graph(net, content_layers, style_layers)
        inputs, outputs = io_roles(content_layers, style_layers)
    provenance = {
        "exporter": f"deepshop_export {EXPORTER_VERSION}",
        "exported_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "opset": gg.OPSET, "onnx": onnx.__version__,
        "weights_file": os.path.basename(net.weights_file),
        **({"weights": net.provenance} if net.provenance else {}),
        "adjoint_convolution": gg.ADJOINT_CONVOLUTION,
        "loss": "content mean((F-P)^2); style mean((G-A)^2), G = FF'/(C*h*w); tv 0.5*sum(dx^2+dy^2) on RGB 0..255",
    }
    meta = {
        "format": FORMAT_VERSION,
        "family": FAMILY + (gg.TILED_FAMILY_SUFFIX if tiled else ""),
        "name": name or f"gatys-{net.arch}-{net.source}-{pooling}" + ("-tiled" if tiled else ""),
        "input_layout": "NCHW",
        "value_range": "0,255",
        "channel_order": "RGB",
        "mean": "0,0,0",          # the graph does the network's own preprocessing
        "stride_multiple": str(net.stride_multiple),
        "receptive_field": str(net.receptive_field),   # of the deepest feature layer
        "normalization": "none",                       # VGG has no normalisation layers
        "precision": "fp32",
        "license": license,
        "provenance": json.dumps(provenance, sort_keys=True),
        "inputs": json.dumps(inputs),
        "outputs": json.dumps(outputs),
        "feature_network": net.arch,
        "feature_weights": net.source,
        "feature_input": net.input_mode,
        "pooling": {"max": "max", "avg": "average"}[pooling],   # the contract's spelling
        "content_layers": json.dumps({l: net.channels(l) for l in content_layers}),
        "style_layers": json.dumps({l: net.channels(l) for l in style_layers}),
    }
    write_metadata(graph, meta)
    try:
        onnx.checker.check_model(graph, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ModelError(f"{out_path}: the graph fails onnx.checker: {e}") from e
    report = GatysExportReport(path=out_path, metadata=meta, layers=[c.name for c in net.convs])
    if validate:
        report.validation_error = (_validate_tiled if tiled else _validate)(graph, net, content_layers, style_layers)
        if not report.validation_error < 1e-4:
            raise ModelError(f"{out_path}: not written: the graph's gradient differs from torch.autograd's "
                             f"(relative L2 error {report.validation_error:.3g})")
    atomic_write(out_path, lambda f: f.write(graph.SerializeToString()), overwrite=overwrite)
    report.file_bytes = os.path.getsize(out_path)
    return report
