#include "engine/tiled_runner.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "engine/errors.h"

namespace deepshop {
namespace {

// Pixel <-> unit interval [0, 1], per element type.
template <typename T>
struct PixelCodec;
template <>
struct PixelCodec<uint8_t> {
  static constexpr float kMax = 255.f;
  static constexpr bool kIntegral = true;
};
template <>
struct PixelCodec<uint16_t> {
  static constexpr float kMax = 65535.f;
  static constexpr bool kIntegral = true;
};
template <>
struct PixelCodec<float> {
  static constexpr float kMax = 1.f;
  static constexpr bool kIntegral = false;
};

template <typename T>
inline T from_unit(float v) {
  v = std::min(std::max(v, 0.f), 1.f);
  if constexpr (PixelCodec<T>::kIntegral) return static_cast<T>(v * PixelCodec<T>::kMax + 0.5f);
  else return v;
}

// Maps input pixels to network values: lo + unit * (hi - lo) - mean, in network channel order.
// For 8- and 16-bit images a lookup table per channel makes this one load per value.
template <typename T>
class InputEncoder {
 public:
  explicit InputEncoder(const ModelInfo& m) : scale_(m.range_hi - m.range_lo) {
    for (int c = 0; c < 3; ++c) {
      const int k = m.bgr ? 2 - c : c;  // network channel holding RGB channel c
      net_channel_[c] = k;
      offset_[c] = m.range_lo - m.mean[k];
      if constexpr (PixelCodec<T>::kIntegral) {
        lut_[c].resize(static_cast<size_t>(PixelCodec<T>::kMax) + 1);
        for (size_t v = 0; v < lut_[c].size(); ++v) lut_[c][v] = offset_[c] + scale_ * (v / PixelCodec<T>::kMax);
      }
    }
  }
  int net_channel(int c) const { return net_channel_[c]; }
  float encode(int c, T v) const {
    if constexpr (PixelCodec<T>::kIntegral) return lut_[c][v];
    else return offset_[c] + scale_ * v;
  }

 private:
  float scale_;
  std::array<int, 3> net_channel_{};
  std::array<float, 3> offset_{};
  std::array<std::vector<float>, 3> lut_;
};

int64_t default_halo(const ModelInfo& model) {
  // The theoretical receptive field of a deep network is much wider than the region that
  // really shapes an output pixel (its effective receptive field); a quarter of it on each side
  // (half its radius) keeps tile borders out of sight at a fraction of the cost.  Measured in
  // tests/test_tiling_quality.py and the README.  Models without the figure get 32 pixels.
  if (model.receptive_field > 0) return std::max<int64_t>(model.receptive_field / 4, model.stride_multiple);
  return 32;
}

}  // namespace

TilingSummary plan_tiles(const ModelInfo& model, int64_t height, int64_t width, const TileOptions& options) {
  if (height < 1 || width < 1)
    throw std::invalid_argument("image is empty (" + std::to_string(height) + "x" + std::to_string(width) + ")");
  if (options.batch < 1) throw std::invalid_argument("batch must be at least 1");
  const int64_t halo = options.halo < 0 ? default_halo(model) : options.halo;
  const int64_t stride = model.stride_multiple;
  // A model with a fixed input size can only be run at that size: it becomes the tile.
  const int64_t fh = model.fixed_height(), fw = model.fixed_width();
  // Tiny images are reflected up to a small minimum: a TransformerNet, for one, reflection-pads
  // by 4 pixels at full resolution and by 1 at a quarter of it.
  const int64_t min_window = 8 * stride;
  TilingSummary s;
  s.rows = plan_axis(height, fh > 0 ? fh : options.tile, halo, options.overlap, stride, fh > 0 ? 0 : min_window);
  s.cols = plan_axis(width, fw > 0 ? fw : options.tile, halo, options.overlap, stride, fw > 0 ? 0 : min_window);
  if ((fh > 0 && s.rows.window != fh) || (fw > 0 && s.cols.window != fw))
    throw ModelError(model.path + ": the model only takes " + std::to_string(fh) + "x" + std::to_string(fw) +
                     " inputs, which cannot tile a " + std::to_string(height) + "x" + std::to_string(width) + " image");
  return s;
}

template <typename T>
void run_tiled(InferenceSession& session, ImageView<const T> input, ImageView<T> output, const TileOptions& options,
               const PostOptions& post, const ProgressFn& progress) {
  const ModelInfo& model = session.model();
  const int64_t H = input.height, W = input.width;
  if (output.height != H || output.width != W) throw std::invalid_argument("output buffer must match the input's size");
  const TilingSummary plan = plan_tiles(model, H, W, options);
  const AxisPlan& rows = plan.rows;
  const AxisPlan& cols = plan.cols;
  const int64_t wh = rows.window, ww = cols.window;
  const int64_t fixed_batch = model.fixed_batch();
  const int64_t batch = fixed_batch > 0 ? fixed_batch : std::min(options.batch, cols.count());

  const InputEncoder<T> encoder(model);
  // Network output -> unit interval, per RGB channel: (v + mean - lo) / (hi - lo).
  std::array<float, 3> out_offset{}, out_scale{};
  for (int c = 0; c < 3; ++c) {
    const int k = encoder.net_channel(c);
    out_scale[c] = 1.f / (model.range_hi - model.range_lo);
    out_offset[c] = (model.mean[k] - model.range_lo) * out_scale[c];
  }

  // Source pixel indices of every window, image borders reflected.
  auto window_indices = [](const AxisPlan& axis, int64_t i) {
    std::vector<int64_t> idx(axis.window);
    for (int64_t k = 0; k < axis.window; ++k) idx[k] = reflect_index(axis.window_start(i) + k, axis.length);
    return idx;
  };
  std::vector<std::vector<int64_t>> col_src(cols.count());
  for (int64_t j = 0; j < cols.count(); ++j) col_src[j] = window_indices(cols, j);

  // Blending accumulator for one band of tile rows, RGB in the unit interval.
  const size_t row_stride = static_cast<size_t>(W) * 3;
  std::vector<float> acc(static_cast<size_t>(rows.kept) * row_stride, 0.f);
  int64_t acc_begin = 0;  // image row held in acc's first row

  const size_t plane = static_cast<size_t>(wh * ww);
  std::vector<float> net_input(static_cast<size_t>(batch) * 3 * plane);
  const int64_t total_tiles = plan.tiles();
  int64_t done_tiles = 0;

  auto finalize_rows = [&](int64_t from, int64_t to) {
    for (int64_t y = from; y < to; ++y) {
      const float* a = &acc[(y - acc_begin) * row_stride];
      const T* src = input.data + y * row_stride;
      T* dst = output.data + y * row_stride;
      for (int64_t x = 0; x < W; ++x) {
        std::array<float, 3> s, c;
        for (int ch = 0; ch < 3; ++ch) {
          s[ch] = std::min(std::max(a[x * 3 + ch], 0.f), 1.f);
          c[ch] = static_cast<float>(src[x * 3 + ch]) / PixelCodec<T>::kMax;
        }
        if (post.preserve_colors) {
          // Luminance transfer in YCbCr (BT.601): keep the input's Cb/Cr, take the stylized Y.
          // Changing only Y moves R, G and B by the same amount.
          const float dy = (0.299f * s[0] + 0.587f * s[1] + 0.114f * s[2]) - (0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2]);
          for (int ch = 0; ch < 3; ++ch) s[ch] = c[ch] + dy;
        }
        for (int ch = 0; ch < 3; ++ch) dst[x * 3 + ch] = from_unit<T>(post.strength * s[ch] + (1.f - post.strength) * c[ch]);
      }
    }
  };

