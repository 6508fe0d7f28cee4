#include "engine/tiled_runner.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <optional>
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

// The stylized thumbnail that tiles take their low-frequency colour from (see harmonize).
struct ColourReference {
  int64_t factor = 0;         // full-resolution pixels per thumbnail pixel, per axis
  int64_t height = 0, width = 0;
  std::vector<float> rgb;     // height x width x 3, unit interval
  int64_t radius = 0;         // box-blur radius of the correction, in thumbnail pixels
};

template <typename T>
ColourReference stylize_thumbnail(InferenceSession& session, ImageView<const T> input, int64_t side) {
  ColourReference ref;
  const int64_t H = input.height, W = input.width;
  ref.factor = std::max<int64_t>(1, (std::max(H, W) + side - 1) / side);
  const int64_t f = ref.factor;
  ref.height = (H + f - 1) / f;
  ref.width = (W + f - 1) / f;
  // Box (area) average: every thumbnail pixel is the mean of the pixels it covers.
  std::vector<float> thumb(static_cast<size_t>(ref.height * ref.width * 3), 0.f);
  std::vector<float> count(static_cast<size_t>(ref.height * ref.width), 0.f);
  for (int64_t y = 0; y < H; ++y) {
    const T* row = input.data + y * W * 3;
    float* t = &thumb[(y / f) * ref.width * 3];
    float* n = &count[(y / f) * ref.width];
    for (int64_t x = 0; x < W; ++x) {
      for (int c = 0; c < 3; ++c) t[(x / f) * 3 + c] += static_cast<float>(row[x * 3 + c]);
      n[x / f] += 1.f;
    }
  }
  for (size_t i = 0; i < count.size(); ++i)
    for (int c = 0; c < 3; ++c) thumb[i * 3 + c] /= count[i] * PixelCodec<T>::kMax;
  ref.rgb.assign(thumb.size(), 0.f);
  TileOptions whole;
  whole.tile = 0;
  whole.harmonize = 0;
  run_tiled<float>(session, ImageView<const float>{thumb.data(), ref.height, ref.width},
                   ImageView<float>{ref.rgb.data(), ref.height, ref.width}, whole, PostOptions{}, nullptr);
  // Colour is taken from the thumbnail at scales above ~1/16 of the image: finer structure (the
  // strokes) stays the tile's own, since the thumbnail renders it at another scale.
  ref.radius = std::max<int64_t>(1, std::max(ref.height, ref.width) / 32);
  return ref;
}

// Adds to `tile` (rows x cols x 3, unit RGB, at image offset y0, x0) the blurred difference
// between the reference and the tile's own colour at the reference's resolution.
void harmonize_tile(std::vector<float>& tile, int64_t rows, int64_t cols, int64_t y0, int64_t x0,
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

  // Low-frequency colour reference for instance-norm models cut into several tiles.
  std::optional<ColourReference> reference;
  if (options.harmonize > 0 && model.instance_norm && plan.tiles() > 1)
    reference = stylize_thumbnail(session, input, options.harmonize);
  std::vector<float> kept(static_cast<size_t>(rows.kept * cols.kept * 3));

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
      // Each tile's kept span, in RGB and the unit interval, harmonized, blended into the band.
      for (int64_t b = 0; b < n; ++b) {
        const int64_t tx = tx0 + b;
        const int64_t col0 = cols.starts[tx];
        const int64_t kw = std::min(col0 + cols.kept, W) - col0, kh = row_end - row0;
        const float* o = &out[b * 3 * plane];
        for (int64_t y = 0; y < kh; ++y) {
          const size_t oy = static_cast<size_t>(y + rows.halo) * ww + cols.halo;
          for (int c = 0; c < 3; ++c) {
            const float* oc = o + encoder.net_channel(c) * plane + oy;
            for (int64_t x = 0; x < kw; ++x) kept[(y * kw + x) * 3 + c] = oc[x] * out_scale[c] + out_offset[c];
          }
        }
        if (reference) harmonize_tile(kept, kh, kw, row0, col0, *reference);
        const std::vector<float>& wx = cols.weights[tx];
        for (int64_t y = 0; y < kh; ++y) {
          const float wy = rows.weights[ty][y];
          float* a = &acc[(row0 + y - acc_begin) * row_stride + col0 * 3];
          const float* k = &kept[y * kw * 3];
          for (int64_t x = 0; x < kw; ++x) {
            const float w = wy * wx[x];
            for (int c = 0; c < 3; ++c) a[x * 3 + c] += w * k[x * 3 + c];
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
