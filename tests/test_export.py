"""deepshop-export: checkpoint -> ONNX, metadata, numeric agreement with torch, bad input, and the
receptive field (analytic walk vs. autograd measurement)."""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from torch import nn  # noqa: E402

from deepshop_export import receptive_field as rf  # noqa: E402
from deepshop_export.cli import main  # noqa: E402
from deepshop_export.families.transformer_net.export import export_transformer_net  # noqa: E402
from deepshop_export.onnx.validate import TOLERANCE  # noqa: E402
from deepshop_export.onnx.metadata import read_metadata, write_metadata  # noqa: E402
from deepshop_export.families.transformer_net import TransformerNet  # noqa: E402
from deepshop_native.core.errors import ModelError  # noqa: E402
from deepshop_native.core.metadata import CORE_KEYS, PREFIX  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _trained_like_net() -> TransformerNet:
    """Seeded random TransformerNet whose last layer is rescaled so that, like a trained one, it
    outputs values spread over roughly 0..255 (a random one outputs about +-1, which would make
    every absolute tolerance meaningless)."""
    torch.manual_seed(0)
    net = TransformerNet().eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5)) * 255
    with torch.no_grad():
        scale = 60.0 / float(net(x).std())
        net.deconv3.conv2d.weight.mul_(scale)
        net.deconv3.conv2d.bias.mul_(scale).add_(128.0)
    return net


