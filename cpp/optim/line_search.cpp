// Moré–Thuente line search; see line_search.h.  Written from the paper's description of the
// algorithm (its Sections 2-4: the two stages, the four interpolation cases, the safeguards).
#include "optim/line_search.h"

#include <algorithm>
#include <cmath>

namespace deepshop::optim {
namespace {
// Extrapolation limits while no minimiser is bracketed: the next trial lies in
// [stp + 1.1 (stp - stx), stp + 4 (stp - stx)].
constexpr double kExtrapolateLow = 1.1;
constexpr double kExtrapolateHigh = 4.0;
// When the interval fails to shrink by this factor in two trials, bisect instead.
constexpr double kShrink = 0.66;

// Minimiser of the cubic through (a, fa, da) and (b, fb, db), as a step from a towards b.
// `clamp_radicand` keeps the square root real where the cubic has no interior minimiser.
double cubic_minimiser(double a, double fa, double da, double b, double fb, double db, bool clamp_radicand) {
  const double theta = 3.0 * (fa - fb) / (b - a) + da + db;
  const double s = std::max({std::fabs(theta), std::fabs(da), std::fabs(db)});
  double radicand = (theta / s) * (theta / s) - (da / s) * (db / s);
  if (clamp_radicand) radicand = std::max(0.0, radicand);
  double gamma = s * std::sqrt(radicand);
  if (b < a) gamma = -gamma;
  const double p = (gamma - da) + theta;
  const double q = ((gamma - da) + gamma) + db;
  return a + (p / q) * (b - a);
}
}  // namespace

WolfeLineSearch::Status WolfeLineSearch::start(double f0, double g0, double step, const Settings& settings) {
  s_ = settings;
  if (!(step >= s_.step_min && step <= s_.step_max) || !(g0 < 0.0) || s_.ftol < 0 || s_.gtol < 0 ||
      s_.xtol < 0 || s_.step_min < 0 || s_.step_max < s_.step_min)
    return Status::error;
  stp_ = step;
  bracketed_ = false;
  modified_ = true;
  finit_ = f0;
  ginit_ = g0;
  gtest_ = s_.ftol * g0;
  width_ = s_.step_max - s_.step_min;
  width_before_ = 2.0 * width_;
  stx_ = 0, fx_ = f0, gx_ = g0;
  sty_ = 0, fy_ = f0, gy_ = g0;
  stmin_ = 0;
  stmax_ = stp_ + kExtrapolateHigh * stp_;
  return Status::evaluate;
}

WolfeLineSearch::Status WolfeLineSearch::next(double f, double g) {
  const double ftest = finit_ + stp_ * gtest_;
  // Leave the modified function once a step gives sufficient decrease and a non-negative slope.
  if (modified_ && f <= ftest && g >= 0.0) modified_ = false;

  if (f <= ftest && std::fabs(g) <= s_.gtol * (-ginit_)) return Status::converged;
  if (bracketed_ && (stp_ <= stmin_ || stp_ >= stmax_)) return Status::warning;      // rounding
  if (bracketed_ && stmax_ - stmin_ <= s_.xtol * stmax_) return Status::warning;     // interval tiny
  if (stp_ == s_.step_max && f <= ftest && g <= gtest_) return Status::warning;      // at the max step
  if (stp_ == s_.step_min && (f > ftest || g >= gtest_)) return Status::warning;     // at the min step

  if (modified_ && f <= fx_ && f > ftest) {
    // Interpolate the modified function psi(stp) = f(stp) - f(0) - stp * ftol * f'(0), whose
    // minimisers satisfy sufficient decrease, while the ordinary one would overshoot them.
    double fxm = fx_ - stx_ * gtest_, fym = fy_ - sty_ * gtest_;
    double gxm = gx_ - gtest_, gym = gy_ - gtest_;
    update_interval(stx_, fxm, gxm, sty_, fym, gym, f - stp_ * gtest_, g - gtest_);
    fx_ = fxm + stx_ * gtest_, fy_ = fym + sty_ * gtest_;
    gx_ = gxm + gtest_, gy_ = gym + gtest_;
  } else {
    update_interval(stx_, fx_, gx_, sty_, fy_, gy_, f, g);
  }

  if (bracketed_) {
    if (std::fabs(sty_ - stx_) >= kShrink * width_before_) stp_ = stx_ + 0.5 * (sty_ - stx_);
    width_before_ = width_;
    width_ = std::fabs(sty_ - stx_);
    stmin_ = std::min(stx_, sty_);
    stmax_ = std::max(stx_, sty_);
  } else {
    stmin_ = stp_ + kExtrapolateLow * (stp_ - stx_);
    stmax_ = stp_ + kExtrapolateHigh * (stp_ - stx_);
  }
  stp_ = std::min(std::max(stp_, s_.step_min), s_.step_max);
  // No progress possible: fall back to the best step so far, which the caller then evaluates.
  if ((bracketed_ && (stp_ <= stmin_ || stp_ >= stmax_)) || (bracketed_ && stmax_ - stmin_ <= s_.xtol * stmax_))
    stp_ = stx_;
  return Status::evaluate;
}

void WolfeLineSearch::update_interval(double& stx, double& fx, double& dx, double& sty, double& fy, double& dy,
                                      double fp, double dp) {
  const double stp = stp_;
  const double sign = dp * (dx / std::fabs(dx));
  double next;
  if (fp > fx) {
    // Case 1: higher value, the minimiser is bracketed.  Take the cubic step if it is closer
    // to stx than the quadratic one, else their midpoint.
    const double cubic = cubic_minimiser(stx, fx, dx, stp, fp, dp, false);
    const double quad = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx);
    next = std::fabs(cubic - stx) < std::fabs(quad - stx) ? cubic : cubic + (quad - cubic) / 2.0;
    bracketed_ = true;
  } else if (sign < 0.0) {
    // Case 2: lower value, slopes of opposite sign: bracketed; the step farther from stp.
    const double cubic = cubic_minimiser(stp, fp, dp, stx, fx, dx, false);
    const double secant = stp + (dp / (dp - dx)) * (stx - stp);
    next = std::fabs(cubic - stp) > std::fabs(secant - stp) ? cubic : secant;
    bracketed_ = true;
  } else if (std::fabs(dp) < std::fabs(dx)) {
    // Case 3: lower value, same slope sign, slope decreasing in magnitude.  The cubic may have
    // no minimiser in the right direction: then go to the end of the allowed range.
    const double theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
    const double s = std::max({std::fabs(theta), std::fabs(dx), std::fabs(dp)});
    double gamma = s * std::sqrt(std::max(0.0, (theta / s) * (theta / s) - (dx / s) * (dp / s)));
    if (stp > stx) gamma = -gamma;
    const double p = (gamma - dp) + theta;
    const double q = (gamma + (dx - dp)) + gamma;
    const double r = p / q;
    double cubic;
    if (r < 0.0 && gamma != 0.0) cubic = stp + r * (stx - stp);
    else cubic = stp > stx ? stmax_ : stmin_;
    const double secant = stp + (dp / (dp - dx)) * (stx - stp);
    if (bracketed_) {
      next = std::fabs(cubic - stp) < std::fabs(secant - stp) ? cubic : secant;
      const double limit = stp + kShrink * (sty - stp);
      next = stp > stx ? std::min(limit, next) : std::max(limit, next);
    } else {
      next = std::fabs(cubic - stp) > std::fabs(secant - stp) ? cubic : secant;
      next = std::max(stmin_, std::min(stmax_, next));
    }
  } else {
    // Case 4: lower value, same slope sign, slope not decreasing: the cubic through the other
    // end when bracketed, else the end of the allowed range.
    if (bracketed_) next = cubic_minimiser(stp, fp, dp, sty, fy, dy, false);
    else next = stp > stx ? stmax_ : stmin_;
  }

  if (fp > fx) {
    sty = stp, fy = fp, dy = dp;
  } else {
    if (sign < 0.0) sty = stx, fy = fx, dy = dx;
    stx = stp, fx = fp, dx = dp;
  }
  stp_ = next;
}

}  // namespace deepshop::optim
