// Compact limited-memory BFGS matrix; see limited_memory.h.
#include "optim/limited_memory.h"

#include <cmath>
#include <utility>

#include "optim/vector_ops.h"

namespace deepshop::optim {

LimitedMemory::LimitedMemory(int64_t n, int m)
    : n_(n), m_(m), S_(size_t(n) * m), Y_(size_t(n) * m), SS_(m * m), SY_(m * m), YY_(m * m) {}

void LimitedMemory::clear() {
  head_ = 0, count_ = 0, theta_ = 1.0;
  M_.clear();
}

bool LimitedMemory::add(const float* s_new, const float* y_new) {
  if (count_ == m_) {
    // Drop the oldest pair: its slot is reused, the inner products move up one row and column.
    head_ = (head_ + 1) % m_;
    --count_;
    for (int i = 0; i < count_; ++i)
      for (int j = 0; j < count_; ++j) {
        at(SS_, i, j) = at(SS_, i + 1, j + 1);
        at(SY_, i, j) = at(SY_, i + 1, j + 1);
        at(YY_, i, j) = at(YY_, i + 1, j + 1);
      }
  }
  const int k = count_++;
  float* s_slot = S_.data() + int64_t(slot(k)) * n_;
  float* y_slot = Y_.data() + int64_t(slot(k)) * n_;
  std::copy(s_new, s_new + n_, s_slot);
  std::copy(y_new, y_new + n_, y_slot);
  for (int j = 0; j <= k; ++j) {
    at(SS_, k, j) = at(SS_, j, k) = dot(s_slot, s(j), n_);
    at(YY_, k, j) = at(YY_, j, k) = dot(y_slot, y(j), n_);
    at(SY_, k, j) = dot(s_slot, y(j), n_);
    at(SY_, j, k) = dot(s(j), y_slot, n_);
  }
  theta_ = at(YY_, k, k) / at(SY_, k, k);
  if (!invert_middle()) {
    clear();
    return false;
  }
  return true;
}

bool LimitedMemory::invert_middle() {
  const int k = count_, k2 = 2 * count_;
  std::vector<double> K(size_t(k2) * k2, 0.0);
  for (int i = 0; i < k; ++i) {
    K[i * k2 + i] = -at(SY_, i, i);
    for (int j = 0; j < k; ++j) {
      if (i > j) {
        K[(k + i) * k2 + j] = at(SY_, i, j);      // L
        K[j * k2 + (k + i)] = at(SY_, i, j);      // L'
      }
      K[(k + i) * k2 + (k + j)] = theta_ * at(SS_, i, j);
    }
  }
  // M = K^-1, column by column.
  M_.assign(size_t(k2) * k2, 0.0);
  std::vector<double> column(k2);
  for (int c = 0; c < k2; ++c) {
    std::vector<double> A = K;
    std::fill(column.begin(), column.end(), 0.0);
    column[c] = 1.0;
    if (!solve_dense(A, column, k2)) return false;
    for (int r = 0; r < k2; ++r) M_[r * k2 + c] = column[r];
  }
  return true;
}

void LimitedMemory::transpose_times(const float* v, double* out) const {
  for (int j = 0; j < count_; ++j) {
    out[j] = dot(y(j), v, n_);
    out[count_ + j] = theta_ * dot(s(j), v, n_);
  }
}

void LimitedMemory::row(int64_t i, double* out) const {
  for (int j = 0; j < count_; ++j) {
    out[j] = y(j)[i];
    out[count_ + j] = theta_ * s(j)[i];
  }
}

void LimitedMemory::times_at(const double* a, const std::vector<int64_t>& indices, float* v) const {
  std::vector<double> acc(indices.size(), 0.0);
  for (int j = 0; j < count_; ++j) {
    const float* yj = y(j);
    const float* sj = s(j);
    const double ay = a[j], as = theta_ * a[count_ + j];
    for (size_t t = 0; t < indices.size(); ++t) acc[t] += ay * yj[indices[t]] + as * sj[indices[t]];
  }
  for (size_t t = 0; t < indices.size(); ++t) v[indices[t]] = static_cast<float>(acc[t]);
}

void LimitedMemory::middle_times(const double* v, double* out) const {
  const int k2 = 2 * count_;
  for (int r = 0; r < k2; ++r) {
    double sum = 0;
    for (int c = 0; c < k2; ++c) sum += M_[r * k2 + c] * v[c];
    out[r] = sum;
  }
}

void LimitedMemory::w_gram(double* out) const {
  const int k = count_, k2 = 2 * count_;
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) {
      out[i * k2 + j] = at(YY_, i, j);
      out[i * k2 + (k + j)] = theta_ * at(SY_, j, i);          // y_i's_j
      out[(k + i) * k2 + j] = theta_ * at(SY_, i, j);          // s_i'y_j
      out[(k + i) * k2 + (k + j)] = theta_ * theta_ * at(SS_, i, j);
    }
}

void LimitedMemory::w_gram_at(const std::vector<int64_t>& indices, double* out) const {
  // Gather the 2k columns on the subset into contiguous rows first: the inner products then run
  // over contiguous memory (vectorised), not over 2k scattered arrays per index.
  const int k = count_, k2 = 2 * count_;
  const int64_t len = int64_t(indices.size());
  std::vector<float> columns(size_t(k2) * len);
  for (int j = 0; j < k; ++j) {
    const float* yj = y(j);
    const float* sj = s(j);
    float* cy = columns.data() + int64_t(j) * len;
    float* cs = columns.data() + int64_t(k + j) * len;
    for (int64_t t = 0; t < len; ++t) cy[t] = yj[indices[t]], cs[t] = sj[indices[t]];
  }
  for (int p = 0; p < k2; ++p)
    for (int q = p; q < k2; ++q) {
      // theta scales the S half of W: once per S factor.
      const double scale = (p >= k ? theta_ : 1.0) * (q >= k ? theta_ : 1.0);
      out[p * k2 + q] = out[q * k2 + p] =
          scale * dot(columns.data() + int64_t(p) * len, columns.data() + int64_t(q) * len, len);
    }
}

bool solve_dense(std::vector<double>& A, std::vector<double>& b, int n) {
  for (int c = 0; c < n; ++c) {
    int pivot = c;
    for (int r = c + 1; r < n; ++r)
      if (std::fabs(A[r * n + c]) > std::fabs(A[pivot * n + c])) pivot = r;
    const double p = A[pivot * n + c];
    if (!(std::fabs(p) > 1e-300) || !std::isfinite(p)) return false;
    if (pivot != c) {
      for (int j = 0; j < n; ++j) std::swap(A[c * n + j], A[pivot * n + j]);
      std::swap(b[c], b[pivot]);
    }
    for (int r = c + 1; r < n; ++r) {
      const double factor = A[r * n + c] / p;
      if (factor == 0.0) continue;
      for (int j = c; j < n; ++j) A[r * n + j] -= factor * A[c * n + j];
      b[r] -= factor * b[c];
    }
  }
  for (int r = n - 1; r >= 0; --r) {
    double sum = b[r];
    for (int j = r + 1; j < n; ++j) sum -= A[r * n + j] * b[j];
    b[r] = sum / A[r * n + r];
    if (!std::isfinite(b[r])) return false;
  }
  return true;
}

}  // namespace deepshop::optim
