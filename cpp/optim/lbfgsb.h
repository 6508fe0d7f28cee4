#pragma once
// L-BFGS-B: limited-memory quasi-Newton minimisation with box bounds, the algorithm of Byrd, Lu,
// Nocedal & Zhu ("A limited memory algorithm for bound constrained optimization", SIAM J. Sci.
// Comput. 16, 1995) with the subspace step of Morales & Nocedal (2011, "Remark on Algorithm
// 778"): each iteration finds the generalised Cauchy point along the projected steepest-descent
// path of the quadratic model, minimises the model over the variables still free there, and
// runs a strong-Wolfe line search (Moré–Thuente) towards that point.  The defaults and stopping
// rules are those of the reference Fortran code (and of SciPy's method="L-BFGS-B"), so both take
// the same iterates up to rounding.  The parameters are float32, the inner products double.
#include <cstdint>

#include "optim/objective.h"

namespace deepshop::optim {

struct LbfgsbOptions {
  int memory = 8;                 // m, correction pairs kept
  int max_iterations = 15000;
  int max_evaluations = 15000;    // checked after each iteration, as SciPy does
  double pgtol = 1e-5;            // stop when max |projected gradient| <= pgtol
  double factr = 1e7;             // stop when (f_old - f) / max(|f_old|, |f|, 1) <= factr * eps
  int max_line_search = 20;       // evaluations per line search before it counts as failed
};

// Minimises fun over the n parameters in x (updated in place: the start on entry, the result on
// return, always within the bounds).  Throws std::invalid_argument for inconsistent arguments
// (lower > upper, a non-finite start loss) and lets exceptions of fun and callback through.
OptimResult minimize_lbfgsb(int64_t n, float* x, Bounds bounds, const Objective& fun,
                            const LbfgsbOptions& options, const IterationCallback& callback = {});

}  // namespace deepshop::optim
