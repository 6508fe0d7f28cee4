"""The run-time side of the pretrained networks: the arbitrary-style pipeline (a painting's style
vector from the predictor, blends, strength as Magenta's vector interpolation) and the multi-style
pipeline (built-in styles by name or number, blends), tiled against whole, the style routing of
`deepshop stylize --style` and `ds.stylize(style=)`, `deepshop styles`, and their errors.

Small random networks of the converted ones' layer kinds (model_factory.tiny_style_nets) are
exported here into a folder that stands for the pretrained folder ($DEEPSHOP_PRETRAINED_MODELS),
and every result is checked against those torch modules."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

import deepshop_native as ds  # noqa: E402
from deepshop_native.cli import main  # noqa: E402
from deepshop_native.core.paths import PRETRAINED_ENV, made_on_first_use  # noqa: E402

from conftest import TINY_STYLES as STYLES  # noqa: E402


@pytest.fixture(scope="module")
def folder(tiny_pretrained):
    return tiny_pretrained


@pytest.fixture(autouse=True)
def pretrained_env(folder, monkeypatch):
    monkeypatch.setenv(PRETRAINED_ENV, str(folder[0]))


def _picture(h, w, seed):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 1, h * w * 3).reshape(h, w, 3)
    return np.clip(255 * (0.6 * base + 0.4 * rng.random((h, w, 3))), 0, 255).astype(np.uint8)


def _nchw(rgb8):
    return torch.from_numpy(rgb8.astype(np.float32) / 255).permute(2, 0, 1)[None]


def _resized_unit(rgb8, shorter):
    """A style image as the predictor gets it: unit floats, Lanczos to the shorter side (Pillow)."""
    h, w = rgb8.shape[:2]
    scale = shorter / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    planes = [np.asarray(Image.fromarray(rgb8[..., c].astype(np.float32) / 255).resize(size, Image.Resampling.LANCZOS))
              for c in range(3)]
    return torch.from_numpy(np.clip(np.stack(planes, -1), 0, 1)).permute(2, 0, 1)[None]


def test_arbitrary_style_paints_as_the_torch_networks(folder):
    _, predictor, transfer, _ = folder
    style, photo = _picture(384, 480, 1), _picture(40, 52, 2)
    net = ds.open_model(folder[0] / "arbitrary_style.onnx", device="cpu", tile=0, working_size=0)
    assert type(net).__name__ == "ArbitraryStyle" and net.STYLE == "image"
    net.set_style(style)
    with torch.no_grad():
        v = predictor(_nchw(style))
        want = transfer(_nchw(photo), v)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(net.style_vector(style), v.numpy(), atol=1e-5)
    got = net(photo.astype(np.float32) / 255)
    np.testing.assert_allclose(got, want, atol=2e-5)
    # The predictor runs on the style image's shorter side at 384 (Lanczos).
    other = _picture(80, 100, 3)
    with torch.no_grad():
        v_other = predictor(_resized_unit(other, 384)).numpy()
    np.testing.assert_allclose(net.style_vector(other), v_other, atol=1e-4)


def test_blends_are_weighted_means_of_vectors_and_strength_moves_towards_the_photo(folder, tmp_path):
    _, predictor, transfer, _ = folder
    a, b, photo = _picture(384, 384, 4), _picture(384, 450, 5), _picture(48, 40, 6)
    Image.fromarray(a).save(tmp_path / "a.png")
    net = ds.open_model(folder[0] / "arbitrary_style.predictor.onnx", device="cpu", tile=0, working_size=0)
    net.set_style([str(tmp_path / "a.png"), b], [1, 3])
    with torch.no_grad():
        va, vb, own = predictor(_nchw(a)), predictor(_nchw(b)), predictor(_resized_unit(photo, 384))
        blend = 0.25 * va + 0.75 * vb
        want = transfer(_nchw(photo), 0.4 * blend + 0.6 * own)[0].permute(1, 2, 0).numpy()
    got = net(photo.astype(np.float32) / 255, strength=0.4)
    np.testing.assert_allclose(got, want, atol=5e-5)
    assert net.style_names == [str(tmp_path / "a.png"), "<ndarray>"]


def test_arbitrary_style_tiled_with_exact_statistics_is_the_whole_image(folder):
    photo = _picture(96, 160, 7)
    style = _picture(256, 256, 8)
    whole = ds.open_model(folder[0] / "arbitrary_style.onnx", device="cpu", tile=0, working_size=0).set_style(style)
    tiled = ds.open_model(folder[0] / "arbitrary_style.statistics.onnx", device="cpu", tile=48, overlap=8,
                          statistics="exact", working_size=0).set_style(style)
    plan = tiled.plan(96, 160)
    assert plan["statistics"] == "exact" and plan["tiles_x"] * plan["tiles_y"] > 1
    a = whole(photo.astype(np.float32) / 255)
    b = tiled(photo.astype(np.float32) / 255)
    assert np.abs(a - b).max() < 1e-3


def test_multistyle_by_name_number_and_blend(folder):
    _, _, _, multi = folder
    photo = _picture(36, 44, 9)
    net = ds.open_model(folder[0] / "multistyle26.onnx", device="cpu", tile=0, working_size=0)
    assert [s["name"] for s in net.styles] == [s["name"] for s in STYLES] and net.STYLE == "name"

    def torch_paint(weights):
        with torch.no_grad():
            return multi(_nchw(photo), torch.tensor(weights, dtype=torch.float32))[0].permute(1, 2, 0).numpy()

    n = len(STYLES)
    np.testing.assert_allclose(net(photo.astype(np.float32) / 255, style=STYLES[3]["name"].upper()),
                               torch_paint(np.eye(n)[3]), atol=2e-5)
    np.testing.assert_allclose(net(photo.astype(np.float32) / 255, style=[1, STYLES[4]["name"]], style_weights=[3, 1]),
                               torch_paint(0.75 * np.eye(n)[1] + 0.25 * np.eye(n)[4]), atol=2e-5)
    with pytest.raises(ds.OptionError, match=f"no built-in style 'sfumato'; the styles are {STYLES[0]['name']}, "
                                             f"{STYLES[1]['name']}"):
        net.set_style("sfumato")
    with pytest.raises(ds.OptionError, match=f"out of range: 0 to {n - 1}"):
        net.set_style(n)


def test_api_routes_styles_to_their_networks(folder, tmp_path):
    _, predictor, transfer, multi = folder
    photo, style = _picture(40, 40, 10), _picture(384, 384, 11)
    Image.fromarray(style).save(tmp_path / "painting.png")
    got = ds.stylize(photo, style=str(tmp_path / "painting.png"), device="cpu", working_size=0)
    with torch.no_grad():
        want = transfer(_nchw(photo), predictor(_nchw(style)))[0].permute(1, 2, 0).numpy()
    assert np.abs(got.astype(float) - np.rint(255 * want)).max() <= 1
    got = ds.stylize(photo, style=STYLES[2]["name"], device="cpu", working_size=0)
    with torch.no_grad():
        want = multi(_nchw(photo), torch.tensor(np.eye(len(STYLES))[2], dtype=torch.float32))[0].permute(1, 2, 0).numpy()
    assert np.abs(got.astype(float) - np.rint(255 * want)).max() <= 1
    with pytest.raises(ds.OptionError, match="either style images or built-in style names"):
        ds.stylize(photo, style=[str(tmp_path / "painting.png"), STYLES[1]["name"]], device="cpu")
    with pytest.raises(ds.OptionError, match="'nope' is neither an image file nor a built-in style; the built-in "
                                             f"styles are {STYLES[0]['name']}"):
        ds.stylize(photo, style="nope", device="cpu")


def test_cli_style_images_names_and_errors(folder, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(_picture(40, 48, 12)).save(photo)
    painting = tmp_path / "painting.jpg"
    Image.fromarray(_picture(256, 256, 13)).save(painting)
    base = ["stylize", str(photo), "--device", "cpu", "-q", "--working-size", "0"]
    assert main(base + ["--style", str(painting), "-o", str(tmp_path / "a.png")]) == 0
    assert Image.open(tmp_path / "a.png").size == (48, 40)
    assert main(base + ["--style", STYLES[1]["name"], "--style", "3", "--style-weights", "0.5,0.5", "-o",
                        str(tmp_path / "b.png")]) == 0
    capsys.readouterr()
    assert main(base + ["--style", "nope", "-o", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err
    assert "'nope' is neither an image file nor a built-in style" in err and STYLES[4]["name"] in err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    assert main(base + ["--style", str(broken), "-o", str(tmp_path / "d.png")]) == 1
    assert f"{broken}:" in capsys.readouterr().err
    assert main(base + ["--style", str(painting), "--style-tile", "64", "-o", str(tmp_path / "e.png")]) == 1
    assert "--style-tile: not an option of ArbitraryStyle models" in capsys.readouterr().err
    for name in "cde":
        assert not (tmp_path / f"{name}.png").exists()


def test_styles_lists_them_and_renders_a_sheet(folder, tmp_path, capsys):
    assert main(["styles", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["name"] for s in listed[:len(STYLES)]] == [s["name"] for s in STYLES]
    assert [s["number"] for s in listed] == list(range(len(listed)))
    assert sum(s["default"] for s in listed) == 1
    photo = tmp_path / "photo.jpg"
    Image.fromarray(_picture(60, 90, 14)).save(photo)
    sheet = tmp_path / "sheet.png"
    assert main(["styles", "--sheet", str(photo), "-o", str(sheet), "--size", "32", "--columns", "4", "-q",
                 "--device", "cpu"]) == 0
    cells = len(listed) + 1
    w, h = Image.open(sheet).size
    assert w == 4 * (32 + 8) + 8 and h == -(-cells // 4) * (21 + 22 + 8) + 8
    assert main(["styles", "--sheet", str(photo), "-o", str(photo)]) == 1          # never an input
    assert "is the input" in capsys.readouterr().err
    assert main(["styles", "-o", str(sheet)]) == 1
    assert "--out: only with --sheet" in capsys.readouterr().err


def test_first_use_build_says_why_it_failed(tmp_path):
    with pytest.raises(ds.ModelError, match="making it failed: deepshop-export: error: the following arguments are "
                                            "required: -o/--output"):
        made_on_first_use(tmp_path / "x.onnx", ["no-such-subcommand"], "test networks", PRETRAINED_ENV)
