"""The global-statistics graph of TransformerNet (deepshop-export --statistics), run with ONNX
Runtime directly (no engine): mix 0 is the original network, statistics fed back reproduce it,
tiles cut by hand with the whole image's statistics reproduce the whole-image output, and the
per-tile measurements combine (Chan) to the whole image's.  References: torch (the original
network, its InstanceNorm inputs caught by hooks) and numpy float64."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from deepshop_export.cli import main  # noqa: E402
from deepshop_export.families.transformer_net.statistics import combine, expand_counts  # noqa: E402
from deepshop_export.onnx.metadata import read_metadata  # noqa: E402

from model_factory import exported_statistics_net  # noqa: E402

HALO = 56          # the receptive field's radius (111 px // 2 = 55) rounded up to the stride 4
KEPT = 64          # kept span of a tile
STRIDE = 4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("stats")
    net, out = exported_statistics_net(d)
    meta = read_metadata(out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return net, session, meta, d


@pytest.fixture(scope="module")
def photo():
    """An astronaut photo, 192 x 256 (a multiple of the stride, several tiles each way)."""
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image
    img = Image.fromarray(skimage_data.astronaut()).resize((256, 192), Image.LANCZOS)
    return np.asarray(img, dtype=np.float32).transpose(2, 0, 1)[None].copy()


class Graph:
    """The exported graph with its packing, called as the engine would call it."""

    def __init__(self, session, meta):
        self.session = session
        self.stats = json.loads(meta["statistics"])
        self.layers = self.stats["layers"]
        self.total = self.stats["total_channels"]

    def run(self, x, mean=None, var=None, mix=0.0, mask=None):
        n, _, h, w = x.shape
        feeds = {
            "input": x.astype(np.float32),
            "stat_mean": np.zeros(self.total, np.float32) if mean is None else mean.astype(np.float32),
            "stat_var": np.ones(self.total, np.float32) if var is None else var.astype(np.float32),
            "stat_mix": np.array([mix], np.float32),
            "stat_mask": np.ones((n, 1, h, w), np.float32) if mask is None else mask.astype(np.float32),
        }
        out, count, mean_m, m2 = self.session.run(["output", "measured_count", "measured_mean", "measured_m2"], feeds)
        return out, (expand_counts(count, self.layers), mean_m, m2)

    def mean_var(self, measured):
        """Statistics to feed back: means and biased variances (M2 / count), of batch item 0."""
        count, mean, m2 = (np.asarray(a, np.float64).reshape(-1, self.total)[0] for a in measured)
        return mean, m2 / count


def _norm_inputs(net, x: np.ndarray) -> list[np.ndarray]:
    """The input of every InstanceNorm2d of the original network, in the order they run."""
    caught = []
    hooks = [m.register_forward_pre_hook(lambda _m, a: caught.append(a[0].double().numpy()))
             for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    try:
        with torch.no_grad():
            out = net(torch.from_numpy(x)).numpy()
    finally:
        for h in hooks:
            h.remove()
    return out, caught


def _psnr(a, b) -> float:
    """PSNR of the 0..255-clipped images; identical ones give ~208 dB rather than infinity."""
    a, b = np.clip(a, 0, 255).astype(np.float64), np.clip(b, 0, 255).astype(np.float64)
    return float(10 * np.log10(255.0 ** 2 / max(np.mean((a - b) ** 2), 1e-16)))


def _tiles(h, w):
    """Kept spans of KEPT px on a stride-aligned grid, each with its window (kept span plus HALO on
    every side, clipped to the image): (y0, y1, x0, x1) of the kept span, then of the window."""
    for ky in range(0, h, KEPT):
        for kx in range(0, w, KEPT):
            kept = (ky, min(ky + KEPT, h), kx, min(kx + KEPT, w))
            window = (max(ky - HALO, 0), min(ky + KEPT + HALO, h), max(kx - HALO, 0), min(kx + KEPT + HALO, w))
            yield kept, window


def _run_tiled(graph, x, mean, var, mix):
    """Every tile run with the given statistics and mix; returns the assembled output and the
    per-tile statistics measured over the kept spans (count, mean, M2: tiles x C)."""
    out = np.zeros_like(x)
    parts = []
    for (ky0, ky1, kx0, kx1), (wy0, wy1, wx0, wx1) in _tiles(*x.shape[2:]):
        mask = np.zeros((1, 1, wy1 - wy0, wx1 - wx0), np.float32)
        mask[..., ky0 - wy0:ky1 - wy0, kx0 - wx0:kx1 - wx0] = 1
        y, measured = graph.run(x[..., wy0:wy1, wx0:wx1], mean, var, mix, mask)
        out[..., ky0:ky1, kx0:kx1] = y[..., ky0 - wy0:ky1 - wy0, kx0 - wx0:kx1 - wx0]
        parts.append([m[0] for m in measured])
    return out, [np.stack(p) for p in zip(*parts)]


# ------------------------------------------------------------------------------------ tests

def test_metadata_describes_the_packing(exported):
    net, session, meta, _ = exported
    stats = json.loads(meta["statistics"])
    norms = [(n, m) for n, m in net.named_modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert [l["name"] for l in stats["layers"]] == [n for n, _ in norms]
    assert [l["channels"] for l in stats["layers"]] == [m.num_features for _, m in norms]
    assert [l["eps"] for l in stats["layers"]] == [m.eps for _, m in norms]
    assert [l["offset"] for l in stats["layers"]] == list(np.cumsum([0] + [m.num_features for _, m in norms])[:-1])
    assert [l["scale"] for l in stats["layers"]] == [1, 2] + [4] * 11 + [2, 1]
    assert stats["total_channels"] == 1600 and stats["variance"] == "biased"
    assert json.loads(meta["inputs"]) == {"input": "image", "stat_mean": "aux", "stat_var": "aux",
                                          "stat_mix": "aux", "stat_mask": "tile_mask"}
    assert set(json.loads(meta["outputs"]).values()) == {"image", "aux"}
    assert [i.name for i in session.get_inputs()] == ["input", "stat_mean", "stat_var", "stat_mix", "stat_mask"]
    assert meta["family"] == "transformer_net" and meta["normalization"] == "instance"


def test_mix_0_is_the_original_network_and_measures_its_statistics(exported, photo):
    net, session, meta, _ = exported
    graph = Graph(session, meta)
    x = photo[..., :132, :100].copy()
    expected, norm_inputs = _norm_inputs(net, x)
    rng = np.random.default_rng(0)   # given statistics that must be ignored at mix 0
    got, (count, mean, m2) = graph.run(x, rng.normal(size=graph.total) * 50, rng.uniform(1, 900, graph.total))
    assert np.abs(got - expected).max() < 1e-2
    # The measured statistics (mask 1) are those of each norm layer's input in torch (float64 numpy).
    for layer, a in zip(graph.layers, norm_inputs):
        sl = slice(layer["offset"], layer["offset"] + layer["channels"])
        ref_mean = a.mean(axis=(2, 3))[0]
        ref_m2 = ((a - ref_mean[None, :, None, None]) ** 2).sum(axis=(2, 3))[0]
        assert np.all(count[0, sl] == a.shape[2] * a.shape[3])
        np.testing.assert_allclose(mean[0, sl], ref_mean, rtol=1e-4, atol=1e-3 * max(1.0, np.abs(ref_mean).max()))
        np.testing.assert_allclose(m2[0, sl], ref_m2, rtol=1e-3)


def test_a_batch_of_tiles_is_measured_tile_by_tile(exported, photo):
    """Two tiles in one call (the engine may batch them) share the given statistics and each
    has its own mask: the same results as two calls."""
    _, session, meta, _ = exported
    graph = Graph(session, meta)
    tiles = np.concatenate([photo[..., :96, :64], photo[..., 96:, 128:192]])
    masks = np.zeros((2, 1, 96, 64), np.float32)
    masks[0, :, 8:48, 4:60] = 1
    masks[1, :, 40:96, 0:32] = 1
    mean, var = graph.mean_var(graph.run(photo)[1])
    out, measured = graph.run(tiles, mean, var, 1.0, masks)
    for i in range(2):
        one, one_measured = graph.run(tiles[i:i + 1], mean, var, 1.0, masks[i:i + 1])
        assert np.abs(out[i] - one[0]).max() < 1e-3
        for a, b in zip(measured, one_measured):
            np.testing.assert_allclose(a[i], b[0], rtol=1e-5, atol=1e-3)
    assert measured[0][0, 0] == 40 * 56 and measured[0][1, 0] == 56 * 32     # full-resolution layer counts
    assert measured[0][0, 32] == 20 * 28                                      # the half-resolution layer's


def test_own_statistics_fed_back_with_mix_1_reproduce_mix_0(exported, photo):
    """The thumbnail step of the thumbnail mode: its measured statistics, given back, give the same image."""
    _, session, meta, _ = exported
    graph = Graph(session, meta)
    thumb = photo[..., ::2, ::2].copy()                       # 96 x 128
    own, measured = graph.run(thumb, mix=0.0)
    mean, var = graph.mean_var(measured)
    again, measured_again = graph.run(thumb, mean, var, mix=1.0)
    assert np.abs(again - own).max() < 1e-2
    np.testing.assert_allclose(measured_again[1], measured[1], rtol=1e-4, atol=1e-2)


def test_chan_combination_equals_float64_whole(exported):
    """combine() of weighted parts against the float64 statistics of the union."""
    rng = np.random.default_rng(7)
    x = rng.normal(300.0, 40.0, size=(5, 17, 23))         # channels x H x W, a large offset
    weights = (rng.uniform(size=(17, 23)) > 0.3).astype(np.float64)
    parts = [(slice(0, 6), slice(None)), (slice(6, 11), slice(0, 9)), (slice(6, 11), slice(9, None)),
             (slice(11, 17), slice(None))]
    counts, means, m2s = [], [], []
    for ys, xs in parts:
        w, a = weights[ys, xs], x[:, ys, xs]
        n = w.sum()
        mu = (w * a).sum(axis=(1, 2)) / n
        counts.append(np.full(5, n))
        means.append(mu)
        m2s.append((w * (a - mu[:, None, None]) ** 2).sum(axis=(1, 2)))
    n, mean, m2 = combine(np.array(counts), np.array(means), np.array(m2s))
    sel = x[:, weights > 0]
    np.testing.assert_allclose(n, sel.shape[1])
    np.testing.assert_allclose(mean, sel.mean(axis=1), rtol=1e-13)
    np.testing.assert_allclose(m2 / n, sel.var(axis=1), rtol=1e-11)


def test_tiles_with_whole_image_statistics_reproduce_the_whole_image(exported, photo):
    """Exact statistics (whole image, mix 0, mask 1) given to hand-cut tiles with halo: >= 40 dB;
    their kept-span measurements Chan-combine to the whole image's statistics."""
    _, session, meta, _ = exported
    graph = Graph(session, meta)
    whole, whole_measured = graph.run(photo)
    mean, var = graph.mean_var(whole_measured)
    tiled, parts = _run_tiled(graph, photo, mean, var, mix=1.0)
    own_tiles, _ = _run_tiled(graph, photo, None, None, mix=0.0)
    exact_db, own_db = _psnr(tiled, whole), _psnr(own_tiles, whole)
    print(f"\ntiled vs whole ({photo.shape[3]}x{photo.shape[2]}, kept {KEPT}, halo {HALO}): "
          f"whole-image statistics {exact_db:.1f} dB (max abs {np.abs(tiled - whole).max():.2g}), "
          f"each tile's own {own_db:.1f} dB")
    assert exact_db >= 40.0 and own_db < exact_db
    n, m, m2 = combine(*parts)
    count_w, mean_w, m2_w = (np.asarray(a, np.float64)[0] for a in whole_measured)
    np.testing.assert_allclose(n, count_w)
    np.testing.assert_allclose(m, mean_w, rtol=1e-3, atol=1e-3 * np.abs(mean_w).max())
    np.testing.assert_allclose(m2, m2_w, rtol=2e-3)


