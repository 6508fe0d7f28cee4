#pragma once
// Resampling of interleaved float images (H x W x C), for the working-size path: an exact area
// average for downscaling (every output pixel the mean of the input area it covers, fractional
// coverage at its edges), and bilinear interpolation on pixel centres for upscaling.
#include <cstdint>

namespace deepshop::kernels {

// `src` h x w x c -> `dst` oh x ow x c floats, oh <= h and ow <= w, every value times `scale`
// (1/255 for 8-bit pixels: unit floats out).  T: uint8_t, uint16_t or float.
template <typename T>
void area_downscale(const T* src, int64_t h, int64_t w, int64_t c, float scale, float* dst, int64_t oh, int64_t ow,
                    int threads);

// Where output pixel centre i of `out` pixels lands on an axis of `in` pixels, as the lower sample
// and its weight: value = (1 - t) * v[i0] + t * v[min(i0 + 1, in - 1)].  Edges are clamped.
inline void bilinear_position(int64_t i, int64_t in, int64_t out, int64_t& i0, float& t) {
  const double x = (static_cast<double>(i) + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5;
  if (x <= 0) {
    i0 = 0;
    t = 0.f;
    return;
  }
  i0 = static_cast<int64_t>(x);
  if (i0 >= in - 1) {
    i0 = in - 1;
    t = 0.f;
    return;
  }
  t = static_cast<float>(x - static_cast<double>(i0));
}

}  // namespace deepshop::kernels
