"""Windows bounded by area (TileOptions.tile_area): any shape within that many pixels, the shape
that computes the fewest pixels.  Checked against hand-worked plans, against the square plan of
the same area (which is one of the shapes allowed, so never cheaper), and on the pixels: an
identity network tiled this way gives back its input exactly where the blend weights sum to one."""
from __future__ import annotations

import numpy as np
import pytest

import deepshop_native as ds
from deepshop_native.core.session import tile_options, tiling_errors_as_option_errors


@pytest.fixture(scope="module")
def tnet(transformer_onnx):
    """A TransformerNet (stride 4, receptive field 109: a 28 px halo) on ONNX Runtime's CPU provider."""
    return ds.Stylizer(transformer_onnx, device="cpu", tile=0)


def _plan(st, h, w, **tiles):
    return st._session.plan(height=h, width=w, tiles=tile_options(harmonize=512, **tiles))


def _cost(plan):
    return plan["tiles_y"] * plan["tiles_x"] * plan["window"][0] * plan["window"][1]


def test_4k_frame_in_fp32_window_area_hand_worked(tnet):
    # Area 1536^2 = 2,359,296 px.  Full height (2160) leaves 2,359,296 // 2160 = 1092 px of width:
    # a 1036 px kept span; four tiles overlapping by 64 need ceil((3840 + 3 * 64) / 4) = 1008 kept,
    # a 1064 px window: 4 x 2160 x 1064 = 9,192,960 px.  Two rows (1112 kept, 1168 px windows)
    # leave 2019 px of width: two 2008 px windows, 2 x 2 x 1168 x 2008 = 9,380,864 px, more.
    # The square plan: 2 x 3 windows of 1168 x 1380 (9,671,040 px).
    plan = _plan(tnet, 2160, 3840, tile=1536, tile_area=1536 ** 2)
    assert (plan["tiles_y"], plan["tiles_x"], plan["window"], plan["halo"]) == (1, 4, (2160, 1064), (0, 28))
    assert plan["kept"] == (2160, 1008) and plan["harmonize"]
    assert _cost(plan) == 9_192_960
    square = _plan(tnet, 2160, 3840, tile=1536)
    assert (square["tiles_y"], square["tiles_x"], square["window"]) == (2, 3, (1168, 1380))
    assert _cost(square) == 9_671_040


def test_an_image_within_the_area_runs_whole(tnet):
    for h, w in [(1080, 1920), (2176, 2176), (1, 4096), (4000, 50)]:
        plan = _plan(tnet, h, w, tile=64, tile_area=2176 ** 2)
        assert (plan["tiles_y"], plan["tiles_x"], plan["halo"], plan["harmonize"]) == (1, 1, (0, 0), False)
        assert plan["window"] == (-(-max(h, 32) // 4) * 4, -(-max(w, 32) // 4) * 4)


@pytest.mark.parametrize("area", [300 ** 2, 777 ** 2, 1536 ** 2, 2176 ** 2])
@pytest.mark.parametrize("hw", [(2160, 3840), (8192, 8192), (3000, 4000), (1537, 1601), (613, 5000), (4444, 333)])
def test_windows_keep_within_the_area_and_never_cost_more_than_squares(tnet, area, hw):
    plan = _plan(tnet, *hw, tile=int(np.sqrt(area)), tile_area=area)
    assert plan["window"][0] * plan["window"][1] <= area
    square = _plan(tnet, *hw, tile=int(np.sqrt(area)))
    assert _cost(plan) <= _cost(square)
    # The kept spans cover each axis from 0 to the end.
    for starts, kept, length in [(plan["row_starts"], plan["kept"][0], hw[0]),
                                 (plan["col_starts"], plan["kept"][1], hw[1])]:
        assert starts[0] == 0 and starts[-1] + kept >= length
        assert all(b - a < kept for a, b in zip(starts, starts[1:]))


def test_identity_tiled_by_area_gives_back_its_input(identity_onnx):
    x = np.random.default_rng(3).integers(0, 256, (97, 211, 3), dtype=np.uint8)
    st = ds.Stylizer(identity_onnx, device="cpu", tile=0)
    st._tiles = tile_options(tile=0, halo=8, overlap=8, tile_area=60 * 72)
    plan = st.plan(97, 211)
    assert plan["tiles_y"] * plan["tiles_x"] > 2 and plan["window"][0] * plan["window"][1] <= 60 * 72
    np.testing.assert_array_equal(st(x), x)


def test_an_area_too_small_for_the_halo_is_an_option_error(tnet):
    with pytest.raises(ds.OptionError, match=r"tile_area = 3000 is too small for a halo of 28"):
        with tiling_errors_as_option_errors():
            _plan(tnet, 500, 500, tile=0, tile_area=3000)


def test_whole_area_runs_larger_images_whole_and_tiles_beyond_it(tnet):
    area, whole = 1536 ** 2, 2160 * 3840
    plan = _plan(tnet, 2160, 3840, tile=1536, tile_area=area, whole_area=whole)
    assert (plan["tiles_y"], plan["tiles_x"], plan["window"], plan["harmonize"]) == (1, 1, (2160, 3840), False)
    # One row more than whole_area: the area plan again (hand-worked above for 2160 rows).
    plan = _plan(tnet, 2164, 3840, tile=1536, tile_area=area, whole_area=whole)
    assert plan["tiles_y"] * plan["tiles_x"] > 1 and plan["window"][0] * plan["window"][1] <= area
    # Without tile_area, whole_area does nothing: square windows.
    plan = _plan(tnet, 2160, 3840, tile=1536, whole_area=whole)
    assert (plan["tiles_y"], plan["tiles_x"]) == (2, 3)
