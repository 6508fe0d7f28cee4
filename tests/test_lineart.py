"""Line drawings to colour paintings (issue 11): edges, decoding, the lineart family's training and
export, and colourising through the engine.  References: OpenCV (edges), numpy (nearest palette
colour, softmax expectation), torch (class scores)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
torch = pytest.importorskip("torch")

import deepshop_native as ds  # noqa: E402
from deepshop_native.core.errors import ModelError, OptionError  # noqa: E402

PALETTE5 = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], np.uint8)


def photo(size=(120, 160)):
    import skimage.data
    from PIL import Image
    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize(size[::-1], Image.BILINEAR))


def tutorial_canny(rgb, sigma=0.33):
    """The tutorial's auto-Canny written with OpenCV directly."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    gray = cv2.bilateralFilter(gray, 3, 60, 120)
    m = np.median(gray)
    return cv2.Canny(gray, int(max(0, (1.0 - sigma) * m)), int(min(255, (1.0 + sigma) * m)))


# --- edges -------------------------------------------------------------------------------------

def test_edges_equal_opencv_auto_canny():
    rgb = photo()
    got = ds.edges(rgb)
    assert got.dtype == np.uint8 and got.shape == rgb.shape[:2]
    np.testing.assert_array_equal(got, tutorial_canny(rgb))
    assert 0.01 < (got > 0).mean() < 0.5


def test_edges_options():
    rgb = photo()
    thin = ds.edges(rgb)
    thick = ds.edges(rgb, thickness=3)
    assert (thick >= thin).all() and (thick > 0).sum() > 1.5 * (thin > 0).sum()
    np.testing.assert_array_equal(ds.edges(rgb, invert=True), 255 - thin)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(ds.edges(rgb, smooth=False, low=50, high=150), cv2.Canny(gray, 50, 150))
    with pytest.raises(OptionError, match="method"):
        ds.edges(rgb, method="sobel")
    with pytest.raises(OptionError, match="low"):
        ds.edges(rgb, low=200, high=100)
    with pytest.raises(OptionError, match="thickness"):
        ds.edges(rgb, thickness=0)


def test_edges_of_flat_image_are_empty():
    assert ds.edges(np.full((20, 30, 3), 200, np.uint8)).max() == 0


# --- a tiny exported line-art model ----------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A depth-1 U-Net (receptive field 18 px) with random weights, 5 classes, exported once."""
    from deepshop_export.families.lineart.export import export_lineart
    from deepshop_export.families.lineart.network import LineArtUNet
    torch.manual_seed(0)
    net = LineArtUNet(5, 4, 1)
    with torch.no_grad():   # non-trivial batch-norm statistics, as after training
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    net.eval()
    path = tmp_path_factory.mktemp("lineart") / "tiny.onnx"
    export_lineart(net, path, PALETTE5, name="tiny", provenance={"test": True}, decoding="annealed_mean",
                   temperature=0.5)
    return net, str(path)


def torch_scores(net, edges):
    with torch.no_grad():
        return net(torch.from_numpy(edges.astype(np.float32))[None, None])[0].numpy()


def drawing(h=64, w=80, seed=0):
    return (np.random.default_rng(seed).random((h, w)) < 0.1).astype(np.float32)


def test_onnx_matches_torch_class_scores(tiny_model):
    import onnxruntime as ort
    net, path = tiny_model
    x = drawing(96, 72)
    ref = torch_scores(net, x)
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"edges": x[None, None]})[0][0]
    assert np.abs(got - ref).max() <= 1e-3 * (ref.max() - ref.min())


def test_metadata_palette_and_decoding(tiny_model):
    _, path = tiny_model
    c = ds.Colorizer(path)
    assert c.metadata["deepshop.family"] == "lineart"
    np.testing.assert_array_equal(c.palette, PALETTE5)
    assert c.default_temperature == 0.5
    assert type(ds.open_model(path)).__name__ == "Colorizer"


def numpy_annealed_mean(scores, palette, t):
    z = scores.astype(np.float64) / t
    p = np.exp(z - z.max(0))
    p /= p.sum(0)
    return np.einsum("khw,kc->hwc", p, palette.astype(np.float64))


