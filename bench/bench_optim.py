"""L-BFGS-B iterations per second: deepshop_native.optim against SciPy's L-BFGS-B, on the problem
Gatys style transfer poses it at 512x512: 512*512*3 pixels with box bounds [0, 255].

The objective is a diagonal quadratic whose minimiser lies partly outside the box (so bounds are
active, as for an image), computed with numpy in the same way for both; its cost (~ms) is small
beside a network's gradient, so the ratio shows the optimisers' own work per iteration.
Both run the same fixed number of iterations (the stopping tests are switched off) with memory 8.

    PYTHONPATH=python pytest bench/bench_optim.py --benchmark-json=/tmp/optim.json
"""
import numpy as np
import pytest

from deepshop_native import optim

scipy_optimize = pytest.importorskip("scipy.optimize")

SHAPE = (3, 512, 512)
ITERATIONS = 20


def problem():
    rng = np.random.default_rng(0)
    curvature = rng.uniform(0.1, 10.0, SHAPE)
    target = rng.uniform(-60.0, 315.0, SHAPE)   # ~30% of the optimum outside [0, 255]
    start = rng.uniform(0.0, 255.0, SHAPE)
    return curvature, target, start


def make_objective(curvature, target, dtype):
    curvature, target = curvature.astype(dtype), target.astype(dtype)

    def fun(x):
        d = x.reshape(SHAPE) - target
        cd = curvature * d
        return 0.5 * float(np.dot(d.ravel(), cd.ravel())), cd.ravel()
    return fun


def run_native(curvature, target, start):
    fun = make_objective(curvature, target, np.float32)
    res = optim.minimize_lbfgsb(fun, start.astype(np.float32), 0.0, 255.0, m=8, max_iterations=ITERATIONS,
                                pgtol=0.0, factr=0.0)
    return res.iterations, res.loss


def run_scipy(curvature, target, start):
    fun = make_objective(curvature, target, np.float64)
    res = scipy_optimize.minimize(fun, start.ravel(), jac=True, method="L-BFGS-B", bounds=scipy_optimize.Bounds(np.zeros(start.size), np.full(start.size, 255.0)),
                                  options={"maxcor": 8, "maxiter": ITERATIONS, "gtol": 0.0, "ftol": 0.0})
    return res.nit, res.fun


@pytest.mark.parametrize("impl", ["native", "baseline-scipy"])
def test_lbfgsb_512x512x3_box(benchmark, impl):
    benchmark.group = "lbfgsb-512x512x3-box"
    curvature, target, start = problem()
    run = run_native if impl == "native" else run_scipy
    iterations, loss = benchmark.pedantic(run, args=(curvature, target, start), rounds=3, iterations=1,
                                          warmup_rounds=0)
    assert iterations == ITERATIONS
    benchmark.extra_info.update(impl=impl, iterations=iterations, loss=loss,
                                iterations_per_second=iterations / benchmark.stats.stats.mean)
