"""One pixel limit (2^26 by default, $DEEPSHOP_MAX_PIXELS, --max-pixels) for every image the API
and every subcommand read, checked from the header before decoding: a file of a few hundred bytes
declaring 16000 x 16000 pixels is refused by every entry point, inputs and style images alike.
(Gatys: test_gatys.py; MSG-Net's --style and --style-size: test_msgnet.py.)"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFile

import deepshop_native as ds
from deepshop_native.cli import main
from deepshop_native.core.errors import ImageError, OptionError
from deepshop_native.image import DEFAULT_MAX_PIXELS, effective_max_pixels, max_pixels_scope, read_image

from image_factory import jpeg_bomb, png_bomb


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("DEEPSHOP_MAX_PIXELS", raising=False)


@pytest.fixture()
def no_decoding(monkeypatch):
    """Decoding anything fails the test: a bomb must be refused from its header."""
    def refuse(self, *a, **k):
        raise AssertionError("decoded although over the limit")
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(Image.Image, "load", refuse)


@pytest.fixture()
def photo(tmp_path):
    p = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(p)
    return p


def test_one_default_limit_of_2_26(tmp_path, no_decoding):
    assert DEFAULT_MAX_PIXELS == 1 << 26 == effective_max_pixels()
    for bomb in (png_bomb(tmp_path / "b.png"), jpeg_bomb(tmp_path / "b.jpg")):
        assert bomb.stat().st_size < 700
        with pytest.raises(ImageError, match=r"16000x16000 = 256,000,000 pixels.*67,108,864"):
            read_image(bomb)


def test_scope_env_and_explicit_argument(photo, monkeypatch):
    with max_pixels_scope(100):
        with pytest.raises(ImageError, match="limit of 100 pixels"):
            read_image(photo)
        assert read_image(photo, max_pixels=None).width == 32          # an explicit argument wins
        monkeypatch.setenv("DEEPSHOP_MAX_PIXELS", "0")
        with pytest.raises(ImageError, match="limit of 100 pixels"):  # the scope (--max-pixels) over the env
            read_image(photo)
    assert read_image(photo).width == 32                               # env 0: none
    with max_pixels_scope(0):
        assert effective_max_pixels() is None
    with pytest.raises(OptionError, match="max_pixels"):
        with max_pixels_scope(-1):
            pass


@pytest.mark.parametrize("call", ["Stylizer", "edges", "colorize", "Colorizer.run", "stylize"])
def test_api_entry_points_refuse_a_bomb_before_decoding(tmp_path, identity_onnx, no_decoding, call):
    pytest.importorskip("cv2")
    bomb = str(png_bomb(tmp_path / "bomb.png"))
    calls = {"Stylizer": lambda: ds.Stylizer(identity_onnx)(bomb), "edges": lambda: ds.edges(bomb),
             "colorize": lambda: ds.colorize(bomb), "Colorizer.run": lambda: ds.Colorizer().run(bomb),
             "stylize": lambda: ds.stylize(bomb, identity_onnx)}
    with pytest.raises(ImageError, match=r"bomb\.png.*16000x16000"):
        calls[call]()


def _cli(argv, capsys):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


@pytest.mark.parametrize("argv", [
    ["stylize", "{bomb}", "-m", "{model}", "-o", "{out}.png"],
    ["posterize", "{bomb}", "--levels", "3", "--out", "{out}.png"],
    ["posterize", "{photo}", "--palette-from", "{bomb}", "-k", "4", "--out", "{out}.png"],
    ["edges", "{bomb}", "-o", "{out}.png"],
    ["colorize", "{bomb}", "-o", "{out}.png"],
    ["styles", "--sheet", "{bomb}", "-o", "{out}.png"],
])
def test_every_subcommand_refuses_a_bomb_before_decoding(tmp_path, photo, identity_onnx, capsys, no_decoding, argv):
    pytest.importorskip("cv2")
    bomb = jpeg_bomb(tmp_path / "bomb.jpg")
    fill = dict(bomb=bomb, model=identity_onnx, out=tmp_path / "out", photo=photo)
    rc, err = _cli([a.format(**fill) for a in argv], capsys)
    assert rc == 1 and "bomb.jpg" in err and "16000x16000" in err and "--max-pixels" in err, err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("argv", [
    ["stylize", "{photo}", "-m", "{model}", "-o", "{out}.png", "-q"],
    ["posterize", "{photo}", "--levels", "3", "--out", "{out}.png"],
    ["edges", "{photo}", "-o", "{out}.png"],
    ["colorize", "{photo}", "-o", "{out}.png"],
])
def test_every_subcommand_takes_max_pixels(tmp_path, photo, identity_onnx, capsys, monkeypatch, argv):
    pytest.importorskip("cv2")
    fill = dict(model=identity_onnx, out=tmp_path / "out", photo=photo)
    argv = [a.format(**fill) for a in argv]
    rc, err = _cli(argv + ["--max-pixels", "700"], capsys)             # the photo is 32 x 24 = 768 pixels
    assert rc == 1 and "photo.png" in err and "768 pixels" in err and "limit of 700" in err, err
    monkeypatch.setenv("DEEPSHOP_MAX_PIXELS", "700")
    rc, err = _cli(argv, capsys)
    assert rc == 1 and "limit of 700" in err, err
    rc, err = _cli(argv + ["--max-pixels", "0"], capsys)               # the option over the environment
    assert rc == 0 and (tmp_path / "out.png").is_file(), err


def test_styles_sheet_takes_max_pixels(tmp_path, photo, capsys, monkeypatch):
    """The contact sheet's photo is read under the one limit (--max-pixels, then the environment)."""
    argv = ["styles", "--sheet", str(photo), "-o", str(tmp_path / "sheet.png"), "-q"]
    rc, err = _cli(argv + ["--max-pixels", "700"], capsys)
    assert rc == 1 and "photo.png" in err and "limit of 700" in err, err
    monkeypatch.setenv("DEEPSHOP_MAX_PIXELS", "700")
    rc, err = _cli(argv, capsys)
    assert rc == 1 and "limit of 700" in err, err
    assert not (tmp_path / "sheet.png").exists()


