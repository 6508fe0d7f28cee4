"""Gram matrix: deepshop_native against numpy and torch `F @ F.T` on VGG feature shapes.

Shapes are those of VGG-16/19 layers at 512×512 input (relu1_x, relu2_x, relu3_x, relu4_x).
Each group holds native / numpy / torch / OpenBLAS ssyrk on the same float32 data, all multi-threaded with the
library defaults (numpy: its OpenBLAS threads; torch: torch.get_num_threads(); native: all
cores).  Also OpenBLAS's SYRK called directly: scipy.linalg.blas.ssyrk and cblas_ssyrk of the
scipy-openblas32 wheel.

Run one baseline library per process: every BLAS copy (numpy's, scipy's, scipy-openblas32's)
and torch's OpenMP pool keeps its threads spinning for a while after a call, and on a two-core
machine they starve each other, which inflates the other libraries' times by up to 100x:

    PYTHONPATH=python pytest bench/bench_gram.py -k "(numpy or native) and not 1t" --benchmark-json=/tmp/g1.json
    PYTHONPATH=python pytest bench/bench_gram.py -k "(torch or native) and not 1t" --benchmark-json=/tmp/g2.json
    PYTHONPATH=python pytest bench/bench_gram.py -k "(scipy or native) and not 1t" --benchmark-json=/tmp/g3.json
    PYTHONPATH=python pytest bench/bench_gram.py -k "(openblas32 or native) and not 1t" --benchmark-json=/tmp/g4.json
    python bench/ratios.py /tmp/g1.json   # ratios printed per group, and by bench/conftest.py

The "-1t" entries (groups gram-1thread-*) run every library on one thread; their ratios hold
even on a busy machine (on a shared two-core machine the multi-threaded BLAS times above vary
tenfold from run to run):

    PYTHONPATH=python pytest bench/bench_gram.py -k "1t" --benchmark-json=/tmp/g1t.json
"""
import functools
import os

import numpy as np
import pytest

import deepshop_native as ds
from deepshop_native import _native

torch = pytest.importorskip("torch")

SHAPES = [(64, 262144), (128, 65536), (256, 16384), (512, 4096)]
IMPLS = ["numpy", "torch", "scipy-ssyrk", "openblas32-ssyrk", "native", "native-avx2",
         # one thread each: robust to other load on the machine (spinning BLAS pools are not)
         "numpy-1t", "torch-1t", "openblas32-ssyrk-1t", "native-1t"]


@functools.lru_cache(maxsize=1)
def openblas32():
    import ctypes
    import os

    sob = pytest.importorskip("scipy_openblas32")
    return ctypes.CDLL(os.path.join(sob.get_lib_dir(), f"lib{sob.get_library()}.so"))


def openblas32_ssyrk():
    """cblas_ssyrk of the scipy-openblas32 wheel (symbols prefixed scipy_), via ctypes."""
    import ctypes

    fn = openblas32().scipy_cblas_ssyrk
    fn.restype = None
    fn.argtypes = [ctypes.c_int] * 5 + [ctypes.c_float, ctypes.c_void_p, ctypes.c_int,
                                        ctypes.c_float, ctypes.c_void_p, ctypes.c_int]
    return fn


def numpy_openblas_threads(n):
    """Set the thread count of numpy's bundled OpenBLAS (scipy-openblas64), already loaded."""
    import ctypes
    import glob
    import os

    libs = glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "libscipy_openblas64_*.so"))
    if not libs:
        pytest.skip("numpy's OpenBLAS not found")
    ctypes.CDLL(libs[0]).scipy_openblas_set_num_threads64_(ctypes.c_int(n))


@functools.lru_cache(maxsize=1)
def features(c, n):
    return np.random.default_rng(0).standard_normal((c, n)).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"C{s[0]}")
@pytest.mark.parametrize("impl", IMPLS)
def test_gram(benchmark, impl, shape):
    c, n = shape
    f = features(c, n)
    one_thread = impl.endswith("-1t")
    base = impl[:-3] if one_thread else impl
    benchmark.group = f"gram-{'1thread-' if one_thread else ''}C{c}-N{n}"
    benchmark.extra_info["impl"] = base
    benchmark.extra_info["gflops"] = c * c * n * 2 / 1e9  # of the full product F·Fᵀ
    kernel = "auto"
    threads = 1 if one_thread else None
    restore = lambda: None  # noqa: E731
    if base == "numpy":
        fn = lambda: f @ f.T  # noqa: E731
        if one_thread:
            numpy_openblas_threads(1)
            restore = lambda: numpy_openblas_threads(os.cpu_count() or 1)  # noqa: E731
    elif base == "scipy-ssyrk":
        # OpenBLAS SYRK called directly (scipy's build): F·Fᵀ as one triangle, no copy of F
        # (f.T is Fortran-ordered), so no symmetrisation either — BLAS at its best.
        from scipy.linalg import blas
        fn = lambda: blas.ssyrk(1.0, f.T, trans=1, lower=1)  # noqa: E731
    elif base == "openblas32-ssyrk":
        ssyrk = openblas32_ssyrk()
        g = np.zeros((c, c), np.float32)
        # CblasRowMajor=101, CblasLower=122, CblasNoTrans=111: G = F·Fᵀ (lower triangle)
        fn = lambda: ssyrk(101, 122, 111, c, n, 1.0, f.ctypes.data, n, 0.0, g.ctypes.data, c)  # noqa: E731
        if one_thread:
            openblas32().scipy_openblas_set_num_threads(1)
            restore = lambda: openblas32().scipy_openblas_set_num_threads(os.cpu_count() or 1)  # noqa: E731
    elif base == "torch":
        t = torch.from_numpy(f)
        fn = lambda: t @ t.T  # noqa: E731
        if one_thread:
            previous = torch.get_num_threads()
            torch.set_num_threads(1)
            restore = lambda: torch.set_num_threads(previous)  # noqa: E731
    else:
        kernel = "avx2" if base == "native-avx2" else "auto"
        fn = lambda: ds.gram(f, normalize="none", threads=threads)  # noqa: E731
    try:
        _native.set_gram_kernel(kernel)
    except ValueError:
        restore()
        pytest.skip(f"this CPU cannot run the {kernel} kernel")
    try:
        with torch.inference_mode():
            benchmark.pedantic(fn, rounds=7, iterations=1, warmup_rounds=1)
    finally:
        _native.set_gram_kernel("auto")
        restore()
