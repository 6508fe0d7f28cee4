"""TransformerNet (a torch module) to a single-file ONNX model carrying the deepshop metadata.

Pipeline: torch.onnx.export with the torch.export-based ("dynamo") exporter, which gives a clean
graph of Pad(reflect) / Conv / InstanceNormalization / Relu / Add / Resize(nearest) with dynamic
batch, height and width, whereas the TorchScript exporter spells every reflection pad as ~8 shape
nodes (Slice/Concat/Transpose/...).  The dynamo exporter emits opset 18; for opset 17 a small pass
below rewrites the two ops whose definition changed (Pad, Resize) when they use nothing new.
Then optional fp16 conversion, metadata, structural check, numeric check against torch with
ONNX Runtime, and an atomic write.
"""
from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from deepshop_native.errors import ModelError, OutputExistsError
from deepshop_native.files import atomic_write, output_exists_message
from deepshop_native.model_metadata import FORMAT_VERSION

from . import __version__ as EXPORTER_VERSION
from . import transformer_net as tn
from .onnx_metadata import write_metadata
from .receptive_field import receptive_field

#: Lowest opset we write: the project's floor, which every ONNX Runtime the engine accepts
#: (>= 1.17) runs; older ones gain nothing for these ops.
MIN_OPSET = 17
#: Highest opset checked end to end (torch 2.13 exporter -> ONNX Runtime 1.31).  onnx itself
#: knows later ones still under development, which ONNX Runtime refuses to load.
MAX_OPSET = 23
#: The dynamo exporter's own opset (it has no translations below it).
EXPORTER_OPSET = 18

#: Largest absolute difference from float32 torch that validation accepts, in grey levels of the
#: 0..255 scale.  Errors grow with the output's magnitude, and networks (even trained ones) output
#: values beyond 0..255 before clipping, so the bound is scaled by max(1, peak |output| / 255).
#: fp32: only summation order differs (measured ~1e-5..1e-3).  fp16: weights rounded to 11
#: significant bits through 16 convolutions (measured 0.25..0.35 per 255 on a net whose outputs
#: span -500..600); one grey level is the budget.
TOLERANCE = {"fp32": 1e-2, "fp16": 1.0}

#: Image sizes (H, W) of the numeric check: non-square, different, multiples of 4.
VALIDATION_SIZES = ((132, 100), (64, 96))

#: Ops kept in float32 inside an fp16 model.  InstanceNormalization sums squares over the whole
#: image: computed in fp16 that sum overflows (> 65504) for activations of a few hundred, and the
#: mean of a large image loses precision.  Execution providers differ in how they compute it (ONNX
#: Runtime's CPU provider goes through float32 anyway), so it is pinned to float32 between Casts.
FP32_OPS = frozenset({"InstanceNormalization"})


@dataclass
class ExportReport:
    path: str
    name: str
    precision: str
    opset: int
    file_bytes: int
    receptive_field: int
    validated: bool
    max_abs_error: float | None = None          # vs float32 torch, over VALIDATION_SIZES
    tolerance: float | None = None              # TOLERANCE[precision] scaled to the output's peak
    validation_sizes: tuple = ()
    metadata: dict = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"wrote {self.path} ({self.file_bytes / 1e6:.2f} MB, {self.precision}, opset {self.opset}, "
                 f"receptive field {self.receptive_field} px)"]
        if self.validated:
            sizes = ", ".join(f"1x3x{h}x{w}" for h, w in self.validation_sizes)
            lines.append(f"validation: onnx.checker ok; ONNX Runtime vs torch on random 0..255 images ({sizes}): "
                         f"max abs error {self.max_abs_error:.3g} (tolerance {self.tolerance:g})")
        else:
            lines.append("validation: onnx.checker ok; numeric comparison skipped (--no-validate)")
        return "\n".join(lines)


