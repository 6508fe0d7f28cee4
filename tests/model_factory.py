"""Small ONNX models made on the fly for tests and benchmarks (nothing is downloaded), and the
PyTorch reference computation they are checked against."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

TRANSFORMER_META = {
    "deepshop.format": "1",
    "deepshop.family": "transformer_net",
    "deepshop.input_layout": "NCHW",
    "deepshop.value_range": "0,255",
    "deepshop.channel_order": "RGB",
    "deepshop.mean": "0,0,0",
    "deepshop.stride_multiple": "4",
    "deepshop.normalization": "instance",
}


def save_with_metadata(model, path, metadata: dict) -> str:
    for key, value in metadata.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, str(value)
    onnx.save(model, str(path))
    return str(path)


def image_graph_model(nodes, initializers=(), in_channels=3, out_channels=3, inputs_extra=(), opset=17):
    """An N x C x H x W float32 -> N x C x H x W graph built by hand with onnx.helper."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", in_channels, "H", "W"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", out_channels, "H", "W"])
    graph = helper.make_graph(list(nodes), "g", [x, *inputs_extra], [y], initializer=list(initializers))
    # IR version 10: read by every ONNX Runtime from 1.17 on (onnx's default may be newer).
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def identity_model(path, metadata=None):
    """output = input: tiled output must then equal the input exactly (weights sum to one)."""
    model = image_graph_model([helper.make_node("Identity", ["input"], ["output"])])
    meta = {"deepshop.value_range": "0,255", "deepshop.stride_multiple": "4"} if metadata is None else metadata
    return save_with_metadata(model, path, meta)


def random_transformer_net(seed=0):
    """A TransformerNet with seeded random weights, including non-trivial InstanceNorm affines."""
    torch = pytest.importorskip("torch")
    from deepshop_export.families.transformer_net import TransformerNet

    torch.manual_seed(seed)
    net = TransformerNet().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 1.0)
    return net


def trained_like_transformer_net(seed=3):
    """A seeded random TransformerNet whose output spreads over about 0..255 as a trained one's
    does (a random one's stays near 0, where every PSNR would be meaningless)."""
    torch = pytest.importorskip("torch")
    net = random_transformer_net(seed=seed)
    with torch.no_grad():
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5)) * 255
        scale = 60.0 / float(net(x).std())
        net.deconv3.conv2d.weight.mul_(scale)
        net.deconv3.conv2d.bias.mul_(scale).add_(128.0)
    return net


def exported_statistics_net(folder):
    """:func:`trained_like_transformer_net` saved as ``folder/style.pth`` and converted by
    ``deepshop-export --statistics`` to ``folder/style_stats.onnx``: ``(net, onnx path)``."""
    torch = pytest.importorskip("torch")
    from deepshop_export.cli import main

    net = trained_like_transformer_net()
    torch.save(net.state_dict(), folder / "style.pth")
    out = folder / "style_stats.onnx"
    assert main([str(folder / "style.pth"), "-o", str(out), "--statistics"]) == 0
    return net, out


def export_plain(net, path, metadata, example_hw=(64, 64)):
    """torch.onnx.export with dynamic N/H/W plus metadata (independent of deepshop-export)."""
    torch = pytest.importorskip("torch")
    x = torch.rand(1, 3, *example_hw) * 255
    torch.onnx.export(net, x, str(path), input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}, "output": {0: "N", 2: "H", 3: "W"}},
                      opset_version=17, dynamo=False)
    return save_with_metadata(onnx.load(str(path)), path, metadata)




def torch_reference(net, image_u8: np.ndarray, stride: int = 4) -> np.ndarray:
    """What the PyTorch fast_neural_style example computes for an RGB uint8 image: x*255 in,
    clamp(0, 255) out.  Sizes that are not a multiple of the stride are reflection-padded at the
    bottom/right and cropped back (numpy.pad mode 'reflect'), as the engine documents.  float32."""
    torch = pytest.importorskip("torch")
    h, w = image_u8.shape[:2]
    # The engine's window: the size rounded up to the stride, and at least 8 strides.
    ph, pw = (-(-max(n, 8 * stride) // stride) * stride - n for n in (h, w))
    padded = np.pad(image_u8, ((0, ph), (0, pw), (0, 0)), mode="reflect") if (ph or pw) else image_u8
    x = torch.from_numpy(np.ascontiguousarray(padded).astype(np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = net(x)[0].permute(1, 2, 0).numpy()
    return np.clip(y[:h, :w], 0, 255)


def tiny_style_nets(seed=0, style_dim=5):
    """A small arbitrary-style predictor and conditional-instance-norm transfer network of the
    importers' layer kinds (style vectors of ``style_dim``), random weights: (predictor, transfer)."""
    from deepshop_export.families.arbitrary_style.network import ConvSpec, ResidualConvs, StylePredictor
    from deepshop_export.families.multistyle.network import ConditionalStyleNet, LayerSpec, NormSpec, ResidualSpec
    rng = np.random.default_rng(seed)

    def r(*shape, scale=0.3):
        return (rng.normal(size=shape) * scale).astype(np.float32)

    def norm(c, s=style_dim):
        return NormSpec(eps=1e-5, gamma_weight=r(c, s), gamma_bias=1 + r(c), beta_weight=r(c, s), beta_bias=r(c))

    predictor = StylePredictor(
        [ConvSpec(r(4, 3, 3, 3), r(4), stride=2, clip=(0.0, 6.0)),
         ResidualConvs([ConvSpec(r(8, 4, 1, 1), r(8), clip=(0.0, 6.0)), ConvSpec(r(8, 1, 3, 3), r(8), groups=8),
                        ConvSpec(r(4, 8, 1, 1), r(4))]),
         ConvSpec(r(6, 4, 3, 3), r(6), stride=2, clip=(0.0, 6.0))],
        ConvSpec(r(style_dim, 6, 1, 1), r(style_dim)))
    transfer = ConditionalStyleNet(
        [LayerSpec(r(4, 3, 3, 3), r(4), pad=1, activation="relu"),
         LayerSpec(r(6, 4, 3, 3), None, stride=2, pad=1, norm=norm(6), activation="relu"),
         ResidualSpec([LayerSpec(r(6, 6, 3, 3), None, pad=1, norm=norm(6), activation="relu"),
                       LayerSpec(r(6, 6, 3, 3), None, pad=1, norm=norm(6))]),
         LayerSpec(r(3, 6, 3, 3), None, pad=1, upsample=2, norm=norm(3), activation="sigmoid")], style_dim=style_dim)
    return predictor.eval(), transfer.eval()