  for (int64_t ty = 0; ty < rows.count(); ++ty) {
    const auto row_src = window_indices(rows, ty);
    const int64_t row0 = rows.starts[ty];
    const int64_t row_end = std::min(row0 + rows.kept, H);
    for (int64_t tx0 = 0; tx0 < cols.count(); tx0 += batch) {
      const int64_t n = std::min(batch, cols.count() - tx0);
      // Cut the windows out of the image, straight into the network's N x 3 x H x W layout.
      for (int64_t b = 0; b < n; ++b) {
        const auto& cs = col_src[tx0 + b];
        float* dst = &net_input[b * 3 * plane];
        for (int64_t y = 0; y < wh; ++y) {
          const T* src_row = input.data + row_src[y] * row_stride;
          for (int c = 0; c < 3; ++c) {
            float* d = dst + encoder.net_channel(c) * plane + y * ww;
            for (int64_t x = 0; x < ww; ++x) d[x] = encoder.encode(c, src_row[cs[x] * 3 + c]);
          }
        }
      }
      // A model with a fixed batch size gets its batch filled up (the extra tiles are ignored).
      const int64_t run_n = fixed_batch > 0 ? fixed_batch : n;
      const std::vector<float> out = session.run(net_input, run_n, wh, ww);
      // Blend each tile's kept span into the band.
      for (int64_t b = 0; b < n; ++b) {
        const int64_t tx = tx0 + b;
        const int64_t col0 = cols.starts[tx];
        const int64_t col_end = std::min(col0 + cols.kept, W);
        const float* o = &out[b * 3 * plane];
        const std::vector<float>& wx = cols.weights[tx];
        for (int64_t y = row0; y < row_end; ++y) {
          const float wy = rows.weights[ty][y - row0];
          float* a = &acc[(y - acc_begin) * row_stride];
          const size_t oy = static_cast<size_t>(y - row0 + rows.halo) * ww + cols.halo;
          for (int c = 0; c < 3; ++c) {
            const float* oc = o + encoder.net_channel(c) * plane + oy;
            const float sc = out_scale[c], off = out_offset[c];
            for (int64_t x = col0; x < col_end; ++x) {
              const float w = wy * wx[x - col0];
              a[x * 3 + c] += w * (oc[x - col0] * sc + off);
            }
          }
        }
      }
      done_tiles += n;
      if (progress && !progress(done_tiles, total_tiles)) throw Cancelled("stylization cancelled");
    }
    // Rows above the next tile row are complete: write them out and slide the band down.
    const int64_t next_begin = ty + 1 < rows.count() ? rows.starts[ty + 1] : H;
    finalize_rows(acc_begin, next_begin);
    const int64_t carried = std::max<int64_t>(row_end - next_begin, 0);
    if (carried > 0)
      std::memmove(acc.data(), &acc[(next_begin - acc_begin) * row_stride], carried * row_stride * sizeof(float));
    std::fill(acc.begin() + carried * row_stride, acc.end(), 0.f);
    acc_begin = next_begin;
  }
}

template void run_tiled<uint8_t>(InferenceSession&, ImageView<const uint8_t>, ImageView<uint8_t>, const TileOptions&,
                                 const PostOptions&, const ProgressFn&);
template void run_tiled<uint16_t>(InferenceSession&, ImageView<const uint16_t>, ImageView<uint16_t>, const TileOptions&,
                                  const PostOptions&, const ProgressFn&);
template void run_tiled<float>(InferenceSession&, ImageView<const float>, ImageView<float>, const TileOptions&,
                               const PostOptions&, const ProgressFn&);

}  // namespace deepshop
