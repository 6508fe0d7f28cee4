"""A torch module to a single-file ONNX model carrying the deepshop metadata: the pipeline every
model family goes through.

torch.onnx.export with the torch.export-based ("dynamo") exporter, which gives a clean graph of
Pad(reflect) / Conv / InstanceNormalization / Relu / Add / Resize(nearest) with dynamic batch,
height and width, whereas the TorchScript exporter spells every reflection pad as ~8 shape nodes
(Slice/Concat/Transpose/...).  Then opset lowering (opset.py), optional fp16 conversion (fp16.py),
metadata (metadata.py), structural and numeric checks against torch with ONNX Runtime
(validate.py), and an atomic write.  A family (families/<name>/export.py) supplies the module,
its sample inputs, its I/O names and its metadata.
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
from typing import Mapping, Sequence

import onnx
import torch

from deepshop_native.core.errors import ModelError, OutputExistsError
from deepshop_native.core.files import atomic_write, output_exists_message
from deepshop_native.core.metadata import FORMAT_VERSION

from .. import __version__ as EXPORTER_VERSION
from .fp16 import convert_to_fp16
from .metadata import write_metadata
from .opset import EXPORTER_OPSET, MAX_OPSET, MIN_OPSET, default_opset, lower_to_opset_17
from .validate import TOLERANCE, check_finite_weights, check_structure, compare_with_torch


#: Image sizes (H, W) of the numeric check: non-square, different, multiples of 4.
VALIDATION_SIZES = ((132, 100), (64, 96))


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


@dataclass
class GraphInterface:
    """What the exporter needs to know of a module besides its weights: the names of its graph
    inputs and outputs (positional, in forward()'s order), one sample value per input, which
    dimensions of each input are dynamic ({input index: {dim: name}}), and how to make random
    validation inputs at a given (H, W)."""
    input_names: Sequence[str]
    output_names: Sequence[str]
    sample_inputs: tuple
    dynamic_dims: Sequence[Mapping[int, str]]
    make_inputs: "callable"   # (h, w, torch.Generator) -> tuple of tensors


#: The dynamic dimensions of an N x 3 x H x W image input.
IMAGE_DIMS = {0: "batch", 2: "height", 3: "width"}


def sampled_interface(input_names: Sequence[str], output_names: Sequence[str], make_inputs) -> GraphInterface:
    """The GraphInterface of a network whose first input is an image (dynamic batch, height and
    width) and whose other inputs have fixed shapes; its sample inputs are ``make_inputs`` at
    132 x 100 with seed 0."""
    return GraphInterface(input_names=input_names, output_names=output_names,
                          sample_inputs=make_inputs(132, 100, torch.Generator().manual_seed(0)),
                          dynamic_dims=[dict(IMAGE_DIMS)] + [{} for _ in input_names[1:]], make_inputs=make_inputs)


def _torch_export(net: torch.nn.Module, io_: GraphInterface, opset: int) -> onnx.ModelProto:
    from torch.export import Dim

    dim_objects: dict[str, Dim] = {}  # one Dim per name: inputs sharing a name share the size
    dims = tuple({d: dim_objects.setdefault(n, Dim(n)) for d, n in spec.items()} or None for spec in io_.dynamic_dims)
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
                net, tuple(io_.sample_inputs), None, input_names=list(io_.input_names), output_names=list(io_.output_names),
                opset_version=max(opset, EXPORTER_OPSET), dynamo=True, external_data=False,
                dynamic_shapes=dims,
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


def _versions() -> dict[str, str]:
    import onnxscript
    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxscript": onnxscript.__version__}


def _check_output_path(out_path: str, overwrite: bool) -> None:
    folder = os.path.dirname(os.path.abspath(out_path))
    if os.path.isdir(out_path):
        raise ModelError(f"{out_path}: is a folder, expected an .onnx file path")
    if not os.path.isdir(folder):
        raise ModelError(f"{out_path}: the output folder {folder} does not exist")
    if os.path.exists(out_path) and not overwrite:
        raise OutputExistsError(output_exists_message(out_path))


def export_module(net: torch.nn.Module, io_: GraphInterface, out_path: str | os.PathLike, *,
                  metadata: Mapping[str, str], provenance: dict, receptive_field: int, fp16: bool = False,
                  opset: int = 17, validate: bool = True, overwrite: bool = False) -> ExportReport:
    """Export ``net`` with the interface ``io_`` to ``out_path`` with the family's ``metadata``
    (keys of the contract, without prefix) plus the generic keys written here (format, precision,
    provenance).

    ``provenance`` entries (source checkpoint, its sha256, style image, training settings, ...)
    are stored with the exporter version, the UTC date and the torch/onnx versions as JSON in
    ``deepshop.provenance``.  The structural check always runs; ``validate`` adds the comparison
    with torch, which raises ModelError beyond ``TOLERANCE[precision]`` (scaled to each output's
    peak, see there).  Refuses to replace an existing file unless ``overwrite``; never leaves a
    partial file."""
    out_path = os.fspath(out_path)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset} is not supported: use {MIN_OPSET}..{MAX_OPSET}")
    _check_output_path(out_path, overwrite)
    precision = "fp16" if fp16 else "fp32"

    # A float32 CPU copy in eval mode: the caller's module (maybe on a GPU, mid-training) is untouched.
    net = copy.deepcopy(net).float().cpu().eval()
    model = _torch_export(net, io_, opset)
    _strip_exporter_annotations(model)
    if opset == 17:
        lower_to_opset_17(model)
    if default_opset(model) != opset:  # the exporter falls back silently when it cannot convert
        raise ModelError(f"{out_path}: not written: torch exported opset {default_opset(model)}, not the requested {opset}")
    if fp16:
        convert_to_fp16(model)

    prov = {
        "exporter": f"deepshop_export {EXPORTER_VERSION}",
        "exported_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "opset": opset,
        **_versions(),
        **provenance,
    }
    meta = {"format": FORMAT_VERSION, **metadata, "precision": precision,
            "provenance": json.dumps(prov, sort_keys=True, default=str)}
    write_metadata(model, meta)
    model.producer_name, model.producer_version = "deepshop_export", EXPORTER_VERSION
    check_structure(model, out_path)

    report = ExportReport(path=out_path, name=meta.get("name", ""), precision=precision, opset=opset, file_bytes=0,
                          receptive_field=receptive_field, validated=validate, metadata=meta)
    model_bytes = model.SerializeToString()
    if validate:
        check_finite_weights(net, model, out_path)
        report.max_abs_error, report.tolerance = compare_with_torch(model_bytes, net, io_, VALIDATION_SIZES,
                                                                    TOLERANCE[precision], out_path, precision)
        report.validation_sizes = VALIDATION_SIZES
    atomic_write(out_path, lambda f: f.write(model_bytes), overwrite, error=ModelError)
    report.file_bytes = os.path.getsize(out_path)
    return report
