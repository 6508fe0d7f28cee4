"""MSG-Net and tiles.  The Gram of a style image too large to encode whole, accumulated window by
window (StyleNet style_tile / style_statistics), against torch references computed here: the same
windows run through the torch encoder (each window its own instance-norm statistics), and the
whole image's Gram (encoder exported as a statistics graph, exact statistics).  Harmonize for a
content image cut into tiles, against the whole-image run."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

import deepshop_native as ds  # noqa: E402
from deepshop_export.families.msgnet.export import export_msgnet  # noqa: E402
from deepshop_export.families.msgnet.network import MSGNet  # noqa: E402

torch.set_num_threads(1)

# A 96 x 72 style (no resize at style_size 96) in windows of 56 px: the encoder's receptive field
# is 13 px, so the halo is 8 (its radius 7 rounded up to the stride 4) and the kept spans at most
# 40 px: rows 0-36-72, columns 0-32-64-96 (the fewest spans, then the shortest multiple of 4 that
# still covers: 36 and 32).  Each window is its kept span plus the halo on both sides (52 rows,
# 48 columns), moved inside the image where it would reach past it; worked out by hand:
# (owned span, window) per axis.
ROWS = [((0, 36), (0, 52)), ((36, 72), (20, 72))]
COLS = [((0, 32), (0, 48)), ((32, 64), (24, 72)), ((64, 96), (48, 96))]


@pytest.fixture(scope="module")
def net(photos):
    """A random tiny MSG-Net whose last convolution is scaled to give a 0..255 image (mean 128,
    std 50 on a photo): at random initialisation the output is ~0 +- 0.4, clipped to black, which
    would hide every difference between tiles."""
    torch.manual_seed(5)
    net = MSGNet(ngf=8, n_blocks=2).eval()
    with torch.no_grad():
        y = net(_bgr(photos["astronaut"][::4, ::4]), net.style_gram(_bgr(photos["coffee"][::4, ::4])))
        last = net.model[-1].conv2d
        last.weight.mul_(50.0 / y.std())
        last.bias.mul_(50.0 / y.std()).add_(128.0)
    return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory, net):
    """The encoder as a statistics graph (exact style statistics), the generator plain; one export
    (~25 s of the exporter's tracing) serves every test here.  The statistics encoder with its
    statistics "off" is the plain encoder (mix 0), so it also stands in for it."""
    path = tmp_path_factory.mktemp("msgnet_style_tiles") / "msg.onnx"
    export_msgnet(net, path, name="test", provenance={"source": "test"}, validate=False, encoder_statistics=True)
    return str(path)


@pytest.fixture(scope="module")
def style(photos):
    return np.asarray(Image.fromarray(photos["coffee"]).resize((96, 72), Image.LANCZOS))


def _bgr(rgb):
    return torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1], dtype=np.float32)).permute(2, 0, 1)[None]


def _relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_windows_add_up_to_the_windowed_torch_gram(exported, net, style):
    sn = ds.StyleNet(exported, device="cpu", style_size=96, style_tile=56, style_statistics="off")
    got = sn.style_gram(style)
    x = _bgr(style)
    total, positions = 0, 0
    with torch.no_grad():
        for (y0, y1), (wy0, wy1) in ROWS:
            for (x0, x1), (wx0, wx1) in COLS:
                f = net.encode(x[..., wy0:wy1, wx0:wx1])[0]
                f = f[:, (y0 - wy0) // 4:(y1 - wy0) // 4, (x0 - wx0) // 4:(x1 - wx0) // 4].reshape(f.shape[0], -1)
                total = total + (f.double() @ f.double().T).numpy()
                positions += f.shape[1]
        whole = net.style_gram(x)[0].double().numpy()
    channels = f.shape[0]
    assert channels == 32
    want = total / (channels * positions)                 # F F^T / (C h w), as MSG-Net normalises
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
    # Not the whole image's Gram: instance norm saw each window's statistics.
    off = _relative(got, whole)
    print(f"\nwindows with their own statistics: {off:.3f} relative (Frobenius) from the whole image's Gram")
    assert off > 1e-3


def test_exact_statistics_give_the_whole_images_gram(exported, net, style):
    stats = exported
    with torch.no_grad():
        whole = net.style_gram(_bgr(style))[0].double().numpy()
    exact = ds.StyleNet(stats, device="cpu", style_size=96, style_tile=56)
    assert exact.style_statistics == "exact"
    own = ds.StyleNet(stats, device="cpu", style_size=96, style_tile=56, style_statistics="off")
    untiled = ds.StyleNet(stats, device="cpu", style_size=96, style_tile=0)
    e_exact, e_own = _relative(exact.style_gram(style), whole), _relative(own.style_gram(style), whole)
    print(f"\nrelative error against the whole image's Gram: exact statistics {e_exact:.1e}, own {e_own:.3f}")
    assert e_exact < 1e-3 and e_own > 10 * e_exact
    # Untiled, the statistics encoder is the plain network (mix 0).
    np.testing.assert_allclose(untiled.style_gram(style), whole, rtol=1e-4, atol=1e-5 * np.abs(whole).max())


def test_style_tile_options(exported, style):
    plain = exported
    with pytest.raises(ds.OptionError, match="style_statistics"):
        ds.StyleNet(plain, device="cpu", style_statistics="thumbnail")
    with pytest.raises(ds.OptionError, match="style_tile: 24 px leaves no room"):
        ds.StyleNet(plain, device="cpu", style_tile=24)
    with pytest.raises(ds.OptionError, match="style_tile"):
        ds.StyleNet(plain, device="cpu", style_tile="big")
    # A style that fits in one window runs whole: the same Gram as with tiling off.
    a = ds.StyleNet(plain, device="cpu", style_size=96, style_tile=96).style_gram(style)
    b = ds.StyleNet(plain, device="cpu", style_size=96, style_tile=0).style_gram(style)
    np.testing.assert_array_equal(a, b)


def test_harmonize_pulls_tiles_to_the_thumbnails_colour(exported, style, photos):
    """The engine's harmonize (cpp/engine/harmonize.h) for MSG-Net: the thumbnail is stylized with
    the same Gram.  With a thumbnail of the image's own size the low-frequency colour is the whole
    image's; the detail stays each tile's own (its instance norm's), so full-band PSNR moves little."""
    from scipy.ndimage import gaussian_filter
    photo = np.asarray(Image.fromarray(photos["astronaut"]).resize((192, 192), Image.LANCZOS))
    whole = ds.StyleNet(exported, device="cpu", tile=0, style_size=96).set_style(style)(photo).astype(np.float64)
    plain = ds.StyleNet(exported, device="cpu", tile=96, overlap=32, style_size=96)
    harmonized = ds.StyleNet(exported, device="cpu", tile=96, overlap=32, style_size=96, harmonize=192)
    assert plain.plan(192, 192)["tiles_x"] > 1
    assert not plain.plan(192, 192)["harmonize"] and harmonized.plan(192, 192)["harmonize"]
    off, on = (n.set_style(style)(photo).astype(np.float64) for n in (plain, harmonized))

    def psnr(a, b):
        return 10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2))

    def low(a):
        return gaussian_filter(a, (6, 6, 0))        # scales above ~1/32 of the image
    full = psnr(off, whole), psnr(on, whole)
    lowpass = psnr(low(off), low(whole)), psnr(low(on), low(whole))
    print(f"\ntiled vs whole: {full[0]:.2f} -> {full[1]:.2f} dB with harmonize; low-pass {lowpass[0]:.2f} -> "
          f"{lowpass[1]:.2f} dB")
    assert lowpass[1] > lowpass[0] + 5 and full[1] > full[0]


def test_command_line_style_tile_and_harmonize(tmp_path, exported, net, style, capsys):
    from deepshop_native.cli import main
    Image.fromarray(style).save(tmp_path / "style.png")
    Image.fromarray(style).save(tmp_path / "photo.png")
    rc = main(["stylize", str(tmp_path / "photo.png"), "--model", exported, "--style", str(tmp_path / "style.png"),
               "--style-tile", "24", "--device", "cpu", "-o", str(tmp_path / "a.png"), "-q"])
    assert rc == 1 and "--style-tile: 24 px leaves no room" in capsys.readouterr().err
    rc = main(["stylize", str(tmp_path / "photo.png"), "--model", exported, "--style", str(tmp_path / "style.png"),
               "--style-size", "96", "--style-tile", "56", "--style-statistics", "exact", "--tile", "64",
               "--overlap", "16", "--harmonize", "96", "--device", "cpu", "-o", str(tmp_path / "b.png"), "-q"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert Image.open(tmp_path / "b.png").size == (96, 72)
    assert not (tmp_path / "a.png").exists()
