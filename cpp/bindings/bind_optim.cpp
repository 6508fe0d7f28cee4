// Python bindings of the optimisers (cpp/optim/): `minimize_lbfgsb` and `minimize_adam`, called
// by python/deepshop_native/optim.py, which shapes the arguments (flat float32 parameters and
// bounds) and the result.  The optimiser loop runs with the GIL released; the GIL is taken back
// only to call the Python objective and callback.  An exception raised there (or Ctrl-C) stops
// the optimiser and is re-raised unchanged once the GIL is held again.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include "bindings/bindings.h"
#include "optim/adam.h"
#include "optim/lbfgsb.h"

namespace py = pybind11;
using namespace deepshop::optim;

namespace deepshop::bindings {
namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// Thrown through the optimiser to stop it when Python code failed; carries nothing, the real
// exception waits in PythonCalls::error.
struct PythonCallFailed {};

// The Python objective and callback as the C++ types the optimisers take.
class PythonCalls {
 public:
  PythonCalls(int64_t n, py::object fun, py::object callback)
      : n_(n), fun_(std::move(fun)), callback_(std::move(callback)) {}

  Objective objective() {
    return [this](const float* x, float* grad) -> double {
      py::gil_scoped_acquire gil;
      try {
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        py::object out = fun_(copy_of(x));
        py::tuple pair = py::reinterpret_borrow<py::tuple>(out);
        if (!py::isinstance<py::tuple>(out) || pair.size() != 2)
          throw std::invalid_argument("the objective must return a pair (loss, gradient)");
        const double loss = pair[0].cast<double>();
        FloatArray g = FloatArray::ensure(pair[1]);
        if (!g || g.size() != n_)
          throw std::invalid_argument("the objective's gradient must hold " + std::to_string(n_) +
                                      " numbers, one per parameter");
        std::memcpy(grad, g.data(), sizeof(float) * size_t(n_));
        return loss;
      } catch (...) {
        error_ = std::current_exception();
        throw PythonCallFailed{};
      }
    };
  }

  IterationCallback callback() {
    if (callback_.is_none()) return {};
    return [this](int iteration, double loss, const float* x) -> bool {
      py::gil_scoped_acquire gil;
      try {
        py::object keep_going = callback_(iteration, loss, copy_of(x));
        // None (a callback that returns nothing) means "go on"; False stops.
        return keep_going.is_none() || keep_going.cast<bool>();
      } catch (...) {
        error_ = std::current_exception();
        throw PythonCallFailed{};
      }
    };
  }

  // Runs the optimiser without the GIL; re-raises what the Python calls raised.
  template <class Run>
  OptimResult run(Run&& optimise) {
    try {
      py::gil_scoped_release release;
      return optimise();
    } catch (const PythonCallFailed&) {
      std::rethrow_exception(error_);
    }
  }

 private:
  // A fresh array per call: the Python side may keep it.
  py::array_t<float> copy_of(const float* x) const {
    py::array_t<float> a(n_);
    std::memcpy(a.mutable_data(), x, sizeof(float) * size_t(n_));
    return a;
  }

