#pragma once
// What the engine needs to know about an image-to-image model: its one input and one output,
// and how pixels map to the values the network expects.  Taken from the model's deepshop.*
// metadata (see python/deepshop_native/model_metadata.py), or from explicit options for models
// that carry none.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/ort_api.h"

namespace deepshop {

// Options a caller may give to override or supply what the metadata says.
struct PixelFormatOverrides {
  std::optional<std::array<float, 2>> value_range;
  std::optional<std::string> channel_order;  // "RGB" or "BGR"
  std::optional<std::array<float, 3>> mean;
  std::optional<int64_t> stride_multiple;
  std::optional<int64_t> receptive_field;
};

struct TensorSpec {
  std::string name;
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> shape;  // -1 (or <= 0) for a dynamic dimension
};

struct ModelInfo {
  std::string path;
  TensorSpec input;
  TensorSpec output;
  std::map<std::string, std::string> metadata;  // every custom metadata entry, as stored

  // Pixel format, resolved from metadata and overrides.
  float range_lo = 0.f, range_hi = 255.f;
  bool bgr = false;                      // network channel order is BGR
  std::array<float, 3> mean{0.f, 0.f, 0.f};  // in the network's channel order
  int64_t stride_multiple = 1;
  int64_t receptive_field = 0;  // 0: unknown
  bool instance_norm = false;   // per-image statistics: tiles see their own

  // Fixed spatial size of the input, if the model has one (else -1).
  int64_t fixed_height() const { return input.shape.size() == 4 ? input.shape[2] : -1; }
  int64_t fixed_width() const { return input.shape.size() == 4 ? input.shape[3] : -1; }
  int64_t fixed_batch() const { return input.shape.size() == 4 ? input.shape[0] : -1; }
};

// Checks that the session has exactly one N x 3 x H x W float input and one 4-D output, reads
// the metadata and resolves the pixel format.  Throws ModelError naming the file and the reason.
ModelInfo describe_model(Ort::Session& session, const std::string& path, const PixelFormatOverrides& overrides);

}  // namespace deepshop
