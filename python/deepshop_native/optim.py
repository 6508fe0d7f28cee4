"""Optimisers of the native core: L-BFGS-B with box bounds and projected Adam.

They minimise a Python objective ``fun(x) -> (loss, gradient)`` over float32 parameters of any
shape (an image, typically); the loop itself runs in C++ without the GIL, which is taken back
only to call ``fun`` and ``callback``.  Nothing here depends on ONNX Runtime: the Gatys pipeline
passes an objective that runs its loss-and-gradient graph, tests pass numpy functions.

``minimize_lbfgsb`` follows the algorithm of Byrd, Lu, Nocedal & Zhu (generalised Cauchy point,
subspace minimisation, Moré–Thuente line search with the strong Wolfe conditions) with the
defaults and stopping rules of SciPy's ``minimize(method="L-BFGS-B")``, whose iterates it
reproduces up to float32 rounding.

``callback(iteration, loss, x)`` is called after every iteration with a copy of the parameters
(shaped like ``x0``); returning ``False`` stops the run, whose result then has
``reason == "cancelled"``.  An exception raised by ``fun`` or ``callback`` (and Ctrl-C) stops the
optimiser and propagates unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple, Union

import numpy as np

from . import _native
from .core.errors import ArrayError, OptionError

__all__ = ["OptimizeResult", "minimize_lbfgsb", "minimize_adam"]

Objective = Callable[[np.ndarray], Tuple[float, np.ndarray]]
Callback = Callable[[int, float, np.ndarray], Optional[bool]]
BoundLike = Union[None, float, np.ndarray]


@dataclass
class OptimizeResult:
    """What an optimiser returns: the parameters (shaped like ``x0``) and how it stopped.

    ``reason`` is one of ``converged_pgtol``, ``converged_reduction``, ``max_iterations``,
    ``max_evaluations``, ``line_search_failed``, ``cancelled``; ``message`` says it in words."""
    x: np.ndarray
    loss: float
    iterations: int
    evaluations: int
    reason: str
    message: str

    @property
    def converged(self) -> bool:
        return self.reason.startswith("converged")


def _flat_parameters(x0) -> np.ndarray:
    x = np.asarray(x0)
    if x.size == 0:
        raise ArrayError("x0: no parameters to optimise")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ArrayError(f"x0: expected real numbers, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(x)):
        raise ArrayError("x0: contains NaN or infinity")
    return x


def _flat_bound(bound: BoundLike, shape, fill: float, name: str) -> np.ndarray:
    """A bound as a flat float32 array of one value per parameter (None = no bound)."""
    if bound is None:
        return np.full(int(np.prod(shape)), fill, dtype=np.float32)
    b = np.asarray(bound, dtype=np.float64)
    try:
        b = np.broadcast_to(b, shape)
    except ValueError:
        raise ArrayError(f"{name}: shape {b.shape} does not broadcast to the parameters' {tuple(shape)}") from None
    if np.isnan(b).any():
        raise ArrayError(f"{name}: contains NaN")
    return np.ascontiguousarray(b, dtype=np.float32).reshape(-1)


def _bounds(x0, lower: BoundLike, upper: BoundLike):
    shape = np.shape(x0)
    lo = _flat_bound(lower, shape, -np.inf, "lower")
    hi = _flat_bound(upper, shape, np.inf, "upper")
    if np.any(lo > hi):
        i = int(np.argmax(lo > hi))
        raise ArrayError(f"lower > upper at parameter {i} ({lo[i]} > {hi[i]})")
    return lo, hi


def _shaped(fun: Objective, callback: Optional[Callback], shape):
    """The user's functions, called with parameters shaped like x0 (the core passes them flat)."""
    def flat_fun(x):
        out = fun(x.reshape(shape))
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(f"the objective must return a pair (loss, gradient), not {type(out).__name__}")
        loss, grad = out
        return float(loss), np.asarray(grad, dtype=np.float32).reshape(-1)

    flat_callback = None
    if callback is not None:
        def flat_callback(iteration, loss, x):
            return callback(iteration, loss, x.reshape(shape))
    return flat_fun, flat_callback


def _result(raw: dict, shape) -> OptimizeResult:
    return OptimizeResult(x=raw["x"].reshape(shape), loss=raw["loss"], iterations=raw["iterations"],
                          evaluations=raw["evaluations"], reason=raw["reason"], message=raw["message"])


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise OptionError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def minimize_lbfgsb(fun: Objective, x0, lower: BoundLike = None, upper: BoundLike = None, *, m: int = 8,
                    max_iterations: int = 15000, max_evaluations: int = 15000, pgtol: float = 1e-5,
                    factr: float = 1e7, max_line_search: int = 20,
                    callback: Optional[Callback] = None) -> OptimizeResult:
    """Minimise ``fun`` from ``x0`` with L-BFGS-B within ``lower <= x <= upper``.

    ``lower``/``upper``: None (no bound), a number, or an array broadcasting to ``x0``'s shape,
    with ``-inf``/``inf`` for a missing bound.  ``m``: correction pairs kept.  Stops when the
    largest component of the projected gradient is <= ``pgtol``, when the relative reduction of
    the loss is <= ``factr`` x machine epsilon, after ``max_iterations``, or once more than
    ``max_evaluations`` calls of ``fun`` were made (checked between iterations, as in SciPy)."""
    x = _flat_parameters(x0)
    lo, hi = _bounds(x0, lower, upper)
    m = _positive_int(m, "m")
    max_iterations = _positive_int(max_iterations, "max_iterations")
    max_evaluations = _positive_int(max_evaluations, "max_evaluations")
    max_line_search = _positive_int(max_line_search, "max_line_search")
    if not (pgtol >= 0 and factr >= 0):
        raise OptionError(f"pgtol and factr must be >= 0, got {pgtol!r}, {factr!r}")
    shape = np.shape(x0)
    flat_fun, flat_callback = _shaped(fun, callback, shape)
    raw = _native.minimize_lbfgsb(flat_fun, x, lo, hi, m, max_iterations, max_evaluations, float(pgtol),
                                  float(factr), max_line_search, flat_callback)
    return _result(raw, shape)


def minimize_adam(fun: Objective, x0, lower: BoundLike = None, upper: BoundLike = None, *, lr: float = 1e-3,
                  betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, max_iterations: int = 1000,
                  callback: Optional[Callback] = None) -> OptimizeResult:
    """Run ``max_iterations`` steps of Adam on ``fun`` from ``x0``, each followed by clamping the
    parameters into ``[lower, upper]``.  The result's ``loss`` is that of the returned ``x`` (one
    evaluation more than the steps); the callback sees the loss of ``x`` before each step."""
    x = _flat_parameters(x0)
    lo, hi = _bounds(x0, lower, upper)
    max_iterations = _positive_int(max_iterations, "max_iterations")
    beta1, beta2 = betas
    if not (lr > 0 and 0 <= beta1 < 1 and 0 <= beta2 < 1 and eps >= 0):
        raise OptionError(f"Adam needs lr > 0, 0 <= betas < 1, eps >= 0; got lr={lr!r}, betas={betas!r}, eps={eps!r}")
    shape = np.shape(x0)
    flat_fun, flat_callback = _shaped(fun, callback, shape)
    raw = _native.minimize_adam(flat_fun, x, lo, hi, float(lr), float(beta1), float(beta2), float(eps),
                                max_iterations, flat_callback)
    return _result(raw, shape)
