// L-BFGS-B; see lbfgsb.h.  Written from the papers cited there (Cauchy point: Section 4 of Byrd
// et al.; direct primal subspace minimisation: Section 5.1; projected subspace step with the
// descent check: Morales & Nocedal), not from any implementation.
#include "optim/lbfgsb.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "optim/limited_memory.h"
#include "optim/line_search.h"
#include "optim/vector_ops.h"

namespace deepshop::optim {
namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Where a variable stands relative to its bounds at the Cauchy point.
enum Where : int8_t {
  kUnbounded = -1,  // no bound at all: always free
  kFree = 0,
  kZeroGradient = -3,  // bounded, not at a bound, zero gradient: free but does not move
  kAtLower = 1,
  kAtUpper = 2,
  kFixed = 3,  // lower == upper
};

// The step `limit`, shortened so that x + step * d stays within [lo, hi] (0 when x is already at
// the bound that d points to).
double step_within_box(double limit, double d, double x, double lo, double hi) {
  if (d < 0 && std::isfinite(lo)) {
    const double room = lo - x;
    if (room >= 0) return 0;
    if (d * limit < room) return room / d;
  } else if (d > 0 && std::isfinite(hi)) {
    const double room = hi - x;
    if (room <= 0) return 0;
    if (d * limit > room) return room / d;
  }
  return limit;
}

class Solver {
 public:
  Solver(int64_t n, float* x, Bounds bounds, const Objective& fun, const LbfgsbOptions& o,
         const IterationCallback& callback)
      : n_(n), x_(x), fun_(fun), o_(o), callback_(callback), memory_(n, o.memory),
        lo_(n, -kInf), hi_(n, kInf), g_(n), z_(n), d_(n), x_prev_(n), g_prev_(n), work_(n), where_(n) {
    for (int64_t i = 0; i < n; ++i) {
      if (bounds.lower) lo_[i] = bounds.lower[i];
      if (bounds.upper) hi_[i] = bounds.upper[i];
      if (std::isnan(lo_[i]) || std::isnan(hi_[i]) || lo_[i] > hi_[i] || lo_[i] == kInf || hi_[i] == -kInf)
        throw std::invalid_argument("bounds of parameter " + std::to_string(i) + " are empty or not numbers: [" +
                                    std::to_string(lo_[i]) + ", " + std::to_string(hi_[i]) + "]");
      const bool has_lo = std::isfinite(lo_[i]), has_hi = std::isfinite(hi_[i]);
      constrained_ |= has_lo || has_hi;
      boxed_ &= has_lo && has_hi;
      where_[i] = lo_[i] == hi_[i] ? kFixed : (has_lo || has_hi) ? kFree : kUnbounded;
      x_[i] = static_cast<float>(std::min(std::max(double(x_[i]), lo_[i]), hi_[i]));
    }
  }

  OptimResult run();

 private:
  double evaluate(const float* x) {
    ++result_.evaluations;
    return fun_(x, g_.data());
  }
  double projected_gradient_norm() const;
  void cauchy_point();
  bool subspace_minimisation();
  // Returns false when no acceptable step was found (x, g, f are then restored).
  bool line_search();
  void update_memory();
  void reset_memory() { memory_.clear(); }
  bool stop(StopReason reason, const char* message) {
    result_.reason = reason;
    result_.message = message;
    return true;
  }