def _torch_export(net: torch.nn.Module, opset: int) -> onnx.ModelProto:
    from torch.export import Dim

    sample = torch.rand(1, 3, *VALIDATION_SIZES[0], generator=torch.Generator().manual_seed(0)) * 255
    dims = {0: Dim("batch"), 2: Dim("height"), 3: Dim("width")}
    chatter = io.StringIO()
    # The exporter prints progress lines and warns about optional packages (torchvision); keep them
    # to show only when it fails.
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logger.setLevel(logging.ERROR)
            program = torch.onnx.export(
                net, (sample,), None, input_names=["input"], output_names=["output"],
                opset_version=max(opset, EXPORTER_OPSET), dynamo=True, external_data=False,
                dynamic_shapes=(dims,),
            )
    except Exception as e:
        raise ModelError(f"torch.onnx.export failed: {e}\n{chatter.getvalue()[-2000:]}") from e
    finally:
        logger.setLevel(level)
    return program.model_proto


def _strip_exporter_annotations(model: onnx.ModelProto) -> None:
    """Drop the exporter's per-node annotations (stack traces with this machine's paths, fx node
    dumps): they mean nothing to the engine and should not ship with the weights."""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        del vi.metadata_props[:]
    for init in model.graph.initializer:
        del init.metadata_props[:]
    model.graph.doc_string = ""
    model.doc_string = ""


def _default_opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def lower_to_opset_17(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite an opset-18 graph as opset 17 when it uses nothing that 18 added.

    onnx's version converter has no 18 -> 17 adapter for Pad.  Between the two, only Pad (new
    optional `axes` input) and Resize (new `antialias`, `keep_aspect_ratio_policy`, `axes`
    attributes) of our op set changed; every other op is checked to have the same definition."""
    if model.functions:
        raise ModelError("cannot lower to opset 17: the graph has local functions")
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise ModelError(f"cannot lower to opset 17: op {node.domain}::{node.op_type}")
        if onnx.defs.get_schema(node.op_type, 18).since_version <= 17:
            continue
        if node.op_type == "Pad":
            if len(node.input) > 3 and node.input[3]:
                raise ModelError(f"cannot lower to opset 17: Pad node {node.name} uses 'axes'")
        elif node.op_type == "Resize":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            new_default = {"antialias": 0, "keep_aspect_ratio_policy": b"stretch"}
            if "axes" in attrs or any(attrs.get(k, v) != v for k, v in new_default.items()):
                raise ModelError(f"cannot lower to opset 17: Resize node {node.name} uses opset-18 attributes {attrs}")
            kept = [a for a in node.attribute if a.name not in new_default]
            del node.attribute[:]
            node.attribute.extend(kept)
        else:
            raise ModelError(f"cannot lower to opset 17: {node.op_type} changed in opset 18")
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = 17
    return model


def _data_slot(node: onnx.NodeProto, index: int, opset: int) -> bool:
    """Whether input ``index`` of ``node`` has the same element type as its first (data) input,
    i.e. must become float16 with it.  Resize's `scales`, for instance, stays float32."""
    schema = onnx.defs.get_schema(node.op_type, opset)
    formal = schema.inputs[min(index, len(schema.inputs) - 1)]
    return formal.type_str == schema.inputs[0].type_str


