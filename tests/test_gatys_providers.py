"""The Gatys loss-and-gradient graph on every route of the engine: ONNX Runtime's CPU provider and
OpenVINO called directly (fp32 and bf16, and what device="auto" takes), against torch.autograd in
float64 on the same objective and against each other; the driver and `deepshop gatys --precision`
on OpenVINO; graphs exported before the flipped-convolution adjoints are kept off OpenVINO.

A tiny random-weight VGG19 (relu2_2 content, relu1_1/2_1/3_1 style) is exported on the fly.  The
OpenVINO tests skip where the openvino package is missing (conftest's openvino_library)."""
import json

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import deepshop_native as ds
from deepshop_native.pipelines import gatys as gt
from deepshop_native.core.errors import ModelError, OptionError

from conftest import CPU_HAS_BF16, needs_bf16
from test_gatys import picture
from test_gatys_export import images, random_torchvision_vgg, rel_l2, torch_objective

CONTENT_LAYERS, STYLE_LAYERS = ["relu2_2"], ["relu1_1", "relu2_1", "relu3_1"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from deepshop_export.families.gatys.export import export_gatys
    from deepshop_export.families.gatys.feature_network import load_feature_network

    folder = tmp_path_factory.mktemp("gatys_providers")
    weights = random_torchvision_vgg(str(folder / "vgg19.pth"))
    path = folder / "gatys-vgg19-max.onnx"
    export_gatys(path, model="vgg19", weights=weights, pooling="max", content_layers=CONTENT_LAYERS,
                 style_layers=STYLE_LAYERS)
    net = load_feature_network("vgg19", CONTENT_LAYERS + STYLE_LAYERS, "max", weights=weights)
    return str(path), net


# (content weights, style weights): the content term dominates the gradient in the first, only the
# style terms (the Gram matrices, where bf16 rounds most) make it in the second.
WEIGHTINGS = [([1.0], [1e3, 1e4, 1e5], 1e-3), ([0.0], [1e5, 1e6, 1e7], 0.0)]


@pytest.mark.parametrize("device,precision", [("openvino", "fp32"), pytest.param("openvino", "bf16", marks=needs_bf16),
                                              ("auto", "auto")])
def test_gradient_graph_on_openvino_agrees_with_ort_cpu_and_autograd(exported, openvino_library, device, precision):
    path, net = exported
    ort_cpu = gt.GatysModel(path, device="cpu")
    model = gt.GatysModel(path, device=device, precision=precision)
    assert ort_cpu.provider == "CPUExecutionProvider" and ort_cpu.precision == "fp32"
    assert model.provider == "OpenVINO"
    assert model.precision == (gt.AUTO_PRECISION if precision == "auto" else precision)
    bf16 = model.precision == "bf16"
    for (h, w), seed in [((32, 48), 1), ((40, 24), 2)]:        # shapes change: each compiles its own form
        content, style, x = images(h, w, 10 * seed), images(h, w, 10 * seed + 1), images(h, w, 10 * seed + 2)
        ct, _ = ort_cpu.targets(content)
        _, st = ort_cpu.targets(style)
        for cw, sw, tvw in WEIGHTINGS:
            ref = ort_cpu.evaluate(x, ct, st, cw, sw, tvw)
            out = model.evaluate(x, ct, st, cw, sw, tvw)
            loss, _, style_terms, _, grad = torch_objective(net, x, ct, st, cw, sw, tvw)
            assert out["gradient"].shape == (1, 3, h, w)
            print(f"{device} {model.precision} {h}x{w} style weights {sw}: gradient relative L2 against ORT CPU "
                  f"{rel_l2(out['gradient'], ref['gradient']):.1e}, against autograd "
                  f"{rel_l2(out['gradient'], grad):.1e}; ORT CPU against autograd {rel_l2(ref['gradient'], grad):.1e}")
            if not bf16:
                # Measured: ~5e-9 against ORT CPU, ~7e-8 against float64 autograd (as ORT CPU).
                assert rel_l2(out["gradient"], ref["gradient"]) < 1e-5
                assert rel_l2(out["gradient"], grad) < 1e-5
                assert float(out["loss"]) == pytest.approx(float(ref["loss"]), rel=1e-5)
                np.testing.assert_allclose(out["style_losses"], style_terms, rtol=1e-4)
            else:
                # bf16 keeps 8 significant bits.  The loss terms stay within ~1.5e-2 of autograd's;
                # the gradient where the content term leads within ~2e-4..6e-4 (relative L2).  The
                # style gradient alone is another matter: it is (G - A) F, and where the Gram
                # matrices G of the image nearly equal the targets A (here, images of one kind;
                # in a run, as it converges) bf16's rounding of G is the whole of G - A: measured
                # 0.83 relative L2.  That is why precision="auto" is fp32 for this graph.
                np.testing.assert_allclose(out["style_losses"], style_terms, rtol=0.05)
                if cw[0] > 0:
                    assert rel_l2(out["gradient"], ref["gradient"]) < 5e-3
                    assert rel_l2(out["gradient"], grad) < 5e-3
                    assert float(out["loss"]) == pytest.approx(loss, rel=1e-3)


def test_driver_and_cli_on_openvino(exported, openvino_library, tmp_path, capsys):
    from PIL import Image

    from deepshop_native import cli

    path, _ = exported
    for precision in ("fp32", "bf16") if CPU_HAS_BF16 else ("fp32",):
        seen = []
        result = ds.gatys(picture(32, 40, 1), picture(40, 32, 2), model=path, iterations=8, length=40,
                          init="noise", device="openvino", precision=precision, callback=seen.append)
        assert result.provider == "OpenVINO" and result.precision == precision
        assert seen[-1].loss < 0.5 * seen[0].loss
    c = tmp_path / "photo.png"
    Image.fromarray(picture(32, 32, 3)).save(c)
    code = cli.main(["gatys", "-c", str(c), "-s", str(c), "-m", path, "-n", "2", "-l", "32", "--device",
                     "openvino", "--precision", "fp32", "--out", str(tmp_path / "o.png")])
    assert code == 0 and "OpenVINO fp32" in capsys.readouterr().err
    assert (tmp_path / "o.png").is_file()


def test_auto_precision_is_bf16_where_the_cpu_has_it(exported, openvino_library):
    path, _ = exported
    auto = gt.GatysModel(path, device="openvino", precision="auto")
    sibling = gt.bf16_sibling(auto)
    assert (sibling is not None) == CPU_HAS_BF16 and auto.precision == "fp32"
    if sibling is not None:
        assert (sibling.provider, sibling.precision, sibling.model_path) == ("OpenVINO", "bf16", auto.model_path)
    # Named precisions, and other providers, keep theirs throughout.
    assert gt.bf16_sibling(gt.GatysModel(path, device="openvino", precision="fp32")) is None
    assert gt.bf16_sibling(gt.GatysModel(path, device="cpu", precision="auto")) is None
    result = ds.gatys(picture(32, 40, 1), picture(40, 32, 2), model=path, iterations=6, length=40, init="noise",
                      device="openvino", precision="auto")
    phases = result.levels[-1]["phases"]
    assert phases[0]["precision"] == ("bf16" if CPU_HAS_BF16 else "fp32")
    assert sum(p["iterations"] for p in phases) == result.levels[-1]["iterations"]


@needs_bf16
def test_auto_precision_hands_over_to_fp32_where_bf16_stops_short(exported, openvino_library, monkeypatch):
    import dataclasses

    from deepshop_native.pipelines.gatys import transfer

    path, _ = exported
    real, calls = transfer.minimize_lbfgsb, []

    def stops_short_in_bf16(fun, x0, *args, max_iterations, **kwargs):
        # The first (bf16) run stops after 3 iterations with a failed line search, as bf16 does where
        # its rounded Gram matrices no longer resolve the loss; the rest run as they are.
        calls.append(max_iterations)
        if len(calls) == 1:
            return dataclasses.replace(real(fun, x0, *args, max_iterations=3, **kwargs), reason="line_search_failed")
        return real(fun, x0, *args, max_iterations=max_iterations, **kwargs)

    monkeypatch.setattr(transfer, "minimize_lbfgsb", stops_short_in_bf16)
    seen = []
    result = ds.gatys(picture(32, 40, 1), picture(40, 32, 2), model=path, iterations=8, length=40, init="noise",
                      device="openvino", precision="auto", callback=seen.append)
    level = result.levels[-1]
    assert calls == [8, 5]
    assert [(p["precision"], p["iterations"]) for p in level["phases"]] == [("bf16", 3), ("fp32", 5)]
    assert level["iterations"] == 8 and result.precision == "bf16+fp32"
    # The callback counts on through the handover.
    assert [p.iteration for p in seen] == list(range(1, 9))


@pytest.mark.skipif(CPU_HAS_BF16, reason="this CPU computes bf16: the refusal is for CPUs without it")
def test_bf16_refused_where_the_cpu_lacks_it(exported, openvino_library, tmp_path, capsys):
    """Without AVX512-BF16 or AMX, asking for bf16 is a DeviceError naming what is missing, from
    the API and the command line alike (exit status 1, one line)."""
    from PIL import Image

    from deepshop_native import cli

    path, _ = exported
    with pytest.raises(ds.DeviceError, match="precision 'bf16' needs a CPU with AVX512-BF16 or AMX"):
        gt.GatysModel(path, device="openvino", precision="bf16")
    c = tmp_path / "photo.png"
    Image.fromarray(picture(32, 32, 3)).save(c)
    code = cli.main(["gatys", "-c", str(c), "-s", str(c), "-m", path, "-n", "1", "-l", "32", "-q", "--device",
                     "openvino", "--precision", "bf16", "--out", str(tmp_path / "o.png")])
    assert code == 1 and "AVX512-BF16 or AMX" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_precision_option_is_checked(exported):
    path, _ = exported
    with pytest.raises(OptionError, match="precision"):
        gt.GatysModel(path, device="cpu", precision="fp8")
    with pytest.raises(OptionError, match="precision"):
        ds.gatys(images(32, 32, 1)[0].transpose(1, 2, 0), images(32, 32, 2)[0].transpose(1, 2, 0), model=path,
                 precision="half", iterations=1, length=32)


def test_graphs_with_transposed_convolution_adjoints_stay_off_openvino(exported, openvino_library, tmp_path):
    """A graph exported before the flipped-convolution adjoints (no provenance entry) gives
    OpenVINO a wrong gradient: refused on device="openvino", run on ONNX Runtime for "auto"."""
    path, _ = exported
    model = onnx.load(path)
    for prop in model.metadata_props:
        if prop.key == "deepshop.provenance":
            provenance = json.loads(prop.value)
            del provenance["adjoint_convolution"]
            prop.value = json.dumps(provenance)
    old = tmp_path / "old.onnx"
    onnx.save(model, str(old))
    assert gt.GatysModel(str(old), device="auto").provider == "CPUExecutionProvider"
    with pytest.raises(ModelError, match="old.onnx.*export it again"):
        gt.GatysModel(str(old), device="openvino")
