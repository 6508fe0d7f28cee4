#include "kernels/palette_builder.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>

#include "kernels/color_space.h"
#include "kernels/parallel.h"

namespace deepshop::kernels {
namespace {

using Point = std::array<float, 3>;

float squared_distance(const Point& a, const Point& b) {
  const float dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
  return dx * dx + dy * dy + dz * dz;
}

// Uniform double in [0, 1) from the top 53 bits: identical on every platform.
double unit_random(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

int nearest_center(const Point& p, const std::vector<Point>& centers, float* distance) {
  float best = std::numeric_limits<float>::infinity();
  int index = 0;
  for (size_t c = 0; c < centers.size(); ++c) {
    const float d = squared_distance(p, centers[c]);
    if (d < best) best = d, index = static_cast<int>(c);
  }
  if (distance) *distance = best;
  return index;
}

}  // namespace

std::vector<uint8_t> kmeans_palette(const uint8_t* rgb, int64_t n, int k, ColorSpace space,
                                    uint64_t seed, int max_iterations, int threads) {
  if (k < 1 || k > kMaxPaletteColors) throw std::invalid_argument("k must be 1 to 256");
  if (n < 1) throw std::invalid_argument("no pixels to build a palette from");
  std::vector<Point> points(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
    if (space == ColorSpace::lab) {
      const Lab lab = srgb8_to_lab(r, g, b);
      points[static_cast<size_t>(i)] = {lab.l, lab.a, lab.b};
    } else {
      points[static_cast<size_t>(i)] = {float(r), float(g), float(b)};
    }
  }

  // k-means++ seeding (Arthur & Vassilvitskii 2007): each new centre is drawn with probability
  // proportional to its squared distance from the nearest centre chosen so far.
  std::mt19937_64 rng(seed);
  std::vector<Point> centers;
  centers.push_back(points[static_cast<size_t>(std::min<int64_t>(n - 1, static_cast<int64_t>(unit_random(rng) * n)))]);
  std::vector<double> d2(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) d2[static_cast<size_t>(i)] = squared_distance(points[static_cast<size_t>(i)], centers[0]);
  while (static_cast<int>(centers.size()) < k) {
    const double total = std::accumulate(d2.begin(), d2.end(), 0.0);
    if (total <= 0.0) break;  // every sample coincides with a centre: fewer distinct colours than k
    const double target = unit_random(rng) * total;
    double running = 0.0;
    int64_t chosen = n - 1;
    for (int64_t i = 0; i < n; ++i) {
      running += d2[static_cast<size_t>(i)];
      if (running > target && d2[static_cast<size_t>(i)] > 0.0) {
        chosen = i;
        break;
      }
    }
    while (d2[static_cast<size_t>(chosen)] <= 0.0) --chosen;  // rounding at the very end of the sum
    centers.push_back(points[static_cast<size_t>(chosen)]);
    for (int64_t i = 0; i < n; ++i)
      d2[static_cast<size_t>(i)] = std::min<double>(d2[static_cast<size_t>(i)], squared_distance(points[static_cast<size_t>(i)], centers.back()));
  }

  // Lloyd iterations until no sample changes cluster.
  const int kc = static_cast<int>(centers.size());
  std::vector<int> assignment(static_cast<size_t>(n), -1);
  const int wanted = resolve_threads(threads);  // checked even when one part will do
  const int parts = n < 16384 ? 1 : wanted;
  for (int it = 0; it < max_iterations; ++it) {
    std::vector<int64_t> changed_per_part(static_cast<size_t>(parts), 0);
    parallel_parts(n, parts, [&](int part, int64_t b, int64_t e) {
      int64_t changed = 0;
      for (int64_t i = b; i < e; ++i) {
        const int c = nearest_center(points[static_cast<size_t>(i)], centers, nullptr);
        if (c != assignment[static_cast<size_t>(i)]) ++changed, assignment[static_cast<size_t>(i)] = c;
      }
      changed_per_part[static_cast<size_t>(part)] = changed;
    });
    if (std::accumulate(changed_per_part.begin(), changed_per_part.end(), int64_t{0}) == 0) break;
    std::vector<std::array<double, 3>> sums(static_cast<size_t>(kc), {0.0, 0.0, 0.0});
    std::vector<int64_t> counts(static_cast<size_t>(kc), 0);
    for (int64_t i = 0; i < n; ++i) {
      const auto c = static_cast<size_t>(assignment[static_cast<size_t>(i)]);
      for (int d = 0; d < 3; ++d) sums[c][d] += points[static_cast<size_t>(i)][d];
      ++counts[c];
    }
    for (int c = 0; c < kc; ++c)  // an emptied cluster keeps its centre
      if (counts[static_cast<size_t>(c)] > 0)
        for (int d = 0; d < 3; ++d)
          centers[static_cast<size_t>(c)][d] = static_cast<float>(sums[static_cast<size_t>(c)][d] / counts[static_cast<size_t>(c)]);
  }

  // Colour of each cluster: rounded mean sRGB of its members; empty clusters are dropped.
  for (int64_t i = 0; i < n; ++i)
    assignment[static_cast<size_t>(i)] = nearest_center(points[static_cast<size_t>(i)], centers, nullptr);
  std::vector<std::array<double, 3>> sums(static_cast<size_t>(kc), {0.0, 0.0, 0.0});
  std::vector<int64_t> counts(static_cast<size_t>(kc), 0);
  for (int64_t i = 0; i < n; ++i) {
    const auto c = static_cast<size_t>(assignment[static_cast<size_t>(i)]);
    for (int d = 0; d < 3; ++d) sums[c][d] += rgb[3 * i + d];
    ++counts[c];
  }
  std::vector<uint8_t> palette;
  for (int c = 0; c < kc; ++c) {
    if (counts[static_cast<size_t>(c)] == 0) continue;
    for (int d = 0; d < 3; ++d)
      palette.push_back(static_cast<uint8_t>(std::lround(sums[static_cast<size_t>(c)][d] / counts[static_cast<size_t>(c)])));
  }
  return palette;
}

std::vector<uint8_t> median_cut_palette(const uint8_t* rgb, int64_t n, int k) {
  if (k < 1 || k > kMaxPaletteColors) throw std::invalid_argument("k must be 1 to 256");
  if (n < 1) throw std::invalid_argument("no pixels to build a palette from");
  std::vector<std::array<uint8_t, 3>> px(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) px[static_cast<size_t>(i)] = {rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]};

