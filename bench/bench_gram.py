"""Gram matrix: deepshop_native against numpy and torch `F @ F.T` on VGG feature shapes.

Shapes are those of VGG-16/19 layers at 512×512 input (relu1_x, relu2_x, relu3_x, relu4_x).
Each group holds native / numpy / torch / OpenBLAS ssyrk on the same float32 data, all multi-threaded with the
library defaults (numpy: its OpenBLAS threads; torch: torch.get_num_threads(); native: all
cores).  Ratios: printed by bench/conftest.py where present, or

    PYTHONPATH=python pytest bench/bench_gram.py --benchmark-json=/tmp/gram.json
    python bench/ratios.py /tmp/gram.json
"""
import functools

import numpy as np
import pytest

import deepshop_native as ds
from deepshop_native import _native

torch = pytest.importorskip("torch")

SHAPES = [(64, 262144), (128, 65536), (256, 16384), (512, 4096)]
IMPLS = ["numpy", "torch", "openblas-ssyrk", "native", "native-avx2"]


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
    elif impl == "openblas-ssyrk":
        # OpenBLAS SYRK called directly (scipy's build): F·Fᵀ as one triangle, no copy of F
        # (f.T is Fortran-ordered), so no symmetrisation either — BLAS at its best.
        from scipy.linalg import blas
        fn = lambda: blas.ssyrk(1.0, f.T, trans=1, lower=1)  # noqa: E731
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
