#include "kernels/guided_upsample.h"

#include <algorithm>
#include <stdexcept>

#include "kernels/parallel.h"

namespace deepshop::kernels {

void box_mean(const float* src, int64_t h, int64_t w, int64_t c, int64_t radius, float* dst, int threads) {
  if (radius < 0) throw std::invalid_argument("box_mean: radius must be >= 0");
  const int parts = resolve_threads(threads);
  // Horizontal running sums in double (no drift over long rows), then vertical ones.
  std::vector<float> horizontal(static_cast<size_t>(h * w * c));
  parallel_parts(h, parts, [&](int, int64_t begin, int64_t end) {
    std::vector<double> prefix(static_cast<size_t>((w + 1) * c));
    for (int64_t y = begin; y < end; ++y) {
      const float* s = src + y * w * c;
      for (int64_t ch = 0; ch < c; ++ch) prefix[ch] = 0.0;
      for (int64_t x = 0; x < w; ++x)
        for (int64_t ch = 0; ch < c; ++ch) prefix[(x + 1) * c + ch] = prefix[x * c + ch] + s[x * c + ch];
      float* d = horizontal.data() + y * w * c;
      for (int64_t x = 0; x < w; ++x) {
        const int64_t x0 = std::max<int64_t>(0, x - radius), x1 = std::min<int64_t>(w, x + radius + 1);
        for (int64_t ch = 0; ch < c; ++ch)
          d[x * c + ch] = static_cast<float>((prefix[x1 * c + ch] - prefix[x0 * c + ch]) / static_cast<double>(x1 - x0));
      }
    }
  });
  parallel_parts(w, parts, [&](int, int64_t begin, int64_t end) {
    std::vector<double> prefix(static_cast<size_t>(h + 1));
    for (int64_t x = begin; x < end; ++x)
      for (int64_t ch = 0; ch < c; ++ch) {
        prefix[0] = 0.0;
        for (int64_t y = 0; y < h; ++y) prefix[y + 1] = prefix[y] + horizontal[(y * w + x) * c + ch];
        for (int64_t y = 0; y < h; ++y) {
          const int64_t y0 = std::max<int64_t>(0, y - radius), y1 = std::min<int64_t>(h, y + radius + 1);
          dst[(y * w + x) * c + ch] = static_cast<float>((prefix[y1] - prefix[y0]) / static_cast<double>(y1 - y0));
        }
      }
  });
}

GuidedCoefficients guided_coefficients(const float* guide, const float* result, int64_t h, int64_t w, int64_t c,
                                       int64_t radius, float eps, int threads) {
  if (!(eps > 0.f)) throw std::invalid_argument("guided upsampling: eps must be > 0");
  const size_t n = static_cast<size_t>(h * w);
  // Per pixel: I, I*I, then per channel p and I*p, box-averaged in one pass each.
  std::vector<float> guide2(2 * n), mean_guide2(2 * n);
  for (size_t i = 0; i < n; ++i) guide2[2 * i] = guide[i], guide2[2 * i + 1] = guide[i] * guide[i];
  box_mean(guide2.data(), h, w, 2, radius, mean_guide2.data(), threads);
  std::vector<float> products(2 * n * c), means(2 * n * c);
  for (size_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      const float p = result[i * c + ch];
      products[(i * c + ch) * 2] = p;
      products[(i * c + ch) * 2 + 1] = guide[i] * p;
    }
  box_mean(products.data(), h, w, 2 * c, radius, means.data(), threads);
  GuidedCoefficients g;
  g.height = h, g.width = w, g.channels = c;
  std::vector<float> a(n * c), b(n * c);
  for (size_t i = 0; i < n; ++i) {
    const float mi = mean_guide2[2 * i], var = std::max(0.f, mean_guide2[2 * i + 1] - mi * mi);
    for (int64_t ch = 0; ch < c; ++ch) {
      const float mp = means[(i * c + ch) * 2], mip = means[(i * c + ch) * 2 + 1];
      const float ai = (mip - mi * mp) / (var + eps);
      a[i * c + ch] = ai;
      b[i * c + ch] = mp - ai * mi;
    }
  }
  g.a.resize(n * c);
  g.b.resize(n * c);
  box_mean(a.data(), h, w, c, radius, g.a.data(), threads);
  box_mean(b.data(), h, w, c, radius, g.b.data(), threads);
  return g;
}

}  // namespace deepshop::kernels