@pytest.mark.parametrize("temperature", [0.0, 0.05, 0.5, 3.0])
def test_engine_decoding_matches_numpy(tiny_model, temperature):
    net, path = tiny_model
    x = drawing(64, 80)
    ref_scores = torch_scores(net, x)
    out = ds.Colorizer(path, tile=0).run(x, input="edges", temperature=temperature)
    np.testing.assert_array_equal(out["labels"], ref_scores.argmax(0))
    if temperature == 0:
        np.testing.assert_array_equal(out["rgb"], PALETTE5[ref_scores.argmax(0)])
    else:
        ref = numpy_annealed_mean(ref_scores, PALETTE5, temperature)
        assert np.abs(out["rgb"] - ref).max() <= 0.51   # rounding only
    with pytest.raises(OptionError, match="temperature"):
        ds.Colorizer(path).run(x, input="edges", temperature=-1)


def test_tiled_equals_whole_image(tiny_model):
    _, path = tiny_model
    x = drawing(150, 130, seed=3)
    whole = ds.Colorizer(path, tile=0).run(x, input="edges", temperature=0.5)
    tiled_c = ds.Colorizer(path, tile=64, halo=12, overlap=8)
    plan = tiled_c.plan(150, 130)
    assert plan["tiles_y"] * plan["tiles_x"] >= 9, plan
    tiled = tiled_c.run(x, input="edges", temperature=0.5)
    # Within the receptive field's radius (9 px) of the image border the tiled runner reads the
    # image reflected where a whole-image run sees the network's zero padding; inside, tiles
    # compute what the whole image does (the halo, 12 px, covers the field).
    r = 9
    inner = (slice(r, -r), slice(r, -r))
    assert (tiled["labels"][inner] != whole["labels"][inner]).mean() < 1e-3
    assert np.abs(tiled["rgb"][inner].astype(int) - whole["rgb"][inner]).max() <= 1


# --- drawings as users have them -----------------------------------------------------------

def test_scanned_drawing_dark_on_white_equals_edge_map(tiny_model):
    _, path = tiny_model
    c = ds.Colorizer(path)
    x = drawing(64, 64)
    scan = np.where(x > 0, 30, 235).astype(np.uint8)       # dark pen lines on white paper
    as_edges = c.run(x, input="edges")
    as_scan = c.run(scan)
    np.testing.assert_array_equal(as_scan["edges"], x)
    np.testing.assert_array_equal(as_scan["rgb"], as_edges["rgb"])
    assert as_scan["notes"] == []


def test_bad_and_odd_inputs(tiny_model):
    _, path = tiny_model
    c = ds.Colorizer(path)
    for value in (0, 255):    # all black, all white: no lines, a clear note and a result
        out = c.run(np.full((40, 40), value, np.uint8))
        assert out["rgb"].shape == (40, 40, 3) and any("no lines" in n for n in out["notes"])
    colour = photo((48, 64))
    out = c.run(colour)
    assert any("colour image" in n for n in out["notes"]) and out["rgb"].shape == (48, 64, 3)
    from deepshop_native.pipelines.colorize import ColorizeNote
    with pytest.warns(ColorizeNote):
        c(colour)
    for shape in ((1, 1), (3, 2), (7, 9)):   # tiny images: reflected up by the engine, cropped back
        assert c.run(np.zeros(shape, np.uint8))["rgb"].shape == shape + (3,)
    photo_out = c.run(photo((64, 64)), input="photo")
    np.testing.assert_array_equal(photo_out["edges"], ds.edges(photo((64, 64))) / 255.0)
    with pytest.raises(OptionError, match="input"):
        c.run(colour, input="sketch")
    with pytest.raises(OptionError, match="palette"):
        c.run(colour, palette=np.zeros((3, 3), np.uint8))


def test_model_without_palette_is_refused(tmp_path, tiny_model):
    import onnx
    _, path = tiny_model
    m = onnx.load(path)
    keep = [p for p in m.metadata_props if p.key != "deepshop.palette"]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    bad = tmp_path / "nopal.onnx"
    onnx.save(m, str(bad))
    with pytest.raises(ModelError, match="palette"):
        ds.Colorizer(bad)


# --- training ----------------------------------------------------------------------------

def test_targets_equal_nearest_palette_colour():
    """The dataset's labels are the native posterise kernel's, which equal a numpy nearest-colour
    search (squared RGB distance, ties to the lowest index)."""
    import random
    from PIL import Image
    from deepshop_export.families.lineart import data
    pal = ds.uniform_palette(3)
    img = Image.fromarray(photo((100, 100)))
    d = data.LineArtCrops([], 64, pal)
    e, lab = d.sample(img, random.Random(5))
    from deepshop_export.training import data as train_data
    rng = random.Random(5)
    crop = train_data.random_resized_crop(img, 64, rng, d.scale)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    rgb = np.asarray(crop).astype(np.int64)
    dist = ((rgb[:, :, None, :] - pal[None, None].astype(np.int64)) ** 2).sum(-1)
    np.testing.assert_array_equal(lab.numpy(), dist.argmin(-1))
    np.testing.assert_array_equal(e[0].numpy(), ds.edges(np.asarray(crop)) / 255.0)


