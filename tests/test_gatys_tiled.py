"""Tiled evaluation of the Gatys loss (pipelines.gatys.TiledGatysModel, run by the engine, the tile graph of
deepshop-export gatys --tiled): on an image split into 2 x 2 tiles with halos, the loss, its terms,
the targets and the gradient equal the untiled graph's and torch.autograd's (float64) on the whole
image; the driver and `deepshop gatys --tile` use it; a missing tile graph is a clear error.

A tiny random-weight VGG19 (relu2_2 content, relu1_1/2_1/3_1 style) is exported on the fly, both
graphs from one weights file."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import deepshop_native as ds
from deepshop_native.pipelines import gatys as gt
from deepshop_native.core.errors import ModelError, OptionError

from test_gatys_export import images, random_torchvision_vgg, rel_l2, torch_objective

CONTENT_LAYERS, STYLE_LAYERS = ["relu2_2"], ["relu1_1", "relu2_1", "relu3_1"]
H, W, TILE = 96, 128, 64          # kept spans 0:48, 48:96 by 0:64, 64:128: 2 x 2 tiles


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    from deepshop_export.families.gatys.export import export_gatys
    from deepshop_export.families.gatys.feature_network import load_feature_network

    folder = tmp_path_factory.mktemp("gatys_tiled")
    weights = random_torchvision_vgg(str(folder / "vgg19.pth"), seed=3)
    path = folder / "gatys-vgg19-max.onnx"
    for tiled in (False, True):
        export_gatys(gt.tiled_model_path(path) if tiled else path, model="vgg19", weights=weights, pooling="max",
                     content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS, tiled=tiled)
    net = load_feature_network("vgg19", CONTENT_LAYERS + STYLE_LAYERS, "max", weights=weights)
    return str(path), net


def test_tile_plan_covers_the_image_once_on_stride_multiples(graphs):
    tiled = gt.TiledGatysModel(gt.tiled_model_path(graphs[0]), device="cpu")
    # relu3_1's receptive field is 24 pixels: reach 12 + 4 (stride), halo twice that.
    assert tiled.stride_multiple == 4 and tiled.halo == 32
    plan = tiled.plan(H, W, TILE)
    assert [kept for _, kept in plan] == [(0, 48, 0, 64), (0, 48, 64, 128), (48, 96, 0, 64), (48, 96, 64, 128)]
    assert [region for region, _ in plan] == [(0, 80, 0, 96), (0, 80, 32, 128), (16, 96, 0, 96), (16, 96, 32, 128)]
    covered = np.zeros((H, W), int)
    for _, (y0, y1, x0, x1) in plan:
        covered[y0:y1, x0:x1] += 1
    assert np.all(covered == 1)
    # A longer side: 200 x 100 px in tiles of at most 40 kept px: every kept span at most 40 px, on
    # multiples of 4, covering the image once; each region holds its kept span and the halo on every
    # side that has image there, and nothing beyond the image.
    plan = tiled.plan(200, 100, 40)
    covered = np.zeros((200, 100), int)
    for (ry0, ry1, rx0, rx1), (y0, y1, x0, x1) in plan:
        assert y1 - y0 <= 40 and x1 - x0 <= 40 and y0 % 4 == 0 and x0 % 4 == 0
        assert 0 <= ry0 <= max(0, y0 - 32) and min(200, y1 + 32) <= ry1 <= 200
        assert 0 <= rx0 <= max(0, x0 - 32) and min(100, x1 + 32) <= rx1 <= 100
        covered[y0:y1, x0:x1] += 1
    assert np.all(covered == 1) and len(plan) == 5 * 3


# Content-led and style-led weights: both parts of the tiled gradient are checked.
WEIGHTINGS = [(None, 1e-2), ([0.0], 1e-3)]


@pytest.mark.parametrize("content_weights,tv", WEIGHTINGS)
def test_tiled_loss_and_gradient_equal_the_untiled_ones(graphs, content_weights, tv):
    path, net = graphs
    whole = gt.GatysModel(path, device="cpu")
    tiled = gt.TiledGatysModel(gt.tiled_model_path(path), device="cpu")
    content, style, x = images(H, W, 1), images(H, W, 2), images(H, W, 3)
    ct, _ = whole.targets(content)
    _, st = whole.targets(style)
    # Targets computed tile by tile equal the whole image's.
    tct, _ = tiled.targets(content, TILE)
    _, tst = tiled.targets(style, TILE)
    for l in CONTENT_LAYERS:
        assert rel_l2(tct[l], ct[l]) < 1e-5
    for l in STYLE_LAYERS:
        assert rel_l2(tst[l], st[l]) < 1e-5        # measured ~1e-7
    cw, sw = gt.loss_weights(whole, 1e4)
    if content_weights is not None:
        cw, sw = np.asarray(content_weights), sw * 1e3
    tv_weight = tv / (3 * H * W)
    a = whole.evaluate(x, ct, st, cw, sw, tv_weight)
    b = tiled.evaluate(x, ct, st, cw, sw, tv_weight, TILE)
    loss, content_terms, style_terms, tv_term, grad = torch_objective(net, x, ct, st, cw, sw, tv_weight)
    # Measured: loss and terms ~1e-6 apart, gradients ~1e-7 (relative L2), on either weighting.
    assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=1e-4)
    assert float(b["loss"]) == pytest.approx(loss, rel=1e-4)
    np.testing.assert_allclose(b["style_losses"], style_terms, rtol=1e-4)
    np.testing.assert_allclose(b["content_losses"], content_terms, rtol=1e-4)
    assert float(b["tv_loss"]) == pytest.approx(tv_term, rel=1e-6)
    print(f"tiled against untiled: loss {abs(float(b['loss']) - float(a['loss'])) / float(a['loss']):.1e}, "
          f"gradient {rel_l2(b['gradient'], a['gradient']):.1e}; against autograd {rel_l2(b['gradient'], grad):.1e}")
    assert rel_l2(b["gradient"], a["gradient"]) < 1e-4
    assert rel_l2(b["gradient"], grad) < 1e-4


def test_a_halo_too_small_is_wrong(graphs):
    """The check above is sensitive: with half the halo the tiled gradient is off."""
    path, _ = graphs
    whole = gt.GatysModel(path, device="cpu")
    tiled = gt.TiledGatysModel(gt.tiled_model_path(path), device="cpu")
    tiled.halo //= 4
    content, style, x = images(H, W, 4), images(H, W, 5), images(H, W, 6)
    ct, _ = whole.targets(content)
    _, st = whole.targets(style)
    cw, sw = gt.loss_weights(whole, 1e4)
    a = whole.evaluate(x, ct, st, cw, sw, 0.0)
    b = tiled.evaluate(x, ct, st, cw, sw, 0.0, TILE)
    assert rel_l2(b["gradient"], a["gradient"]) > 1e-3


def test_driver_and_cli_tile(graphs, tmp_path, capsys):
    from PIL import Image

    from deepshop_native import cli
    from test_gatys import picture

    path, _ = graphs
    content, style = picture(H, W, 7), picture(64, 64, 8)
    kw = dict(model=path, iterations=3, length=W, coarse_to_fine=False, device="cpu", init="noise")
    plain = ds.gatys(content, style, tile=0, **kw)
    tiled = ds.gatys(content, style, tile=TILE, **kw)
    assert plain.levels[0]["tiles"] == 1 and tiled.levels[0]["tiles"] == 4
    # The same optimisation: the same losses up to float rounding.
    assert tiled.loss == pytest.approx(plain.loss, rel=1e-3)
    difference = np.abs(tiled.image.astype(int) - plain.image.astype(int))
    # (float rounding of a different summation order, grown by 3 L-BFGS-B steps: measured max 3, mean 0.2)
    assert difference.max() <= 6 and difference.mean() < 0.5
    # tile=None (auto) leaves a small level whole
    assert ds.gatys(content, style, **kw).levels[0]["tiles"] == 1
    c = tmp_path / "photo.png"
    Image.fromarray(content).save(c)
    code = cli.main(["gatys", "-c", str(c), "-s", str(c), "-m", path, "-n", "2", "-l", str(W), "-q", "--device",
                     "cpu", "--tile", str(TILE), "--coarse-length", "0", "--out", str(tmp_path / "o.png")])
    assert code == 0 and "in 4 tiles" in capsys.readouterr().err


def test_tile_errors(graphs, tmp_path):
    import shutil

    path, _ = graphs
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(path, lonely)
    from test_gatys import picture

    a = picture(H, W, 9)
    with pytest.raises(ModelError, match="lonely-tiled.onnx.*--tiled"):
        ds.gatys(a, a, model=str(lonely), iterations=1, length=W, tile=TILE, device="cpu")
    with pytest.raises(OptionError, match="tile"):
        ds.gatys(a, a, model=path, iterations=1, length=W, tile=2, device="cpu")
    with pytest.raises(ModelError, match="not a Gatys tile graph"):
        gt.TiledGatysModel(path, device="cpu")


def test_export_cli_tiled_graph_metadata_and_roles(tmp_path, capsys):
    import json

    import onnx

    from deepshop_export.cli import main
    from deepshop_export.onnx.metadata import read_metadata

    weights = random_torchvision_vgg(str(tmp_path / "vgg16.pth"), arch="vgg16")
    out = tmp_path / "g-tiled.onnx"
    assert main(["gatys", "--model", "vgg16", "--weights", weights, "--content-layers", "relu2_2", "--style-layers",
                 "relu1_1,relu2_2", "--tiled", "-o", str(out)]) == 0
    assert "checked against torch.autograd" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["family"] == "gatys_vgg_tiled" and meta["stride_multiple"] == "2"
    inputs, outputs = json.loads(meta["inputs"]), json.loads(meta["outputs"])
    model = onnx.load(str(out))
    assert set(inputs) == {i.name for i in model.graph.input} == {
        "image", "content_target_relu2_2", "content_scales", "style_gradient_relu1_1", "style_gradient_relu2_2"}
    assert set(outputs) == {o.name for o in model.graph.output} == {"gradient", "features_relu2_2", "features_relu1_1"}
    opened = ds.open_model(out, device="cpu")
    assert isinstance(opened, gt.TiledGatysModel) and opened.halo == 2 * (14 // 2 + 2)
