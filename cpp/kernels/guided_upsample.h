#pragma once
// Guided upsampling (the fast guided filter of He & Sun 2015): a result computed at low
// resolution brought to full resolution with the detail of a full-resolution guide.
//
// At low resolution, in every (2r+1)^2 window, each output channel p is fitted as a linear
// function of the guide I: p ~ a I + b, with
//     a = cov(I, p) / (var(I) + eps),   b = mean(p) - a mean(I)
// (box means over the window; eps the regulariser: larger, smoother, less of the guide's detail).
// The coefficients are averaged over the windows that cover each pixel (mean_a, mean_b), and at
// full resolution q = mean_a(x) I_full(x) + mean_b(x) with mean_a and mean_b interpolated
// bilinearly: edges and texture of the full-resolution guide, colours of the low-resolution result.
#include <cstdint>
#include <vector>

namespace deepshop::kernels {

// The averaged coefficients of a low-resolution result: h x w x c each.
struct GuidedCoefficients {
  int64_t height = 0, width = 0, channels = 0;
  std::vector<float> a, b;
};

// `guide`: h x w (the low-resolution guide, e.g. luma in [0, 1]); `result`: h x w x c.
GuidedCoefficients guided_coefficients(const float* guide, const float* result, int64_t h, int64_t w, int64_t c,
                                       int64_t radius, float eps, int threads);

// Box mean over (2r+1)^2 windows clipped to the image, of an h x w x c image.
void box_mean(const float* src, int64_t h, int64_t w, int64_t c, int64_t radius, float* dst, int threads);

}  // namespace deepshop::kernels