def test_serve_takes_the_one_limit(monkeypatch):
    """deepshop serve's uploads: the same default, environment variable and option as every subcommand."""
    from deepshop_native.cli import build_parser
    from deepshop_native.serve import cli as serve_cli

    def limit(*more):
        return serve_cli._check(build_parser().parse_args(["serve", *more]))["max_pixels"]
    assert limit() == DEFAULT_MAX_PIXELS
    assert limit("--max-pixels", "5000") == 5000 and limit("--max-pixels", "0") is None
    monkeypatch.setenv("DEEPSHOP_MAX_PIXELS", "700")
    assert limit() == 700 and limit("--max-pixels", "5000") == 5000
    pytest.importorskip("fastapi")
    from deepshop_native.serve.app import ServerConfig
    assert ServerConfig.__dataclass_fields__["max_pixels"].default == DEFAULT_MAX_PIXELS


def test_arbitrary_style_size_is_bounded_by_the_limit(tmp_path, tiny_pretrained, monkeypatch):
    """The painting resized to --style-size (its shorter side) is bounded before the memory is
    taken: an OptionError naming style_size, the painting and the limit."""
    pytest.importorskip("torch")
    from deepshop_native.core.paths import PRETRAINED_ENV
    from deepshop_native.pipelines.arbitrary import ArbitraryStyle
    monkeypatch.setenv(PRETRAINED_ENV, str(tiny_pretrained[0]))
    painting = tmp_path / "painting.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(painting)
    with max_pixels_scope(1 << 16):
        net = ArbitraryStyle(device="cpu", style_size=1000)
        with pytest.raises(OptionError, match=r"style_size: makes the style image .*painting.png 1500x1000.*65,536"):
            net.set_style(painting)
        ArbitraryStyle(device="cpu", style_size=200).set_style(painting)      # 300 x 200 fits
