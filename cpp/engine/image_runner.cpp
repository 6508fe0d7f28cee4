#include "engine/image_runner.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <stdexcept>

#include "engine/colour_transfer.h"
#include "engine/errors.h"
#include "kernels/guided_upsample.h"
#include "kernels/parallel.h"
#include "kernels/resample.h"

namespace deepshop {

void check_image_model(const ModelInfo& model) {
  const auto in = model.inputs_with(Role::image);
  const auto out = model.outputs_with(Role::image);
  // A statistics graph's tile mask is the engine's to supply.
  const bool statistics = statistics_layout(model).has_value();
  const auto masks = statistics ? std::vector<const TensorSpec*>{} : model.inputs_with(Role::tile_mask);
  if (!masks.empty())
    throw ModelError(model.path + ": the model has a tile_mask input '" + masks[0]->name + "' but no metadata " +
                     "deepshop.statistics saying what it measures");
  const std::string why = "; the image path runs models with one 3-channel image input and one 3-channel image output "
                          "(other models: deepshop_native.models.open_model)";
  auto rgb = [](const TensorSpec* t) { return t->channels() == 3 || t->channels() < 0; };
  auto unexpected = [&](const char* kind, const TensorSpec* t) {
    throw ModelError(model.path + ": unexpected " + kind + " '" + t->name + "' of shape " + shape_string(t->shape) + why);
  };
  if (in.size() == 1 && !rgb(in[0])) unexpected("input", in[0]);
  if (out.size() == 1 && !rgb(out[0])) unexpected("output", out[0]);
  if (in.size() != 1 || out.size() != 1)
    throw ModelError(model.path + ": the model has " + std::to_string(in.size()) + " image inputs and " +
                     std::to_string(out.size()) + " image outputs" + why);
}

void check_aux_inputs(const ModelInfo& model, const TensorViews& aux) {
  const auto layout = statistics_layout(model);
  std::set<std::string> engine_supplied;
  if (layout) engine_supplied = {layout->mean_input, layout->var_input, layout->mix_input};
  for (const TensorSpec* t : model.inputs_with(Role::aux))
    if (!engine_supplied.count(t->name) && !aux.count(t->name))
      throw std::invalid_argument(model.path + ": aux input '" + t->name + "' was not given (aux=...)");
  for (const auto& [name, view] : aux) {
    const TensorSpec* t = model.find_input(name);
    if (!t || t->role != Role::aux || engine_supplied.count(name))
      throw std::invalid_argument(model.path + ": '" + name + "' is not an aux input of the model");
  }
}

RunPlan plan_run(const ModelInfo& model, int64_t height, int64_t width, const TileOptions& requested) {
  RunPlan p;
  // Planned with the options asked for; a statistics mode that runs plans its own windows.
  p.tiles = plan_tiles(model.geometry(), height, width, requested);
  p.statistics = resolve_statistics_mode(model, requested, p.tiles.tiles());
  p.options = statistics_tile_options(model, requested, p.statistics);
  if (p.statistics != StatisticsMode::off) p.tiles = plan_tiles(model.geometry(), height, width, p.options);
  const auto layout = statistics_layout(model);
  p.passes = layout ? statistics_passes(p.statistics, *layout) : 1;
  p.harmonize = p.options.harmonize > 0 && model.instance_norm && p.statistics == StatisticsMode::off && p.tiles.tiles() > 1;
  return p;
}

int64_t default_tile(const InferenceSession& session) {
  return default_tile(session.provider(), session.precision(), statistics_layout(session.model()).has_value());
}

int64_t default_tile_area(const InferenceSession& session) {
  if (session.provider() != kOpenVinoDirectProvider) return 0;
  const int64_t side = default_tile(session);
  return side * side;
}

int64_t whole_area(const InferenceSession& session) {
  if (session.provider() != kOpenVinoDirectProvider) return 0;
  return openvino_whole_area(session.precision(), statistics_layout(session.model()).has_value());
}

std::pair<int64_t, int64_t> working_shape(int64_t height, int64_t width, int64_t working_size) {
  if (working_size <= 0 || std::max(height, width) <= working_size) return {height, width};
  const double scale = static_cast<double>(working_size) / static_cast<double>(std::max(height, width));
  return {std::max<int64_t>(1, std::llround(height * scale)), std::max<int64_t>(1, std::llround(width * scale))};
}

namespace {

// The image path at a working size (PostOptions::working_size): the photo area-downscaled, run
// there, and the result guided-upsampled to full size with the photo's luma (its edges and
// texture; the colours are the painting's), then blended with the photo as the sink would.
template <typename T>
void run_at_working_size(const InferenceSession& session, ImageView<const T> input, ImageView<T> output,
                         const TileOptions& options, const PostOptions& post, const TensorViews& aux,
                         const ProgressFn& progress, const PackedStatistics* given) {
  const int64_t H = input.height, W = input.width;
  const auto [h, w] = working_shape(H, W, post.working_size);
  const int threads = kernels::resolve_threads(options.pixel_threads);
  std::vector<float> small(static_cast<size_t>(h * w * 3)), styled(small.size());
  kernels::area_downscale<T>(input.data, H, W, 3, 1.f / PixelCodec<T>::kMax, small.data(), h, w, threads);
  PostOptions plain;
  plain.working_size = 0;
  run_image<float>(session, ImageView<const float>{small.data(), h, w, 3}, ImageView<float>{styled.data(), h, w, 3},
                   options, plain, aux, progress, given);
  std::vector<float> guide(static_cast<size_t>(h * w));
  for (int64_t i = 0; i < h * w; ++i) guide[i] = bt601_luma(&small[i * 3]);
  const kernels::GuidedCoefficients g =
      kernels::guided_coefficients(guide.data(), styled.data(), h, w, 3, post.guided_radius, post.guided_eps, threads);
  // Full size: the coefficients interpolated on pixel centres, applied to the photo's luma.
  std::vector<int64_t> col0(static_cast<size_t>(W));
  std::vector<float> colt(static_cast<size_t>(W));
  for (int64_t x = 0; x < W; ++x) kernels::bilinear_position(x, w, W, col0[x], colt[x]);
  kernels::parallel_parts(H, threads, [&](int, int64_t begin, int64_t end) {
    for (int64_t y = begin; y < end; ++y) {
      int64_t y0;
      float ty;
      kernels::bilinear_position(y, h, H, y0, ty);
      const int64_t y1 = std::min(y0 + 1, h - 1);
      const T* src = input.data + y * W * 3;
      T* dst = output.data + y * W * 3;
      for (int64_t x = 0; x < W; ++x) {
        const int64_t x0 = col0[x], x1 = std::min(x0 + 1, w - 1);
        const float tx = colt[x];
        std::array<float, 3> unit;
        for (int ch = 0; ch < 3; ++ch) unit[ch] = static_cast<float>(src[x * 3 + ch]) / PixelCodec<T>::kMax;
        const float luma = bt601_luma(unit.data());
        std::array<float, 3> q;
        for (int ch = 0; ch < 3; ++ch) {
          auto at = [&](const std::vector<float>& m, int64_t yy, int64_t xx) { return m[(yy * w + xx) * 3 + ch]; };
          auto bilerp = [&](const std::vector<float>& m) {
            const float top = (1.f - tx) * at(m, y0, x0) + tx * at(m, y0, x1);
            const float bottom = (1.f - tx) * at(m, y1, x0) + tx * at(m, y1, x1);
            return (1.f - ty) * top + ty * bottom;
          };
          q[ch] = bilerp(g.a) * luma + bilerp(g.b);
        }
        finish_pixel<T>(q, src + x * 3, dst + x * 3, post);
      }
    }
  });
}

}  // namespace

template <typename T>
void run_image(const InferenceSession& session, ImageView<const T> input, ImageView<T> output,
               const TileOptions& options, const PostOptions& post, const TensorViews& aux, const ProgressFn& progress,
               const PackedStatistics* given) {
  const ModelInfo& model = session.model();
  check_image_model(model);
  check_aux_inputs(model, aux);
  if (input.channels != 3 || output.channels != 3) throw std::invalid_argument("images must have 3 channels (RGB)");
  if (output.height != input.height || output.width != input.width)
    throw std::invalid_argument("output buffer must match the input's size");
  if (working_shape(input.height, input.width, post.working_size) != std::make_pair(input.height, input.width))
    return run_at_working_size<T>(session, input, output, options, post, aux, progress, given);
  const TilingGeometry geometry = model.geometry();
  const NetworkFn network = [&session](const TensorViews& in, const std::vector<std::string>& out) {
    return session.run(in, out);
  };

  // Statistics graphs: the whole image's statistics measured first (thumbnail or exact mode), or
  // each tile its own (mix 0: exactly the original network) when off.
  const auto layout = statistics_layout(model);
  RunPlan plan = plan_run(model, input.height, input.width, options);
  StatisticsInputs statistics;
  if (given) {
    // Given statistics: every tile (a single one too) normalised with them, windows as thumbnail mode's.
    if (!layout) throw ModelError(model.path + ": statistics were given, but the model is no global-statistics graph");
    if (given->mean.size() != static_cast<size_t>(layout->total_channels) || given->var.size() != given->mean.size())
      throw std::invalid_argument("statistics: expected " + std::to_string(layout->total_channels) +
                                  " means and variances, got " + std::to_string(given->mean.size()) + " and " +
                                  std::to_string(given->var.size()));
    plan.options = statistics_tile_options(model, options, StatisticsMode::thumbnail);
    plan.tiles = plan_tiles(model.geometry(), input.height, input.width, plan.options);
    plan.statistics = StatisticsMode::thumbnail;
    plan.passes = 1;
    plan.harmonize = false;
    statistics.stats = *given;
    statistics.mix = 1.f;
  } else if (layout) {
    statistics = statistics_inputs<T>(network, model, *layout, input, plan.options, plan.statistics, aux, progress);
  }
  const TileOptions& tiles = plan.options;

  // Low-frequency colour reference for instance-norm models cut into several tiles, unless they
  // run with the whole image's statistics.  The thumbnail runs with the same aux inputs.
  std::optional<ColourReference> reference;
  if (plan.harmonize) {
    reference = make_colour_reference<T>(input, tiles.harmonize, [&](ImageView<const float> in, ImageView<float> out) {
      TileOptions whole;
      whole.tile = 0;
      whole.harmonize = 0;
      whole.pixel_threads = tiles.pixel_threads;
      run_image<float>(session, in, out, whole, PostOptions{}, aux, nullptr);
    }, kernels::resolve_threads(tiles.pixel_threads));
  }
  const ImageSource<T> source(input, model.pixels);
  ImageSink<T> sink(output, model.pixels, input, post, reference ? &*reference : nullptr, model.path);
  TiledCall call;
  call.spatial_inputs = {{model.inputs_with(Role::image)[0]->name, &source}};
  call.spatial_outputs = {{model.outputs_with(Role::image)[0]->name, &sink}};
  call.aux_inputs = aux;
  if (layout) statistics.attach(*layout, call);
  run_tiled(network, geometry, plan.tiles, tiles, call, pass_progress(progress, plan.passes - 1, plan.passes));
}

template <typename T>
PackedStatistics image_statistics(const InferenceSession& session, ImageView<const T> input, const TileOptions& options,
                                  StatisticsMode mode, const TensorViews& aux, const ProgressFn& progress) {
  const ModelInfo& model = session.model();
  check_aux_inputs(model, aux);
  const auto layout = statistics_layout(model);
  if (!layout) throw ModelError(model.path + ": not a global-statistics graph (no deepshop.statistics): it has no "
                                             "statistics to measure");
  if (mode != StatisticsMode::thumbnail && mode != StatisticsMode::exact)
    throw std::invalid_argument("statistics: measured in thumbnail or exact mode only");
  const NetworkFn network = [&session](const TensorViews& in, const std::vector<std::string>& out) {
    return session.run(in, out);
  };
  return measure_statistics<T>(network, model, *layout, input, statistics_tile_options(model, options, mode), mode, aux,
                               progress);
}

#define DEEPSHOP_IMAGE_RUNNER(T)                                                                                    \
  template void run_image<T>(const InferenceSession&, ImageView<const T>, ImageView<T>, const TileOptions&,          \
                             const PostOptions&, const TensorViews&, const ProgressFn&, const PackedStatistics*);  \
  template PackedStatistics image_statistics<T>(const InferenceSession&, ImageView<const T>, const TileOptions&,     \
                                                StatisticsMode, const TensorViews&, const ProgressFn&);
DEEPSHOP_IMAGE_RUNNER(uint8_t)
DEEPSHOP_IMAGE_RUNNER(uint16_t)
DEEPSHOP_IMAGE_RUNNER(float)
#undef DEEPSHOP_IMAGE_RUNNER

}  // namespace deepshop
