"""The working size of the image path: the network runs on the photo area-downscaled to a longer
side, and its result is guided-upsampled to full size with the photo's luma as the guide
(kernels/resample, kernels/guided_upsample, engine/image_runner).  Checked against a numpy
reference written here from the definitions (area averages by coverage, box means over clipped
windows, the guided filter's linear fit, OpenCV's half-pixel bilinear resize), on a hand-built
graph that inverts the image (so the fit has negative slopes) and a swapped-channel one."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import deepshop_native as ds
from deepshop_native import _native

from model_factory import image_graph_model, save_with_metadata

cv2 = pytest.importorskip("cv2")

RADIUS, EPS = 2, 1e-3


@pytest.fixture(scope="module")
def inverting(tmp_path_factory):
    """output = 255 - input[:, [1, 2, 0]] on 0..255: the colours rotated and inverted."""
    folder = tmp_path_factory.mktemp("working_size")
    model = image_graph_model(
        [helper.make_node("Gather", ["input", "order"], ["rotated"], axis=1),
         helper.make_node("Sub", ["white", "rotated"], ["output"])],
        [numpy_helper.from_array(np.array([1, 2, 0], np.int64), "order"),
         numpy_helper.from_array(np.array(255.0, np.float32), "white")])
    return save_with_metadata(model, folder / "invert.onnx", {"deepshop.value_range": "0,255",
                                                              "deepshop.stride_multiple": "1"})


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out x n_in): row o averages the input span [o, o + 1) * n_in / n_out by coverage."""
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        a, b = o * scale, (o + 1) * scale
        for i in range(int(np.floor(a)), int(np.ceil(b))):
            m[o, i] = max(0.0, min(b, i + 1) - max(a, i)) / scale
    return m


def box(img: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window clipped to the image, by direct summation."""
    h, w = img.shape[:2]
    out = np.empty_like(img, dtype=np.float64)
    for y in range(h):
        for x in range(w):
            out[y, x] = img[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1].mean(axis=(0, 1))
    return out


def reference(photo: np.ndarray, working_size: int, network, strength=1.0, radius=RADIUS, eps=EPS) -> np.ndarray:
    """The working-size path from its definition, float64."""
    u = photo.astype(np.float64) / 255
    H, W = u.shape[:2]
    scale = working_size / max(H, W)
    h, w = max(1, round(H * scale)), max(1, round(W * scale))
    small = np.einsum("oh,hwc->owc", area_matrix(H, h), np.einsum("pw,hwc->hpc", area_matrix(W, w), u))
    styled = network(small)
    luma = lambda x: x @ np.array([0.299, 0.587, 0.114])   # noqa: E731
    guide = luma(small)
    mean_i, mean_ii = box(guide, radius), box(guide * guide, radius)
    mean_p, mean_ip = box(styled, radius), box(guide[..., None] * styled, radius)
    a = (mean_ip - mean_i[..., None] * mean_p) / (np.maximum(mean_ii - mean_i ** 2, 0)[..., None] + eps)
    b = mean_p - a * mean_i[..., None]
    up = lambda m: cv2.resize(box(m, radius).astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)  # noqa: E731
    q = np.clip(up(a) * luma(u)[..., None] + up(b), 0, 1)
    return strength * q + (1 - strength) * u


def invert(x):
    return 1.0 - x[..., [1, 2, 0]]


@pytest.mark.parametrize("shape,working_size", [((96, 64), 48), ((61, 100), 40)])
def test_working_size_is_area_down_guided_up(inverting, photos, shape, working_size):
    h, w = shape
    photo = np.ascontiguousarray(photos["chelsea"][:h * 3:3, :w * 3:3])
    st = ds.Stylizer(inverting, device="cpu", tile=0)
    got = st(photo.astype(np.float32) / 255, working_size=working_size)
    want = reference(photo, working_size, invert)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-4)
    # 8-bit in and out, and strength, on the same path
    got8 = st(photo, working_size=working_size, strength=0.5)
    want8 = np.clip(np.rint(reference(photo, working_size, invert, strength=0.5) * 255), 0, 255)
    assert np.abs(got8.astype(int) - want8).max() <= 1


def test_a_family_chooses_its_guided_window(inverting, photos):
    """A pipeline's GUIDED_RADIUS and GUIDED_EPS reach the guided upsampling (the arbitrary-style
    family keeps the smallest window: its strokes, the photo's finest detail)."""
    from deepshop_native.pipelines.arbitrary import ArbitraryStyle

    class SmallWindow(ds.Stylizer):
        GUIDED_RADIUS, GUIDED_EPS = ArbitraryStyle.GUIDED_RADIUS, ArbitraryStyle.GUIDED_EPS

    assert (SmallWindow.GUIDED_RADIUS, SmallWindow.GUIDED_EPS) == (1, 1e-4)
    photo = np.ascontiguousarray(photos["chelsea"][:96 * 3:3, :64 * 3:3])
    got = SmallWindow(inverting, device="cpu", tile=0)(photo.astype(np.float32) / 255, working_size=48)
    np.testing.assert_allclose(got, reference(photo, 48, invert, radius=1, eps=1e-4), atol=2e-4)
    wide = ds.Stylizer(inverting, device="cpu", tile=0)(photo.astype(np.float32) / 255, working_size=48)
    assert np.abs(got - wide).max() > 0.01                     # the default window gives another result


def test_an_image_no_larger_than_the_working_size_runs_at_full_size(inverting, photos):
    photo = np.ascontiguousarray(photos["coffee"][:50, :70])
    st = ds.Stylizer(inverting, device="cpu", tile=0)
    full = st(photo)
    np.testing.assert_array_equal(st(photo, working_size=70), full)
    np.testing.assert_array_equal(full, 255 - photo[..., [1, 2, 0]])
    assert _native.working_shape(height=50, width=70, working_size=35) == (25, 35)
    assert _native.working_shape(height=50, width=70, working_size=0) == (50, 70)


def test_working_size_is_checked(inverting):
    st = ds.Stylizer(inverting, device="cpu", tile=0)
    for bad in (-1, 1.5, "big", 1 << 21):
        with pytest.raises(ds.OptionError, match="working_size"):
            st(np.zeros((8, 8, 3), np.uint8), working_size=bad)
    with pytest.raises(ds.OptionError, match="working_size"):
        ds.Stylizer(inverting, device="cpu", working_size=-3)
