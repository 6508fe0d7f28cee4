#include "engine/style_gram.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "engine/errors.h"
#include "engine/statistics_mode.h"
#include "engine/tile_stages.h"
#include "kernels/gram.h"

namespace deepshop {

int64_t style_window_halo(const ModelInfo& encoder) {
  const int64_t stride = std::max<int64_t>(1, encoder.stride_multiple);
  const int64_t radius = (encoder.receptive_field + 1) / 2;
  return (radius + stride - 1) / stride * stride;
}

StyleGram style_gram(const InferenceSession& encoder, ImageView<const float> style, int64_t window, bool exact,
                     int pixel_threads, const ProgressFn& progress) {
  const ModelInfo& m = encoder.model();
  const auto image_inputs = m.inputs_with(Role::image);
  const auto features = m.outputs_with(Role::features);
  if (image_inputs.size() != 1 || features.size() != 1)
    throw ModelError(m.path + ": a style encoder has one image input and one features output");
  const auto layout = statistics_layout(m);
  if (exact && !layout)
    throw ModelError(m.path + ": exact style statistics need an encoder exported as a global-statistics graph "
                              "(deepshop-export msgnet --statistics)");
  const int64_t stride = std::max<int64_t>(1, m.stride_multiple);
  const int64_t halo = style_window_halo(m);

  TileOptions tiles;
  tiles.tile = (window > 0 && std::max(style.height, style.width) > window) ? window : 0;
  tiles.halo = halo;
  tiles.overlap = 0;
  tiles.batch = 1;
  tiles.harmonize = 0;
  tiles.windows_inside = true;
  tiles.pixel_threads = pixel_threads;
  if (tiles.tile > 0 && tiles.tile - 2 * halo < 4 * stride)
    throw std::invalid_argument("style_tile: " + std::to_string(window) + " px leaves no room inside the encoder's " +
                                "halo of " + std::to_string(halo) + " px on each side; give at least " +
                                std::to_string(2 * halo + 4 * stride) + ", or 0 for the whole style image");
  const TilingSummary plan = plan_tiles(m.geometry(), style.height, style.width, tiles);
  const NetworkFn network = [&encoder](const TensorViews& in, const std::vector<std::string>& out) {
    return encoder.run(in, out);
  };
  // Exact: the whole style image's statistics, measured over the windows (one pass per layer);
  // otherwise each window its own (mix 0: the plain encoder).
  const bool measure = exact && plan.tiles() > 1;
  const int64_t passes = measure ? statistics_passes(StatisticsMode::exact, *layout) : 1;
  StatisticsInputs statistics;
  if (layout)
    statistics = statistics_inputs<float>(network, m, *layout, style, tiles,
                                          measure ? StatisticsMode::exact : StatisticsMode::off, {}, progress);

  const ImageSource<float> source(style, m.pixels);
  TiledCall call;
  call.spatial_inputs = {{image_inputs[0]->name, &source}};
  call.whole_outputs = {features[0]->name};
  if (layout) statistics.attach(*layout, call);
  auto out = run_tiled(network, m.geometry(), plan, tiles, call, pass_progress(progress, passes - 1, passes));
  const std::vector<Tensor>& per_tile = out.at(features[0]->name);
  if (static_cast<int64_t>(per_tile.size()) != plan.tiles())
    throw ModelError(m.path + ": the encoder gave " + std::to_string(per_tile.size()) + " feature maps for " +
                     std::to_string(plan.tiles()) + " windows");

  StyleGram result;
  std::vector<double> acc;
  int64_t positions = 0;
  for (int64_t ty = 0; ty < plan.rows.count(); ++ty) {
    for (int64_t tx = 0; tx < plan.cols.count(); ++tx) {
      const Tensor& f = per_tile[static_cast<size_t>(ty * plan.cols.count() + tx)];
      if (f.shape.size() != 4 || f.shape[0] != 1 || f.shape[2] * stride != plan.rows.window ||
          f.shape[3] * stride != plan.cols.window)
        throw ModelError(m.path + ": features of shape " + shape_string(f.shape) + " for a " +
                         std::to_string(plan.rows.window) + "x" + std::to_string(plan.cols.window) +
                         " window; expected 1/" + std::to_string(stride) + " of it");
      const int64_t C = f.shape[1], fh = f.shape[2], fw = f.shape[3];
      if (acc.empty()) {
        result.channels = C;
        acc.assign(static_cast<size_t>(C * C), 0.0);
      }
      // The tile's owned span, in its window's feature positions.
      const auto [y0, y1] = plan.rows.owned(ty);
      const auto [x0, x1] = plan.cols.owned(tx);
      const int64_t fy0 = (y0 - plan.rows.window_start(ty)) / stride, fy1 = fy0 + (y1 - y0 + stride - 1) / stride;
      const int64_t fx0 = (x0 - plan.cols.window_start(tx)) / stride, fx1 = fx0 + (x1 - x0 + stride - 1) / stride;
      kernels::FeatureView view;
      view.data = f.data.data() + fy0 * fw + fx0;
      view.channels = C;
      view.height = std::min(fy1, fh) - fy0;
      view.width = std::min(fx1, fw) - fx0;
      view.stride_c = fh * fw;
      view.stride_h = fw;
      view.stride_w = 1;
      kernels::gram_accumulate(view, nullptr, acc.data(), pixel_threads);
      positions += view.height * view.width;
    }
  }
  kernels::symmetrize_lower(acc.data(), result.channels);
  const double scale = 1.0 / (static_cast<double>(result.channels) * static_cast<double>(std::max<int64_t>(positions, 1)));
  result.gram.resize(acc.size());
  for (size_t i = 0; i < acc.size(); ++i) result.gram[i] = static_cast<float>(acc[i] * scale);
  return result;
}

}  // namespace deepshop
