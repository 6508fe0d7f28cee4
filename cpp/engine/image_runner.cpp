#include "engine/image_runner.h"

#include <optional>
#include <stdexcept>

#include "engine/errors.h"
#include "engine/statistics_mode.h"

namespace deepshop {

void check_image_model(const ModelInfo& model) {
  const auto in = model.inputs_with(Role::image);
  const auto out = model.outputs_with(Role::image);
  // A statistics graph's aux inputs and tile mask are the engine's to supply.
  const bool statistics = statistics_layout(model).has_value();
  const auto aux = statistics ? std::vector<const TensorSpec*>{} : model.inputs_with(Role::aux);
  const auto masks = statistics ? std::vector<const TensorSpec*>{} : model.inputs_with(Role::tile_mask);
  if (!masks.empty())
    throw ModelError(model.path + ": the model has a tile_mask input '" + masks[0]->name + "' but no metadata " +
                     "deepshop.statistics saying what it measures");
  const std::string why = "; the image path runs models with one 3-channel image input, one 3-channel image output and "
                          "no aux inputs (other models: deepshop_native.models.open_model)";
  auto rgb = [](const TensorSpec* t) { return t->channels() == 3 || t->channels() < 0; };
  auto unexpected = [&](const char* kind, const TensorSpec* t) {
    std::string shape;
    for (size_t i = 0; i < t->shape.size(); ++i) shape += (i ? ", " : "") + (t->shape[i] > 0 ? std::to_string(t->shape[i]) : "?");
    throw ModelError(model.path + ": unexpected " + kind + " '" + t->name + "' of shape [" + shape + "]" + why);
  };
  if (!aux.empty()) unexpected("aux input", aux[0]);
  if (in.size() == 1 && !rgb(in[0])) unexpected("input", in[0]);
  if (out.size() == 1 && !rgb(out[0])) unexpected("output", out[0]);
  if (in.size() != 1 || out.size() != 1)
    throw ModelError(model.path + ": the model has " + std::to_string(in.size()) + " image inputs and " +
                     std::to_string(out.size()) + " image outputs" + why);
}

template <typename T>
void run_image(const InferenceSession& session, ImageView<const T> input, ImageView<T> output,
               const TileOptions& options, const PostOptions& post, const ProgressFn& progress) {
  const ModelInfo& model = session.model();
  check_image_model(model);
  if (input.channels != 3 || output.channels != 3) throw std::invalid_argument("images must have 3 channels (RGB)");
  if (output.height != input.height || output.width != input.width)
    throw std::invalid_argument("output buffer must match the input's size");
  const TilingGeometry geometry = model.geometry();
  const NetworkFn network = [&session](const TensorViews& in, const std::vector<std::string>& out) {
    return session.run(in, out);
  };

  // Statistics graphs: the whole image's statistics measured first (thumbnail or exact mode), or
  // each tile its own (mix 0: exactly the original network) when off.
  const auto layout = statistics_layout(model);
  const StatisticsMode mode = resolve_statistics_mode(model, options, input.height, input.width);
  const TileOptions tiles = statistics_tile_options(model, options, mode);
  StatisticsInputs statistics;
  int64_t passes = 1;
  if (layout) {
    if (mode == StatisticsMode::off) {
      statistics.stats.mean.assign(static_cast<size_t>(layout->total_channels), 0.f);
      statistics.stats.var.assign(static_cast<size_t>(layout->total_channels), 1.f);
    } else {
      passes = statistics_passes(mode, *layout);
      statistics.stats = measure_statistics<T>(network, model, *layout, input, tiles, mode, progress);
      statistics.mix = 1.f;
    }
  }

  // Low-frequency colour reference for instance-norm models cut into several tiles, unless they
  // run with the whole image's statistics.
  std::optional<ColourReference> reference;
  if (tiles.harmonize > 0 && model.instance_norm && mode == StatisticsMode::off &&
      plan_tiles(geometry, input.height, input.width, tiles).tiles() > 1) {
    reference = make_colour_reference<T>(input, tiles.harmonize, [&](ImageView<const float> in, ImageView<float> out) {
      TileOptions whole;
      whole.tile = 0;
      whole.harmonize = 0;
      whole.pixel_threads = tiles.pixel_threads;
      run_image<float>(session, in, out, whole, PostOptions{}, nullptr);
    });
  }
  const ImageSource<T> source(input, model.pixels);
  ImageSink<T> sink(output, model.pixels, input, post, reference ? &*reference : nullptr, model.path);
  TiledCall call;
  call.spatial_inputs = {{model.inputs_with(Role::image)[0]->name, &source}};
  call.spatial_outputs = {{model.outputs_with(Role::image)[0]->name, &sink}};
  if (layout) statistics.attach(*layout, call);
  run_tiled(network, geometry, input.height, input.width, tiles, call, pass_progress(progress, passes - 1, passes));
}

template void run_image<uint8_t>(const InferenceSession&, ImageView<const uint8_t>, ImageView<uint8_t>,
                                 const TileOptions&, const PostOptions&, const ProgressFn&);
template void run_image<uint16_t>(const InferenceSession&, ImageView<const uint16_t>, ImageView<uint16_t>,
                                  const TileOptions&, const PostOptions&, const ProgressFn&);
template void run_image<float>(const InferenceSession&, ImageView<const float>, ImageView<float>, const TileOptions&,
                               const PostOptions&, const ProgressFn&);

}  // namespace deepshop
