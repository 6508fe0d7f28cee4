#include "engine/tile_stages.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "engine/errors.h"
#include "kernels/label_decode.h"

namespace deepshop {
namespace {

// NaN and infinity have every exponent bit set.  An OR over integers has no branch and no
// floating-point ordering to keep, so the compiler vectorizes it.
bool all_finite(const float* v, size_t n) {
  constexpr uint32_t kExponent = 0x7f800000u;
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, v + i, sizeof bits);
    bad |= static_cast<uint32_t>((bits & kExponent) == kExponent);
  }
  return bad == 0;
}

[[noreturn]] void non_finite(const std::string& model, int64_t y0, int64_t x0) {
  throw ModelError(model + ": the model's output holds NaN or infinite values (in a tile's rows from image row " +
                   std::to_string(y0) + " on, columns from " + std::to_string(x0) +
                   "); the weights or the value range may be wrong, or fp16 overflowed");
}

}  // namespace

template <typename T>
void ImageSource<T>::cut(const TileWindow& window, float* dst, size_t plane) const {
  const std::vector<int64_t>& rows = window.rows;
  const std::vector<int64_t>& cols = window.cols;
  const int64_t C = image_.channels, wh = static_cast<int64_t>(rows.size()), ww = static_cast<int64_t>(cols.size());
  const size_t row_stride = static_cast<size_t>(image_.width * C);
  for (int64_t y = 0; y < wh; ++y) {
    const T* src_row = image_.data + rows[y] * row_stride;
    for (int64_t c = 0; c < C; ++c) {
      float* d = dst + encoder_.net_channel(c) * plane + y * ww;
      for (int64_t x = 0; x < ww; ++x) d[x] = encoder_.encode(c, src_row[cols[x] * C + c]);
    }
  }
}

template <typename T>
ImageSink<T>::ImageSink(ImageView<T> output, const PixelFormat& px, ImageView<const T> original,
                        const PostOptions& post, const ColourReference* reference, std::string model)
    : output_(output), decoder_(px, output.channels), original_(original), post_(post), reference_(reference),
      model_(std::move(model)) {}

template <typename T>
void ImageSink<T>::take_tile(const float* out, size_t plane, int64_t row_stride, int64_t kh, int64_t kw, int64_t y0,
                             int64_t x0, float* kept) {
  const int64_t C = output_.channels;
  for (int64_t y = 0; y < kh; ++y) {
    for (int64_t c = 0; c < C; ++c) {
      const float* oc = out + decoder_.net_channel[c] * plane + y * row_stride;
      const float scale = decoder_.scale[c], offset = decoder_.offset[c];
      for (int64_t x = 0; x < kw; ++x) kept[(y * kw + x) * C + c] = oc[x] * scale + offset;
    }
  }
  if (!all_finite(kept, static_cast<size_t>(kh * kw * C))) non_finite(model_, y0, x0);
}

template <typename T>
void ImageSink<T>::finish_tile(float* kept, int64_t kh, int64_t kw, int64_t y0, int64_t x0) {
  if (reference_) harmonize_tile(kept, kh, kw, y0, x0, *reference_);
}

template <typename T>
void ImageSink<T>::finish_rows(const float* acc, int64_t y_from, int64_t y_to) {
  const int64_t W = output_.width, C = output_.channels;
  const size_t row_stride = static_cast<size_t>(W * C);
  if (!original_.data) {
    for (int64_t y = y_from; y < y_to; ++y) {
      const float* a = acc + (y - y_from) * row_stride;
      T* dst = output_.data + y * row_stride;
      for (size_t i = 0; i < row_stride; ++i) dst[i] = from_unit<T>(a[i]);
    }
    return;
  }
  // Blending with the original: RGB only (the image path checks it).
  for (int64_t y = y_from; y < y_to; ++y) {
    const float* a = acc + (y - y_from) * row_stride;
    const T* src = original_.data + y * row_stride;
    T* dst = output_.data + y * row_stride;
    for (int64_t x = 0; x < W; ++x) finish_pixel<T>({a[x * 3], a[x * 3 + 1], a[x * 3 + 2]}, src + x * 3, dst + x * 3, post_);
  }
}

ClassesSink::ClassesSink(int64_t classes, int64_t width, int32_t* labels, const std::vector<uint8_t>& palette,
                         uint8_t* rgb, std::string model, float temperature)
    : classes_(classes), width_(width), labels_(labels), palette_(palette), rgb_(rgb), model_(std::move(model)),
      temperature_(temperature) {
  if (!(temperature >= 0.f) || !std::isfinite(temperature))
    throw std::invalid_argument("temperature must be a finite number >= 0, got " + std::to_string(temperature));
}

void ClassesSink::take_tile(const float* out, size_t plane, int64_t row_stride, int64_t kh, int64_t kw, int64_t y0,
                            int64_t x0, float* kept) {
  const int64_t K = classes_;
  for (int64_t y = 0; y < kh; ++y)
    for (int64_t k = 0; k < K; ++k) {
      const float* ok = out + k * plane + y * row_stride;
      for (int64_t x = 0; x < kw; ++x) kept[(y * kw + x) * K + k] = ok[x];
    }
  if (!all_finite(kept, static_cast<size_t>(kh * kw * K))) non_finite(model_, y0, x0);
}

void ClassesSink::finish_rows(const float* acc, int64_t y_from, int64_t y_to) {
  const int64_t K = classes_, W = width_;
  for (int64_t y = y_from; y < y_to; ++y) {
    const float* a = acc + (y - y_from) * W * K;
    int32_t* lab = labels_ + y * W;
    for (int64_t x = 0; x < W; ++x) {
      const float* s = a + x * K;
      int64_t best = 0;
      for (int64_t k = 1; k < K; ++k)
        if (s[k] > s[best]) best = k;  // strictly greater: the lowest index wins ties
      lab[x] = static_cast<int32_t>(best);
    }
    if (palette_.empty()) continue;
    if (temperature_ <= 0.f) {
      kernels::decode_labels(lab, W, palette_.data(), static_cast<int>(palette_.size() / 3), rgb_ + y * W * 3);
      continue;
    }
    if (static_cast<int64_t>(palette_.size() / 3) != K)
      throw std::invalid_argument(model_ + ": the annealed mean needs one palette colour per class (" +
                                  std::to_string(K) + "), the palette has " + std::to_string(palette_.size() / 3));
    // Softmax of s / T, shifted by the maximum so that exp never overflows; the colour is the
    // expectation of the palette under it.
    const float inv_t = 1.f / temperature_;
    for (int64_t x = 0; x < W; ++x) {
      const float* s = a + x * K;
      const float top = s[lab[x]];
      double sum = 0.0, rgb[3] = {0.0, 0.0, 0.0};
      for (int64_t k = 0; k < K; ++k) {
        const double w = std::exp(static_cast<double>((s[k] - top) * inv_t));
        sum += w;
        for (int c = 0; c < 3; ++c) rgb[c] += w * palette_[k * 3 + c];
      }
      uint8_t* dst = rgb_ + (y * W + x) * 3;
      for (int c = 0; c < 3; ++c) dst[c] = static_cast<uint8_t>(std::min(255.0, std::max(0.0, std::round(rgb[c] / sum))));
    }
  }
}

template class ImageSource<uint8_t>;
template class ImageSource<uint16_t>;
template class ImageSource<float>;
template class ImageSink<uint8_t>;
template class ImageSink<uint16_t>;
template class ImageSink<float>;

}  // namespace deepshop