def test_thumbnail_mode_and_exact_passes(exported, photo):
    """Thumbnail mode: the statistics of a half-size thumbnail given to every tile.  Exact mode,
    per-layer schedule: pass k runs every tile with the current statistics, whose layers < k are
    exact, so its kept-span measurements of layer k combine to layer k's exact statistics, which
    replace the thumbnail's; after L passes all are exact and pass L + 1 gives the output.
    (A Jacobi schedule, replacing every layer after each pass, is no shortcut: layer j's
    measurement was taken under earlier layers' old statistics, and on this network the output
    fell from the thumbnail's 22.7 dB to 7..15 dB for 12 passes.)"""
    _, session, meta, _ = exported
    graph = Graph(session, meta)
    whole, _ = graph.run(photo)
    own_tiles, _ = _run_tiled(graph, photo, None, None, mix=0.0)
    _, thumb_measured = graph.run(photo[..., ::2, ::2].copy())
    mean, var = graph.mean_var(thumb_measured)
    figures = []
    for layer in graph.layers + [None]:
        tiled, parts = _run_tiled(graph, photo, mean, var, mix=1.0)
        figures.append(_psnr(tiled, whole))
        if layer is not None:
            n, m, m2 = combine(*parts)
            sl = slice(layer["offset"], layer["offset"] + layer["channels"])
            mean, var = mean.copy(), var.copy()
            mean[sl], var[sl] = m[sl], m2[sl] / n[sl]
    print(f"\neach tile's own statistics: {_psnr(own_tiles, whole):.1f} dB; thumbnail (1/2 size) statistics, "
          "then per-layer exact passes: " + ", ".join(f"{i + 1}: {db:.1f}" for i, db in enumerate(figures)) + " dB")
    assert figures[0] > _psnr(own_tiles, whole)
    assert figures[-1] >= 40.0 and np.abs(tiled - whole).max() < 0.05


def test_fp16_statistics_graph_is_refused(exported, tmp_path, capsys):
    _, _, _, d = exported
    assert main([str(d / "style.pth"), "-o", str(tmp_path / "x.onnx"), "--statistics", "--fp16"]) == 1
    assert "--statistics" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