def convert_to_fp16(model: onnx.ModelProto, fp32_ops=FP32_OPS) -> onnx.ModelProto:
    """Float16 weights and computation, float32 graph inputs and outputs.

    A Cast after each float input and before each float output keeps the model's interface
    float32.  Nodes whose op is in ``fp32_ops`` keep float32 weights and run between a Cast to
    float32 and a Cast back.  Value types recorded by the exporter are dropped (they changed);
    onnx.checker's full check re-infers and verifies them."""
    graph = model.graph
    opset = _default_opset(model)
    if any(n.op_type == "Constant" or n.domain not in ("", "ai.onnx") for n in graph.node):
        raise ModelError("fp16 conversion: the graph has Constant or custom-domain nodes, which this pass does not handle")
    initializers = {t.name: t for t in graph.initializer}

    # Initializers: float16 when every use is a data input of a float16 node.
    uses: dict[str, set[bool]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in initializers and initializers[name].data_type == TensorProto.FLOAT:
                to_half = node.op_type not in fp32_ops and _data_slot(node, i, opset)
                uses.setdefault(name, set()).add(to_half)
    for name, kinds in uses.items():
        if kinds == {True, False}:
            raise ModelError(f"fp16 conversion: initializer {name} feeds both float16 and float32 inputs")
        if kinds == {True}:
            t = initializers[name]
            half = numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), name)
            t.CopyFrom(half)

    new_nodes: list[onnx.NodeProto] = []
    renamed: dict[str, str] = {}
    for inp in graph.input:
        if inp.type.tensor_type.elem_type == TensorProto.FLOAT and inp.name not in initializers:
            renamed[inp.name] = inp.name + "_fp16"
            new_nodes.append(helper.make_node("Cast", [inp.name], [renamed[inp.name]], to=TensorProto.FLOAT16,
                                              name=f"cast_{inp.name}_to_fp16"))
    outputs = {o.name for o in graph.output if o.type.tensor_type.elem_type == TensorProto.FLOAT}

    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
        if node.op_type in fp32_ops:
            for i, name in enumerate(node.input):
                if name and name not in initializers and _data_slot(node, i, opset):
                    cast_out = f"{name}_fp32_for_{node.name}"
                    new_nodes.append(helper.make_node("Cast", [name], [cast_out], to=TensorProto.FLOAT,
                                                      name=f"cast_{name}_to_fp32_for_{node.name}"))
                    node.input[i] = cast_out
            new_nodes.append(node)
            for i, name in enumerate(list(node.output)):
                node.output[i] = name + "_fp32"
                new_nodes.append(helper.make_node("Cast", [node.output[i]], [name], to=TensorProto.FLOAT16,
                                                  name=f"cast_{name}_to_fp16"))
        else:
            new_nodes.append(node)

    # Graph outputs: the producer writes <name>_fp16 (and its consumers read that), a final Cast
    # gives the float32 <name>.
    to_fp16_name = {name: name + "_fp16" for name in outputs}
    for node in new_nodes:
        for names in (node.input, node.output):
            renamed_list = [to_fp16_name.get(n, n) for n in names]
            del names[:]
            names.extend(renamed_list)
    for name in outputs:
        new_nodes.append(helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT,
                                          name=f"cast_{name}_to_fp32"))
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]
    return model


def _versions() -> dict[str, str]:
    import onnxscript
    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxscript": onnxscript.__version__}


