"""MSG-Net at run time: the encoder + generator pair exported from a small random network (ngf=8),
run by the engine with the native Gram kernel between them, against the torch network end to end;
styles blended and cached; bad style images; ds.stylize / predict / the CLI's --style."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

import deepshop_native as ds  # noqa: E402
from deepshop_native.core import metadata as mm  # noqa: E402
from deepshop_native.cli import main  # noqa: E402
from deepshop_export.families.msgnet.export import encoder_path_for, export_msgnet  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def msgnet(msgnet_net):
    return msgnet_net           # conftest: seeded, ngf=8 (shared with test_serve)


@pytest.fixture(scope="module")
def pair(msgnet_pair):
    return msgnet_pair          # conftest: msgnet exported once per session


@pytest.fixture(scope="module")
def images(photos):
    style = np.asarray(Image.fromarray(photos["coffee"]).resize((96, 72), Image.LANCZOS))
    other = np.asarray(Image.fromarray(photos["chelsea"]).resize((96, 64), Image.LANCZOS))
    photo = np.asarray(Image.fromarray(photos["astronaut"]).resize((100, 132), Image.LANCZOS))
    return style, other, photo


def _bgr_tensor(rgb):
    return torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1], dtype=np.float32)).permute(2, 0, 1)[None]


def _torch_stylize(net, rgb_float255, gram):
    with torch.no_grad():
        y = net(_bgr_tensor(rgb_float255), gram)
    return y[0].permute(1, 2, 0).numpy()[..., ::-1].clip(0, 255)


def test_pair_metadata(pair):
    enc = encoder_path_for(pair)
    gmeta, emeta = mm.read_metadata(pair), mm.read_metadata(enc)
    assert gmeta["deepshop.family"] == emeta["deepshop.family"] == "msgnet"
    gpipe, epipe = json.loads(gmeta["deepshop.pipeline"]), json.loads(emeta["deepshop.pipeline"])
    assert gpipe["part"] == "generator" and gpipe["encoder"] == os.path.basename(enc)
    assert epipe["part"] == "encoder" and epipe["generator"] == os.path.basename(pair)
    assert json.loads(gmeta["deepshop.inputs"]) == {"input": "image", "gram": "aux"}
    assert gmeta["deepshop.channel_order"] == "BGR" and gmeta["deepshop.value_range"] == "0,255"
    assert gpipe["feature_channels"] == 32 and gpipe["gram_normalize"] == "CN"
    assert isinstance(ds.open_model(pair, device="cpu"), ds.StyleNet)
    assert ds.open_model(enc, device="cpu").model_path.name == os.path.basename(pair)


def test_engine_matches_torch_end_to_end(pair, msgnet, images):
    style, _, photo = images
    net = ds.StyleNet(pair, device="cpu", tile=0, style_size=96)     # 96 x 72: no resize
    net.set_style(style)
    with torch.no_grad():
        g = msgnet.style_gram(_bgr_tensor(style))
    np.testing.assert_allclose(net.gram[0], g[0].numpy(), rtol=1e-4, atol=1e-6 * float(g.abs().max()))
    out = net(photo.astype(np.float32) / 255) * 255
    want = _torch_stylize(msgnet, photo.astype(np.float32), g)
    assert out.shape == photo.shape
    assert np.abs(out - want).max() <= 0.5
    # Any size: padded to a multiple of 4 (reflected at the bottom/right) and cropped back.
    odd = photo[:101, :77].astype(np.float32)
    got = net(odd / 255) * 255
    with torch.no_grad():
        x = torch.nn.functional.pad(_bgr_tensor(odd), (0, 3, 0, 3), mode="reflect")
        ref = msgnet(x, g)[0, :, :101, :77].permute(1, 2, 0).numpy()[..., ::-1].clip(0, 255)
    assert got.shape == (101, 77, 3) and np.abs(got - ref).max() <= 0.5


def test_tiled_within_the_stylizers_seam_bound(pair, images):
    style, _, photo = images
    whole = ds.StyleNet(pair, device="cpu", tile=0).set_style(style)(photo).astype(np.float64)
    st = ds.StyleNet(pair, device="cpu", tile=64, overlap=16).set_style(style)
    plan = st.plan(*photo.shape[:2])
    assert plan["tiles_x"] * plan["tiles_y"] > 1
    tiled = st(photo).astype(np.float64)
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((tiled - whole) ** 2))
    assert psnr > 20          # the bound tests/test_engine.py holds the feedforward stylizer to


def test_blended_styles_and_the_cache(tmp_path, pair, msgnet, images):
    style, other, _ = images
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(style).save(a)
    Image.fromarray(other).save(b)
    net = ds.StyleNet(pair, device="cpu", style_size=96)
    net.set_style([a, b], [1, 3])
    with torch.no_grad():
        ga, gb = msgnet.style_gram(_bgr_tensor(style))[0], msgnet.style_gram(_bgr_tensor(other))[0]
    np.testing.assert_allclose(net.gram[0], (0.25 * ga + 0.75 * gb).numpy(), rtol=1e-4, atol=1e-7)
    first = net.style_gram(a)
    assert net.style_gram(a) is first                    # cached per file
    Image.fromarray(other).save(a)
    os.utime(a, ns=(1, 1))
    assert not np.array_equal(net.style_gram(a), first)  # a changed file is read again
    with pytest.raises(ds.OptionError, match="style_weights"):
        net.set_style([a, b], [1])
    with pytest.raises(ds.OptionError, match="no style"):
        ds.StyleNet(pair, device="cpu")(style)


def test_bad_style_images_name_the_file(tmp_path, pair, images):
    style = images[0]
    net = ds.StyleNet(pair, device="cpu")
    cases = {
        "gray.png": (Image.fromarray(style[..., 0]), "grayscale"),
        "alpha.png": (Image.fromarray(np.dstack([style, np.full(style.shape[:2], 128, np.uint8)])), "alpha"),
        "tiny.png": (Image.fromarray(style[:8, :8]), "too small"),
    }
    for name, (im, reason) in cases.items():
        im.save(tmp_path / name)
        with pytest.raises(ds.ImageError, match=f"{name}.*{reason}"):
            net.set_style(tmp_path / name)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.raises(ds.ImageError, match="broken.jpg"):
        net.set_style(tmp_path / "broken.jpg")


def test_stylize_predict_and_cli(tmp_path, pair, transformer_onnx, images, capsys):
    style, _, photo = images
    Image.fromarray(style).save(tmp_path / "style.png")
    Image.fromarray(photo).save(tmp_path / "photo.png")
    out = ds.stylize(tmp_path / "photo.png", pair, tmp_path / "out.png", style=tmp_path / "style.png", device="cpu")
    assert out.shape == photo.shape and Image.open(tmp_path / "out.png").size == (100, 132)
    net = ds.StyleNet(pair, device="cpu").set_style(tmp_path / "style.png")
    [bgr] = net.predict([photo[..., ::-1]], style=str(tmp_path / "style.png"))
    np.testing.assert_array_equal(bgr[..., ::-1], net(photo))

    rc = main(["stylize", str(tmp_path / "photo.png"), "--model", pair, "--style", str(tmp_path / "style.png"),
               "--style", str(tmp_path / "photo.png"), "--style-weights", "0.5,0.5", "--device", "cpu",
               "-o", str(tmp_path / "cli.png"), "-q"])
    assert rc == 0 and Image.open(tmp_path / "cli.png").size == (100, 132)
    capsys.readouterr()
    rc = main(["stylize", str(tmp_path / "photo.png"), "--model", transformer_onnx, "--style",
               str(tmp_path / "style.png"), "-o", str(tmp_path / "x.png"), "-q"])
    assert rc == 1 and "no style input" in capsys.readouterr().err
    rc = main(["stylize", str(tmp_path / "photo.png"), "--model", pair, "-o", str(tmp_path / "y.png"), "-q"])
    assert rc == 1 and "give --style" in capsys.readouterr().err
    rc = main(["stylize", str(tmp_path / "photo.png"), "--model", pair, "--style", str(tmp_path / "nothere.jpg"),
               "-o", str(tmp_path / "z.png"), "-q"])
    assert rc == 1 and "nothere.jpg" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("x.png", "y.png", "z.png"))


@pytest.mark.slow      # a second export (~30 s on the shared 2-core machine)
def test_statistics_graph_tiles_like_the_whole_image(tmp_path, msgnet, images):
    """Generator exported with --statistics: with the thumbnail's statistics (here the image
    itself: it is smaller than statistics_size) every tile is normalised as the whole image is."""
    style, _, photo = images
    path = tmp_path / "stats.onnx"
    export_msgnet(msgnet, path, name="test", provenance={"source": "test"}, statistics=True)
    assert "deepshop.statistics" in mm.read_metadata(path)
    plain = ds.StyleNet(path, device="cpu", tile=0, style_size=96).set_style(style)
    with torch.no_grad():
        g = msgnet.style_gram(_bgr_tensor(style))
    want = _torch_stylize(msgnet, photo.astype(np.float32), g)
    assert np.abs(plain(photo.astype(np.float32) / 255) * 255 - want).max() <= 0.5     # mix 0: the plain network
    tiled = ds.StyleNet(path, device="cpu", tile=96, overlap=16, style_size=96).set_style(style)
    assert tiled.plan(*photo.shape[:2])["tiles_x"] > 1
    own = ds.StyleNet(path, device="cpu", tile=96, overlap=16, style_size=96, statistics="off").set_style(style)

    def psnr(a):
        return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) * 255 - want) ** 2))
    p_stats, p_own = psnr(tiled(photo.astype(np.float32) / 255)), psnr(own(photo.astype(np.float32) / 255))
    print(f"\ntiled vs torch whole image: thumbnail statistics {p_stats:.1f} dB, each tile its own {p_own:.1f} dB")
    assert p_stats > 40 and p_stats > p_own


def test_exact_style_statistics_need_a_statistics_encoder(pair):
    net = ds.StyleNet(pair, device="cpu")
    assert net.style_statistics == "off" and net.style_tile == 1024     # large styles: windows, own statistics
    with pytest.raises(ds.OptionError, match="style_statistics: 'exact' needs an encoder exported with"):
        ds.StyleNet(pair, device="cpu", style_statistics="exact")


def test_style_size_is_bounded_by_the_pixel_limit(tmp_path, pair, images, monkeypatch, capsys):
    # --style-size 100000 on a small style image grew to 17-19 GB before the encoder ran.
    monkeypatch.delenv("DEEPSHOP_MAX_PIXELS", raising=False)
    style, _, photo = images                                   # style 96 x 72
    net = ds.StyleNet(pair, device="cpu", style_size=100000)
    with pytest.raises(ds.OptionError, match=r"^style_size: .*100000x75000 .*67,108,864"):
        net.set_style(style)
    Image.fromarray(style).save(tmp_path / "style.png")
    Image.fromarray(photo).save(tmp_path / "photo.png")
    rc = main(["stylize", str(tmp_path / "photo.png"), "--model", pair, "--style", str(tmp_path / "style.png"),
               "--style-size", "100000", "--device", "cpu", "-o", str(tmp_path / "o.png"), "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and "--style-size" in err and "Traceback" not in err, err
    rc = main(["stylize", str(tmp_path / "photo.png"), "--model", pair, "--style", str(tmp_path / "style.png"),
               "--style-size", "128", "--max-pixels", "10000", "--device", "cpu", "-o", str(tmp_path / "o.png"),
               "-q"])                                          # 128 x 96 = 12288 > 10000
    err = capsys.readouterr().err
    assert rc == 1 and "--style-size" in err and "10,000" in err, err
    assert not (tmp_path / "o.png").exists()


def test_style_bombs_and_nul_bytes_are_refused(tmp_path, pair, images, monkeypatch, capsys):
    from image_factory import jpeg_bomb
    monkeypatch.delenv("DEEPSHOP_MAX_PIXELS", raising=False)
    bomb = jpeg_bomb(tmp_path / "bomb.jpg")
    net = ds.StyleNet(pair, device="cpu")
    with pytest.raises(ds.ImageError, match=r"bomb\.jpg.*16000x16000"):
        net.set_style(bomb)
    for call in (lambda: net.set_style("a\x00b.png"), lambda: net.set_style(images[0])("a\x00b.png")):
        with pytest.raises(ds.ImageError, match=r"a\\x00b.*NUL byte"):
            call()
    Image.fromarray(images[2]).save(tmp_path / "photo.png")
    rc = main(["stylize", str(tmp_path / "photo.png"), "--model", pair, "--style", str(bomb), "--device", "cpu",
               "-o", str(tmp_path / "o.png"), "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and "bomb.jpg" in err and "16000x16000" in err, err


def test_output_equal_to_a_style_image_is_refused(tmp_path, pair, images, capsys):
    style, _, photo = images
    Image.fromarray(style).save(tmp_path / "style.png")
    Image.fromarray(photo).save(tmp_path / "photo.png")
    before = (tmp_path / "style.png").read_bytes()
    rc = main(["stylize", str(tmp_path / "photo.png"), "--model", pair, "--style", str(tmp_path / "style.png"),
               "--device", "cpu", "-o", str(tmp_path / "style.png"), "--overwrite", "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and "style.png" in err and "input" in err, err
    with pytest.raises(ds.OutputError, match="style.png"):
        ds.stylize(tmp_path / "photo.png", pair, tmp_path / "style.png", style=tmp_path / "style.png",
                   overwrite=True, device="cpu")
    assert (tmp_path / "style.png").read_bytes() == before
