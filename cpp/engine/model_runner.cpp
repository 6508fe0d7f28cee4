#include "engine/model_runner.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>

#include "engine/errors.h"
#include "engine/harmonize.h"
#include "engine/tile_stages.h"
#include "kernels/parallel.h"

namespace deepshop {

std::pair<int64_t, int64_t> check_model_inputs(const ModelInfo& m, const ModelInputs& inputs) {
  int64_t H = -1, W = -1;
  for (const TensorSpec* t : m.inputs_with(Role::image)) {
    const auto it = inputs.images.find(t->name);
    if (it == inputs.images.end())
      throw std::invalid_argument(m.path + ": image input '" + t->name + "' was not given (spatial=...)");
    const ImageView<const float>& a = it->second;
    if (H < 0) H = a.height, W = a.width;
    if (a.height != H || a.width != W)
      throw std::invalid_argument("spatial inputs differ in size: '" + t->name + "' is " + std::to_string(a.height) +
                                  "x" + std::to_string(a.width) + ", not " + std::to_string(H) + "x" + std::to_string(W));
    if (t->channels() > 0 && t->channels() != a.channels)
      throw std::invalid_argument("spatial input '" + t->name + "' has " + std::to_string(a.channels) +
                                  " channels; the model takes " + std::to_string(t->channels()));
  }
  for (const auto& [name, view] : inputs.images)
    if (!m.find_input(name) || m.find_input(name)->role != Role::image)
      throw std::invalid_argument(m.path + ": '" + name + "' is not an image input of the model");
  if (H < 0) throw std::invalid_argument(m.path + ": the model has no image input to tile");
  if (m.inputs_with(Role::tile_mask).size() > 1) throw ModelError(m.path + ": the model has more than one tile_mask input");
  for (const TensorSpec* t : m.inputs_with(Role::aux))
    if (!inputs.aux.count(t->name))
      throw std::invalid_argument(m.path + ": aux input '" + t->name + "' was not given (aux=...)");
  for (const auto& [name, view] : inputs.aux)
    if (!m.find_input(name) || m.find_input(name)->spatial())
      throw std::invalid_argument(m.path + ": '" + name + "' is not an aux input of the model");
  return {H, W};
}

std::vector<OutputRequest> request_outputs(const ModelInfo& m, const std::optional<std::vector<std::string>>& wanted,
                                           const TilingSummary& plan,
                                           const std::map<std::string, std::vector<uint8_t>>& palettes,
                                           const std::map<std::string, float>& temperatures) {
  if (wanted)
    for (const auto& name : *wanted)
      if (!m.find_output(name)) throw std::invalid_argument(m.path + ": '" + name + "' is not an output of the model");
  std::vector<OutputRequest> requests;
  for (const TensorSpec& t : m.outputs) {
    if (wanted && std::find(wanted->begin(), wanted->end(), t.name) == wanted->end()) continue;
    OutputRequest r;
    r.name = t.name;
    if (!t.spatial()) {
      requests.push_back(r);
      continue;
    }
    if (t.role == Role::features) {
      // Feature maps are returned as the network gave them, which is the image's only untiled.
      if (plan.tiles() > 1)
        throw std::invalid_argument(m.path + ": features output '" + t.name + "' is returned whole, for untiled " +
                                    "runs only; run with tile=0 (or a tile covering the image)");
      requests.push_back(r);
      continue;
    }
    if (t.channels() < 1)
      throw ModelError(m.path + ": " + role_name(t.role) + " output '" + t.name +
                       "' has no fixed channel count; the tiled runner needs one");
    r.channels = t.channels();
    if (t.role == Role::image) {
      r.kind = OutputKind::image;
    } else {
      r.kind = OutputKind::classes;
      if (const auto p = palettes.find(t.name); p != palettes.end()) {
        if (p->second.empty() || p->second.size() % 3 != 0)
          throw std::invalid_argument("palette for '" + t.name + "' must be a K x 3 uint8 array");
        r.palette = p->second;
      }
      if (const auto tt = temperatures.find(t.name); tt != temperatures.end()) r.temperature = tt->second;
    }
    requests.push_back(std::move(r));
  }
  return requests;
}

std::map<std::string, std::vector<Tensor>> run_model(const InferenceSession& session, const ModelInputs& inputs,
                                                     const std::vector<OutputRequest>& outputs, const OutputBuffers& buffers,
                                                     const TilingSummary& plan, const TileOptions& tiles,
                                                     const ProgressFn& progress) {
  const ModelInfo& m = session.model();
  const int64_t H = plan.rows.length, W = plan.cols.length;
  const NetworkFn network = [&session](const TensorViews& in, const std::vector<std::string>& out) {
    return session.run(in, out);
  };
  TiledCall call;
  call.aux_inputs = inputs.aux;
  std::vector<std::unique_ptr<ImageSource<float>>> sources;
  for (const TensorSpec* t : m.inputs_with(Role::image)) {
    sources.push_back(std::make_unique<ImageSource<float>>(inputs.images.at(t->name), m.pixels));
    call.spatial_inputs.emplace_back(t->name, sources.back().get());
  }
  // Tile masks are made by the runner from the tile plan.
  const auto masks = m.inputs_with(Role::tile_mask);
  if (!masks.empty()) call.tile_mask_input = masks[0]->name;

  // Harmonize, as the image path does: an instance-norm model with one RGB image input and one
  // RGB image output, cut into several tiles, pulls each tile's low-frequency colour to a
  // stylized thumbnail's, which runs with the same aux inputs (MSG-Net's style Gram).
  const auto image_inputs = m.inputs_with(Role::image);
  const auto image_outputs = m.outputs_with(Role::image);
  const auto requested_image = std::find_if(outputs.begin(), outputs.end(), [](const OutputRequest& r) {
    return r.kind == OutputKind::image;
  });
  const bool harmonize = tiles.harmonize > 0 && m.instance_norm && image_inputs.size() == 1 &&
                         inputs.images.at(image_inputs[0]->name).channels == 3 && image_outputs.size() == 1 &&
                         image_outputs[0]->channels() == 3 && requested_image != outputs.end() && plan.tiles() > 1;
  std::optional<ColourReference> reference;
  if (harmonize)
    reference = make_colour_reference<float>(inputs.images.at(image_inputs[0]->name), tiles.harmonize,
                                             [&](ImageView<const float> in, ImageView<float> out) {
      const ImageSource<float> source(in, m.pixels);
      ImageSink<float> sink(out, m.pixels, ImageView<const float>{}, PostOptions{}, nullptr, m.path);
      TiledCall thumbnail;
      thumbnail.spatial_inputs = {{image_inputs[0]->name, &source}};
      thumbnail.spatial_outputs = {{image_outputs[0]->name, &sink}};
      thumbnail.aux_inputs = call.aux_inputs;
      thumbnail.tile_mask_input = call.tile_mask_input;
      TileOptions one_window;
      one_window.tile = 0;
      one_window.harmonize = 0;
      one_window.pixel_threads = tiles.pixel_threads;
      run_tiled(network, m.geometry(), in.height, in.width, one_window, thumbnail, nullptr);
    }, kernels::resolve_threads(tiles.pixel_threads));

  std::vector<std::unique_ptr<TileSink>> sinks;
  for (const OutputRequest& r : outputs) {
    if (r.kind == OutputKind::whole) {
      call.whole_outputs.push_back(r.name);
      continue;
    }
    if (r.kind == OutputKind::image) {
      sinks.push_back(std::make_unique<ImageSink<float>>(ImageView<float>{buffers.images.at(r.name), H, W, r.channels},
                                                         m.pixels, ImageView<const float>{}, PostOptions{},
                                                         reference ? &*reference : nullptr, m.path));
    } else {
      uint8_t* rgb = r.palette.empty() ? nullptr : buffers.colours.at(r.name);
      sinks.push_back(std::make_unique<ClassesSink>(r.channels, W, buffers.labels.at(r.name), r.palette, rgb, m.path,
                                                    r.temperature));
    }
    call.spatial_outputs.emplace_back(r.name, sinks.back().get());
  }
  return run_tiled(network, m.geometry(), plan, tiles, call, progress);
}

}  // namespace deepshop
