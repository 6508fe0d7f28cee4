// Adam with projection onto box bounds; see adam.h.
#include "optim/adam.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace deepshop::optim {

OptimResult minimize_adam(int64_t n, float* x, Bounds bounds, const Objective& fun, const AdamOptions& o,
                          const IterationCallback& callback) {
  if (n <= 0) throw std::invalid_argument("nothing to optimise: no parameters");
  if (!(o.lr > 0) || !(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1) || !(o.eps >= 0))
    throw std::invalid_argument("Adam needs lr > 0, 0 <= beta1, beta2 < 1 and eps >= 0");
  if (o.max_iterations < 0) throw std::invalid_argument("max_iterations must not be negative");
  constexpr float kInf = std::numeric_limits<float>::infinity();
  auto lower = [&](int64_t i) { return bounds.lower ? bounds.lower[i] : -kInf; };
  auto upper = [&](int64_t i) { return bounds.upper ? bounds.upper[i] : kInf; };
  for (int64_t i = 0; i < n; ++i) {
    if (!(lower(i) <= upper(i)))
      throw std::invalid_argument("bounds of parameter " + std::to_string(i) + " are empty or not numbers");
    x[i] = std::min(std::max(x[i], lower(i)), upper(i));
  }
  std::vector<float> g(n), m(n, 0.0f), v(n, 0.0f);
  OptimResult result;
  result.reason = StopReason::max_iterations;
  result.message = "stopped: maximum number of iterations reached";
  for (int t = 1; t <= o.max_iterations; ++t) {
    const double loss = fun(x, g.data());
    ++result.evaluations;
    if (!std::isfinite(loss)) throw std::invalid_argument("the objective is not finite at iteration " + std::to_string(t));
    const double correction1 = 1.0 - std::pow(o.beta1, t);
    const double root_correction2 = std::sqrt(1.0 - std::pow(o.beta2, t));
    const float b1 = float(o.beta1), b2 = float(o.beta2);
    const double step = o.lr / correction1;
    for (int64_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + (1.0f - b1) * g[i];
      v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
      const double denominator = std::sqrt(double(v[i])) / root_correction2 + o.eps;
      const double xi = x[i] - step * m[i] / denominator;
      x[i] = std::min(std::max(static_cast<float>(xi), lower(i)), upper(i));
    }
    result.iterations = t;
    result.loss = loss;
    if (callback && !callback(t, loss, x)) {
      result.reason = StopReason::cancelled;
      result.message = "cancelled by the callback";
      break;
    }
  }
  result.loss = fun(x, g.data());
  ++result.evaluations;
  return result;
}

}  // namespace deepshop::optim