def _validate_numerically(model_bytes: bytes, net: torch.nn.Module) -> tuple[float, float]:
    """(max abs error, peak |torch output|) over the VALIDATION_SIZES random images."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelError(f"validation: ONNX Runtime {ort.__version__} cannot load the exported model: {e}") from e
    gen = torch.Generator().manual_seed(1234)
    worst = peak = 0.0
    for h, w in VALIDATION_SIZES:
        x = torch.rand(1, 3, h, w, generator=gen) * 255
        with torch.no_grad():
            expected = net(x).numpy()
        (got,) = session.run(["output"], {"input": x.numpy()})
        if got.shape != expected.shape or got.dtype != np.float32:
            raise ModelError(f"validation: ONNX output {got.dtype}{got.shape} != torch float32{expected.shape} at {h}x{w}")
        worst = max(worst, float(np.max(np.abs(got - expected))))
        peak = max(peak, float(np.max(np.abs(expected))))
    return worst, peak


def _check_output_path(out_path: str, overwrite: bool) -> None:
    folder = os.path.dirname(os.path.abspath(out_path))
    if os.path.isdir(out_path):
        raise ModelError(f"{out_path}: is a folder, expected an .onnx file path")
    if not os.path.isdir(folder):
        raise ModelError(f"{out_path}: the output folder {folder} does not exist")
    if os.path.exists(out_path) and not overwrite:
        raise OutputExistsError(output_exists_message(out_path))


def _write_atomically(model: onnx.ModelProto, out_path: str, overwrite: bool) -> None:
    atomic_write(out_path, lambda f: f.write(model.SerializeToString()), overwrite, error=ModelError)


def export_transformer_net(net: torch.nn.Module, out_path: str | os.PathLike, *, name: str, provenance: dict,
                           license: str = "unknown", fp16: bool = False, opset: int = 17,
                           validate: bool = True, overwrite: bool = False) -> ExportReport:
    """Export ``net`` (a TransformerNet, input and output N x 3 x H x W RGB 0..255) to ``out_path``.

    ``provenance`` entries (source checkpoint, its sha256, style image, training settings, ...)
    are stored with the exporter version, the UTC date and the torch/onnx versions as JSON in
    ``deepshop.provenance``.  The structural check always runs; ``validate`` adds the comparison
    with torch, which raises ModelError beyond ``TOLERANCE[precision]`` (scaled to the output's
    peak, see there).  Refuses to replace an
    existing file unless ``overwrite``; never leaves a partial file."""
    out_path = os.fspath(out_path)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset} is not supported: use {MIN_OPSET}..{MAX_OPSET}")
    _check_output_path(out_path, overwrite)
    precision = "fp16" if fp16 else "fp32"

    # A float32 CPU copy in eval mode: the caller's module (maybe on a GPU, mid-training) is untouched.
    net = copy.deepcopy(net).float().cpu().eval()
    model = _torch_export(net, opset)
    _strip_exporter_annotations(model)
    if opset == 17:
        lower_to_opset_17(model)
    if _default_opset(model) != opset:  # the exporter falls back silently when it cannot convert
        raise ModelError(f"{out_path}: not written: torch exported opset {_default_opset(model)}, not the requested {opset}")
    if fp16:
        convert_to_fp16(model)

    rf = receptive_field(net)
    prov = {
        "exporter": f"deepshop_export {EXPORTER_VERSION}",
        "exported_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "opset": opset,
        **_versions(),
        **provenance,
    }
    meta = {
        "format": FORMAT_VERSION,
        "family": "transformer_net",
        "name": name,
        "input_layout": "NCHW",
        "value_range": ",".join(f"{v:g}" for v in tn.VALUE_RANGE),
        "channel_order": tn.CHANNEL_ORDER,
        "mean": ",".join(f"{v:g}" for v in tn.MEAN),
        "stride_multiple": str(tn.STRIDE_MULTIPLE),
        "receptive_field": str(rf),
        "normalization": "instance",
        "precision": precision,
        "license": license,
        "provenance": json.dumps(prov, sort_keys=True, default=str),
    }
    write_metadata(model, meta)
    model.producer_name, model.producer_version = "deepshop_export", EXPORTER_VERSION

    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ModelError(f"{out_path}: the exported model fails onnx.checker: {e}") from e

    report = ExportReport(path=out_path, name=name, precision=precision, opset=opset, file_bytes=0,
                          receptive_field=rf, validated=validate, metadata=meta)
    if validate:
        report.max_abs_error, peak = _validate_numerically(model.SerializeToString(), net)
        report.tolerance = TOLERANCE[precision] * max(1.0, peak / 255.0)
        report.validation_sizes = VALIDATION_SIZES
        if not report.max_abs_error < report.tolerance:
            raise ModelError(f"{out_path}: not written: ONNX Runtime output differs from torch by "
                             f"{report.max_abs_error:.3g} (tolerance {report.tolerance:g} for {precision})")
    _write_atomically(model, out_path, overwrite)
    report.file_bytes = os.path.getsize(out_path)
    return report
