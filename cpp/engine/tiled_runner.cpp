#include "engine/tiled_runner.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "engine/errors.h"
#include "engine/limits.h"
#include "kernels/parallel.h"

namespace deepshop {
namespace {

// Source pixel indices of every window of an axis, image borders reflected.
std::vector<int64_t> window_indices(const AxisPlan& axis, int64_t i) {
  std::vector<int64_t> idx(axis.window);
  for (int64_t k = 0; k < axis.window; ++k) idx[k] = reflect_index(axis.window_start(i) + k, axis.length);
  return idx;
}

// acc += wy[y] * wx[x] * kept over kh x kw pixels of C channels.  kChannels > 0 fixes C at compile
// time (RGB, one channel: the inner loop unrolls); 0 takes it from `channels`.
template <int kChannels>
void blend_rows(int64_t channels, float* acc, size_t acc_stride, const float* kept, int64_t kh, int64_t kw,
                const float* wy, const float* wx) {
  const int64_t C = kChannels > 0 ? kChannels : channels;
  for (int64_t y = 0; y < kh; ++y) {
    float* a = acc + y * acc_stride;
    const float* k = kept + y * kw * C;
    for (int64_t x = 0; x < kw; ++x) {
      const float w = wy[y] * wx[x];
      for (int64_t c = 0; c < C; ++c) a[x * C + c] += w * k[x * C + c];
    }
  }
}

void blend(int64_t C, float* acc, size_t acc_stride, const float* kept, int64_t kh, int64_t kw, const float* wy,
           const float* wx) {
  if (C == 3) return blend_rows<3>(C, acc, acc_stride, kept, kh, kw, wy, wx);
  if (C == 1) return blend_rows<1>(C, acc, acc_stride, kept, kh, kw, wy, wx);
  blend_rows<0>(C, acc, acc_stride, kept, kh, kw, wy, wx);
}

// Per spatial output: its band accumulator and one tile's kept span.
struct OutputBand {
  std::string name;
  TileSink* sink = nullptr;
  int64_t channels = 0;
  size_t row_stride = 0;  // width x channels
  std::vector<float> acc;
  std::vector<float> kept;
};

}  // namespace

std::map<std::string, std::vector<Tensor>> run_tiled(const NetworkFn& network, const TilingGeometry& model,
                                                     int64_t height, int64_t width, const TileOptions& options,
                                                     const TiledCall& call, const ProgressFn& progress) {
  return run_tiled(network, model, plan_tiles(model, height, width, options), options, call, progress);
}

std::map<std::string, std::vector<Tensor>> run_tiled(const NetworkFn& network, const TilingGeometry& model,
                                                     const TilingSummary& plan, const TileOptions& options,
                                                     const TiledCall& call, const ProgressFn& progress) {
  const int64_t H = plan.rows.length, W = plan.cols.length;
  const AxisPlan& rows = plan.rows;
  const AxisPlan& cols = plan.cols;
  const int64_t wh = rows.window, ww = cols.window;
  const int64_t batch = model.fixed_batch > 0 ? model.fixed_batch : std::min(options.batch, cols.count());
  const size_t plane = static_cast<size_t>(checked_mul(wh, ww, "tile window"));
  const int threads = kernels::resolve_threads(options.pixel_threads);

  // Network input buffers, N x C x window for every spatial input.
  std::vector<std::vector<float>> net_inputs(call.spatial_inputs.size());
  for (size_t i = 0; i < call.spatial_inputs.size(); ++i)
    net_inputs[i].resize(static_cast<size_t>(
        checked_mul(checked_mul(batch, call.spatial_inputs[i].second->channels(), "tile batch"), plane, "tile batch")));

  std::vector<float> mask_input;
  if (!call.tile_mask_input.empty())
    mask_input.resize(static_cast<size_t>(checked_mul(batch, plane, "tile batch")));

  // One tile (an image run whole): its kept span is the image, its weights are all one, and its
  // pixels are laid out as the accumulator's rows: it is written there directly, with no tile
  // buffer and no blend pass.
  const bool one_tile = plan.tiles() == 1;
  std::vector<OutputBand> bands(call.spatial_outputs.size());
  for (size_t i = 0; i < bands.size(); ++i) {
    OutputBand& b = bands[i];
    b.name = call.spatial_outputs[i].first;
    b.sink = call.spatial_outputs[i].second;
    b.channels = b.sink->channels();
    b.row_stride = static_cast<size_t>(checked_mul(W, b.channels, "output row"));
    b.acc.assign(static_cast<size_t>(checked_mul(rows.kept, b.row_stride, "output band")), 0.f);
    if (!one_tile)
      b.kept.resize(static_cast<size_t>(checked_mul(checked_mul(rows.kept, cols.kept, "tile"), b.channels, "tile")));
  }
  std::vector<std::string> wanted;
  for (const auto& b : bands) wanted.push_back(b.name);
  for (const auto& name : call.whole_outputs) wanted.push_back(name);
  std::map<std::string, std::vector<Tensor>> whole;

  std::vector<std::vector<int64_t>> col_src(cols.count());
  for (int64_t j = 0; j < cols.count(); ++j) col_src[j] = window_indices(cols, j);
  int64_t acc_begin = 0;  // image row held in the accumulators' first row
  const int64_t total_tiles = plan.tiles();
  int64_t done_tiles = 0;

  for (int64_t ty = 0; ty < rows.count(); ++ty) {
    const auto row_src = window_indices(rows, ty);
    const int64_t row0 = rows.starts[ty];
    const int64_t row_end = std::min(row0 + rows.kept, H);
    for (int64_t tx0 = 0; tx0 < cols.count(); tx0 += batch) {
      const int64_t n = std::min(batch, cols.count() - tx0);
      // A model with a fixed batch size gets its batch filled up (the extra tiles are ignored).
      const int64_t run_n = model.fixed_batch > 0 ? model.fixed_batch : n;
      TensorViews inputs = call.aux_inputs;
      for (size_t i = 0; i < call.spatial_inputs.size(); ++i) {
        const auto& [name, source] = call.spatial_inputs[i];
        const int64_t C = source->channels();
        // Cut the windows out of the image, straight into the network's N x C x H x W layout.
        for (int64_t b = 0; b < n; ++b) {
          const int64_t col0 = cols.starts[tx0 + b];
          const int64_t kept_col1 = cols.halo + std::min(col0 + cols.kept, W) - col0;
          float* dst = &net_inputs[i][b * C * plane];
          kernels::for_row_ranges(threads, wh, ww * C, [&](int64_t y0, int64_t y1) {
            // Rows [y0, y1) of the window: a window of their own, written at their place in the planes.
            const std::vector<int64_t> part_rows(row_src.begin() + y0, row_src.begin() + y1);
            const auto clip = [&](int64_t r) { return std::min(std::max(r - y0, int64_t{0}), y1 - y0); };
            const TileWindow window{part_rows, col_src[tx0 + b], clip(rows.halo), clip(rows.halo + row_end - row0),
                                    cols.halo, kept_col1};
            source->cut(window, dst + y0 * ww, plane);
          });
        }
        inputs[name] = TensorView{net_inputs[i].data(), {run_n, C, wh, ww}};
      }
      if (!mask_input.empty()) {
        std::fill(mask_input.begin(), mask_input.end(), 0.f);
        for (int64_t b = 0; b < n; ++b) {
          const int64_t tx = tx0 + b;
          const std::vector<float>& wy = rows.weights[ty];
          const std::vector<float>& wx = cols.weights[tx];
          const int64_t kh = row_end - row0, kw = std::min(cols.starts[tx] + cols.kept, W) - cols.starts[tx];
          for (int64_t y = 0; y < kh; ++y) {
            float* m = &mask_input[b * plane + static_cast<size_t>(rows.kept_offset(ty) + y) * ww + cols.kept_offset(tx)];
            for (int64_t x = 0; x < kw; ++x) m[x] = wy[y] * wx[x];
          }
        }
        inputs[call.tile_mask_input] = TensorView{mask_input.data(), {run_n, 1, wh, ww}};
      }
      Tensors out = network(inputs, wanted);

      for (OutputBand& band : bands) {
        const Tensor& t = out.at(band.name);
        const int64_t C = band.channels;
        if (t.shape != std::vector<int64_t>{run_n, C, wh, ww})
          throw ModelError(model.model + ": for inputs of " + std::to_string(run_n) + "x?x" + std::to_string(wh) + "x" +
                           std::to_string(ww) + " the model gave an output of " + shape_string(t.shape) + " ('" + band.name + "')" +
                           "; deepshop needs " + std::to_string(run_n) + "x" + std::to_string(C) + "x" +
                           std::to_string(wh) + "x" + std::to_string(ww) +
                           " (outputs of the input's size: is the stride multiple right?)");
        for (int64_t b = 0; b < n; ++b) {
          const int64_t tx = tx0 + b;
          const int64_t col0 = cols.starts[tx];
          const int64_t kw = std::min(col0 + cols.kept, W) - col0, kh = row_end - row0;
          const float* o = &t.data[b * C * plane + static_cast<size_t>(rows.kept_offset(ty)) * ww + cols.kept_offset(tx)];
          float* kept = one_tile ? band.acc.data() : band.kept.data();
          kernels::for_row_ranges(threads, kh, kw * C, [&](int64_t y0, int64_t y1) {
            band.sink->take_tile(o + y0 * ww, plane, ww, y1 - y0, kw, row0 + y0, col0, kept + y0 * kw * C);
          });
          band.sink->finish_tile(kept, kh, kw, row0, col0);
          if (one_tile) continue;
          kernels::for_row_ranges(threads, kh, kw * C, [&](int64_t y0, int64_t y1) {
            blend(C, &band.acc[(row0 - acc_begin + y0) * band.row_stride + col0 * C], band.row_stride, kept + y0 * kw * C,
                  y1 - y0, kw, rows.weights[ty].data() + y0, cols.weights[tx].data());
          });
        }
      }
      for (const auto& name : call.whole_outputs) whole[name].push_back(std::move(out.at(name)));
      done_tiles += n;
      if (progress && !progress(done_tiles, total_tiles)) throw Cancelled("run cancelled");
    }
    // Rows above the next tile row are complete: finish them and slide the band down.
    const int64_t next_begin = ty + 1 < rows.count() ? rows.starts[ty + 1] : H;
    const int64_t carried = std::max<int64_t>(row_end - next_begin, 0);
    for (OutputBand& band : bands) {
      kernels::for_row_ranges(threads, next_begin - acc_begin, static_cast<int64_t>(band.row_stride), [&](int64_t y0, int64_t y1) {
        band.sink->finish_rows(&band.acc[y0 * band.row_stride], acc_begin + y0, acc_begin + y1);
      });
      if (carried > 0)
        std::memmove(band.acc.data(), &band.acc[(next_begin - acc_begin) * band.row_stride],
                     carried * band.row_stride * sizeof(float));
      std::fill(band.acc.begin() + carried * band.row_stride, band.acc.end(), 0.f);
    }
    acc_begin = next_begin;
  }
  return whole;
}

}  // namespace deepshop
