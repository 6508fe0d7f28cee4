#include "engine/harmonize.h"

#include <algorithm>

namespace deepshop {

template <typename T>
Thumbnail box_thumbnail(ImageView<const T> input, int64_t side) {
  Thumbnail t;
  const int64_t H = input.height, W = input.width;
  t.factor = std::max<int64_t>(1, (std::max(H, W) + side - 1) / side);
  const int64_t f = t.factor;
  t.height = (H + f - 1) / f;
  t.width = (W + f - 1) / f;
  t.rgb.assign(static_cast<size_t>(t.height * t.width * 3), 0.f);
  std::vector<float> count(static_cast<size_t>(t.height * t.width), 0.f);
  for (int64_t y = 0; y < H; ++y) {
    const T* row = input.data + y * W * 3;
    float* sum = &t.rgb[(y / f) * t.width * 3];
    float* n = &count[(y / f) * t.width];
    for (int64_t x = 0; x < W; ++x) {
      for (int c = 0; c < 3; ++c) sum[(x / f) * 3 + c] += static_cast<float>(row[x * 3 + c]);
      n[x / f] += 1.f;
    }
  }
  for (size_t i = 0; i < count.size(); ++i)
    for (int c = 0; c < 3; ++c) t.rgb[i * 3 + c] /= count[i] * PixelCodec<T>::kMax;
  return t;
}

template <typename T>
ColourReference make_colour_reference(ImageView<const T> input, int64_t side, const StylizeWholeFn& stylize_whole) {
  ColourReference ref;
  const Thumbnail thumb = box_thumbnail(input, side);
  ref.factor = thumb.factor;
  ref.height = thumb.height;
  ref.width = thumb.width;
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
  // Tile colour averaged over each thumbnail cell (partial cells: over the part inside).
  std::vector<double> mean(static_cast<size_t>(th * tw * 3), 0.0);
  std::vector<double> n(static_cast<size_t>(th * tw), 0.0);
  for (int64_t y = 0; y < rows; ++y) {
    const int64_t cy = (y0 + y) / f - ty0;
    for (int64_t x = 0; x < cols; ++x) {
      const int64_t cell = cy * tw + (x0 + x) / f - tx0;
      for (int c = 0; c < 3; ++c) mean[cell * 3 + c] += tile[(y * cols + x) * 3 + c];
      n[cell] += 1.0;
    }
  }
  std::vector<float> diff(static_cast<size_t>(th * tw * 3));
  for (int64_t i = 0; i < th * tw; ++i) {
    const int64_t ry = ty0 + i / tw, rx = tx0 + i % tw;
    for (int c = 0; c < 3; ++c)
      diff[i * 3 + c] = ref.rgb[(ry * ref.width + rx) * 3 + c] - static_cast<float>(mean[i * 3 + c] / n[i]);
  }
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
  // Bilinear upsampling of the correction back to full resolution.
  for (int64_t y = 0; y < rows; ++y) {
    const float fy = std::min(std::max((y0 + y + 0.5f) / f - 0.5f - ty0, 0.f), static_cast<float>(th - 1));
    const int64_t iy = std::min<int64_t>(static_cast<int64_t>(fy), th - 1), iy1 = std::min(iy + 1, th - 1);
    const float wy = fy - iy;
    for (int64_t x = 0; x < cols; ++x) {
      const float fx = std::min(std::max((x0 + x + 0.5f) / f - 0.5f - tx0, 0.f), static_cast<float>(tw - 1));
      const int64_t ix = std::min<int64_t>(static_cast<int64_t>(fx), tw - 1), ix1 = std::min(ix + 1, tw - 1);
      const float wx = fx - ix;
      for (int c = 0; c < 3; ++c) {
        const float top = diff[(iy * tw + ix) * 3 + c] * (1 - wx) + diff[(iy * tw + ix1) * 3 + c] * wx;
        const float bottom = diff[(iy1 * tw + ix) * 3 + c] * (1 - wx) + diff[(iy1 * tw + ix1) * 3 + c] * wx;
        tile[(y * cols + x) * 3 + c] += top * (1 - wy) + bottom * wy;
      }
    }
  }
}

template Thumbnail box_thumbnail<uint8_t>(ImageView<const uint8_t>, int64_t);
template Thumbnail box_thumbnail<uint16_t>(ImageView<const uint16_t>, int64_t);
template Thumbnail box_thumbnail<float>(ImageView<const float>, int64_t);
template ColourReference make_colour_reference<uint8_t>(ImageView<const uint8_t>, int64_t, const StylizeWholeFn&);
template ColourReference make_colour_reference<uint16_t>(ImageView<const uint16_t>, int64_t, const StylizeWholeFn&);
template ColourReference make_colour_reference<float>(ImageView<const float>, int64_t, const StylizeWholeFn&);

}  // namespace deepshop
