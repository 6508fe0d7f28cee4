"""deepshop_native.optim against independent references: SciPy's L-BFGS-B (the Fortran/C
algorithm of Byrd, Lu, Nocedal & Zhu) on the same objectives, and a numpy Adam written here."""
import numpy as np
import pytest

scipy_optimize = pytest.importorskip("scipy.optimize")

from deepshop_native import optim
from deepshop_native.core.errors import ArrayError, OptionError


def scipy_iterates(fun, x0, bounds, **options):
    """SciPy's iterates (x after each iteration) and its result, in float64."""
    xs = []
    options = {"maxcor": 8, **options}   # SciPy keeps 10 pairs by default, we keep 8 (neural-style's)
    res = scipy_optimize.minimize(fun, x0.astype(np.float64), jac=True, method="L-BFGS-B", bounds=bounds,
                                  callback=lambda xk: xs.append(np.array(xk)), options=options)
    return xs, res


def our_iterates(fun, x0, lower, upper, **options):
    xs = []
    res = optim.minimize_lbfgsb(lambda x: fun(x.astype(np.float64)), x0, lower, upper,
                                callback=lambda it, loss, x: xs.append(x.astype(np.float64)), **options)
    return xs, res


def quadratic(n=30, seed=0):
    """0.5 x'Ax - b'x with A SPD of condition ~100, and a box that the unconstrained minimiser leaves."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = q @ np.diag(np.geomspace(1.0, 100.0, n)) @ q.T
    b = rng.standard_normal(n) * 10

    def fun(x):
        ax = A @ x
        return 0.5 * x @ ax - b @ x, ax - b
    return fun, A, b


def rosenbrock(x):
    f = np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return f, g


def assert_same_path(ours, theirs, rtol, atol, first):
    """The first `first` iterates agree within the tolerance."""
    assert len(ours) >= first and len(theirs) >= first
    for k in range(first):
        np.testing.assert_allclose(ours[k], theirs[k], rtol=rtol, atol=atol, err_msg=f"iterate {k + 1}")


def test_bounded_quadratic_follows_scipy():
    fun, A, b = quadratic()
    n = A.shape[0]
    lower, upper = np.full(n, -0.3), np.full(n, 0.4)
    x0 = np.zeros(n, np.float32)
    theirs, ref = scipy_iterates(fun, x0, list(zip(lower, upper)))
    ours, res = our_iterates(fun, x0, lower, upper)
    assert ref.success and res.converged
    # Every iterate of the run matches (float32 parameters against float64: ~1e-6 relative).
    assert abs(res.iterations - ref.nit) <= 1
    assert_same_path(ours, theirs, rtol=0, atol=2e-4, first=min(len(ours), len(theirs)))
    np.testing.assert_allclose(res.x, ref.x, atol=2e-4)
    assert res.loss == pytest.approx(ref.fun, rel=1e-5)
    # The box is active and respected.
    at_bound = (np.isclose(ref.x, lower, atol=1e-6) | np.isclose(ref.x, upper, atol=1e-6)).sum()
    assert at_bound >= 5
    assert np.all(res.x >= lower.astype(np.float32)) and np.all(res.x <= upper.astype(np.float32))


def test_bounded_rosenbrock_follows_scipy():
    n = 6
    lower = np.array([-2.0, -2.0, 0.0, -2.0, -2.0, 1.5])
    upper = np.array([2.0, 0.8, 2.0, 2.0, 2.0, 3.0])
    x0 = np.array([-1.2, 1.0, 0.5, -0.5, 1.2, 2.0], np.float32)
    theirs, ref = scipy_iterates(rosenbrock, x0, list(zip(lower, upper)))
    ours, res = our_iterates(rosenbrock, x0, lower, upper)
    # Same path all the way (measured: <= 5e-4 apart, 27 iterations each), float32 rounding aside.
    assert abs(res.iterations - ref.nit) <= 2
    assert_same_path(ours, theirs, rtol=0, atol=2e-3, first=min(len(ours), len(theirs)))
    np.testing.assert_allclose(res.x, ref.x, atol=2e-3)
    assert res.loss == pytest.approx(ref.fun, rel=1e-4, abs=1e-6)
    assert res.x[5] == np.float32(1.5) and ref.x[5] == 1.5   # an active bound
    assert np.all(res.x >= lower.astype(np.float32)) and np.all(res.x <= upper.astype(np.float32))


def test_unbounded_rosenbrock_follows_scipy():
    x0 = np.array([-1.2, 1.0, 0.5, -0.5, 1.2, 2.0], np.float32)
    theirs, ref = scipy_iterates(rosenbrock, x0, None)
    ours, res = our_iterates(rosenbrock, x0, None, None)
    # Along the curved valley float32 rounding grows: the first 20 of ~50 iterates agree within
    # 1e-6 (measured), later ones drift apart before both reach the minimum.
    assert_same_path(ours, theirs, rtol=0, atol=1e-5, first=20)
    np.testing.assert_allclose(res.x, np.ones(6), atol=2e-3)
    np.testing.assert_allclose(res.x, ref.x, atol=2e-3)


def test_iteration_limit_matches_scipy_point():
    fun, A, _ = quadratic(seed=1)
    x0 = np.zeros(A.shape[0], np.float32)
    _, ref = scipy_iterates(fun, x0, [(-0.5, 0.5)] * A.shape[0], maxiter=5)
    _, res = our_iterates(fun, x0, -0.5, 0.5, max_iterations=5)
    assert res.reason == "max_iterations" and res.iterations == 5 == ref.nit
    np.testing.assert_allclose(res.x, ref.x, atol=1e-4)


def test_start_outside_the_box_is_projected_and_image_shapes_are_kept():
    target = np.random.default_rng(2).uniform(-50, 300, (3, 8, 5))

    def fun(x):
        return 0.5 * np.sum((x - target) ** 2), x - target
    res = optim.minimize_lbfgsb(fun, np.full((3, 8, 5), 500.0), 0.0, 255.0)
    assert res.x.shape == (3, 8, 5) and res.x.dtype == np.float32
    np.testing.assert_allclose(res.x, np.clip(target, 0, 255), atol=1e-3)


def numpy_adam(fun, x0, lower, upper, lr, betas, eps, steps):
    """Adam as in Kingma & Ba, Algorithm 1, with the parameters clamped after each step."""
    x = x0.astype(np.float64).copy()
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    losses = []
    for t in range(1, steps + 1):
        loss, g = fun(x)
        losses.append(loss)
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat = m / (1 - betas[0] ** t)
        v_hat = v / (1 - betas[1] ** t)
        x = np.clip(x - lr * m_hat / (np.sqrt(v_hat) + eps), lower, upper)
    return x, losses


def test_adam_matches_numpy_reference():
    fun, A, _ = quadratic(n=12, seed=3)
    x0 = np.random.default_rng(4).uniform(-0.2, 0.2, 12).astype(np.float32)
    ref_x, ref_losses = numpy_adam(fun, x0, -0.25, 0.3, 0.01, (0.9, 0.99), 1e-8, 200)
    losses = []
    res = optim.minimize_adam(lambda x: fun(x.astype(np.float64)), x0, -0.25, 0.3, lr=0.01, betas=(0.9, 0.99),
                              max_iterations=200, callback=lambda it, loss, x: losses.append(loss))
    assert res.iterations == 200 and res.evaluations == 201 and res.reason == "max_iterations"
    np.testing.assert_allclose(res.x, ref_x, atol=2e-5)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-5)
    assert res.loss == pytest.approx(fun(ref_x)[0], rel=1e-5)
    assert np.any(res.x == np.float32(-0.25)) or np.any(res.x == np.float32(0.3))   # bounds reached


@pytest.mark.parametrize("minimize", [optim.minimize_lbfgsb, optim.minimize_adam])
def test_callback_cancels_and_sees_iterations(minimize):
    fun, A, _ = quadratic(seed=5)
    seen = []

    def callback(iteration, loss, x):
        seen.append((iteration, loss, x.shape))
        return iteration < 3
    res = minimize(fun, np.zeros(A.shape[0]), -1, 1, callback=callback)
    assert res.reason == "cancelled" and res.iterations == 3
    assert [s[0] for s in seen] == [1, 2, 3] and seen[0][2] == (A.shape[0],)


@pytest.mark.parametrize("minimize", [optim.minimize_lbfgsb, optim.minimize_adam])
def test_exceptions_of_the_objective_propagate(minimize):
    calls = []

    def fun(x):
        calls.append(1)
        if len(calls) == 3:
            raise KeyError("from the objective")
        return float(np.sum(x * x)), 2 * x
    with pytest.raises(KeyError, match="from the objective"):
        minimize(fun, np.ones(4), -2, 2)


def test_bad_arguments_are_refused_with_reasons():
    ok = lambda x: (float(np.sum(x * x)), 2 * x)   # noqa: E731
    with pytest.raises(ArrayError, match="lower > upper"):
        optim.minimize_lbfgsb(ok, np.zeros(3), [0, 1, 2], [1, 0, 3])
    with pytest.raises(ArrayError, match="x0"):
        optim.minimize_lbfgsb(ok, np.array([0.0, np.nan]))
    with pytest.raises(ArrayError, match="broadcast"):
        optim.minimize_lbfgsb(ok, np.zeros(3), np.zeros(2))
    with pytest.raises(OptionError, match="m must"):
        optim.minimize_lbfgsb(ok, np.zeros(3), m=0)
    with pytest.raises(ValueError, match="gradient must hold 3"):
        optim.minimize_lbfgsb(lambda x: (0.0, np.zeros(2)), np.zeros(3))
    with pytest.raises(TypeError, match="pair"):
        optim.minimize_lbfgsb(lambda x: 1.0, np.zeros(3))
    with pytest.raises(ValueError, match="not finite"):
        optim.minimize_lbfgsb(lambda x: (float("nan"), x), np.zeros(3))


def test_a_wrong_gradient_ends_in_a_reported_line_search_failure():
    # The gradient points uphill: no step along -gradient decreases the loss, as SciPy reports
    # ABNORMAL_TERMINATION_IN_LNSRCH; the start point comes back unchanged.
    x0 = np.array([1.0, -2.0, 0.5], np.float32)
    res = optim.minimize_lbfgsb(lambda x: (float(np.sum(x * x)), -2 * x), x0, -5, 5)
    _, ref = scipy_iterates(lambda x: (float(np.sum(x * x)), -2 * x), x0, [(-5, 5)] * 3)
    assert res.reason == "line_search_failed" and not res.converged and "ABNORMAL" in ref.message
    assert res.iterations == ref.nit == 0
    np.testing.assert_array_equal(res.x, x0)
    assert res.evaluations == 21   # the start and 20 trial steps (max_line_search)