def test_rebalancing_weights():
    from deepshop_export.families.lineart.data import rebalancing_weights
    freq = np.array([0.7, 0.2, 0.1, 0.0])
    w = rebalancing_weights(freq)
    assert np.isclose((freq * w).sum(), 1.0) and w[3] > w[2] > w[1] > w[0]


def tiny_photo_folder(tmp_path):
    from PIL import Image
    data_dir = tmp_path / "photos"
    data_dir.mkdir()
    for i, (y, x) in enumerate([(0, 0), (100, 150), (250, 250), (300, 50), (50, 300)]):
        Image.fromarray(photo((512, 512))[y:y + 200, x:x + 200]).save(data_dir / f"p{i}.png")
    (data_dir / "broken.png").write_bytes(b"not a png")
    return data_dir


def test_loss_falls_on_tiny_dataset(tmp_path):
    from deepshop_export.families.lineart.train import resolve_settings, run
    from deepshop_export.training.report import read_jsonl
    data_dir = tiny_photo_folder(tmp_path)
    torch.set_num_threads(1)
    out = tmp_path / "run"
    settings = resolve_settings(["--data", str(data_dir), "--out", str(out), "--iterations", "40", "--base", "4",
                                 "--depth", "2", "--image-size", "32", "--batch-size", "4", "--lr", "1e-2",
                                 "--workers", "0", "--holdout-every", "3", "--log-interval", "5", "--no-progress",
                                 "--no-export", "--rebalance", "--checkpoint-interval", "20"])
    prov = run(settings)
    log = read_jsonl(out / "log.jsonl")
    assert log[-1]["loss"] < 0.8 * log[0]["loss"]
    assert log[-1]["accuracy"] > log[0]["accuracy"]
    for name in ("checkpoint.pt", "losses.png", "accuracy.png", "samples.png", "model.json"):
        assert (out / name).is_file(), name
    assert prov["data"]["broken_skipped"] == 1 and prov["data"]["held_out_images"] == 2
    ho = prov["held_out"]
    assert ho["photos"] == 2 and 0 <= ho["model"]["accuracy"] <= 1 and ho["majority_baseline"]["delta_e_target"] >= 0
    assert ho["mean_colour_baseline"]["delta_e_photo"] >= 0


# --- command line --------------------------------------------------------------------------

def test_cli_edges_and_colorize(tmp_path, tiny_model, capsys):
    from PIL import Image
    from deepshop_native.cli import main
    _, path = tiny_model
    src = tmp_path / "photo.jpg"
    Image.fromarray(photo((64, 80))).save(src, quality=95)
    assert main(["edges", str(src)]) == 0
    edges_png = tmp_path / "photo_edges.png"
    written = np.asarray(Image.open(edges_png).convert("L"))
    from deepshop_native.image import read_image
    np.testing.assert_array_equal(written, ds.edges(read_image(src).pixels))
    assert main(["edges", str(src)]) == 1                       # exists: not replaced without --overwrite
    assert main(["edges", str(src), "--overwrite", "--invert", "--thickness", "2"]) == 0
    out = tmp_path / "painted.png"
    assert main(["colorize", str(edges_png), "--model", path, "--temperature", "0", "-o", str(out)]) == 0
    painted = np.asarray(Image.open(out).convert("RGB"))
    expected = ds.Colorizer(path).run(edges_png, temperature=0)["rgb"]
    np.testing.assert_array_equal(painted, expected)
    assert set(map(tuple, painted.reshape(-1, 3))) <= set(map(tuple, PALETTE5))
    capsys.readouterr()
    assert main(["colorize", str(src), "--model", path, "-o", str(tmp_path / "c.png")]) == 0
    assert "colour image" in capsys.readouterr().err                # the note
    assert main(["colorize", str(src), "--model", path, "--temperature", "-2"]) == 1
    assert main(["colorize", str(tmp_path / "missing.png"), "--model", path, "-o", str(tmp_path / "m.png")]) == 1