  int64_t n_;
  float* x_;
  const Objective& fun_;
  const LbfgsbOptions& o_;
  const IterationCallback& callback_;
  LimitedMemory memory_;
  std::vector<double> lo_, hi_;
  std::vector<float> g_, z_, d_, x_prev_, g_prev_, work_;
  std::vector<int8_t> where_;
  std::vector<double> c_;     // W'(z - x), for the reduced gradient at the Cauchy point
  bool constrained_ = false, boxed_ = true;
  double f_ = 0, f_prev_ = 0, step_ = 0, slope_start_ = 0;
  OptimResult result_;
};

double Solver::projected_gradient_norm() const {
  double norm = 0;
  for (int64_t i = 0; i < n_; ++i) {
    double gi = g_[i];
    if (gi < 0) gi = std::max(x_[i] - hi_[i], gi);   // -inf bound: no change
    else gi = std::min(x_[i] - lo_[i], gi);
    norm = std::max(norm, std::fabs(gi));
  }
  return norm;
}

// The generalised Cauchy point z: the first local minimiser of the quadratic model
//     m(x + t d) = f + g't d + t^2/2 d'Bd
// along the projected steepest-descent path x(t) = P(x - t g), which bends at the breakpoints
// where a variable reaches its bound.  The segments are visited in order of breakpoint (a heap:
// usually only the first few are needed), the model's slope f1 and curvature f2 updated at each.
void Solver::cauchy_point() {
  const int k = memory_.size(), k2 = 2 * k;
  const double theta = memory_.theta();
  std::vector<std::pair<double, int64_t>> breakpoints;
  bool all_bounded = true;   // no variable moves towards a missing bound
  double f1 = 0;
  for (int64_t i = 0; i < n_; ++i) {
    const double neg_g = -double(g_[i]);
    if (where_[i] != kFixed && where_[i] != kUnbounded) {
      const bool at_lo = std::isfinite(lo_[i]) && x_[i] <= lo_[i];
      const bool at_hi = std::isfinite(hi_[i]) && x_[i] >= hi_[i];
      where_[i] = kFree;
      if (at_lo) { if (neg_g <= 0) where_[i] = kAtLower; }
      else if (at_hi) { if (neg_g >= 0) where_[i] = kAtUpper; }
      else if (neg_g == 0) where_[i] = kZeroGradient;
    }
    if (where_[i] != kFree && where_[i] != kUnbounded) {
      d_[i] = 0;
      continue;
    }
    d_[i] = static_cast<float>(neg_g);
    f1 -= neg_g * neg_g;
    if (neg_g < 0 && std::isfinite(lo_[i])) breakpoints.emplace_back((x_[i] - lo_[i]) / -neg_g, i);
    else if (neg_g > 0 && std::isfinite(hi_[i])) breakpoints.emplace_back((hi_[i] - x_[i]) / neg_g, i);
    else if (neg_g != 0) all_bounded = false;
  }
  std::copy(x_, x_ + n_, z_.begin());
  c_.assign(k2, 0.0);
  if (f1 == 0) return;   // projected gradient is zero: x is the Cauchy point

  std::vector<double> p(k2), v(k2), w(k2);
  memory_.transpose_times(d_.data(), p.data());   // p = W'd
  double f2 = -theta * f1;
  if (k > 0) {
    memory_.middle_times(p.data(), v.data());
    for (int j = 0; j < k2; ++j) f2 -= v[j] * p[j];
  }
  const double f2_initial = f2;
  double dt_min = -f1 / f2, t_sum = 0, t_prev = 0;
  bool all_at_bounds = false;

  auto later = [](const std::pair<double, int64_t>& a, const std::pair<double, int64_t>& b) { return a.first > b.first; };
  std::make_heap(breakpoints.begin(), breakpoints.end(), later);
  const size_t n_breakpoints = breakpoints.size();
  size_t left = n_breakpoints;
  while (left > 0) {
    const auto [t, b] = breakpoints.front();
    const double dt = t - t_prev;
    if (dt_min < dt) break;   // the minimiser lies on this segment
    std::pop_heap(breakpoints.begin(), breakpoints.begin() + left, later);
    --left;
    t_prev = t;
    t_sum += dt;
    // Variable b reaches its bound and stops.
    const double db = d_[b];
    d_[b] = 0;
    double zb;
    if (db > 0) zb = hi_[b] - x_[b], z_[b] = static_cast<float>(hi_[b]), where_[b] = kAtUpper;
    else zb = lo_[b] - x_[b], z_[b] = static_cast<float>(lo_[b]), where_[b] = kAtLower;
    if (left == 0 && n_breakpoints == size_t(n_)) {
      dt_min = dt;   // every variable is at a bound
      all_at_bounds = true;
      break;
    }
    const double db2 = db * db;
    f1 += dt * f2 + db2 - theta * db * zb;
    f2 -= theta * db2;
    if (k > 0) {
      for (int j = 0; j < k2; ++j) c_[j] += dt * p[j];
      memory_.row(b, w.data());
      memory_.middle_times(w.data(), v.data());
      double wmc = 0, wmp = 0, wmw = 0;
      for (int j = 0; j < k2; ++j) wmc += c_[j] * v[j], wmp += p[j] * v[j], wmw += w[j] * v[j];
      for (int j = 0; j < k2; ++j) p[j] -= db * w[j];
      f1 += db * wmc;
      f2 += 2.0 * db * wmp - db2 * wmw;
    }
    f2 = std::max(kEps * f2_initial, f2);
    if (left > 0) dt_min = -f1 / f2;
    else dt_min = all_bounded ? 0.0 : -f1 / f2;
  }
  if (!all_at_bounds) {
    dt_min = std::max(dt_min, 0.0);
    t_sum += dt_min;
    for (int64_t i = 0; i < n_; ++i)
      if (d_[i] != 0) z_[i] = static_cast<float>(std::min(std::max(x_[i] + t_sum * d_[i], lo_[i]), hi_[i]));
  }
  if (k > 0)
    for (int j = 0; j < k2; ++j) c_[j] += dt_min * p[j];
}

// Minimises the quadratic model over the variables free at the Cauchy point z (the others held
// at their bounds), by the direct primal method: the reduced Newton step
//     du = -(Z'BZ)^-1 r,   r = Z'(g + B(z - x))
// with the inverse of the reduced compact matrix by Sherman-Morrison-Woodbury.  The step is
// projected onto the box; if that no longer descends, it is cut back to the box instead.
bool Solver::subspace_minimisation() {
  const int k = memory_.size(), k2 = 2 * k;
  if (k == 0) return true;
  std::vector<int64_t> free_idx, fixed_idx;
  for (int64_t i = 0; i < n_; ++i) (where_[i] <= 0 ? free_idx : fixed_idx).push_back(i);
  if (free_idx.empty()) return true;
  const double theta = memory_.theta();

  // r (stored negated, on the free variables; zero elsewhere) = -g - theta (z - x) + W M c.
  std::vector<double> mc(k2), a(k2), v(k2);
  memory_.middle_times(c_.data(), mc.data());
  std::fill(work_.begin(), work_.end(), 0.0f);
  memory_.times_at(mc.data(), free_idx, work_.data());
  for (int64_t i : free_idx) work_[i] = static_cast<float>(-double(g_[i]) - theta * (double(z_[i]) - x_[i]) + work_[i]);
  std::vector<float> r(free_idx.size());
  for (size_t t = 0; t < free_idx.size(); ++t) r[t] = work_[free_idx[t]];

  memory_.transpose_times(work_.data(), a.data());   // W'Z r
  memory_.middle_times(a.data(), v.data());          // M W'Z r

  // N = I - M (W'ZZ'W) / theta.  W'ZZ'W = W'W minus the rows of the fixed variables (usually few).
  std::vector<double> wzzw(size_t(k2) * k2), row(k2);
  if (fixed_idx.size() <= free_idx.size()) {
    std::vector<double> on_fixed(size_t(k2) * k2);
    memory_.w_gram(wzzw.data());
    memory_.w_gram_at(fixed_idx, on_fixed.data());
    for (size_t e = 0; e < wzzw.size(); ++e) wzzw[e] -= on_fixed[e];
  } else {
    memory_.w_gram_at(free_idx, wzzw.data());
  }
  std::vector<double> N(size_t(k2) * k2), column(k2);
  for (int p = 0; p < k2; ++p) {
    for (int q = 0; q < k2; ++q) column[q] = wzzw[q * k2 + p];
    memory_.middle_times(column.data(), row.data());   // column p of M W'ZZ'W
    for (int q = 0; q < k2; ++q) N[q * k2 + p] = (q == p ? 1.0 : 0.0) - row[q] / theta;
  }
  if (!solve_dense(N, v, k2)) return false;

  // du = r / theta + Z'W N^-1 M W'Z r / theta^2, into d_ on the free variables.
  for (auto& q : v) q /= theta * theta;
  memory_.times_at(v.data(), free_idx, d_.data());
  for (size_t t = 0; t < free_idx.size(); ++t) d_[free_idx[t]] = static_cast<float>(r[t] / theta + d_[free_idx[t]]);

  // Projected step, kept if it still descends from x.
  double descent = 0;
  for (int64_t i : fixed_idx) descent += (double(z_[i]) - x_[i]) * g_[i];
  for (int64_t i : free_idx) {
    const double zi = std::min(std::max(double(z_[i]) + d_[i], lo_[i]), hi_[i]);
    work_[i] = static_cast<float>(zi);
    descent += (zi - x_[i]) * g_[i];
  }
  if (descent <= 0) {
    for (int64_t i : free_idx) z_[i] = work_[i];
    return true;
  }
  // Otherwise: the largest step along du from z that stays in the box.
  double alpha = 1.0;
  int64_t hit = -1;
  for (int64_t i : free_idx) {
    const double limit = step_within_box(alpha, d_[i], z_[i], lo_[i], hi_[i]);
    if (limit < alpha) alpha = limit, hit = i;
  }
  if (alpha < 1.0 && hit >= 0) {
    z_[hit] = static_cast<float>(d_[hit] > 0 ? hi_[hit] : lo_[hit]);
    d_[hit] = 0;
  }
  for (int64_t i : free_idx) z_[i] = static_cast<float>(std::min(std::max(z_[i] + alpha * d_[i], lo_[i]), hi_[i]));
  return true;
}

bool Solver::line_search() {
  // Direction d = z - x and the longest step that keeps x + step d in the box.
  double dd = 0;
  for (int64_t i = 0; i < n_; ++i) {
    d_[i] = z_[i] - x_[i];
    dd += double(d_[i]) * d_[i];
  }
  double step_max = 1e10;
  if (constrained_) {
    if (result_.iterations == 0) {
      step_max = 1.0;
    } else {
      for (int64_t i = 0; i < n_; ++i) step_max = step_within_box(step_max, d_[i], x_[i], lo_[i], hi_[i]);
      // z itself is in the box, so step 1 is allowed; a smaller bound is rounding.
      step_max = std::max(step_max, 1.0);
    }
  }
  double step = (result_.iterations == 0 && !boxed_) ? std::min(1.0 / std::sqrt(dd), step_max) : 1.0;

  std::copy(x_, x_ + n_, x_prev_.begin());
  std::copy(g_.begin(), g_.end(), g_prev_.begin());
  f_prev_ = f_;
  slope_start_ = dot(g_.data(), d_.data(), n_);
  auto restore = [&] {
    std::copy(x_prev_.begin(), x_prev_.end(), x_);
    std::copy(g_prev_.begin(), g_prev_.end(), g_.begin());
    f_ = f_prev_;
    return false;
  };
  if (!(slope_start_ < 0)) return restore();   // not a descent direction

  WolfeLineSearch search;
  WolfeLineSearch::Settings settings;
  settings.step_max = step_max;
  auto status = search.start(f_, slope_start_, step, settings);
  for (int trials = 0; status == WolfeLineSearch::Status::evaluate; ++trials) {
    if (trials >= o_.max_line_search) return restore();
    step = search.step();
    if (step == 1.0) {
      std::copy(z_.begin(), z_.end(), x_);
    } else {
      for (int64_t i = 0; i < n_; ++i)
        x_[i] = static_cast<float>(std::min(std::max(x_prev_[i] + step * d_[i], lo_[i]), hi_[i]));
    }
    f_ = evaluate(x_);
    if (!std::isfinite(f_)) return restore();
    status = search.next(f_, dot(g_.data(), d_.data(), n_));
  }
  if (status == WolfeLineSearch::Status::error) return restore();
  step_ = step;
  return true;
}

void Solver::update_memory() {
  // s = x - x_prev into d_, y = g - g_prev into work_.
  for (int64_t i = 0; i < n_; ++i) {
    d_[i] = x_[i] - x_prev_[i];
    work_[i] = g_[i] - g_prev_[i];
  }
  const double sy = dot(d_.data(), work_.data(), n_);
  // Curvature too small for a positive-definite update: keep the old matrix.
  if (sy <= kEps * (-slope_start_ * step_)) return;
  memory_.add(d_.data(), work_.data());   // clears itself if its middle matrix is singular
}

OptimResult Solver::run() {
  f_ = evaluate(x_);
  result_.loss = f_;
  if (!std::isfinite(f_)) throw std::invalid_argument("the objective is not finite at the start point");
  if (projected_gradient_norm() <= o_.pgtol) {
    stop(StopReason::converged_pgtol, "converged: projected gradient <= pgtol");
    return result_;
  }
  const double tolerance = o_.factr * kEps;
  for (;;) {
    // Search direction: to the Cauchy point, then the subspace minimum.  Without bounds the
    // Cauchy point adds nothing once curvature pairs exist.
    if (!constrained_ && memory_.size() > 0) {
      std::copy(x_, x_ + n_, z_.begin());
      c_.assign(2 * memory_.size(), 0.0);
    } else {
      cauchy_point();
    }
    if (!subspace_minimisation()) {
      reset_memory();
      continue;
    }
    if (!line_search()) {
      if (memory_.size() == 0) {
        stop(StopReason::line_search_failed, "abnormal termination: no acceptable step along steepest descent");
        break;
      }
      reset_memory();   // the quasi-Newton model misled the search: restart from steepest descent
      continue;
    }
    ++result_.iterations;
    result_.loss = f_;
    if (callback_ && !callback_(result_.iterations, f_, x_)) {
      stop(StopReason::cancelled, "cancelled by the callback");
      break;
    }
    if (result_.iterations >= o_.max_iterations) {
      stop(StopReason::max_iterations, "stopped: maximum number of iterations reached");
      break;
    }
    if (result_.evaluations > o_.max_evaluations) {
      stop(StopReason::max_evaluations, "stopped: maximum number of evaluations exceeded");
      break;
    }
    if (projected_gradient_norm() <= o_.pgtol) {
      stop(StopReason::converged_pgtol, "converged: projected gradient <= pgtol");
      break;
    }
    if (f_prev_ - f_ <= tolerance * std::max({std::fabs(f_prev_), std::fabs(f_), 1.0})) {
      stop(StopReason::converged_reduction, "converged: relative reduction of the loss <= factr * eps");
      break;
    }
    update_memory();
  }
  result_.loss = f_;
  return result_;
}

}  // namespace

OptimResult minimize_lbfgsb(int64_t n, float* x, Bounds bounds, const Objective& fun, const LbfgsbOptions& options,
                            const IterationCallback& callback) {
  if (n <= 0) throw std::invalid_argument("nothing to optimise: no parameters");
  if (options.memory < 1) throw std::invalid_argument("memory must be at least 1");
  if (options.max_line_search < 1) throw std::invalid_argument("max_line_search must be at least 1");
  Solver solver(n, x, bounds, fun, options, callback);
  return solver.run();
}

}  // namespace deepshop::optim
