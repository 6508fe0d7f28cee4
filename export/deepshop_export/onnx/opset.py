"""Opset of the written models: the range we support, and lowering the exporter's opset 18 to 17.

The dynamo exporter emits opset 18 at the lowest; every ONNX Runtime the engine accepts (>= 1.17)
runs 17, so 17 is the default and a small pass rewrites the few ops whose definition changed.
"""
from __future__ import annotations

import onnx
from onnx import helper, numpy_helper

from deepshop_native.core.errors import ModelError

#: Lowest opset we write: the project's floor, which every ONNX Runtime the engine accepts
#: (>= 1.17) runs; older ones gain nothing for these ops.
MIN_OPSET = 17
#: Highest opset checked end to end (torch 2.13 exporter -> ONNX Runtime 1.31).  onnx itself
#: knows later ones still under development, which ONNX Runtime refuses to load.
MAX_OPSET = 23
#: The dynamo exporter's own opset (it has no translations below it).
EXPORTER_OPSET = 18


def default_opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


#: Reductions whose `axes` became an input in opset 18 (ReduceSum's did in 13, so it needs nothing).
_AXES_AS_INPUT_SINCE_18 = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                           "ReduceMin", "ReduceProd", "ReduceSumSquare")


def _axes_input_to_attribute(node, constants: dict) -> None:
    """Opset 18's `axes` input of a reduction back to opset 17's attribute; only a constant
    (initializer) one can be, and `noop_with_empty_axes` (new in 18) must keep its default."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("noop_with_empty_axes", 0):
        raise ModelError(f"cannot lower to opset 17: {node.op_type} node {node.name} uses noop_with_empty_axes")
    kept = [a for a in node.attribute if a.name != "noop_with_empty_axes"]
    if len(node.input) > 1 and node.input[1]:
        if node.input[1] not in constants:
            raise ModelError(f"cannot lower to opset 17: {node.op_type} node {node.name} has computed axes")
        axes = numpy_helper.to_array(constants[node.input[1]]).astype(int).tolist()
        kept.append(helper.make_attribute("axes", axes))
        del node.input[1:]
    del node.attribute[:]
    node.attribute.extend(kept)


def lower_to_opset_17(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite an opset-18 graph as opset 17 when it uses nothing that 18 added.

    onnx's version converter has no 18 -> 17 adapter for Pad.  Between the two, only Pad (new
    optional `axes` input), Resize (new `antialias`, `keep_aspect_ratio_policy`, `axes`
    attributes) and the reductions of _AXES_AS_INPUT_SINCE_18 (`axes` moved from an attribute to an
    input; lowered when it is a constant) of our op set changed; every other op is checked to have
    the same definition."""
    constants = {t.name: t for t in model.graph.initializer}
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
        elif node.op_type in _AXES_AS_INPUT_SINCE_18:
            _axes_input_to_attribute(node, constants)
        else:
            raise ModelError(f"cannot lower to opset 17: {node.op_type} changed in opset 18")
    # Axes moved into attributes leave their initializers unread (ONNX Runtime warns of each).
    used = {name for node in model.graph.node for name in node.input}
    unused = [t for t in model.graph.initializer if t.name not in used]
    for t in unused:
        model.graph.initializer.remove(t)
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = 17
    return model


