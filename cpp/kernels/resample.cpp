#include "kernels/resample.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "kernels/parallel.h"

namespace deepshop::kernels {
namespace {

// Per output index along an axis: the input indices it covers and their weights (summing to 1).
struct Footprint {
  int64_t first = 0;
  std::vector<float> weights;
};

std::vector<Footprint> footprints(int64_t in, int64_t out) {
  std::vector<Footprint> f(static_cast<size_t>(out));
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (int64_t o = 0; o < out; ++o) {
    const double a = o * scale, b = (o + 1) * scale;
    const int64_t first = static_cast<int64_t>(a), last = std::min<int64_t>(in - 1, static_cast<int64_t>(b - 1e-9));
    f[o].first = first;
    for (int64_t i = first; i <= last; ++i) {
      const double cover = std::min<double>(b, i + 1) - std::max<double>(a, i);
      f[o].weights.push_back(static_cast<float>(cover / scale));
    }
  }
  return f;
}

}  // namespace

template <typename T>
void area_downscale(const T* src, int64_t h, int64_t w, int64_t c, float scale, float* dst, int64_t oh, int64_t ow,
                    int threads) {
  if (oh < 1 || ow < 1 || oh > h || ow > w) throw std::invalid_argument("area_downscale: output must be 1..input size");
  const auto rows = footprints(h, oh), cols = footprints(w, ow);
  const int parts = resolve_threads(threads);
  parallel_parts(oh, parts, [&](int, int64_t begin, int64_t end) {
    std::vector<float> line(static_cast<size_t>(w * c));
    for (int64_t oy = begin; oy < end; ++oy) {
      // The output row's input rows, weighted, then the columns.
      std::fill(line.begin(), line.end(), 0.f);
      const Footprint& fy = rows[oy];
      for (size_t k = 0; k < fy.weights.size(); ++k) {
        const float wy = fy.weights[k] * scale;
        const T* s = src + (fy.first + static_cast<int64_t>(k)) * w * c;
        for (int64_t i = 0; i < w * c; ++i) line[i] += wy * static_cast<float>(s[i]);
      }
      float* d = dst + oy * ow * c;
      for (int64_t ox = 0; ox < ow; ++ox) {
        const Footprint& fx = cols[ox];
        for (int64_t ch = 0; ch < c; ++ch) {
          float v = 0.f;
          for (size_t k = 0; k < fx.weights.size(); ++k) v += fx.weights[k] * line[(fx.first + static_cast<int64_t>(k)) * c + ch];
          d[ox * c + ch] = v;
        }
      }
    }
  });
}

template void area_downscale<uint8_t>(const uint8_t*, int64_t, int64_t, int64_t, float, float*, int64_t, int64_t, int);
template void area_downscale<uint16_t>(const uint16_t*, int64_t, int64_t, int64_t, float, float*, int64_t, int64_t, int);
template void area_downscale<float>(const float*, int64_t, int64_t, int64_t, float, float*, int64_t, int64_t, int);

}  // namespace deepshop::kernels
