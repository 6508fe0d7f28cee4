#pragma once
// The limited-memory BFGS matrix in compact form (Byrd, Nocedal & Schnabel 1994):
//     B = theta I - W M W',   W = [Y, theta S] (n x 2k),   M = [[-D, L'], [L, theta S'S]]^-1
// built from the k <= m most recent corrections s = x_{i+1} - x_i, y = g_{i+1} - g_i (oldest
// first); D = diag(s_i'y_i), L = strictly lower part of S'Y.  The n-long corrections are stored
// as float32 (they are image-sized); their inner products, theta and M are double.
#include <cstdint>
#include <vector>

namespace deepshop::optim {

class LimitedMemory {
 public:
  LimitedMemory(int64_t n, int m);

  int size() const { return count_; }     // k, the number of stored pairs
  double theta() const { return theta_; }
  void clear();
  // Adds a correction pair (dropping the oldest when full).  Returns false, and clears the
  // memory, when the middle matrix cannot be inverted.
  bool add(const float* s, const float* y);

  // out (2k) = W'v for v of n floats.
  void transpose_times(const float* v, double* out) const;
  // out (2k) = row i of W.
  void row(int64_t i, double* out) const;
  // v (n floats) = W a, only at the indices listed (a of 2k).
  void times_at(const double* a, const std::vector<int64_t>& indices, float* v) const;
  // out (2k) = M v.
  void middle_times(const double* v, double* out) const;
  // out (2k x 2k, row-major) = W'W, from the stored inner products.
  void w_gram(double* out) const;
  // out (2k x 2k, row-major) = the sum over the listed rows i of w_i w_i' (W'W on a subset).
  void w_gram_at(const std::vector<int64_t>& indices, double* out) const;

 private:
  int slot(int k) const { return (head_ + k) % m_; }
  const float* s(int k) const { return S_.data() + int64_t(slot(k)) * n_; }
  const float* y(int k) const { return Y_.data() + int64_t(slot(k)) * n_; }
  double& at(std::vector<double>& a, int i, int j) { return a[i * m_ + j]; }
  double at(const std::vector<double>& a, int i, int j) const { return a[i * m_ + j]; }
  bool invert_middle();

  int64_t n_;
  int m_;
  int head_ = 0, count_ = 0;
  double theta_ = 1.0;
  std::vector<float> S_, Y_;                 // m slots of n values
  std::vector<double> SS_, SY_, YY_;         // m x m, logical (oldest-first) order: SY(i,j) = s_i'y_j
  std::vector<double> M_;                    // 2k x 2k, row-major
};

// Solves A x = b in place (A: n x n row-major, destroyed; b becomes x) by Gaussian elimination
// with partial pivoting.  Returns false for a singular (or non-finite) A.
bool solve_dense(std::vector<double>& A, std::vector<double>& b, int n);

}  // namespace deepshop::optim
