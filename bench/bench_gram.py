"""Gram matrix: deepshop_native against numpy and torch `F @ F.T` on VGG feature shapes.

Shapes are those of VGG-16/19 layers at 512×512 input (relu1_x, relu2_x, relu3_x, relu4_x).
Each group holds native / numpy / torch / OpenBLAS ssyrk on the same float32 data, all multi-threaded with the
library defaults (numpy: its OpenBLAS threads; torch: torch.get_num_threads(); native: all
cores).  Also OpenBLAS's SYRK called directly: scipy.linalg.blas.ssyrk and cblas_ssyrk of the
scipy-openblas32 wheel.

Run one baseline library per process: every BLAS copy (numpy's, scipy's, scipy-openblas32's)
and torch's OpenMP pool keeps its threads spinning for a while after a call, and on a two-core
machine they starve each other, which inflates the other libraries' times by up to 100x:

    PYTHONPATH=python pytest bench/bench_gram.py -k "numpy or native" --benchmark-json=/tmp/g1.json
    PYTHONPATH=python pytest bench/bench_gram.py -k "torch or native" --benchmark-json=/tmp/g2.json
    PYTHONPATH=python pytest bench/bench_gram.py -k "scipy or native" --benchmark-json=/tmp/g3.json
    PYTHONPATH=python pytest bench/bench_gram.py -k "openblas32 or native" --benchmark-json=/tmp/g4.json
    python bench/ratios.py /tmp/g1.json   # ratios printed per group, and by bench/conftest.py
"""
import functools

import numpy as np
import pytest

import deepshop_native as ds
from deepshop_native import _native

torch = pytest.importorskip("torch")

SHAPES = [(64, 262144), (128, 65536), (256, 16384), (512, 4096)]
IMPLS = ["numpy", "torch", "scipy-ssyrk", "openblas32-ssyrk", "native", "native-avx2"]


@functools.lru_cache(maxsize=1)
def openblas32_ssyrk():
    """cblas_ssyrk of the scipy-openblas32 wheel (symbols prefixed scipy_), via ctypes."""
    import ctypes
    import os

    sob = pytest.importorskip("scipy_openblas32")
    lib = ctypes.CDLL(os.path.join(sob.get_lib_dir(), f"lib{sob.get_library()}.so"))
    fn = lib.scipy_cblas_ssyrk
    fn.restype = None
    fn.argtypes = [ctypes.c_int] * 5 + [ctypes.c_float, ctypes.c_void_p, ctypes.c_int,
                                        ctypes.c_float, ctypes.c_void_p, ctypes.c_int]
    return fn


@functools.lru_cache(maxsize=1)
def features(c, n):
    return np.random.default_rng(0).standard_normal((c, n)).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"C{s[0]}")
@pytest.mark.parametrize("impl", IMPLS)
def test_gram(benchmark, impl, shape):
    c, n = shape
    f = features(c, n)
    benchmark.group = f"gram-C{c}-N{n}"
    benchmark.extra_info["impl"] = impl
    benchmark.extra_info["gflops"] = c * c * n * 2 / 1e9  # of the full product F·Fᵀ
    kernel = "auto"
    if impl == "numpy":
        fn = lambda: f @ f.T  # noqa: E731
    elif impl == "scipy-ssyrk":
        # OpenBLAS SYRK called directly (scipy's build): F·Fᵀ as one triangle, no copy of F
        # (f.T is Fortran-ordered), so no symmetrisation either — BLAS at its best.
        from scipy.linalg import blas
        fn = lambda: blas.ssyrk(1.0, f.T, trans=1, lower=1)  # noqa: E731
    elif impl == "openblas32-ssyrk":
        ssyrk = openblas32_ssyrk()
        g = np.zeros((c, c), np.float32)
        # CblasRowMajor=101, CblasLower=122, CblasNoTrans=111: G = F·Fᵀ (lower triangle)
        fn = lambda: ssyrk(101, 122, 111, c, n, 1.0, f.ctypes.data, n, 0.0, g.ctypes.data, c)  # noqa: E731
    elif impl == "torch":
        t = torch.from_numpy(f)
        fn = lambda: t @ t.T  # noqa: E731
    else:
        kernel = "avx2" if impl == "native-avx2" else "auto"
        fn = lambda: ds.gram(f, normalize="none")  # noqa: E731
    try:
        _native.set_gram_kernel(kernel)
    except ValueError:
        pytest.skip(f"this CPU cannot run the {kernel} kernel")
    try:
        with torch.inference_mode():
            benchmark.pedantic(fn, rounds=7, iterations=1, warmup_rounds=1)
    finally:
        _native.set_gram_kernel("auto")
