"""Posterise, palettes and decoding against numpy references and hand-worked values.

The reference nearest-colour search is numpy in float64: broadcast squared distances, then
argmin (ties: lowest index, the documented rule).  In RGB on 8-bit input every distance is an
exact integer, so labels must match exactly.  In CIELAB the kernel computes in float32: where
the reference distances of two palette colours differ by less than 1e-3 (ΔE², a near-tie) either
label is accepted, everywhere else the labels must match.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from skimage import data

import deepshop_native as ds
from deepshop_native.core.errors import ArrayError

NEAR_TIE = 1e-3


# ---- independent references -----------------------------------------------------------------

def srgb_to_lab_reference(rgb01):
    """sRGB in [0, 1] -> CIELAB (D65), float64, straight from the formula."""
    c = np.asarray(rgb01, dtype=np.float64)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    d = 6 / 29
    f = np.where(xyz > d ** 3, np.cbrt(xyz), xyz / (3 * d * d) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def reference_distances(pixels01, palette01, space):
    x = np.asarray(pixels01, dtype=np.float64).reshape(-1, 3)
    p = np.asarray(palette01, dtype=np.float64)
    if space == "lab":
        x, p = srgb_to_lab_reference(x), srgb_to_lab_reference(p)
    return ((x[:, None, :] - p[None, :, :]) ** 2).sum(axis=2)


def assert_nearest(labels, pixels01, palette01, space, scale=1.0):
    d = reference_distances(pixels01, palette01, space) * scale
    ref = d.argmin(axis=1)
    got = np.asarray(labels).ravel().astype(np.int64)
    chosen = d[np.arange(len(got)), got]
    best = d[np.arange(len(got)), ref]
    mismatch = got != ref
    assert np.all(chosen[mismatch] - best[mismatch] <= NEAR_TIE), "a label is not the nearest colour"
    return mismatch.sum()


@pytest.fixture(scope="module")
def chelsea():
    return data.chelsea()[::2, ::2]  # 150 × 226, a real photo


@pytest.fixture(scope="module")
def palette8():
    return np.array([[0, 0, 0], [255, 255, 255], [200, 30, 40], [30, 160, 60], [40, 60, 190],
                     [230, 210, 60], [128, 128, 128], [120, 70, 30]], dtype=np.uint8)


# ---- uniform levels ---------------------------------------------------------------------------

def test_uniform_palette_is_the_27_colour_cube():
    p = ds.uniform_palette(3)
    assert p.shape == (27, 3) and p.dtype == np.uint8
    assert sorted(set(p.ravel().tolist())) == [0, 128, 255]
    assert p[(2 * 3 + 0) * 3 + 1].tolist() == [255, 0, 128]
    assert len({tuple(c) for c in p.tolist()}) == 27


def test_levels_hand_worked_values():
    # levels=3 -> 0, 128, 255.  64 is as near to 0 as to 128: the lower level wins.
    values = np.array([0, 63, 64, 65, 127, 128, 191, 192, 193, 255], dtype=np.uint8)
    expected = [0, 0, 0, 128, 128, 128, 128, 255, 255, 255]
    img = np.stack([values, values[::-1], values], axis=1)[None]  # 1 × 10 × 3
    out, labels = ds.posterize(img, levels=3, return_labels=True)
    assert out[0, :, 0].tolist() == expected
    assert out[0, :, 1].tolist() == expected[::-1]
    idx = {0: 0, 128: 1, 255: 2}
    for i in range(10):
        r, g, b = (idx[int(v)] for v in out[0, i])
        assert labels[0, i] == (r * 3 + g) * 3 + b


def test_levels_equal_palette_search(chelsea):
    for levels in (2, 3, 5, 6):
        o1, l1 = ds.posterize(chelsea, levels=levels, return_labels=True)
        o2, l2 = ds.posterize(chelsea, palette=ds.uniform_palette(levels), return_labels=True)
        assert np.array_equal(l1, l2) and np.array_equal(o1, o2)
        assert_nearest(l1, chelsea / 255, ds.uniform_palette(levels) / 255, "rgb")


def test_many_levels_use_int32_labels(chelsea):
    out, labels = ds.posterize(chelsea, levels=16, return_labels=True)
    assert labels.dtype == np.int32
    v = np.floor(np.arange(16) * 255 / 15 + 0.5)
    ref = np.abs(chelsea[..., None].astype(float) - v).argmin(axis=-1)
    assert np.array_equal(out, v[ref].astype(np.uint8))
    assert np.array_equal(labels, (ref[..., 0] * 16 + ref[..., 1]) * 16 + ref[..., 2])


def test_uint16_levels_at_16_bit():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 65536, size=(40, 50, 3), dtype=np.uint16)
    out = ds.posterize(img, levels=4)
    v = np.floor(np.arange(4) * 65535 / 3 + 0.5)
    ref = v[np.abs(img[..., None].astype(float) - v).argmin(axis=-1)]
    assert out.dtype == np.uint16 and np.array_equal(out, ref.astype(np.uint16))


# ---- palette search ---------------------------------------------------------------------------

def test_rgb_palette_matches_numpy_exactly(chelsea, palette8):
    out, labels = ds.posterize(chelsea, palette=palette8, return_labels=True)
    d = reference_distances(chelsea.astype(float), palette8.astype(float), "rgb")
    assert np.array_equal(labels.ravel(), d.argmin(axis=1))
    assert np.array_equal(out, palette8[labels])


def test_lab_palette_matches_numpy(chelsea, palette8):
    labels = ds.posterize(chelsea, palette=palette8, space="lab", return_labels=True)[1]
    assert assert_nearest(labels, chelsea / 255, palette8 / 255, "lab") <= 3


def test_ties_go_to_the_lowest_index():
    img = np.array([[[1, 0, 0], [100, 100, 100]]], dtype=np.uint8)
    for palette in ([[0, 0, 0], [2, 0, 0]], [[2, 0, 0], [0, 0, 0]]):
        labels = ds.posterize(img, palette=np.array(palette), return_labels=True)[1]
        assert labels[0, 0] == 0
    # duplicates: the first copy
    labels = ds.posterize(img, palette=[[9, 9, 9], [100, 100, 100], [100, 100, 100]], return_labels=True)[1]
    assert labels[0, 1] == 1


@pytest.mark.parametrize("space", ["rgb", "lab"])
def test_lookup_table_equals_direct_search(chelsea, palette8, space):
    a = ds.posterize(chelsea, palette=palette8, space=space, return_labels=True, use_lut=False)
    b = ds.posterize(chelsea, palette=palette8, space=space, return_labels=True, use_lut=True)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("space", ["rgb", "lab"])
def test_lookup_table_over_the_whole_cube(space):
    # Every one of the 2^24 colours: table path == direct search; a sample against numpy.
    pal = ds.uniform_palette(3)
    codes = np.arange(1 << 24, dtype=np.uint32)
    cube = np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=1).astype(np.uint8).reshape(4096, 4096, 3)
    direct = ds.posterize(cube, palette=pal, space=space, return_labels=True, use_lut=False)[1]
    table = ds.posterize(cube, palette=pal, space=space, return_labels=True, use_lut=True)[1]
    assert np.array_equal(direct, table)
    sample = np.random.default_rng(1).integers(0, 1 << 24, size=20000)
    assert_nearest(table.ravel()[sample], cube.reshape(-1, 3)[sample] / 255, pal / 255, space)


def test_corrupt_label_table_is_refused():
    pal = ds.uniform_palette(2)
    img = np.zeros((2, 2, 3), np.uint8)
    labels = np.empty((2, 2), np.uint8)
    with pytest.raises(ValueError, match="too small"):
        ds._native._posterize_palette_u8(img, pal, "rgb", np.zeros(100, np.uint8), labels, None, 0)
    bad = np.full(65536, 255, np.uint8)  # every cell points past the end
    with pytest.raises(ValueError, match="does not fit"):
        ds._native._posterize_palette_u8(img, pal, "rgb", bad, labels, None, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("space", ["rgb", "lab"])
def test_float_images(chelsea, palette8, dtype, space):
    img = (chelsea / 255).astype(dtype)
    out, labels = ds.posterize(img, palette=palette8, space=space, return_labels=True)
    assert out.dtype == (np.float32 if dtype == np.float16 else dtype)
    assert_nearest(labels, img.astype(np.float64), palette8 / 255, space, scale=255 ** 2 if space == "rgb" else 1)
    np.testing.assert_allclose(out, palette8[labels] / 255, rtol=1e-6)


def test_uint16_palette_search(chelsea, palette8):
    img16 = chelsea.astype(np.uint16) * 257 + 100
    out, labels = ds.posterize(img16, palette=palette8, space="lab", return_labels=True)
    assert out.dtype == np.uint16
    assert np.array_equal(out, palette8[labels].astype(np.uint16) * 257)
    assert_nearest(labels, img16 / 65535, palette8 / 255, "lab")


# ---- layouts, channels, errors -----------------------------------------------------------------

def test_non_contiguous_views_and_channels(chelsea, palette8):
    view = chelsea[::-2, 5::3]
    assert np.array_equal(ds.posterize(view, palette=palette8), ds.posterize(view.copy(), palette=palette8))
    gray = chelsea[..., 1]
    out = ds.posterize(gray, levels=3)
    assert out.shape == gray.shape + (3,)
    assert np.array_equal(out, ds.posterize(np.repeat(gray[..., None], 3, axis=2), levels=3))
    assert np.array_equal(ds.posterize(gray[..., None], levels=3), out)
    alpha = np.arange(gray.size, dtype=np.uint8).reshape(gray.shape)
    rgba = np.dstack([chelsea, alpha])
    out = ds.posterize(rgba, palette=palette8, space="lab")
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], alpha)
    assert np.array_equal(out[..., :3], ds.posterize(chelsea, palette=palette8, space="lab"))


@pytest.mark.parametrize("kwargs, match", [
    (dict(image=np.zeros((4, 4, 3), np.int64), levels=3), "dtype int64"),
    (dict(image=np.zeros((4, 4, 3), bool), levels=3), "dtype bool"),
    (dict(image=np.zeros((4, 4, 2), np.uint8), levels=3), "expected"),
    (dict(image=np.full((4, 4, 3), 1.5), levels=3), r"\[0, 1\]"),
    (dict(image=np.full((4, 4, 3), np.nan), levels=3), "NaN"),
    (dict(image=np.zeros((4, 4, 3), np.uint8)), "exactly one"),
    (dict(image=np.zeros((4, 4, 3), np.uint8), levels=3, palette=[[0, 0, 0]]), "exactly one"),
    (dict(image=np.zeros((4, 4, 3), np.uint8), levels=1), "levels"),
    (dict(image=np.zeros((4, 4, 3), np.uint8), levels=7, space="lab"), "at most 256"),
    (dict(image=np.zeros((4, 4, 3), np.uint8), palette=np.zeros((257, 3))), "at most 256"),
    (dict(image=np.zeros((4, 4, 3), np.uint8), palette=[[0, 0, 300]]), "0..255"),
    (dict(image=np.zeros((4, 4, 3), np.uint8), palette=[[0, 0]]), "shape"),
    (dict(image=np.zeros((4, 4, 3), np.uint8), levels=3, space="hsv"), "space"),
])
def test_bad_input_is_refused(kwargs, match):
    with pytest.raises(ArrayError, match=match):
        ds.posterize(**kwargs)


# ---- dithering --------------------------------------------------------------------------------

def test_dither_mid_grey_with_black_and_white():
    img = np.full((64, 64, 3), 128, dtype=np.uint8)
    out, labels = ds.posterize(img, palette=[[0, 0, 0], [255, 255, 255]], dither=True, return_labels=True)
    # Error diffusion keeps the local mean: 128/255 of the pixels white (±1 %), while the plain
    # nearest colour turns everything white.
    assert abs(labels.mean() - 128 / 255) < 0.01
    assert set(np.unique(out).tolist()) == {0, 255}
    assert ds.posterize(img, palette=[[0, 0, 0], [255, 255, 255]]).min() == 255


def test_dither_hand_worked_row():
    # One row, palette {0, 255}, values 0.6: 1st -> 255 (err -0.4, 7/16 of it to the right),
    # 2nd: 0.6 - 0.175 = 0.425 -> 0 (err 0.425), 3rd: 0.6 + 0.1859 = 0.786 -> 255.
    img = np.full((1, 3, 3), 0.6, dtype=np.float32)
    labels = ds.posterize(img, palette=[[0, 0, 0], [255, 255, 255]], dither=True, return_labels=True)[1]
    assert labels.tolist() == [[1, 0, 1]]


def test_dither_lab_keeps_palette_colours(chelsea, palette8):
    out = ds.posterize(chelsea, palette=palette8, space="lab", dither=True)
    assert {tuple(c) for c in out.reshape(-1, 3).tolist()} <= {tuple(c) for c in palette8.tolist()}


# ---- property tests ---------------------------------------------------------------------------

images = st.builds(
    lambda h, w, seed: np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8),
    st.integers(1, 24), st.integers(1, 24), st.integers(0, 2 ** 31))
palettes = st.builds(
    lambda k, seed: np.random.default_rng(seed).integers(0, 256, size=(k, 3), dtype=np.uint8),
    st.integers(1, 40), st.integers(0, 2 ** 31))


@settings(max_examples=40, deadline=None)
@given(img=images, pal=palettes, space=st.sampled_from(["rgb", "lab"]), dither=st.booleans())
def test_property_only_palette_colours_and_idempotent(img, pal, space, dither):
    out, labels = ds.posterize(img, palette=pal, space=space, dither=dither, return_labels=True)
    assert np.array_equal(out, pal[labels])
    again = ds.posterize(out, palette=pal, space=space)
    assert np.array_equal(again, out)


@settings(max_examples=25, deadline=None)
@given(img=images, levels=st.integers(2, 8))
def test_property_levels_idempotent(img, levels):
    out = ds.posterize(img, levels=levels)
    assert np.array_equal(ds.posterize(out, levels=levels), out)
    assert set(np.unique(out).tolist()) <= set(ds.uniform_palette(levels).ravel().tolist())


@settings(max_examples=25, deadline=None)
@given(img=images, pal=palettes)
def test_property_float_idempotent(img, pal):
    out = ds.posterize(img / 255.0, palette=pal, space="lab")
    assert np.array_equal(ds.posterize(out, palette=pal, space="lab"), out)


# ---- palettes from images ---------------------------------------------------------------------

def four_colour_image():
    colours = np.array([[10, 20, 30], [200, 10, 10], [10, 220, 40], [250, 250, 250]], np.uint8)
    idx = np.random.default_rng(2).integers(0, 4, size=(30, 40))
    return colours, colours[idx]


@pytest.mark.parametrize("method", ["kmeans", "median_cut"])
def test_palette_recovers_exact_colours(method):
    colours, img = four_colour_image()
    pal = ds.palette_from_image(img, 4, method=method)
    assert {tuple(c) for c in pal.tolist()} == {tuple(c) for c in colours.tolist()}
    # fewer distinct colours than k: only those come back
    pal = ds.palette_from_image(img, 10, method=method)
    assert {tuple(c) for c in pal.tolist()} == {tuple(c) for c in colours.tolist()}


def test_median_cut_hand_worked():
    # Grey ramp 0..7: one cut at the median -> {0..3} and {4..7}, means 1.5 and 5.5 (rounded up).
    img = np.repeat(np.arange(8, dtype=np.uint8), 3).reshape(1, 8, 3)
    assert ds.palette_from_image(img, 2, method="median_cut").tolist() == [[2, 2, 2], [6, 6, 6]]


@pytest.mark.parametrize("space", ["rgb", "lab"])
def test_kmeans_is_deterministic_and_a_lloyd_fixed_point(chelsea, space):
    a = ds.palette_from_image(chelsea, 6, space=space, seed=3)
    b = ds.palette_from_image(chelsea, 6, space=space, seed=3)
    assert np.array_equal(a, b) and a.shape == (6, 3)
    if space == "rgb":
        # Each colour is the (rounded) mean of the pixels nearest to it.
        px = chelsea.reshape(-1, 3).astype(float)
        near = reference_distances(px, a.astype(float), "rgb").argmin(axis=1)
        for k in range(6):
            assert np.all(np.abs(px[near == k].mean(axis=0) - a[k]) <= 1.0)


def test_palette_from_image_inputs():
    colours, img = four_colour_image()
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    rgba[:10, :, 3] = 0
    rgba[:10, :, :3] = [77, 77, 77]  # transparent pixels are not sampled
    pal = ds.palette_from_image(rgba, 8)
    assert [77, 77, 77] not in pal.tolist()
    pal16 = ds.palette_from_image(img.astype(np.uint16) * 257, 4)
    assert {tuple(c) for c in pal16.tolist()} == {tuple(c) for c in colours.tolist()}
    big = np.tile(img, (20, 20, 1))  # more than max_samples: subsampled, still the 4 colours
    assert len(ds.palette_from_image(big, 4, max_samples=5000)) == 4
    with pytest.raises(ArrayError, match="method"):
        ds.palette_from_image(img, 4, method="octree")
    with pytest.raises(ArrayError, match="k must"):
        ds.palette_from_image(img, 0)


# ---- decoding ---------------------------------------------------------------------------------

def test_decode_labels_and_scores(chelsea, palette8):
    out, labels = ds.posterize(chelsea, palette=palette8, return_labels=True)
    assert np.array_equal(ds.decode_labels(labels, palette8), out)
    assert np.array_equal(ds.decode_labels(labels.astype(np.int64), palette8.tolist()), out)
    scores = np.zeros(labels.shape + (8,), np.float32)
    np.put_along_axis(scores, labels[..., None].astype(np.int64), 1.0, axis=2)
    assert np.array_equal(ds.decode_labels(scores, palette8), out)
    tie = np.ones((1, 1, 8), np.float32)  # all equal: the first class
    assert ds.decode_labels(tie, palette8).tolist() == [[palette8[0].tolist()]]
    with pytest.raises(ArrayError, match="do not index"):
        ds.decode_labels(np.full((2, 2), 8), palette8)
    with pytest.raises(ArrayError, match="channels first"):
        ds.decode_labels(np.zeros((8, 5, 6), np.float32), palette8)


@pytest.mark.parametrize("levels", [2, 3, 4, 7, 16, 17, 256])
def test_levels_output_only_path_matches_numpy(chelsea, levels):
    # Without labels a threshold path runs (levels <= 16); with labels a table path.
    v = np.floor(np.arange(levels) * 255 / (levels - 1) + 0.5)
    ref = v[np.abs(chelsea[..., None].astype(float) - v).argmin(axis=-1)].astype(np.uint8)
    assert np.array_equal(ds.posterize(chelsea, levels=levels), ref)
    assert np.array_equal(ds.posterize(chelsea, levels=levels, return_labels=True)[0], ref)
    all_codes = np.arange(256, dtype=np.uint8).reshape(16, 16)
    ref = v[np.abs(all_codes[..., None].astype(float) - v).argmin(axis=-1)]  # every code, ties low
    assert np.array_equal(ds.posterize(all_codes, levels=levels)[..., 0], ref)


def test_byte_swapped_and_empty_images():
    img = np.random.default_rng(3).integers(0, 65536, size=(20, 30, 3)).astype(">u2")
    assert np.array_equal(ds.posterize(img, levels=3), ds.posterize(img.astype(np.uint16), levels=3))
    assert np.array_equal(ds.posterize(img, palette=[[0, 0, 0], [90, 200, 10]], space="lab"),
                          ds.posterize(img.astype(np.uint16), palette=[[0, 0, 0], [90, 200, 10]], space="lab"))
    empty = np.zeros((0, 5, 3), np.uint8)
    assert ds.posterize(empty, levels=3).shape == (0, 5, 3)
    assert ds.posterize(empty, palette=[[1, 2, 3]], space="lab", return_labels=True)[1].shape == (0, 5)


def test_thread_count_does_not_change_results(chelsea, palette8):
    big = np.tile(chelsea, (2, 2, 1))
    a = ds.posterize(big, palette=palette8, space="lab", threads=1, return_labels=True)[1]
    b = ds.posterize(big, palette=palette8, space="lab", threads=2, return_labels=True)[1]
    assert np.array_equal(a, b)
    assert np.array_equal(ds.palette_from_image(big, 5, threads=1), ds.palette_from_image(big, 5, threads=2))


def floyd_steinberg_reference(img01, palette01):
    """Floyd–Steinberg as published (raster order, weights 7/16, 3/16, 5/16, 1/16), RGB distance,
    written out pixel by pixel in float32 with the same operation order as the kernel."""
    f32 = np.float32
    h, w, _ = img01.shape
    err = np.zeros((h + 1, w + 2, 3), f32)  # one guard column on each side, one spare row
    labels = np.zeros((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            v = [min(max(f32(img01[y, x, c]) + err[y, x + 1, c], f32(0)), f32(1)) for c in range(3)]
            best, k_best = np.inf, 0
            for k, p in enumerate(palette01):
                d = (v[0] - p[0]) * (v[0] - p[0]) + (v[1] - p[1]) * (v[1] - p[1]) + (v[2] - p[2]) * (v[2] - p[2])
                if d < best:
                    best, k_best = d, k
            labels[y, x] = k_best
            for c in range(3):
                e = f32(v[c] - palette01[k_best][c])
                err[y, x + 2, c] += e * f32(7 / 16)
                err[y + 1, x, c] += e * f32(3 / 16)
                err[y + 1, x + 1, c] += e * f32(5 / 16)
                err[y + 1, x + 2, c] += e * f32(1 / 16)
    return labels


def test_dither_matches_reference_implementation():
    rng = np.random.default_rng(12)
    img = rng.random((10, 12, 3)).astype(np.float32)
    palette = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 90, 200], [240, 200, 20]], np.uint8)
    pal01 = palette.astype(np.float32) / np.float32(255)
    labels = ds.posterize(img, palette=palette, dither=True, return_labels=True)[1]
    assert np.array_equal(labels, floyd_steinberg_reference(img, pal01))


@settings(max_examples=20, deadline=None)
@given(img=images, k=st.integers(1, 12), method=st.sampled_from(["kmeans", "median_cut"]))
def test_property_palette_within_image_colours(img, k, method):
    pal = ds.palette_from_image(img, k, method=method)
    px = img.reshape(-1, 3)
    assert 1 <= len(pal) <= min(k, len(np.unique(px, axis=0)))
    assert np.all(pal >= px.min(axis=0)) and np.all(pal <= px.max(axis=0))
