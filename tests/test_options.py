"""Options are validated once, at the edge (deepshop_native.core.options), for the API and the CLI
alike: a bad value is an OptionError -- both a DeepshopError and a ValueError -- naming the
option, raised before the model is loaded or C++ is reached.  Regression tests of issue 14's
items 1-4, 11 and 12 at the Python edge."""
from __future__ import annotations

import math

import numpy as np
import pytest

import deepshop_native as ds
from deepshop_native.core import options
from deepshop_native.core.errors import DeepshopError, OptionError


def test_option_error_is_both_a_deepshop_error_and_a_value_error():
    assert issubclass(OptionError, DeepshopError) and issubclass(OptionError, ValueError)


@pytest.mark.parametrize("kwargs, needle", [
    # items 1-3: sizes near 2^63 crashed the tile planner; bounded here at 2^20
    ({"stride_multiple": 2**63 - 1}, "stride_multiple"), ({"stride_multiple": 2**62}, "stride_multiple"),
    ({"tile": 128, "overlap": 2**63 - 1}, "overlap"), ({"tile": 128, "overlap": 8, "halo": 2**63 - 4}, "halo"),
    # item 4: thread counts that cannot be created
    ({"threads": 100000}, "threads"), ({"threads": 2000}, "threads"), ({"threads": 2**31 - 1}, "threads"),
    # item 11: nonsense pixel formats
    ({"mean": (math.nan, 0, 0)}, "mean"), ({"value_range": (0, math.inf)}, "value_range"),
    ({"value_range": (1, 0)}, "value_range"), ({"value_range": (0, 1e-45)}, "value_range"),
    ({"value_range": (-3e38, 3e38)}, "value_range"), ({"mean": (1, 2)}, "mean"), ({"value_range": "0,1"}, "value_range"),
    # item 12: wrong types and integers >= 2^31 (pybind11 signature dumps before)
    ({"channel_order": 5}, "channel_order"), ({"channel_order": "RGBA"}, "channel_order"),
    ({"tile": 2**31}, "tile"), ({"batch": 2**40}, "batch"), ({"tile": 2.5}, "tile"), ({"tile": "512"}, "tile"),
    ({"tile": True}, "tile"), ({"tile": -1}, "tile"), ({"overlap": -1}, "overlap"), ({"batch": 0}, "batch"),
    ({"harmonize": -1}, "harmonize"), ({"device": "gpu"}, "device"), ({"device": "cuda:99999999999999999999"}, "device"),
    ({"device": 0}, "device"), ({"statistics": "median"}, "statistics"), ({"statistics_size": 8}, "statistics_size"),
])
def test_stylizer_refuses_bad_options_before_loading_the_model(tmp_path, kwargs, needle):
    # The model does not exist: the option must be refused first.
    with pytest.raises(OptionError, match=rf"^{needle}: "):
        ds.Stylizer(tmp_path / "not_even_there.onnx", **kwargs)


def test_good_options_pass_through_unchanged():
    o = options.engine_options(device="CUDA:1", tile=np.int64(512), halo=None, overlap=32, batch=2, threads=0,
                               harmonize=256, value_range=[0, 255], channel_order="bgr", mean=(1, 2, 3),
                               stride_multiple=4, statistics="Exact", statistics_size=256)
    assert o == dict(device="cuda:1", tile=512, halo=None, overlap=32, batch=2, threads=0, harmonize=256,
                     statistics="exact", statistics_size=256, value_range=(0.0, 255.0), channel_order="BGR", mean=(1.0, 2.0, 3.0), stride_multiple=4)
    assert options.engine_options(tile=None)["tile"] == 0            # None: the whole image
    most = options.THREADS_PER_CORE * options.cpu_count()
    assert options.check_threads(most) == most
    with pytest.raises(OptionError, match=f"at most {most}"):
        options.check_threads(most + 1)


def test_call_options_are_checked(transformer_onnx):
    st = ds.Stylizer(transformer_onnx, tile=0)
    img = np.zeros((16, 16, 3), np.uint8)
    for kwargs, needle in [({"strength": 1.5}, "strength"), ({"strength": math.nan}, "strength"),
                           ({"max_side": 0}, "max_side"), ({"max_side": 2**31}, "max_side"),
                           ({"progress": 5}, "progress")]:
        with pytest.raises(OptionError, match=rf"^{needle}: "):
            st(img, **kwargs)
    with pytest.raises(OptionError, match="^height: "):
        st.plan(2**40, 16)


def test_progress_callback_returning_a_non_bool(transformer_onnx):
    # Regression (issue 14, item 12): a pybind11 cast error from deep inside the run.
    st = ds.Stylizer(transformer_onnx, tile=72, overlap=8, harmonize=0)
    img = np.zeros((150, 150, 3), np.uint8)
    with pytest.raises(OptionError, match=r"^progress: .*got 'yes'"):
        st(img, progress=lambda done, total: "yes")
    seen = []
    st(img, progress=lambda done, total: seen.append(done))          # None: go on
    assert seen and seen[-1] == st.plan(150, 150)["tiles_x"] * st.plan(150, 150)["tiles_y"] > 1
    with pytest.raises(ds.Cancelled):
        st(img, progress=lambda done, total: np.bool_(False))


def test_stylize_checks_its_own_options(tmp_path, transformer_onnx):
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(OptionError, match="^quality: "):
        ds.stylize(img, transformer_onnx, tmp_path / "o.png", quality=101)
    with pytest.raises(OptionError, match="^threads: "):
        ds.stylize(img, transformer_onnx, threads=10**6)
    assert not (tmp_path / "o.png").exists()


def test_stylize_reads_bytes(tmp_path, transformer_onnx):
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.fromarray(np.full((12, 16, 3), 100, np.uint8)).save(buf, format="PNG")
    out = ds.stylize(buf.getvalue(), transformer_onnx, tile=0)
    np.testing.assert_array_equal(out, ds.stylize(np.full((12, 16, 3), 100, np.uint8), transformer_onnx, tile=0))


@pytest.mark.parametrize("call", [
    lambda: ds.posterize(np.zeros((4, 4, 3), np.uint8), levels=3, threads=100000),
    lambda: ds.posterize(np.zeros((4, 4, 3), np.uint8), levels=3, threads=-1),
    lambda: ds.gram(np.zeros((2, 4, 4), np.float32), threads=2**31 - 1),
    lambda: ds.palette_from_image(np.zeros((4, 4, 3), np.uint8), 2, seed=-1),
    lambda: ds.palette_from_image(np.zeros((4, 4, 3), np.uint8), 2, max_iterations=2**40),
])
def test_kernel_thread_counts_and_integers_are_bounded(call):
    # Regression (issue 14, item 4): threads=100000 aborted the process ("terminate called").
    with pytest.raises(OptionError):
        call()


def test_errors_options_files_image_and_metadata_do_not_load_the_extension():
    # The export side imports these; the C++ extension (and ONNX Runtime) load only when needed.
    import subprocess
    import sys
    code = ("import sys\n"
            "import deepshop_native.core.errors, deepshop_native.core.options, deepshop_native.core.files\n"
            "import deepshop_native.image, deepshop_native.core.metadata, deepshop_native.core.paths\n"
            "assert 'deepshop_native._native' not in sys.modules, 'extension loaded'\n"
            "import deepshop_native as ds\n"
            "assert ds.Stylizer and 'deepshop_native._native' in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
