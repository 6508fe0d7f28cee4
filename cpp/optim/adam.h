#pragma once
// Adam (Kingma & Ba, "Adam: A method for stochastic optimization", 2015) with box bounds by
// projection: after each step every parameter is clamped into [lower, upper].  The moment
// estimates are float32 (image-sized) and bias-corrected as in the paper:
//     m = b1 m + (1-b1) g,  v = b2 v + (1-b2) g^2,
//     x = P(x - lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps))
#include <cstdint>

#include "optim/objective.h"

namespace deepshop::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  int max_iterations = 1000;   // one evaluation per iteration
};

// Runs max_iterations Adam steps on x (in place).  The result's loss is the loss at the returned
// x, which costs one evaluation beyond the steps (each step's loss is that of x before it).
OptimResult minimize_adam(int64_t n, float* x, Bounds bounds, const Objective& fun, const AdamOptions& options,
                          const IterationCallback& callback = {});

}  // namespace deepshop::optim
