#include "engine/image_runner.h"

#include <optional>
#include <set>
#include <stdexcept>

#include "engine/errors.h"

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

template <typename T>
void run_image(const InferenceSession& session, ImageView<const T> input, ImageView<T> output,
               const TileOptions& options, const PostOptions& post, const TensorViews& aux, const ProgressFn& progress) {
  const ModelInfo& model = session.model();
  check_image_model(model);
  check_aux_inputs(model, aux);
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
  const RunPlan plan = plan_run(model, input.height, input.width, options);
  const TileOptions& tiles = plan.options;
  StatisticsInputs statistics;
  if (layout) statistics = statistics_inputs<T>(network, model, *layout, input, tiles, plan.statistics, aux, progress);

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
    });
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

template void run_image<uint8_t>(const InferenceSession&, ImageView<const uint8_t>, ImageView<uint8_t>,
                                 const TileOptions&, const PostOptions&, const TensorViews&, const ProgressFn&);
template void run_image<uint16_t>(const InferenceSession&, ImageView<const uint16_t>, ImageView<uint16_t>,
                                  const TileOptions&, const PostOptions&, const TensorViews&, const ProgressFn&);
template void run_image<float>(const InferenceSession&, ImageView<const float>, ImageView<float>, const TileOptions&,
                               const PostOptions&, const TensorViews&, const ProgressFn&);

}  // namespace deepshop