  struct Box {
    size_t begin, end;
    int channel;  // widest channel
    int range;    // its range (max - min)
  };
  auto describe = [&](size_t b, size_t e) {
    Box box{b, e, 0, -1};
    for (int c = 0; c < 3; ++c) {
      uint8_t lo = 255, hi = 0;
      for (size_t i = b; i < e; ++i) lo = std::min(lo, px[i][c]), hi = std::max(hi, px[i][c]);
      if (hi - lo > box.range) box.range = hi - lo, box.channel = c;
    }
    return box;
  };
  std::vector<Box> boxes{describe(0, px.size())};
  while (static_cast<int>(boxes.size()) < k) {
    // Widest box first; on equal ranges the earlier box, so the result is deterministic.
    size_t pick = 0;
    for (size_t b = 1; b < boxes.size(); ++b)
      if (boxes[b].range > boxes[pick].range) pick = b;
    if (boxes[pick].range <= 0) break;  // every box holds a single colour
    const Box box = boxes[pick];
    const int c = box.channel;
    std::sort(px.begin() + static_cast<std::ptrdiff_t>(box.begin), px.begin() + static_cast<std::ptrdiff_t>(box.end),
              [c](const auto& a, const auto& b) { return a[c] < b[c]; });
    // Cut at the median, moved off a run of equal values so both halves are non-empty and
    // no colour value is split across two boxes.
    size_t mid = box.begin + (box.end - box.begin) / 2;
    const uint8_t v = px[mid][c];
    size_t lo = mid, hi = mid;
    while (lo > box.begin && px[lo - 1][c] == v) --lo;
    while (hi < box.end && px[hi][c] == v) ++hi;
    mid = (lo > box.begin && (mid - lo <= hi - mid || hi == box.end)) ? lo : hi;
    boxes[pick] = describe(box.begin, mid);
    boxes.insert(boxes.begin() + static_cast<std::ptrdiff_t>(pick) + 1, describe(mid, box.end));
  }
  std::vector<uint8_t> palette;
  for (const Box& box : boxes) {
    double sum[3] = {0, 0, 0};
    for (size_t i = box.begin; i < box.end; ++i)
      for (int c = 0; c < 3; ++c) sum[c] += px[i][c];
    const double count = static_cast<double>(box.end - box.begin);
    for (int c = 0; c < 3; ++c) palette.push_back(static_cast<uint8_t>(std::lround(sum[c] / count)));
  }
  return palette;
}

}  // namespace deepshop::kernels
