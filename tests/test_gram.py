"""Gram matrix kernel against a numpy float64 reference.

Tolerance: products are float32 and sums float64 (in float32 blocks first), so the result must
lie within 1e-5 · max|G_ref| of the float64 reference computed from the same float32 inputs.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import deepshop_native as ds
from deepshop_native import _native
from deepshop_native.core.errors import ArrayError

RTOL = 1e-5


def reference_gram(f, weights=None):
    f = np.asarray(f, dtype=np.float64).reshape(f.shape[0], -1)
    fw = f if weights is None else f * np.asarray(weights, dtype=np.float64).reshape(1, -1)
    return fw @ f.T


def assert_close(g, ref, rtol=RTOL):
    scale = max(np.abs(ref).max(), 1e-30)
    err = np.abs(np.asarray(g, dtype=np.float64) - ref).max() / scale
    assert err <= rtol, f"relative error {err:.3g} > {rtol}"


def available_kernels():
    names = ["scalar"]
    for name in ("avx2", "avx512"):
        try:
            _native.set_gram_kernel(name)
            names.append(name)
        except ValueError:
            pass
    _native.set_gram_kernel("auto")
    return names


@pytest.fixture(params=available_kernels())
def kernel(request):
    _native.set_gram_kernel(request.param)
    yield request.param
    _native.set_gram_kernel("auto")


@pytest.mark.parametrize("shape", [(3, 7), (5, 1000), (37, 12345), (64, 4096), (130, 999), (512, 64)])
def test_gram_matches_numpy_float64(kernel, shape):
    rng = np.random.default_rng(1)
    f = rng.standard_normal(shape).astype(np.float32)
    g = ds.gram(f, normalize="none", dtype=np.float64)
    assert_close(g, reference_gram(f))
    assert np.array_equal(g, g.T)


def test_large_channel_count_and_threads():
    rng = np.random.default_rng(2)
    f = rng.standard_normal((1024, 300)).astype(np.float32)
    ref = reference_gram(f)
    assert_close(ds.gram(f, normalize="none", threads=1), ref)
    assert_close(ds.gram(f, normalize="none", threads=2), ref)


def test_normalizations():
    rng = np.random.default_rng(3)
    f = rng.standard_normal((8, 6, 5)).astype(np.float32)
    ref = reference_gram(f)
    assert_close(ds.gram(f, normalize="none"), ref)
    assert_close(ds.gram(f, normalize="N"), ref / 30)
    assert_close(ds.gram(f, normalize="CN"), ref / (8 * 30))
    assert_close(ds.gram(f), ref / (8 * 30))  # default: C·N (Johnson et al.)
    assert_close(ds.gram(f, normalize=None), ref)


def test_float16_input_is_read_directly():
    rng = np.random.default_rng(4)
    f = rng.standard_normal((19, 4097)).astype(np.float16)
    assert_close(ds.gram(f, normalize="none"), reference_gram(f.astype(np.float32)))


def test_float16_subnormals_and_strided_float16():
    f = np.array([[6e-8, 1e-5, -2.0, 65504.0], [1.0, -6e-8, 3e-5, 0.5]], dtype=np.float16)
    assert_close(ds.gram(f, normalize="none"), reference_gram(f.astype(np.float32)))
    big = np.random.default_rng(5).standard_normal((6, 40, 50)).astype(np.float16)
    view = big[:, 3:30, ::3]
    assert_close(ds.gram(view, normalize="none"), reference_gram(view.astype(np.float32)))


@pytest.mark.parametrize("make_view", [
    lambda a: a[:, 2:-3, 1::2],                     # crop with a step
    lambda a: a[::-1, :, ::-1],                     # negative strides
    lambda a: np.asfortranarray(a),                 # Fortran order
    lambda a: a.transpose(0, 2, 1),                 # transposed positions
    lambda a: a.astype(">f4"),                      # byte-swapped
    lambda a: a.astype(np.float64),                 # other dtypes are converted
    lambda a: (a * 10).astype(np.int16),
])
def test_any_layout(make_view):
    base = np.random.default_rng(6).standard_normal((9, 33, 41)).astype(np.float32)
    view = make_view(base)
    expected = reference_gram(np.asarray(view, dtype=np.float32))
    assert_close(ds.gram(view, normalize="none"), expected)


def test_batch_gives_one_gram_per_image():
    f = np.random.default_rng(7).standard_normal((3, 4, 10, 12)).astype(np.float32)
    g = ds.gram(f, normalize="CN")
    assert g.shape == (3, 4, 4)
    for b in range(3):
        assert_close(g[b], reference_gram(f[b]) / (4 * 120))


def test_mask_weights_positions():
    rng = np.random.default_rng(8)
    f = rng.standard_normal((16, 20, 30)).astype(np.float32)
    w = rng.random((20, 30)).astype(np.float32)
    w[:, :10] = 0
    ref = reference_gram(f, w)
    assert_close(ds.gram(f, normalize="none", mask=w), ref)
    assert_close(ds.gram(f, normalize="N", mask=w), ref / w.astype(np.float64).sum())
    # A 0/1 mask gives the Gram of the selected positions only.
    sel = np.zeros((20, 30), dtype=bool)
    sel[5:15, 7:25] = True
    assert_close(ds.gram(f, normalize="N", mask=sel), reference_gram(f[:, 5:15, 7:25]) / sel.sum())
    # (C, N) features take a mask of shape (N,).
    flat = f.reshape(16, -1)
    assert_close(ds.gram(flat, normalize="none", mask=w.ravel()), ref)


def tiles_of(height, width, tile, halo):
    """(y0, y1, x0, x1) boxes of overlapping tiles and the crop that drops their halo."""
    for ty in range(0, height, tile):
        for tx in range(0, width, tile):
            y0, x0 = max(0, ty - halo), max(0, tx - halo)
            y1, x1 = min(height, ty + tile + halo), min(width, tx + tile + halo)
            crop = (ty - y0, min(height, ty + tile) - y0, tx - x0, min(width, tx + tile) - x0)
            yield (y0, y1, x0, x1), crop


def test_accumulator_equals_one_shot_with_halo_crops():
    rng = np.random.default_rng(9)
    f = rng.standard_normal((32, 70, 53)).astype(np.float32)
    mask = rng.random((70, 53)).astype(np.float32)
    acc = ds.GramAccumulator(normalize="CN")
    acc_m = ds.GramAccumulator(channels=32, normalize="N")
    for (y0, y1, x0, x1), crop in tiles_of(70, 53, 16, 5):
        acc.add(f[:, y0:y1, x0:x1], crop=crop)
        acc_m.add(f[:, y0:y1, x0:x1], crop=crop, mask=mask[y0:y1, x0:x1])
    assert acc.positions == 70 * 53
    # Tiles cut the float32 block sums at other places than the one-shot pass: equal up to
    # float32 rounding of those partial sums.
    one_shot = ds.gram(f, normalize="CN", dtype=np.float64)
    assert_close(acc.result(np.float64), one_shot, rtol=1e-6)
    assert_close(acc_m.result(np.float64), ds.gram(f, normalize="N", mask=mask, dtype=np.float64), rtol=1e-6)
    assert_close(acc.result(np.float64), reference_gram(f) / (32 * 70 * 53))


@settings(max_examples=25, deadline=None)
@given(c=st.integers(1, 40), h=st.integers(1, 30), w=st.integers(1, 30), tile=st.integers(1, 12),
       halo=st.integers(0, 4), seed=st.integers(0, 2 ** 31))
def test_property_accumulated_equals_one_shot(c, h, w, tile, halo, seed):
    f = np.random.default_rng(seed).standard_normal((c, h, w)).astype(np.float32)
    acc = ds.GramAccumulator(normalize="none")
    for (y0, y1, x0, x1), crop in tiles_of(h, w, tile, halo):
        acc.add(f[:, y0:y1, x0:x1], crop=crop)
    ref = reference_gram(f)
    assert_close(acc.result(np.float64), ref)
    assert_close(ds.gram(f, normalize="none"), ref)


def test_accumulator_reset_and_errors():
    acc = ds.GramAccumulator(channels=4)
    with pytest.raises(ArrayError, match="nothing has been added"):
        acc.result()
    with pytest.raises(ArrayError, match="5 channels"):
        acc.add(np.zeros((5, 3, 3), np.float32))
    with pytest.raises(ArrayError, match="does not fit"):
        acc.add(np.zeros((4, 3, 3), np.float32), crop=(0, 4, 0, 3))
    acc.add(np.ones((4, 3, 3), np.float32))
    acc.reset()
    acc.add(np.ones((4, 2, 2), np.float32))
    np.testing.assert_allclose(acc.result(), np.full((4, 4), 1 / 4))


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 3, 4, 5, 6), np.float32), "expected shape"),
    (np.zeros(7, np.float32), "expected shape"),
    (np.zeros((3, 4), np.complex64), "not a real number"),
    (np.zeros((0, 4), np.float32), "no channels"),
])
def test_bad_features_are_refused(bad, match):
    with pytest.raises(ArrayError, match=match):
        ds.gram(bad)


def test_bad_arguments_are_refused():
    f = np.ones((3, 4, 5), np.float32)
    with pytest.raises(ArrayError, match="normalize"):
        ds.gram(f, normalize="max")
    with pytest.raises(ArrayError, match="mask: shape"):
        ds.gram(f, mask=np.ones((5, 4)))
    with pytest.raises(ArrayError, match="NaN"):
        ds.gram(f, mask=np.full((4, 5), np.nan))
    with pytest.raises(ArrayError, match="zero"):
        ds.gram(f, normalize="N", mask=np.zeros((4, 5)))
    with pytest.raises(ValueError):
        _native._gram_accumulate(f, None, np.zeros((2, 2)), 0)  # accumulator of the wrong size
    with pytest.raises(ValueError, match="unknown gram kernel"):
        _native.set_gram_kernel("sse9")


@pytest.mark.slow
def test_tens_of_millions_of_positions():
    # 8 channels × 30 M positions (1 GB of float32): float64 accumulation keeps 1e-6 accuracy.
    rng = np.random.default_rng(10)
    f = (rng.standard_normal((8, 30_000_000), dtype=np.float32) + 0.5).astype(np.float32)
    rows = [f[i].astype(np.float64) for i in range(8)]  # float64 reference, one pair at a time
    ref = np.array([[np.dot(rows[i], rows[j]) for j in range(8)] for i in range(8)])
    assert_close(ds.gram(f, normalize="none", dtype=np.float64), ref, rtol=1e-6)


def test_batch_with_per_image_masks():
    rng = np.random.default_rng(11)
    f = rng.standard_normal((2, 5, 6, 7)).astype(np.float32)
    masks = rng.random((2, 6, 7)).astype(np.float32)
    g = ds.gram(f, normalize="N", mask=masks)
    for b in range(2):
        assert_close(g[b], reference_gram(f[b], masks[b]) / masks[b].astype(np.float64).sum())
    with pytest.raises(ArrayError, match="batch of 3 masks"):
        ds.gram(f, mask=np.ones((3, 6, 7)))


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    t = torch.randn(6, 9, 11)
    assert_close(ds.gram(t, normalize="none"), reference_gram(t.numpy()))
    with pytest.raises(ArrayError, match="cannot be read"):
        ds.gram(t.requires_grad_())
