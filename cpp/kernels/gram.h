#pragma once
// Gram matrix of feature maps, G = F · diag(w) · Fᵀ, accumulated in double precision.
//
// Plain C++ on raw pointers and element strides (no pybind11 here): the binding layer hands in
// numpy views as they are, so a cropped tile (a strided view) is read without a copy.
#include <cstdint>
#include <string>

namespace deepshop::kernels {

enum class FeatureType { f32, f16 };

// A feature map of `channels` × (height × width) positions.  Strides are in elements, may be
// any value numpy produces (non-contiguous crops included); positions are taken row by row.
struct FeatureView {
  const void* data = nullptr;
  FeatureType type = FeatureType::f32;
  int64_t channels = 0, height = 0, width = 0;
  int64_t stride_c = 0, stride_h = 0, stride_w = 0;
};

// Optional per-position weights (height × width, float32, strides in elements).
struct MaskView {
  const float* data = nullptr;
  int64_t stride_h = 0, stride_w = 0;
};

// Adds sum_n w_n F[i,n] F[j,n] to acc[i*C + j] for j <= i (the lower triangle only; the upper
// triangle is left untouched — call symmetrize_lower once the accumulation is complete).
// `acc` is C × C, row-major, float64.  `mask` may be null (all weights 1).  `threads` <= 0 uses
// every hardware thread.  Blocks of 1024 products are summed in float32 inside
// the SIMD kernel and then added into the float64 accumulator, so the result stays accurate for
// tens of millions of positions.
void gram_accumulate(const FeatureView& features, const MaskView* mask, double* acc, int threads);

// Copies the lower triangle of a C × C matrix onto its upper triangle.
void symmetrize_lower(double* acc, int64_t channels);

// Name of the inner kernel selected on this CPU at run time: "avx512", "avx2" or "scalar".
std::string gram_kernel_name();

// Forces a kernel ("avx512", "avx2", "scalar" or "auto"), for tests and benchmarks of the
// fallbacks.  Throws std::invalid_argument for an unknown name or one this CPU cannot run.
void set_gram_kernel(const std::string& name);

}  // namespace deepshop::kernels
