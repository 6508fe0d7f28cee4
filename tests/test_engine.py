"""The native engine against independent references: PyTorch on the same weights, numpy
formulas, hand-built ONNX graphs whose correct output is known."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import deepshop_native as ds
from deepshop_native import _native

from model_factory import export_plain, identity_model, image_graph_model, save_with_metadata, torch_reference

torch = pytest.importorskip("torch")

# ORT and torch sum in different orders; on a 0..255 scale their float32 results of this
# 20-layer network agree to about 1e-3.  Stated tolerance for float outputs: 0.02.
FLOAT_TOL = 0.02


def rand_image(h, w, seed=0, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if dtype == np.uint8 else rng.random((h, w, 3), dtype)


@pytest.mark.parametrize("h,w", [(64, 64), (100, 132), (37, 53), (1, 1), (3, 17)])
def test_whole_image_matches_torch(transformer_onnx, transformer_net, h, w):
    img = rand_image(h, w, seed=h * w)
    st = ds.Stylizer(transformer_onnx, device="cpu", tile=0)
    ref = torch_reference(transformer_net, img)
    out_f = st(img.astype(np.float32) / 255) * 255
    assert out_f.shape == (h, w, 3)
    assert np.abs(out_f - ref).max() < FLOAT_TOL
    out_u8 = st(img)
    assert out_u8.dtype == np.uint8
    assert np.abs(out_u8.astype(np.float32) - np.round(ref)).max() <= 1


def test_uint16_and_float64_inputs_keep_their_type(transformer_onnx, transformer_net):
    img = rand_image(48, 40, seed=3)
    ref = torch_reference(transformer_net, img)
    st = ds.Stylizer(transformer_onnx, device="cpu", tile=0)
    out16 = st(img.astype(np.uint16) * 257)
    assert out16.dtype == np.uint16
    assert np.abs(out16 / 65535.0 * 255 - ref).max() < FLOAT_TOL + 255 / 65535
    out64 = st(img.astype(np.float64) / 255)
    assert out64.dtype == np.float64 and np.abs(out64 * 255 - ref).max() < FLOAT_TOL


@pytest.mark.parametrize("h,w,tile", [(1, 1, 32), (7, 300, 64), (300, 7, 64), (129, 257, 96), (250, 250, 80)])
def test_identity_model_tiles_sum_to_one(identity_onnx, h, w, tile):
    """With output = input, any tiling must give the input back: the blend weights are a
    partition of unity and every tile is put back where it was cut."""
    img = rand_image(h, w, seed=h + w)
    st = ds.Stylizer(identity_onnx, device="cpu", tile=tile, overlap=16, halo=8)
    np.testing.assert_array_equal(st(img), img)
    f = img.astype(np.float32) / 255
    np.testing.assert_allclose(st(f), f, atol=1e-6)


def test_tiled_equals_whole_for_a_local_model(tmp_path):
    """A model with a small receptive field (one 5x5 reflection-padded conv, a ReLU, a 1x1 conv)
    and no per-image statistics: with a halo covering its reach, tiles must reproduce the
    whole-image result to float precision."""
    net = torch.nn.Sequential(torch.nn.ReflectionPad2d(2), torch.nn.Conv2d(3, 8, 5), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 3, 1)).eval()
    torch.manual_seed(1)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    path = export_plain(net, tmp_path / "local.onnx",
                        {"deepshop.value_range": "0,1", "deepshop.stride_multiple": "4",
                         "deepshop.receptive_field": "5"})
    img = rand_image(204, 152, seed=5, dtype=np.float32)
    whole = ds.Stylizer(path, device="cpu", tile=0)(img)
    with torch.no_grad():
        ref = net(torch.from_numpy(img).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy().clip(0, 1)
    np.testing.assert_allclose(whole, ref, atol=1e-5)
    for tile, batch in [(64, 1), (48, 3), (100, 2)]:
        tiled = ds.Stylizer(path, device="cpu", tile=tile, halo=4, overlap=8, batch=batch)(img)
        np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_tiled_transformer_net_close_to_whole(transformer_onnx):
    img = rand_image(256, 320, seed=11)
    whole = ds.Stylizer(transformer_onnx, device="cpu", tile=0)(img).astype(np.float64)
    st = ds.Stylizer(transformer_onnx, device="cpu", tile=192, overlap=32)
    plan = st.plan(256, 320)
    assert plan["tiles_x"] * plan["tiles_y"] > 1
    tiled = st(img).astype(np.float64)
    assert tiled.shape == whole.shape
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((tiled - whole) ** 2))
    # Instance norm sees each tile's own statistics, so tiled != whole; random weights exaggerate
    # this (the figures for a trained style are in the README).  Still far from random:
    assert psnr > 20


def test_plan_is_stride_aligned_and_covers_the_image(identity_onnx):
    st = ds.Stylizer(identity_onnx, device="cpu", tile=128, overlap=16, halo=12)
    plan = st.plan(1000, 333)
    wh, ww = plan["window"]
    kh, kw = plan["kept"]
    assert wh <= 128 and ww <= 128 and wh % 4 == 0 and ww % 4 == 0
    assert all(h % 4 == 0 for h in plan["halo"])
    for starts, kept, n in ((plan["row_starts"], kh, 1000), (plan["col_starts"], kw, 333)):
        assert starts[0] == 0 and starts[-1] + kept >= n
        assert all(s % 4 == 0 for s in starts)
        assert all(b - a <= kept - 16 for a, b in zip(starts, starts[1:]))  # overlap >= 16


def test_strength_and_preserve_colors_follow_their_formulas(transformer_onnx):
    img = rand_image(64, 80, seed=2).astype(np.float32) / 255
    st = ds.Stylizer(transformer_onnx, device="cpu", tile=0)
    styled = st(img)
    np.testing.assert_allclose(st(img, strength=0.0), img, atol=1e-6)
    np.testing.assert_allclose(st(img, strength=0.3), np.clip(0.3 * styled + 0.7 * img, 0, 1), atol=1e-5)
    # Luminance transfer (BT.601 Y): keep the input's chroma, take the stylized luminance.
    y = lambda a: a @ np.array([0.299, 0.587, 0.114], np.float32)  # noqa: E731
    expected = np.clip(img + (y(styled) - y(img))[..., None], 0, 1)
    got = st(img, preserve_colors=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.raises(ValueError, match="strength"):
        st(img, strength=1.5)


def test_grayscale_rgba_and_pil(identity_onnx):
    from PIL import Image

    st = ds.Stylizer(identity_onnx, device="cpu", tile=64)
    gray = rand_image(40, 30)[..., 0]
    out = st(gray)
    assert out.shape == (40, 30, 3) and all(np.array_equal(out[..., c], gray) for c in range(3))
    rgba = np.dstack([rand_image(40, 30, seed=1), np.arange(40 * 30, dtype=np.uint8).reshape(40, 30)])
    out = st(rgba)
    np.testing.assert_array_equal(out, rgba)  # identity model: colours and alpha come back
    pil = Image.fromarray(rgba[..., :3])
    out_pil = st(pil)
    assert isinstance(out_pil, Image.Image) and out_pil.size == (30, 40)
    np.testing.assert_array_equal(np.asarray(out_pil), rgba[..., :3])


def test_non_contiguous_view(identity_onnx):
    img = rand_image(60, 80)
    view = img[::2, ::-1]
    np.testing.assert_array_equal(ds.Stylizer(identity_onnx, device="cpu")(view), view)


def test_progress_callback_and_cancel(identity_onnx):
    st = ds.Stylizer(identity_onnx, device="cpu", tile=64, overlap=8, halo=4)
    img = rand_image(200, 200)
    calls = []
    st(img, progress=lambda done, total: calls.append((done, total)))
    total = st.plan(200, 200)["tiles_x"] * st.plan(200, 200)["tiles_y"]
    assert calls[-1] == (total, total) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    with pytest.raises(ds.Cancelled):
        st(img, progress=lambda done, total: done < 2)

    def boom(done, total):
        raise ZeroDivisionError("from the callback")
    with pytest.raises(ZeroDivisionError, match="from the callback"):
        st(img, progress=boom)


def test_concurrent_use_from_threads(transformer_onnx, transformer_net):
    st = ds.Stylizer(transformer_onnx, device="cpu", tile=96, overlap=16)
    images = [rand_image(72 + 8 * i, 60, seed=i) for i in range(4)]
    refs = [ds.Stylizer(transformer_onnx, device="cpu", tile=96, overlap=16)(im) for im in images]
    results = [None] * len(images)
    errors = []

    def work(i):
        try:
            for _ in range(3):
                results[i] = st(images[i])
                assert np.array_equal(results[i], refs[i])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_gil_is_released_while_native_code_runs(transformer_onnx):
    st = ds.Stylizer(transformer_onnx, device="cpu", tile=0, threads=1)
    img = rand_image(384, 384)
    done = threading.Event()
    ticks = 0

    def run():
        st(img)
        done.set()

    t = threading.Thread(target=run)
    t.start()
    while not done.is_set():
        ticks += 1
    t.join()
    # With the GIL held for the whole run, this loop could only spin between the thread's
    # Python-level steps; released, it spins throughout (millions of times).
    assert ticks > 10_000


def test_runtime_is_reported():
    assert ds.runtime_version().count(".") >= 1
    assert "CPUExecutionProvider" in ds.available_providers()
    assert "libonnxruntime" in ds.runtime_library()


def test_cuda_without_provider_is_a_clear_error(identity_onnx):
    if "CUDAExecutionProvider" in ds.available_providers():
        pytest.skip("CUDA provider present")
    with pytest.raises(ds.DeviceError, match="onnxruntime-gpu"):
        ds.Stylizer(identity_onnx, device="cuda")
    st = ds.Stylizer(identity_onnx, device="auto")
    assert st.provider == "CPUExecutionProvider" and "CUDA" in st.fallback_reason
    with pytest.raises(ValueError, match="device"):
        ds.Stylizer(identity_onnx, device="tpu")


@pytest.mark.gpu
def test_cuda_matches_cpu(transformer_onnx):
    if "CUDAExecutionProvider" not in ds.available_providers():
        pytest.skip("no CUDA provider in this onnxruntime")
    try:
        gpu = ds.Stylizer(transformer_onnx, device="cuda", tile=128, batch=4)
    except ds.DeviceError as e:
        pytest.skip(f"CUDA not usable here: {e}")
    img = rand_image(300, 260)
    cpu = ds.Stylizer(transformer_onnx, device="cpu", tile=128, batch=4)(img.astype(np.float32) / 255)
    assert gpu.provider == "CUDAExecutionProvider"
    assert np.abs(gpu(img.astype(np.float32) / 255) - cpu).max() * 255 < 0.5


# --- bad models ------------------------------------------------------------------------------

def test_missing_and_broken_model_files(tmp_path):
    with pytest.raises(ds.ModelError, match="no such model file"):
        ds.Stylizer(tmp_path / "nope.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model")
    with pytest.raises(ds.ModelError, match="notes.onnx.*not a valid ONNX model"):
        ds.Stylizer(text)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ds.ModelError, match="empty.onnx"):
        ds.Stylizer(empty)
    with pytest.raises(ds.ModelError, match="directory"):
        ds.Stylizer(tmp_path)


def test_model_with_unexpected_inputs_or_outputs(tmp_path):
    from onnx import TensorProto, helper

    extra = helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 3, 8, 8])
    two_in = image_graph_model([helper.make_node("Identity", ["input"], ["output"])], inputs_extra=[extra])
    p = save_with_metadata(two_in, tmp_path / "two.onnx", {"deepshop.value_range": "0,1"})
    with pytest.raises(ds.ModelError, match="two.onnx.*2 inputs"):
        ds.Stylizer(p)
    one_ch = image_graph_model([helper.make_node("ReduceMean", ["input"], ["output"], axes=[1], keepdims=1)],
                               out_channels=1, opset=17)
    p = save_with_metadata(one_ch, tmp_path / "gray.onnx", {"deepshop.value_range": "0,1"})
    with pytest.raises(ds.ModelError, match="gray.onnx.*unexpected output"):
        ds.Stylizer(p)
    # Output half the input's size: caught at run time with the sizes named.
    pool = image_graph_model([helper.make_node("MaxPool", ["input"], ["output"], kernel_shape=[2, 2], strides=[2, 2])])
    p = save_with_metadata(pool, tmp_path / "pool.onnx", {"deepshop.value_range": "0,1"})
    with pytest.raises(ds.ModelError, match="pool.onnx.*output of"):
        ds.Stylizer(p, device="cpu")(rand_image(16, 16))


def test_model_without_metadata_needs_explicit_options(tmp_path):
    p = identity_model(tmp_path / "plain.onnx", metadata={})
    with pytest.raises(ds.ModelError, match="plain.onnx.*no deepshop metadata.*value_range"):
        ds.Stylizer(p)
    img = rand_image(50, 70)
    st = ds.Stylizer(p, value_range=(0, 1), channel_order="BGR", mean=(0.1, 0.2, 0.3), tile=32, overlap=8, halo=4)
    np.testing.assert_array_equal(st(img), img)  # the pixel mapping is undone exactly on the way out


def test_bgr_and_mean_are_applied(tmp_path):
    """A model that outputs its input's first network channel in all three channels: with
    channel_order BGR the first network channel is blue, and mean is added back per channel."""
    from onnx import helper, numpy_helper

    idx = numpy_helper.from_array(np.array([0, 0, 0], np.int64), "idx")
    model = image_graph_model([helper.make_node("Gather", ["input", "idx"], ["output"], axis=1)], [idx])
    p = save_with_metadata(model, tmp_path / "first.onnx", {"deepshop.value_range": "0,255",
                                                            "deepshop.channel_order": "BGR",
                                                            "deepshop.mean": "10,0,0"})
    img = rand_image(20, 24).astype(np.float32) / 255
    out = ds.Stylizer(p, device="cpu")(img)
    # Network channel 0 = B*255 - 10; the output's channel k gets back mean[k] added, and the
    # engine maps network channel k to RGB channel 2-k: R <- ch2 (+0), G <- ch1 (+0), B <- ch0 (+10).
    b = img[..., 2] * 255 - 10
    expected = np.stack([b + 0, b + 0, b + 10], axis=-1) / 255
    np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=1e-5)


def test_empty_image_is_refused(identity_onnx):
    st = ds.Stylizer(identity_onnx)
    with pytest.raises(ValueError):
        st(np.zeros((0, 10, 3), np.uint8))


def test_stylize_one_shot_writes_atomically_and_keeps_alpha(tmp_path, identity_onnx):
    from PIL import Image

    rgba = np.dstack([rand_image(30, 40), np.full((30, 40), 77, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
    out = ds.stylize(tmp_path / "in.png", identity_onnx, tmp_path / "out.png")
    np.testing.assert_array_equal(out, rgba)
    with Image.open(tmp_path / "out.png") as im:
        np.testing.assert_array_equal(np.asarray(im), rgba)
    with pytest.raises(ds.OutputExistsError, match="out.png"):
        ds.stylize(tmp_path / "in.png", identity_onnx, tmp_path / "out.png")
    half = ds.stylize(tmp_path / "in.png", identity_onnx, max_side=20)
    assert half.shape == (15, 20, 4)


def test_harmonize_removes_per_tile_colour_casts(tmp_path):
    """A model that subtracts each image's per-channel mean (what instance norm does to colour)
    gives every tile its own cast; harmonizing with the stylized thumbnail must bring the tiles
    back to the whole-image result."""
    from onnx import helper, numpy_helper

    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    model = image_graph_model([
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[2, 3], keepdims=1),
        helper.make_node("Sub", ["input", "mean"], ["centred"]),
        helper.make_node("Add", ["centred", "half"], ["output"]),
    ], [half])
    path = save_with_metadata(model, tmp_path / "centre.onnx", {"deepshop.value_range": "0,1",
                                                                "deepshop.normalization": "instance"})
    yy, xx = np.mgrid[0:300, 0:400] / 400.0
    img = np.stack([0.2 + 0.6 * xx, 0.8 - 0.5 * yy, 0.3 + 0.3 * xx * yy], -1).astype(np.float32)
    whole = ds.Stylizer(path, device="cpu", tile=0)(img)
    np.testing.assert_allclose(whole, np.clip(img - img.mean((0, 1)) + 0.5, 0, 1), atol=1e-5)
    plain = ds.Stylizer(path, device="cpu", tile=128, overlap=16, halo=8, harmonize=0)(img)
    fixed = ds.Stylizer(path, device="cpu", tile=128, overlap=16, halo=8, harmonize=64)(img)
    err_plain, err_fixed = np.abs(plain - whole).mean(), np.abs(fixed - whole).mean()
    assert err_plain > 0.05  # the casts are real: ~1/10 of the range
    assert err_fixed < err_plain / 10 and err_fixed < 0.005