@pytest.mark.slow
def test_checkpoint_export(tmp_path):
    """A run's checkpoint exports with its palette, the chosen decoding and the held-out figures
    (slow: a training run and an ONNX export)."""
    from deepshop_export.families.lineart.train import resolve_settings, run
    data_dir = tiny_photo_folder(tmp_path)
    out = tmp_path / "run"
    prov = run(resolve_settings(["--data", str(data_dir), "--out", str(out), "--iterations", "3", "--base", "4",
                                 "--depth", "2", "--image-size", "32", "--batch-size", "2", "--workers", "0",
                                 "--holdout-every", "3", "--no-progress", "--no-export"]))
    ho = prov["held_out"]
    # The checkpoint exports with its palette, the chosen decoding and the held-out figures.
    from deepshop_export.families.lineart.export import export_checkpoint
    (data_dir / "manifest.csv").write_text("file,licence\np0.png,CC0-1.0\n")
    export_checkpoint(str(out / "checkpoint.pt"), str(tmp_path / "m.onnx"), decoding="annealed_mean",
                      temperature=0.4, license="CC0-1.0", data_manifest=str(data_dir / "manifest.csv"))
    c = ds.Colorizer(tmp_path / "m.onnx")
    meta = c.metadata
    assert c.default_temperature == 0.4 and meta["deepshop.license"] == "CC0-1.0"
    np.testing.assert_array_equal(c.palette, ds.uniform_palette(3))
    p = json.loads(meta["deepshop.provenance"])
    assert p["held_out"] == ho and "manifest_sha256" in p["data"] and "folder" not in p["data"]
    assert c.run(np.zeros((20, 20), np.uint8))["rgb"].shape == (20, 20, 3)


def test_bundled_model(tmp_path):
    """The bundled model runs with no model argument, and its provenance shows it beat the
    baselines on the held-out photos (the condition for bundling it): the most frequent class in
    accuracy, and in ΔE the fair baseline of its default decoding (argmax: the most frequent
    class; annealed mean: the constant mean colour, which hedging towards grey alone matches)."""
    from deepshop_native.cli import main
    from deepshop_native.pipelines.colorize import DEFAULT_LINEART_MODEL
    if not os.path.isfile(DEFAULT_LINEART_MODEL):
        pytest.skip("no bundled line-art model in this installation")
    c = ds.Colorizer()
    prov = json.loads(c.metadata["deepshop.provenance"])
    ho = prov["held_out"]
    assert ho["model"]["accuracy"] > ho["majority_baseline"]["accuracy"]
    if c.metadata["deepshop.decoding"] == "annealed_mean":
        assert float(c.metadata["deepshop.temperature"]) == ho["model_annealed_mean"]["temperature"]
        assert ho["model_annealed_mean"]["delta_e_target"] < ho["mean_colour_baseline"]["delta_e_target"]
    else:
        assert ho["model"]["delta_e_target"] < ho["majority_baseline"]["delta_e_target"]
    assert c.palette.shape == (prov["targets"]["k"], 3) and c.metadata["deepshop.family"] == "lineart"
    from PIL import Image
    src = tmp_path / "d.png"
    Image.fromarray(np.where(drawing(64, 96) > 0, 0, 255).astype(np.uint8)).save(src)
    assert main(["colorize", str(src)]) == 0
    assert np.asarray(Image.open(tmp_path / "d_colorized.png")).shape == (64, 96, 3)


def test_resume_continues_exactly(tmp_path):
    """6 steps, then --resume to 10, gives the weights of 10 steps straight (same batches, RNG,
    optimizer state)."""
    from deepshop_export.families.lineart.train import resolve_settings, run
    from deepshop_export.training.checkpoint import load_checkpoint
    data_dir = tiny_photo_folder(tmp_path)
    torch.set_num_threads(1)
    common = ["--data", str(data_dir), "--base", "4", "--depth", "2", "--image-size", "32", "--batch-size", "2",
              "--workers", "0", "--holdout-every", "0", "--no-progress", "--no-export"]
    run(resolve_settings(common + ["--out", str(tmp_path / "a"), "--iterations", "10"]))
    run(resolve_settings(common + ["--out", str(tmp_path / "b"), "--iterations", "6"]))
    run(resolve_settings(["--resume", str(tmp_path / "b" / "checkpoint.pt"), "--iterations", "10"]))
    a = load_checkpoint(str(tmp_path / "a" / "checkpoint.pt"), "deepshop-train-lineart-1")
    b = load_checkpoint(str(tmp_path / "b" / "checkpoint.pt"), "deepshop-train-lineart-1")
    assert a["step"] == b["step"] == 10
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="cannot change --base"):
        resolve_settings(["--resume", str(tmp_path / "b" / "checkpoint.pt"), "--base", "8"])
