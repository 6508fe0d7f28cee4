"""Float16 conversion of an exported float32 graph, keeping float32 inputs and outputs."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deepshop_native.core.errors import ModelError

from .opset import default_opset

#: Ops kept in float32 inside an fp16 model.  InstanceNormalization sums squares over the whole
#: image: computed in fp16 that sum overflows (> 65504) for activations of a few hundred, and the
#: mean of a large image loses precision.  Execution providers differ in how they compute it (ONNX
#: Runtime's CPU provider goes through float32 anyway), so it is pinned to float32 between Casts.
FP32_OPS = frozenset({"InstanceNormalization"})


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
    opset = default_opset(model)
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


