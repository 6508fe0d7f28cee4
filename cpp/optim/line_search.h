#pragma once
// Line search of Moré and Thuente ("Line search algorithms with guaranteed sufficient decrease",
// ACM TOMS 20, 1994): finds a step satisfying the strong Wolfe conditions
//     f(stp) <= f(0) + ftol * stp * f'(0)      and      |f'(stp)| <= gtol * |f'(0)|
// by safeguarded cubic/quadratic interpolation inside an interval of uncertainty.  It is driven
// by reverse communication: the caller evaluates f and f' at the step `next()` asks for.
namespace deepshop::optim {

class WolfeLineSearch {
 public:
  enum class Status { evaluate, converged, warning, error };

  struct Settings {
    double ftol = 1e-3;   // sufficient decrease (the values L-BFGS-B uses)
    double gtol = 0.9;    // curvature
    double xtol = 0.1;    // relative width of the interval at which the search gives up
    double step_min = 0.0;
    double step_max = 1e10;
  };

  // Starts a search from f(0) = f0 with slope g0 (< 0) at the first trial step `step`.
  // Returns error when the arguments are inconsistent (step outside [min, max], g0 >= 0).
  Status start(double f0, double g0, double step, const Settings& settings);
  // Takes f and f' at the current step(); returns evaluate (then call again at the new step())
  // or converged / warning (the current step is the answer, warning: no better one reachable).
  Status next(double f, double g);
  double step() const { return stp_; }

 private:
  // One safeguarded interpolation step (the "dcstep" of the paper): updates the interval
  // [stx, sty] with the trial (stp, f, g) and moves stp to the next trial.
  void update_interval(double& stx, double& fx, double& dx, double& sty, double& fy, double& dy,
                       double f, double g);

  Settings s_;
  double stp_ = 0, finit_ = 0, ginit_ = 0, gtest_ = 0;
  double stx_ = 0, fx_ = 0, gx_ = 0, sty_ = 0, fy_ = 0, gy_ = 0;
  double stmin_ = 0, stmax_ = 0, width_ = 0, width_before_ = 0;
  bool bracketed_ = false;
  bool modified_ = true;   // first stage: works on the modified function f(stp) - ftol*stp*f'(0)
};

}  // namespace deepshop::optim
