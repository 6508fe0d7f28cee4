"""Global-statistics tiling in the engine (issue 12): a model exported with deepshop-export
--statistics, run through Stylizer in its statistics modes.

References are independent of the engine: the whole-image output of the original torch network
(model_factory.torch_reference), and the first instance-norm layer's input statistics computed
in numpy float64 from a torch hook on the whole image."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import deepshop_native as ds  # noqa: E402
from deepshop_export.cli import main as export_main  # noqa: E402
from deepshop_native.pipelines.generic import TiledPipeline  # noqa: E402

from model_factory import exported_statistics_net, torch_reference  # noqa: E402

# Windows of 256 px on the 256 x 320 photo: 2 tiles with harmonize's halo, 4 with exact mode's.
TILE = 256
#: Issue 12's target for exact statistics.
EXACT_PSNR = 40.0


def psnr(a, b) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * np.log10(255.0 ** 2 / mse) if mse > 0 else float("inf")


@pytest.fixture(scope="module")
def stats_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("statistics")
    net, out = exported_statistics_net(d)
    plain = d / "style.onnx"
    assert export_main([str(d / "style.pth"), "-o", str(plain)]) == 0
    return net, out, plain


@pytest.fixture(scope="module")
def photo():
    """The astronaut, 256 x 320: a multiple of the stride, several tiles each way."""
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image
    return np.asarray(Image.fromarray(skimage_data.astronaut()).resize((320, 256), Image.LANCZOS))


@pytest.fixture(scope="module")
def whole(stats_model, photo):
    return torch_reference(stats_model[0], photo)


def run(model, photo, **options):
    st = ds.Stylizer(model, device="cpu", tile=TILE, **options)
    return st(photo).astype(np.float64), st.plan(*photo.shape[:2])


def test_exact_statistics_reproduce_the_whole_image(stats_model, photo, whole):
    out, plan = run(stats_model[1], photo, statistics="exact")
    assert plan["tiles_y"] * plan["tiles_x"] == 4
    assert plan["statistics"] == "exact" and plan["passes"] == 16 and not plan["harmonize"]
    # Measured: 59.4 dB (the untiled engine run: 59.4 dB, float32 rounding only).
    assert psnr(out, whole) >= EXACT_PSNR


def test_thumbnail_beats_harmonize(stats_model, photo, whole):
    thumb, plan = run(stats_model[1], photo, statistics="thumbnail", statistics_size=160)
    assert plan["statistics"] == "thumbnail" and plan["passes"] == 1 and not plan["harmonize"]
    harmonized, plan = run(stats_model[1], photo, statistics="off")
    assert plan["statistics"] == "off" and plan["harmonize"]
    # Measured on this photo and random network: thumbnail (half size) 23.7 dB, harmonize 22.6 dB.
    assert psnr(thumb, whole) > psnr(harmonized, whole) + 0.5
    # A thumbnail of the full size measures the image's own statistics: the whole-image output.
    full, _ = run(stats_model[1], photo, statistics="thumbnail", statistics_size=320)
    assert psnr(full, whole) >= EXACT_PSNR
    # The default for such models is the thumbnail mode.
    default, plan = run(stats_model[1], photo, statistics_size=160)
    assert plan["statistics"] == "thumbnail"
    np.testing.assert_array_equal(default, thumb)


def test_untiled_run_is_the_original_network(stats_model, photo, whole):
    st = ds.Stylizer(stats_model[1], device="cpu", tile=0)
    assert st.plan(*photo.shape[:2])["statistics"] == "off"
    assert psnr(st(photo), whole) > 50


def test_measured_statistics_of_the_first_layer(stats_model, photo):
    """The engine's tiled, Chan-combined measurement (exact mode's first pass) against numpy
    float64 statistics of the first instance norm's input on the whole image."""
    net, model, _ = stats_model
    caught = []
    hook = net.in1.register_forward_pre_hook(lambda _m, args: caught.append(args[0][0].double().numpy()))
    try:
        torch_reference(net, photo)
    finally:
        hook.remove()
    x = caught[0].reshape(caught[0].shape[0], -1)
    pipeline = TiledPipeline(model, device="cpu", tile=TILE)
    meta = json.loads(pipeline.metadata["deepshop.statistics"])
    total = meta["total_channels"]
    result = pipeline(images={"input": photo}, aux={"stat_mean": np.zeros(total, np.float32),
                                                    "stat_var": np.ones(total, np.float32),
                                                    "stat_mix": np.zeros(1, np.float32)},
                      outputs=["measured_count", "measured_mean", "measured_m2"])
    whole_outputs = result["whole"]
    counts = np.concatenate(whole_outputs["measured_count"]).astype(np.float64)[:, 0]
    means = np.concatenate(whole_outputs["measured_mean"]).astype(np.float64)[:, :x.shape[0]]
    m2s = np.concatenate(whole_outputs["measured_m2"]).astype(np.float64)[:, :x.shape[0]]
    assert len(counts) > 1
    np.testing.assert_allclose(counts.sum(), x.shape[1], rtol=1e-5)
    # Chan's combination, written out here in float64 from its definition.
    n, mean, m2 = 0.0, np.zeros(x.shape[0]), np.zeros(x.shape[0])
    for nb, mb, m2b in zip(counts, means, m2s):
        delta = mb - mean
        total_n = n + nb
        mean = mean + delta * nb / total_n
        m2 = m2 + m2b + delta ** 2 * n * nb / total_n
        n = total_n
    np.testing.assert_allclose(mean, x.mean(axis=1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(m2 / n, x.var(axis=1), rtol=1e-3)


def test_old_model_still_harmonizes(stats_model, photo):
    _, _, plain = stats_model
    st = ds.Stylizer(plain, device="cpu", tile=TILE, statistics="exact")
    plan = st.plan(*photo.shape[:2])
    assert plan["statistics"] == "off" and plan["harmonize"] and plan["passes"] == 1
    # Exactly today's run: the statistics option does not touch it.
    np.testing.assert_array_equal(st(photo), ds.Stylizer(plain, device="cpu", tile=TILE)(photo))


@pytest.mark.parametrize("options, name", [
    ({"statistics": "fast"}, "statistics"),
    ({"statistics": None}, "statistics"),
    ({"statistics_size": 8}, "statistics_size"),
    ({"statistics_size": 2.5}, "statistics_size"),
])
def test_bad_statistics_options(stats_model, options, name):
    with pytest.raises(ds.OptionError, match=name):
        ds.Stylizer(stats_model[1], device="cpu", **options)


def test_cli_statistics_option(stats_model, photo, tmp_path, capsys):
    from PIL import Image
    from deepshop_native.cli import main
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    assert main(["stylize", str(src), "-m", str(stats_model[1]), "-o", str(tmp_path / "out.png"), "--tile",
                 str(TILE), "--statistics", "thumbnail", "--statistics-size", "160", "-q"]) == 0
    expected = ds.Stylizer(stats_model[1], device="cpu", tile=TILE, statistics_size=160)(photo)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)
    assert main(["info", str(stats_model[1])]) == 0
    assert "thumbnail" in capsys.readouterr().out


def test_bundled_style_runs_with_thumbnail_statistics():
    st = ds.Stylizer(device="cpu")
    assert "deepshop.statistics" in st.metadata
    assert "re_exported" in json.loads(st.metadata["deepshop.provenance"])
    assert st.plan(2048, 2048)["statistics"] == "thumbnail"
    assert st.plan(1024, 1024)["statistics"] == "off"  # one tile: its own statistics are the image's


def test_automatic_tile_of_a_statistics_graph_is_smaller(stats_model):
    """A statistics graph needs more working memory per window pixel than the plain network, so
    tile="auto" gives it 1024 px windows (8192 x 8192 under 2 GB: README), the plain one the default."""
    _net, stats, plain = stats_model
    assert ds.Stylizer(stats, device="cpu").tile == 1024 < ds.DEFAULT_TILE
    assert ds.Stylizer(plain, device="cpu").tile == ds.DEFAULT_TILE


@pytest.fixture(scope="module")
def odd_photo():
    """150 x 214: image minus window is no stride multiple for the windows below."""
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image
    return np.asarray(Image.fromarray(skimage_data.astronaut()).resize((214, 150), Image.LANCZOS))


@pytest.mark.parametrize("mode, tile, bound", [
    ("thumbnail", 128, 35.0),      # measured 38.4 dB (the thumbnail is the image itself)
    ("exact", 184, EXACT_PSNR),    # measured 44.6 dB
])
def test_windows_moved_inside_an_image_whose_size_is_off_the_stride(stats_model, odd_photo, mode, tile, bound):
    """The last window, moved inside the image, must still reach its end: with its start rounded
    down to the stride it stopped short, and the tile mask was written past its buffer (a crash)."""
    st = ds.Stylizer(stats_model[1], device="cpu", tile=tile, statistics=mode)
    plan = st.plan(*odd_photo.shape[:2])
    assert plan["statistics"] == mode and plan["tiles_x"] > 1
    assert psnr(st(odd_photo), torch_reference(stats_model[0], odd_photo)) >= bound
