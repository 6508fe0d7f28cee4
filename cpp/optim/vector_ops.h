#pragma once
// Vector helpers of the optimisers: float32 storage (images of millions of pixels), double
// accumulation (the sums decide step lengths and curvature, where float32 sums lose digits).
#include <cstdint>

namespace deepshop::optim {

inline double dot(const float* a, const float* b, int64_t n) {
  // Four partial sums: independent chains the compiler can vectorise, same precision.
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += double(a[i]) * b[i];
    s1 += double(a[i + 1]) * b[i + 1];
    s2 += double(a[i + 2]) * b[i + 2];
    s3 += double(a[i + 3]) * b[i + 3];
  }
  for (; i < n; ++i) s0 += double(a[i]) * b[i];
  return (s0 + s1) + (s2 + s3);
}

}  // namespace deepshop::optim
