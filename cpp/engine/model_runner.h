#pragma once
// Any model's tiled run on named inputs and outputs (the generic pipelines): image inputs as
// pixel arrays, aux inputs passed whole to every tile, and per output what its role asks for:
// image outputs blended back to pixels, classes outputs to labels (and colours through a
// palette), aux, scalar and features outputs collected once per network call.  What used to be
// decided in the binding lives here: which outputs run, the checks on the inputs, and whether an
// instance-norm model's tiles are harmonized.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/inference_session.h"
#include "engine/pixel_codec.h"
#include "engine/tiled_runner.h"

namespace deepshop {

// One tiled run's inputs: every image input (H x W x C float pixels in [0, 1], all of one size)
// and every aux input of the model.
struct ModelInputs {
  std::map<std::string, ImageView<const float>> images;
  TensorViews aux;
};

// How one output of the run comes back.
enum class OutputKind {
  image,    // H x W x channels float pixels in [0, 1]
  classes,  // H x W int32 labels (argmax), and H x W x 3 uint8 colours when a palette is given
  whole,    // one tensor per network call (aux, scalar and features outputs)
};

struct OutputRequest {
  std::string name;
  OutputKind kind = OutputKind::whole;
  int64_t channels = 0;                // image: pixel channels; classes: class count
  std::vector<uint8_t> palette;        // classes: K x 3 colours, empty for labels only
  float temperature = 0.f;             // classes: 0 decodes by argmax, > 0 by the annealed mean
};

// The outputs a run gives: `wanted` names (nullopt: every output), each with its kind, checked
// against the model and the tiling (a features output of a run cut into several tiles is refused:
// it is returned as the network gave it).  `palettes` / `temperatures` by classes output name.
std::vector<OutputRequest> request_outputs(const ModelInfo& model, const std::optional<std::vector<std::string>>& wanted,
                                           const TilingSummary& plan, const std::map<std::string, std::vector<uint8_t>>& palettes,
                                           const std::map<std::string, float>& temperatures);

// The buffers the spatial outputs are written into, by name (the caller allocates them from the
// requests: image H x W x channels float, labels H x W int32, colours H x W x 3 uint8).
struct OutputBuffers {
  std::map<std::string, float*> images;
  std::map<std::string, int32_t*> labels;
  std::map<std::string, uint8_t*> colours;
};

// The image size the inputs share; std::invalid_argument naming what does not fit the model.
std::pair<int64_t, int64_t> check_model_inputs(const ModelInfo& model, const ModelInputs& inputs);

// Runs the tiles of `plan` and returns the whole outputs, one tensor per network call.  An
// instance-norm model with one RGB image input and one RGB image output, cut into several tiles,
// is harmonized as the image path is (the thumbnail gets the same aux inputs).
std::map<std::string, std::vector<Tensor>> run_model(const InferenceSession& session, const ModelInputs& inputs,
                                                     const std::vector<OutputRequest>& outputs, const OutputBuffers& buffers,
                                                     const TilingSummary& plan, const TileOptions& tiles,
                                                     const ProgressFn& progress);

}  // namespace deepshop
