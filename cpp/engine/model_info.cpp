#include "engine/model_info.h"

#include <cstdlib>
#include <sstream>

#include "engine/errors.h"

namespace deepshop {
namespace {

constexpr const char* kPrefix = "deepshop.";

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << (shape[i] > 0 ? std::to_string(shape[i]) : "?");
  s << "]";
  return s.str();
}

const char* type_name(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "float64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    default: return "another type";
  }
}

TensorSpec tensor_spec(const std::string& name, const Ort::TypeInfo& info) {
  TensorSpec spec;
  spec.name = name;
  if (info.GetONNXType() != ONNX_TYPE_TENSOR) return spec;
  auto tensor = info.GetTensorTypeAndShapeInfo();
  spec.type = tensor.GetElementType();
  spec.shape = tensor.GetShape();
  return spec;
}

std::vector<float> parse_floats(const std::string& text, const std::string& what, const std::string& path) {
  std::vector<float> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const float v = std::strtof(item.c_str(), &end);
    if (end == item.c_str()) throw ModelError(path + ": metadata " + what + " = '" + text + "' is not a list of numbers");
    values.push_back(v);
  }
  return values;
}

int64_t parse_int(const std::string& text, const std::string& what, const std::string& path) {
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (end == text.c_str() || v < 0) throw ModelError(path + ": metadata " + what + " = '" + text + "' is not a non-negative integer");
  return v;
}

void check_image_tensor(const TensorSpec& spec, const char* role, const std::string& path) {
  const bool is_float = spec.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || spec.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
  if (!is_float || spec.shape.size() != 4 || (spec.shape[1] > 0 && spec.shape[1] != 3)) {
    throw ModelError(path + ": unexpected " + role + " '" + spec.name + "' of type " + type_name(spec.type) + " and shape " +
                     shape_text(spec.shape) + "; deepshop runs image-to-image models whose input and output are float32 or "
                     "float16 tensors of shape N x 3 x H x W");
  }
}

}  // namespace

ModelInfo describe_model(Ort::Session& session, const std::string& path, const PixelFormatOverrides& overrides) {
  ModelInfo info;
  info.path = path;
  Ort::AllocatorWithDefaultOptions allocator;

  const size_t n_inputs = session.GetInputCount();
  const size_t n_outputs = session.GetOutputCount();
  if (n_inputs != 1 || n_outputs < 1) {
    std::string names;
    for (size_t i = 0; i < n_inputs; ++i) names += (i ? ", " : "") + std::string(session.GetInputNameAllocated(i, allocator).get());
    throw ModelError(path + ": the model has " + std::to_string(n_inputs) + " inputs (" + names + ") and " +
                     std::to_string(n_outputs) + " outputs; deepshop runs image-to-image models with exactly one "
                     "N x 3 x H x W input");
  }
  info.input = tensor_spec(session.GetInputNameAllocated(0, allocator).get(), session.GetInputTypeInfo(0));
  info.output = tensor_spec(session.GetOutputNameAllocated(0, allocator).get(), session.GetOutputTypeInfo(0));
  check_image_tensor(info.input, "input", path);
  check_image_tensor(info.output, "output", path);

  Ort::ModelMetadata meta = session.GetModelMetadata();
  for (auto& key : meta.GetCustomMetadataMapKeysAllocated(allocator)) {
    auto value = meta.LookupCustomMetadataMapAllocated(key.get(), allocator);
    info.metadata[key.get()] = value ? value.get() : "";
  }
  auto meta_value = [&](const std::string& key) -> std::optional<std::string> {
    auto it = info.metadata.find(kPrefix + key);
    if (it == info.metadata.end()) return std::nullopt;
    return it->second;
  };

  // Value range: what turns pixels into network values.  Without it the engine would guess
  // between 0..1 and 0..255, and a wrong guess gives a washed-out or blown-out picture with no
  // error at all: so a model without metadata must be told explicitly.
  if (overrides.value_range) {
    info.range_lo = (*overrides.value_range)[0];
    info.range_hi = (*overrides.value_range)[1];
  } else if (auto v = meta_value("value_range")) {
    auto r = parse_floats(*v, "deepshop.value_range", path);
    if (r.size() != 2) throw ModelError(path + ": metadata deepshop.value_range = '" + *v + "' must be 'lo,hi'");
    info.range_lo = r[0];
    info.range_hi = r[1];
  } else {
    throw ModelError(path + ": the model carries no deepshop metadata (deepshop.value_range); say how it takes pixels: "
                     "value_range=(0, 255) or (0, 1), and if needed channel_order='BGR', mean=(...), stride_multiple=N "
                     "(CLI: --value-range, --channel-order, --mean, --stride-multiple), or export it with deepshop-export");
  }
  if (!(info.range_hi > info.range_lo)) throw ModelError(path + ": value range must have hi > lo");

  const auto order = overrides.channel_order ? overrides.channel_order : meta_value("channel_order");
  if (order) {
    if (*order == "BGR") info.bgr = true;
    else if (*order != "RGB") throw ModelError(path + ": channel order '" + *order + "' is neither RGB nor BGR");
  }
  if (overrides.mean) {
    info.mean = *overrides.mean;
  } else if (auto v = meta_value("mean")) {
    auto m = parse_floats(*v, "deepshop.mean", path);
    if (m.size() != 3) throw ModelError(path + ": metadata deepshop.mean = '" + *v + "' must hold 3 numbers");
    info.mean = {m[0], m[1], m[2]};
  }
  if (overrides.stride_multiple) info.stride_multiple = *overrides.stride_multiple;
  else if (auto v = meta_value("stride_multiple")) info.stride_multiple = parse_int(*v, "deepshop.stride_multiple", path);
  if (info.stride_multiple < 1) throw ModelError(path + ": stride multiple must be at least 1");
  if (overrides.receptive_field) info.receptive_field = *overrides.receptive_field;
  else if (auto v = meta_value("receptive_field")) info.receptive_field = parse_int(*v, "deepshop.receptive_field", path);
  if (auto v = meta_value("normalization")) info.instance_norm = (*v == "instance");
  return info;
}

}  // namespace deepshop
