#pragma once
// What the engine knows about a model: its named inputs and outputs, each with element type,
// shape and role, and how pixels map to the values its image tensors hold.  Taken from the
// model's deepshop.* metadata (the contract: python/deepshop_native/model_metadata.py; keys in
// engine/metadata_keys.h), or from explicit options for models that carry none.
//
// Roles: an `image` input is pixel-encoded by the engine and tiled; an `aux` input is a
// non-spatial tensor given whole to every call; an `image` output is decoded to pixels and
// blended; a `classes` output holds K class scores per pixel, blended then decoded by argmax;
// `aux`, `scalar` and `gradient` outputs are returned whole.  A `tile_mask` input (N x 1 x H x W) is made by
// the engine for each tile from the tile plan (the tile's blend weights on its kept span, 0 on
// its halo); a `features` output is a spatial map returned whole, for untiled runs only.  A model without deepshop.inputs/outputs has
// one image input and its first output is its image output (the feedforward stylizers).
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/ort_api.h"
#include "engine/tile_plan.h"

namespace deepshop {

// Options a caller may give to override or supply what the metadata says.
struct PixelFormatOverrides {
  std::optional<std::array<float, 2>> value_range;
  std::optional<std::string> channel_order;  // "RGB" or "BGR"
  std::optional<std::array<float, 3>> mean;
  std::optional<int64_t> stride_multiple;
  std::optional<int64_t> receptive_field;
};

enum class Role { image, aux, tile_mask, classes, scalar, features, gradient };
const char* role_name(Role role);

struct TensorSpec {
  std::string name;
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> shape;  // -1 (or <= 0) for a dynamic dimension
  Role role = Role::aux;

  // Spatial tensors are N x C x H x W and tiled; the rest pass whole (a gradient output is
  // spatial in shape but returned whole, per call).
  bool spatial() const {
    return role == Role::image || role == Role::classes || role == Role::tile_mask || role == Role::features;
  }
  int64_t channels() const { return shape.size() == 4 && shape[1] > 0 ? shape[1] : -1; }
};

// How pixels in [0, 1] become network values: lo + unit * (hi - lo) - mean.  `mean` and `bgr`
// apply to 3-channel tensors only.
struct PixelFormat {
  float range_lo = 0.f, range_hi = 255.f;
  bool bgr = false;                          // network channel order is BGR
  std::array<float, 3> mean{0.f, 0.f, 0.f};  // in the network's channel order
};

struct ModelInfo {
  std::string path;
  std::string family;  // deepshop.family, "" when absent
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  std::map<std::string, std::string> metadata;  // every custom metadata entry, as stored

  PixelFormat pixels;          // resolved when the model has image inputs or outputs
  int64_t stride_multiple = 1;
  int64_t receptive_field = 0;  // 0: unknown
  bool instance_norm = false;   // per-image statistics: tiles see their own

  const TensorSpec* find_input(const std::string& name) const;
  const TensorSpec* find_output(const std::string& name) const;
  std::vector<const TensorSpec*> inputs_with(Role role) const;
  std::vector<const TensorSpec*> outputs_with(Role role) const;
  // The first spatial input (its fixed dimensions bound the tiles); null when there is none.
  const TensorSpec* first_spatial_input() const;
  // What the tile planner needs to know of this model.
  TilingGeometry geometry() const;
};

// Reads the session's inputs, outputs and metadata, assigns roles and resolves the pixel format.
// Refuses only what cannot run (non-float tensors, spatial tensors that are not 4-D, roles naming
// tensors the graph lacks, nonsense metadata), with a ModelError naming the file and the reason.
ModelInfo describe_model(Ort::Session& session, const std::string& path, const PixelFormatOverrides& overrides);

}  // namespace deepshop