def _ort_run(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


def _torch_run(net, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    net = _trained_like_net()
    torch.save(net.state_dict(), d / "style.pth")
    # Checkpoints saved by PyTorch < 0.4 carry InstanceNorm running statistics; wrap it like a
    # training script would, too.
    old = dict(net.state_dict())
    for name, mod in net.named_modules():
        if isinstance(mod, nn.InstanceNorm2d):
            old[f"{name}.running_mean"] = torch.zeros(mod.num_features)
            old[f"{name}.running_var"] = torch.ones(mod.num_features)
    # ... and were written in the legacy (pre-zip) serialisation format.
    torch.save({"state_dict": old, "epoch": 2}, d / "old_style.pth", _use_new_zipfile_serialization=False)
    return d, net


@pytest.fixture(scope="module")
def fp32_export(work):
    d, net = work
    out = d / "style.onnx"
    rc = main([str(d / "style.pth"), "-o", str(out), "--license", "CC-BY-4.0",
               "--provenance", "style_image=mosaic.jpg", "--provenance", "content_weight=1e5"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def fp16_export(work):
    """Through the Python API, as the training script calls it, with a module in training mode."""
    d, net = work
    out = d / "style_fp16.onnx"
    training = copy.deepcopy(net).train()
    report = export_transformer_net(training, out, name="mosaic16", provenance={"epochs": 2}, fp16=True)
    assert training.training  # the caller's module is left as it was
    assert report.path == str(out) and report.precision == "fp16" and report.opset == 17
    assert report.receptive_field == 111 and report.file_bytes == os.path.getsize(out)
    assert report.validated and report.max_abs_error < report.tolerance
    assert json.loads(read_metadata(out)["provenance"])["epochs"] == 2
    return out


# ---------------------------------------------------------------------------- receptive field

def test_receptive_field_of_transformer_net_matches_autograd():
    net = TransformerNet()
    # Four consecutive output pixels cover every phase of the two stride-2 / upsample-2 stages.
    positions = range(66, 70)
    for axis, size in ((0, (136, 12)), (1, (12, 136))):
        analytic = rf.input_spans(net, axis, positions)
        numeric = rf.numeric_input_spans(net, 3, size, axis, positions)
        assert analytic == numeric
    widths = [hi - lo + 1 for lo, hi in analytic]
    assert sorted(set(widths)) == [107, 111]
    assert rf.receptive_field_per_axis(net) == (111, 111)
    assert rf.receptive_field(net) == 111
    # Not centred: output pixel x reads up to 57 pixels before it and 54 after (measured spans).
    before = max(x - lo for x, (lo, _) in zip(positions, numeric))
    after = max(hi - x for x, (_, hi) in zip(positions, numeric))
    assert rf.receptive_field_reach(net) == ((before, after), (before, after)) == ((57, 54), (57, 54))


class _Odd(nn.Module):
    """Anisotropic and irregular: dilation, stride, asymmetric padding, an even kernel after a x3
    upsampling (its span depends on alignment), average pooling and a residual branch."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ReflectionPad2d((1, 2, 0, 3))
        self.conv_a = nn.Conv2d(2, 4, (3, 5), stride=(2, 1), dilation=(1, 2))
        self.up = nn.Upsample(scale_factor=3, mode="nearest")
        self.conv_b = nn.Conv2d(4, 4, 4, padding=1)
        self.pool = nn.AvgPool2d(3, stride=2)
        self.skip = nn.Conv2d(4, 4, 1)
        self.conv_c = nn.Conv2d(4, 4, 3, padding="same", dilation=3)

    def forward(self, x):
        y = self.conv_b(self.up(torch.relu(self.conv_a(self.pad(x)))))
        y = self.pool(y)
        return self.conv_c(y) + self.skip(y)


def test_receptive_field_of_irregular_net_matches_autograd():
    net = _Odd()
    for axis, size in ((0, (80, 40)), (1, (40, 80))):
        with torch.no_grad():
            out_len = net(torch.zeros(1, 2, *size)).shape[2 + axis]
        positions = range(out_len // 2 - 6, out_len // 2 + 6)  # 12 phases around the middle
        assert rf.input_spans(net, axis, positions) == rf.numeric_input_spans(net, 2, size, axis, positions)
    # By hand, output pixel o reads conv_b-output pixels 2o-7..2o+10, i.e. upsampled-input pixels
    # floor((2o-7)/3)..floor((2o+10)/3): 7 of them at o = 0 (mod 3).  Height: conv_a 3/stride 2
    # -> 2*6 + 3 = 15.  Width: conv_a 5 dilated 2 (span 9) -> 6 + 9 = 15.
    assert rf.receptive_field_per_axis(net) == (15, 15)


def test_receptive_field_refuses_what_it_cannot_compute():
    class Bilinear(nn.Module):
        def forward(self, x):
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear")

    with pytest.raises(NotImplementedError, match="nearest"):
        rf.receptive_field(Bilinear())


# ---------------------------------------------------------------------------- export

def test_exported_model_is_valid_with_dynamic_shapes(fp32_export):
    model = onnx.load(str(fp32_export))
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("input", "output")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) and d for d in (dims[0], dims[2], dims[3]))
    ops = {n.op_type for n in model.graph.node}
    assert {"Pad", "Conv", "InstanceNormalization", "Resize"} <= ops
    # no partial or temporary files next to the output
    assert sorted(p.name for p in fp32_export.parent.iterdir() if p.name.startswith(".")) == []


def test_metadata_is_complete_and_correct(work, fp32_export):
    d, _ = work
    meta = read_metadata(fp32_export)
    assert set(meta) == set(CORE_KEYS)   # a plain TransformerNet: none of the optional keys
    assert {k: meta[k] for k in CORE_KEYS if k != "provenance"} == {
        "format": "1", "family": "transformer_net", "name": "style", "input_layout": "NCHW",
        "value_range": "0,255", "channel_order": "RGB", "mean": "0,0,0", "stride_multiple": "4",
        "receptive_field": "111", "normalization": "instance", "precision": "fp32", "license": "CC-BY-4.0"}
    prov = json.loads(meta["provenance"])
    assert prov["source"] == "style.pth"  # the file name: no local folders leak into a shared model
    assert prov["source_sha256"] == hashlib.sha256((d / "style.pth").read_bytes()).hexdigest()
    assert prov["style_image"] == "mosaic.jpg" and prov["content_weight"] == "1e5"
    assert prov["torch"] == torch.__version__ and prov["onnx"] == onnx.__version__
    assert prov["exporter"].startswith("deepshop_export ")
    when = dt.datetime.fromisoformat(prov["exported_utc"])
    assert when.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.timezone.utc) - when).total_seconds()) < 3600
    # The keys are really stored under the contract's prefix.
    raw = {p.key for p in onnx.load(str(fp32_export), load_external_data=False).metadata_props}
    assert {PREFIX + k for k in CORE_KEYS} <= raw


@pytest.mark.parametrize("shape", [(1, 3, 64, 96), (2, 3, 132, 100)])
def test_onnx_runtime_matches_torch_at_non_square_sizes(work, fp32_export, shape):
    _, net = work
    x = (np.random.default_rng(sum(shape)).random(shape) * 255).astype(np.float32)
    got, expected = _ort_run(fp32_export, x), _torch_run(net, x)
    assert got.shape == shape
    assert np.max(np.abs(got - expected)) < TOLERANCE["fp32"]


def test_old_style_checkpoint_exports_the_same_network(work, tmp_path):
    d, net = work
    out = tmp_path / "old.onnx"
    assert main([str(d / "old_style.pth"), "-o", str(out), "--no-validate"]) == 0
    x = (np.random.default_rng(3).random((1, 3, 68, 52)) * 255).astype(np.float32)
    assert np.max(np.abs(_ort_run(out, x) - _torch_run(net, x))) < TOLERANCE["fp32"]


def test_fp16_weights_within_stated_tolerance_on_a_photo(work, fp16_export):
    skimage_data = pytest.importorskip("skimage.data")
    _, net = work
    model = onnx.load(str(fp16_export))
    onnx.checker.check_model(model, full_check=True)
    inits = {t.name: t for t in model.graph.initializer}
    conv_weights = [inits[n.input[1]] for n in model.graph.node if n.op_type == "Conv"]
    assert len(conv_weights) == 16 and all(w.data_type == onnx.TensorProto.FLOAT16 for w in conv_weights)
    norm_scales = [inits[n.input[1]] for n in model.graph.node if n.op_type == "InstanceNormalization"]
    assert norm_scales and all(s.data_type == onnx.TensorProto.FLOAT for s in norm_scales)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert read_metadata(fp16_export)["precision"] == "fp16"
    assert read_metadata(fp16_export)["name"] == "mosaic16"
    # half the size of the fp32 weights
    fp32_bytes = sum(p.numel() * 4 for p in net.parameters())
    assert os.path.getsize(fp16_export) < 0.6 * fp32_bytes

    photo = skimage_data.chelsea()[:296, :448]  # cat photo, H and W multiples of 4
    x = np.ascontiguousarray(photo.transpose(2, 0, 1)[None], dtype=np.float32)
    got, expected = _ort_run(fp16_export, x), _torch_run(net, x)
    tolerance = TOLERANCE["fp16"] * max(1.0, np.abs(expected).max() / 255)
    err = np.abs(got - expected).max()
    print(f"fp16 max abs error on chelsea {x.shape}: {err:.3f} (tolerance {tolerance:.3f}, "
          f"output range {expected.min():.0f}..{expected.max():.0f})")
    assert np.isfinite(got).all() and err < tolerance


def test_overwrite_at_opset_18_prints_the_validation_error(work, tmp_path, capsys):
    d, _ = work
    out = tmp_path / "taken.onnx"
    out.write_bytes(b"old")
    assert main([str(d / "style.pth"), "-o", str(out), "--opset", "18", "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "max abs error" in printed and "opset 18" in printed
    model = onnx.load(str(out))
    assert {o.domain: o.version for o in model.opset_import}[""] == 18
    assert read_metadata(out)["family"] == "transformer_net"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.onnx"]  # no temporary left


# ---------------------------------------------------------------------------- bad input

def _fails(argv, capsys, *needles):
    assert main([str(a) for a in argv]) == 1  # a user mistake: 1 (2 is argparse's usage error)
    err = capsys.readouterr().err
    for needle in needles:
        assert str(needle) in err, err
    return err


def test_missing_checkpoint(tmp_path, capsys):
    _fails([tmp_path / "nope.pth", "-o", tmp_path / "x.onnx"], capsys, tmp_path / "nope.pth", "no such")
    assert not (tmp_path / "x.onnx").exists()


def test_text_file_is_not_a_checkpoint(tmp_path, capsys):
    bad = tmp_path / "notes.pth"
    bad.write_text("hello, this is not a checkpoint\n")
    _fails([bad, "-o", tmp_path / "x.onnx"], capsys, bad, "not a torch checkpoint")
    assert not (tmp_path / "x.onnx").exists()


def test_checkpoint_of_another_architecture(tmp_path, capsys):
    other = tmp_path / "resnet_block.pth"
    torch.save(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)).state_dict(), other)
    _fails([other, "-o", tmp_path / "x.onnx"], capsys, other, "another architecture")
    # right names, wrong shapes
    wide = TransformerNet().state_dict()
    wide["conv1.conv2d.weight"] = torch.zeros(32, 3, 7, 7)
    torch.save(wide, tmp_path / "wide.pth")
    _fails([tmp_path / "wide.pth", "-o", tmp_path / "x.onnx"], capsys, tmp_path / "wide.pth", "conv1.conv2d.weight")


def test_existing_output_is_kept_without_overwrite(work, tmp_path, capsys):
    d, _ = work
    out = tmp_path / "taken.onnx"
    out.write_bytes(b"precious")
    _fails([d / "style.pth", "-o", out], capsys, out, "--overwrite")
    assert out.read_bytes() == b"precious"


def test_opset_below_17_is_refused(work, tmp_path, capsys):
    d, _ = work
    _fails([d / "style.pth", "-o", tmp_path / "x.onnx", "--opset", "16"], capsys, "--opset 16", "17")
    _fails([d / "style.pth", "-o", tmp_path / "x.onnx", "--opset", "99"], capsys, "--opset 99", "17")
    assert not (tmp_path / "x.onnx").exists()


def test_missing_output_folder(work, tmp_path, capsys):
    d, _ = work
    _fails([d / "style.pth", "-o", tmp_path / "no" / "x.onnx", "--no-validate"], capsys, tmp_path / "no", "does not exist")


def _run_python(code_or_args, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "python"), os.path.join(REPO, "export")]))
    return subprocess.run([sys.executable, *code_or_args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_module_entry_point_and_missing_torch(tmp_path):
    r = _run_python(["-m", "deepshop_export", "--help"], tmp_path)
    assert r.returncode == 0 and "CHECKPOINT" not in r.stderr and "--fp16" in r.stdout
    code = ("import sys; sys.modules['torch'] = None\n"
            "from deepshop_export.cli import main\n"
            "sys.exit(main(['x.pth', '-o', 'x.onnx']))")
    r = _run_python(["-c", code], tmp_path)
    assert r.returncode == 1
    assert "torch is not installed" in r.stderr and "export" in r.stderr


# ---------------------------------------------------------------------------- metadata helpers

def test_metadata_helpers(tmp_path):
    model = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["input"], ["output"])], "g",
        [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, "h", "w"])],
        [onnx.helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1, 3, "h", "w"])]))
    entry = model.metadata_props.add()
    entry.key, entry.value = "other.tool", "kept"
    write_metadata(model, {"family": "x", "name": "first"})
    write_metadata(model, {"name": "second"})
    onnx.save(model, str(tmp_path / "m.onnx"))
    assert read_metadata(tmp_path / "m.onnx") == {"family": "x", "name": "second"}
    assert {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}["other.tool"] == "kept"
    with pytest.raises(ValueError, match="famliy"):
        write_metadata(model, {"famliy": "typo"})
    with pytest.raises(TypeError):
        write_metadata(model, {"receptive_field": 111})
    (tmp_path / "junk.onnx").write_text("not protobuf at all")
    with pytest.raises(ModelError, match="junk.onnx"):
        read_metadata(tmp_path / "junk.onnx")


@pytest.mark.parametrize("op, reference", [
    ("ReduceL2", lambda x: np.sqrt((x.astype(np.float64) ** 2).sum(axis=(2, 3)))),
    ("ReduceMean", lambda x: x.astype(np.float64).mean(axis=(2, 3))),
])
def test_lowering_to_opset_17_moves_constant_reduction_axes_into_the_attribute(op, reference):
    """Opset 18 made `axes` of these reductions an input; opset 17 has it as an attribute."""
    from onnx import TensorProto, helper, numpy_helper
    from deepshop_export.onnx.opset import lower_to_opset_17
    graph = helper.make_graph(
        [helper.make_node(op, ["x", "axes"], ["y"], keepdims=0)], "reduce",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(np.array([2, 3], np.int64), "axes")])
    model = lower_to_opset_17(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    assert not model.graph.initializer  # the axes tensor is gone with its input
    x = np.random.default_rng(0).uniform(-3, 3, (1, 2, 5, 7)).astype(np.float32)
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, reference(x), rtol=1e-5)


def test_lowering_refuses_computed_reduction_axes():
    from onnx import TensorProto, helper
    from deepshop_export.onnx.opset import lower_to_opset_17
    graph = helper.make_graph(
        [helper.make_node("ReduceL2", ["x", "axes"], ["y"])], "reduce",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3]),
         helper.make_tensor_value_info("axes", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(ModelError, match="computed axes"):
        lower_to_opset_17(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


# ---------------------------------------------------------------------------- never an input as the output

def test_output_equal_to_the_checkpoint_is_refused(work, tmp_path, capsys):
    d, _ = work
    ck = tmp_path / "tn.pth"
    ck.write_bytes((d / "style.pth").read_bytes())
    os.link(ck, tmp_path / "link.onnx")
    before = ck.read_bytes()
    for out in (ck, tmp_path / "link.onnx"):
        _fails([ck, "-o", out, "--overwrite", "--no-validate"], capsys, out, "input")
        assert ck.read_bytes() == before


@pytest.mark.parametrize("argv, output", [
    (["gatys", "--model", "vgg16", "--weights", "{w}", "-o", "{w}"], "{w}"),
    (["gatys", "--model", "{w}", "-o", "{w}"], "{w}"),
    (["hed", "--weights", "{w}", "-o", "{w}"], "{w}"),
    (["msgnet", "{w}", "-o", "{w}"], "{w}"),
    (["msgnet", "{w}", "-o", "{stem}.onnx"], "{stem}.encoder.onnx"),    # the encoder written beside it
])
def test_subcommands_refuse_to_replace_their_input(tmp_path, capsys, argv, output):
    # The check comes before the weights are read: any file shows it.
    weights = tmp_path / "weights.encoder.onnx"
    weights.write_bytes(b"precious weights")
    fill = dict(w=weights, stem=tmp_path / "weights")
    rc = main([a.format(**fill) for a in argv] + ["--overwrite"])
    err = capsys.readouterr().err
    assert rc in (1, 2) and output.format(**fill) in err and "input" in err, err
    assert weights.read_bytes() == b"precious weights"


def test_preview_refuses_to_replace_its_photo(work, tmp_path, capsys):
    from PIL import Image
    from deepshop_export.preview import main as preview

    d, _ = work
    photo = tmp_path / "photo.png"
    Image.new("RGB", (16, 12), (10, 200, 30)).save(photo)
    before = photo.read_bytes()
    assert preview([str(d / "style.pth"), str(photo), str(photo), "--overwrite"]) == 1
    assert "photo.png" in capsys.readouterr().err and photo.read_bytes() == before


# ---------------------------------------------------------------------------- validation sees NaN

def test_validation_refuses_non_finite_weights(tmp_path):
    net = _trained_like_net()
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(float("nan"))
    with pytest.raises(ModelError, match=r"weight .*NaN or infinite"):
        export_transformer_net(net, tmp_path / "nan.onnx", name="nan", provenance={})
    assert not (tmp_path / "nan.onnx").exists()


def test_validation_refuses_non_finite_outputs(tmp_path):
    net = _trained_like_net()
    with torch.no_grad():                      # finite weights whose activations overflow float32
        net.conv1.conv2d.weight.mul_(1e38)
    assert all(torch.isfinite(p).all() for p in net.parameters())
    with pytest.raises(ModelError, match=r"output.*NaN or infinite"):
        export_transformer_net(net, tmp_path / "inf.onnx", name="inf", provenance={})
    assert not (tmp_path / "inf.onnx").exists()
