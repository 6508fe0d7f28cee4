#pragma once
// What every optimiser in cpp/optim/ shares: the objective it minimises, the per-iteration
// callback, and the result it returns.  The optimisers know nothing of ONNX Runtime or Python:
// the objective is any function that fills the gradient and returns the loss.
#include <cstdint>
#include <functional>
#include <string>

namespace deepshop::optim {

// Loss at x (n float32 parameters); writes dLoss/dx into grad (n floats).  The loss is double
// so that sums over millions of terms keep their precision.
using Objective = std::function<double(const float* x, float* grad)>;

// Called once per completed iteration with the iteration number (1-based), the loss and the
// current parameters; returning false stops the optimiser (reason `cancelled`).
using IterationCallback = std::function<bool(int iteration, double loss, const float* x)>;

enum class StopReason {
  converged_pgtol,        // projected gradient's largest component <= pgtol
  converged_reduction,    // relative reduction of the loss <= factr * machine epsilon
  max_iterations,
  max_evaluations,
  line_search_failed,     // no acceptable step even from steepest descent
  cancelled,              // the callback returned false
};

struct OptimResult {
  double loss = 0.0;      // loss at the returned x
  int iterations = 0;
  int evaluations = 0;    // calls of the objective
  StopReason reason = StopReason::max_iterations;
  std::string message;
};

// Box bounds: lower/upper hold n values each (+-infinity for "no bound"), or are null for none.
struct Bounds {
  const float* lower = nullptr;
  const float* upper = nullptr;
};

}  // namespace deepshop::optim