  int64_t n_;
  py::object fun_, callback_;
  std::exception_ptr error_;
};

const char* reason_name(StopReason r) {
  switch (r) {
    case StopReason::converged_pgtol: return "converged_pgtol";
    case StopReason::converged_reduction: return "converged_reduction";
    case StopReason::max_iterations: return "max_iterations";
    case StopReason::max_evaluations: return "max_evaluations";
    case StopReason::line_search_failed: return "line_search_failed";
    case StopReason::cancelled: return "cancelled";
  }
  return "unknown";
}

// x0, lower and upper: flat float32 arrays of one length (the Python layer broadcasts them).
Bounds checked_bounds(const FloatArray& x0, const FloatArray& lower, const FloatArray& upper) {
  if (x0.ndim() != 1 || x0.size() == 0) throw std::invalid_argument("x0 must be a non-empty flat array");
  if (lower.size() != x0.size() || upper.size() != x0.size())
    throw std::invalid_argument("lower and upper must hold one bound per parameter");
  return Bounds{lower.data(), upper.data()};
}

py::dict result_dict(py::array_t<float> x, const OptimResult& r) {
  py::dict d;
  d["x"] = x;
  d["loss"] = r.loss;
  d["iterations"] = r.iterations;
  d["evaluations"] = r.evaluations;
  d["reason"] = reason_name(r.reason);
  d["message"] = r.message;
  return d;
}

// Runs `optimise` on a copy of x0 (the result's x) with the Python functions as its objective
// and callback, without the GIL.
template <class Optimise>
py::dict run_on_copy(py::object fun, const FloatArray& x0, const FloatArray& lower, const FloatArray& upper,
                     py::object callback, Optimise&& optimise) {
  const Bounds bounds = checked_bounds(x0, lower, upper);
  const int64_t n = x0.size();
  py::array_t<float> x(n);
  std::memcpy(x.mutable_data(), x0.data(), sizeof(float) * size_t(n));
  float* xp = x.mutable_data();
  PythonCalls calls(n, std::move(fun), std::move(callback));
  const Objective objective = calls.objective();
  const IterationCallback each = calls.callback();
  OptimResult r = calls.run([&] { return optimise(n, xp, bounds, objective, each); });
  return result_dict(x, r);
}

py::dict minimize_lbfgsb_py(py::object fun, const FloatArray& x0, const FloatArray& lower, const FloatArray& upper,
                            int m, int max_iterations, int max_evaluations, double pgtol, double factr,
                            int max_line_search, py::object callback) {
  LbfgsbOptions o;
  o.memory = m, o.max_iterations = max_iterations, o.max_evaluations = max_evaluations;
  o.pgtol = pgtol, o.factr = factr, o.max_line_search = max_line_search;
  return run_on_copy(std::move(fun), x0, lower, upper, std::move(callback),
                     [&](int64_t n, float* x, Bounds b, const Objective& f, const IterationCallback& c) {
                       return minimize_lbfgsb(n, x, b, f, o, c);
                     });
}

py::dict minimize_adam_py(py::object fun, const FloatArray& x0, const FloatArray& lower, const FloatArray& upper,
                          double lr, double beta1, double beta2, double eps, int max_iterations, py::object callback) {
  AdamOptions o;
  o.lr = lr, o.beta1 = beta1, o.beta2 = beta2, o.eps = eps, o.max_iterations = max_iterations;
  return run_on_copy(std::move(fun), x0, lower, upper, std::move(callback),
                     [&](int64_t n, float* x, Bounds b, const Objective& f, const IterationCallback& c) {
                       return minimize_adam(n, x, b, f, o, c);
                     });
}

}  // namespace

void bind_optim(py::module_& m) {
  const LbfgsbOptions l;
  m.def("minimize_lbfgsb", &minimize_lbfgsb_py, py::arg("fun"), py::arg("x0"), py::arg("lower"), py::arg("upper"),
        py::arg("m") = l.memory, py::arg("max_iterations") = l.max_iterations,
        py::arg("max_evaluations") = l.max_evaluations, py::arg("pgtol") = l.pgtol, py::arg("factr") = l.factr,
        py::arg("max_line_search") = l.max_line_search, py::arg("callback") = py::none(),
        "L-BFGS-B on flat float32 parameters (x0, lower, upper: float32 arrays of one length); fun(x) returns "
        "(loss, gradient); callback(iteration, loss, x) may return False to stop.  Returns a dict (x, loss, "
        "iterations, evaluations, reason, message).  See deepshop_native.optim.minimize_lbfgsb.");
  const AdamOptions a;
  m.def("minimize_adam", &minimize_adam_py, py::arg("fun"), py::arg("x0"), py::arg("lower"), py::arg("upper"),
        py::arg("lr") = a.lr, py::arg("beta1") = a.beta1, py::arg("beta2") = a.beta2, py::arg("eps") = a.eps,
        py::arg("max_iterations") = a.max_iterations, py::arg("callback") = py::none(),
        "Projected Adam on flat float32 parameters; same conventions as minimize_lbfgsb.  "
        "See deepshop_native.optim.minimize_adam.");
}

}  // namespace deepshop::bindings
