#include "engine/harmonize.h"

#include <algorithm>
#include <utility>

#include "kernels/parallel.h"

namespace deepshop {

namespace {

// The span [first, last) of [0, length) that cell `cell` (of `f` pixels, the axis starting at
// image offset `origin`, cells counted from `cell0`) covers.
inline std::pair<int64_t, int64_t> cell_span(int64_t cell0, int64_t cell, int64_t f, int64_t origin, int64_t length) {
  return {std::max<int64_t>(0, (cell0 + cell) * f - origin), std::min(length, (cell0 + cell + 1) * f - origin)};
}

// The mean RGB of each cell of one row of cells, for cell rows [begin, end) of an interleaved RGB
// image of `height` x `width` pixels at image offset (y0, x0), cells of f x f pixels counted from
// (cy0, cx0), `cells` of them across (partial cells: the mean of the part inside): fn(cy, cx, mean)
// with mean[3] on the pixels' own scale.  Row sums in float over at most f values, cells in double.
template <typename T, class Fn>
void cell_means(const T* pixels, int64_t height, int64_t width, int64_t y0, int64_t x0, int64_t f, int64_t cy0,
                int64_t cx0, int64_t cells, int64_t begin, int64_t end, Fn&& fn) {
  std::vector<double> sum(static_cast<size_t>(cells * 3));
  for (int64_t cy = begin; cy < end; ++cy) {
    std::fill(sum.begin(), sum.end(), 0.0);
    const auto [y_first, y_last] = cell_span(cy0, cy, f, y0, height);
    for (int64_t y = y_first; y < y_last; ++y) {
      const T* row = pixels + y * width * 3;
      for (int64_t cx = 0; cx < cells; ++cx) {
        const auto [x_first, x_last] = cell_span(cx0, cx, f, x0, width);
        float s[3] = {0.f, 0.f, 0.f};
        for (int64_t x = x_first; x < x_last; ++x)
          for (int c = 0; c < 3; ++c) s[c] += static_cast<float>(row[x * 3 + c]);
        for (int c = 0; c < 3; ++c) sum[cx * 3 + c] += s[c];
      }
    }
    for (int64_t cx = 0; cx < cells; ++cx) {
      const auto [x_first, x_last] = cell_span(cx0, cx, f, x0, width);
      const double n = static_cast<double>((y_last - y_first) * (x_last - x_first));
      const double mean[3] = {sum[cx * 3] / n, sum[cx * 3 + 1] / n, sum[cx * 3 + 2] / n};
      fn(cy, cx, mean);
    }
  }
}

}  // namespace

template <typename T>
Thumbnail box_thumbnail(ImageView<const T> input, int64_t side, int threads) {
  Thumbnail t;
  const int64_t H = input.height, W = input.width;
  t.factor = std::max<int64_t>(1, (std::max(H, W) + side - 1) / side);
  const int64_t f = t.factor;
  t.height = (H + f - 1) / f;
  t.width = (W + f - 1) / f;
  t.rgb.assign(static_cast<size_t>(t.height * t.width * 3), 0.f);
  // Thumbnail rows in parallel, each the mean over its cells (no division per pixel).
  kernels::for_row_ranges(threads, t.height, f * W * 3, [&](int64_t begin, int64_t end) {
    cell_means(input.data, H, W, 0, 0, f, 0, 0, t.width, begin, end, [&](int64_t ty, int64_t tx, const double* mean) {
      for (int c = 0; c < 3; ++c) t.rgb[(ty * t.width + tx) * 3 + c] = static_cast<float>(mean[c] / PixelCodec<T>::kMax);
    });
  });
  return t;
}

template <typename T>
ColourReference make_colour_reference(ImageView<const T> input, int64_t side, const StylizeWholeFn& stylize_whole,
                                      int threads) {
  ColourReference ref;
  const Thumbnail thumb = box_thumbnail(input, side, threads);
  ref.factor = thumb.factor;
  ref.height = thumb.height;
  ref.width = thumb.width;
  ref.threads = threads;
  ref.rgb.assign(thumb.rgb.size(), 0.f);
  stylize_whole(ImageView<const float>{thumb.rgb.data(), ref.height, ref.width, 3},
                ImageView<float>{ref.rgb.data(), ref.height, ref.width, 3});
  // Colour is taken from the thumbnail at scales above ~1/16 of the image: finer structure (the
  // strokes) stays the tile's own, since the thumbnail renders it at another scale.
  ref.radius = std::max<int64_t>(1, std::max(ref.height, ref.width) / 32);
  return ref;
}

void harmonize_tile(float* tile, int64_t rows, int64_t cols, int64_t y0, int64_t x0,
                    const ColourReference& ref) {
  const int64_t f = ref.factor;
  const int64_t ty0 = y0 / f, tx0 = x0 / f;
  const int64_t th = (y0 + rows - 1) / f - ty0 + 1, tw = (x0 + cols - 1) / f - tx0 + 1;
  // Tile colour averaged over each thumbnail cell (partial cells: over the part inside), cell
  // rows in parallel.
  std::vector<float> diff(static_cast<size_t>(th * tw * 3));
  kernels::for_row_ranges(ref.threads, th, f * cols * 3, [&](int64_t begin, int64_t end) {
    cell_means(tile, rows, cols, y0, x0, f, ty0, tx0, tw, begin, end, [&](int64_t cy, int64_t cx, const double* mean) {
      const float* r = &ref.rgb[((ty0 + cy) * ref.width + tx0 + cx) * 3];
      for (int c = 0; c < 3; ++c) diff[(cy * tw + cx) * 3 + c] = r[c] - static_cast<float>(mean[c]);
    });
  });
  // Separable box blur of the difference, clamped at the tile's edges.
  auto blur = [&](int64_t len, int64_t other, bool along_rows) {
    std::vector<float> out(diff.size());
    for (int64_t o = 0; o < other; ++o)
      for (int64_t i = 0; i < len; ++i) {
        float acc[3] = {0.f, 0.f, 0.f};
        const int64_t lo = std::max<int64_t>(0, i - ref.radius), hi = std::min(len - 1, i + ref.radius);
        for (int64_t k = lo; k <= hi; ++k) {
          const int64_t idx = along_rows ? (k * tw + o) : (o * tw + k);
          for (int c = 0; c < 3; ++c) acc[c] += diff[idx * 3 + c];
        }
        const int64_t idx = along_rows ? (i * tw + o) : (o * tw + i);
        for (int c = 0; c < 3; ++c) out[idx * 3 + c] = acc[c] / static_cast<float>(hi - lo + 1);
      }
    diff.swap(out);
  };
  blur(tw, th, false);
  blur(th, tw, true);
  // Bilinear upsampling of the correction back to full resolution: the columns' cells and
  // weights once, then each row interpolated between its two cell rows and along it.
  std::vector<int64_t> ix(static_cast<size_t>(cols)), ix1(static_cast<size_t>(cols));
  std::vector<float> wx(static_cast<size_t>(cols));
  for (int64_t x = 0; x < cols; ++x) {
    const float fx = std::min(std::max((x0 + x + 0.5f) / f - 0.5f - tx0, 0.f), static_cast<float>(tw - 1));
    ix[x] = std::min<int64_t>(static_cast<int64_t>(fx), tw - 1);
    ix1[x] = std::min(ix[x] + 1, tw - 1);
    wx[x] = fx - ix[x];
  }
  kernels::for_row_ranges(ref.threads, rows, cols * 3, [&](int64_t begin, int64_t end) {
    std::vector<float> line(static_cast<size_t>(tw * 3));
    for (int64_t y = begin; y < end; ++y) {
      const float fy = std::min(std::max((y0 + y + 0.5f) / f - 0.5f - ty0, 0.f), static_cast<float>(th - 1));
      const int64_t iy = std::min<int64_t>(static_cast<int64_t>(fy), th - 1), iy1 = std::min(iy + 1, th - 1);
      const float wy = fy - iy;
      for (int64_t k = 0; k < tw * 3; ++k) line[k] = diff[iy * tw * 3 + k] * (1 - wy) + diff[iy1 * tw * 3 + k] * wy;
      float* out = tile + y * cols * 3;
      for (int64_t x = 0; x < cols; ++x)
        for (int c = 0; c < 3; ++c) out[x * 3 + c] += line[ix[x] * 3 + c] * (1 - wx[x]) + line[ix1[x] * 3 + c] * wx[x];
    }
  });
}

template Thumbnail box_thumbnail<uint8_t>(ImageView<const uint8_t>, int64_t, int);
template Thumbnail box_thumbnail<uint16_t>(ImageView<const uint16_t>, int64_t, int);
template Thumbnail box_thumbnail<float>(ImageView<const float>, int64_t, int);
template ColourReference make_colour_reference<uint8_t>(ImageView<const uint8_t>, int64_t, const StylizeWholeFn&, int);
template ColourReference make_colour_reference<uint16_t>(ImageView<const uint16_t>, int64_t, const StylizeWholeFn&,
                                                         int);
template ColourReference make_colour_reference<float>(ImageView<const float>, int64_t, const StylizeWholeFn&, int);

}  // namespace deepshop
