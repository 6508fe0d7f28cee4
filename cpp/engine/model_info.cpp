#include "engine/model_info.h"

#include <charconv>
#include <cmath>
#include <set>
#include <sstream>

#include "engine/errors.h"
#include "engine/limits.h"
#include "engine/metadata_keys.h"

namespace deepshop {
namespace {

namespace key = metadata;

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

[[noreturn]] void bad_value(const std::string& path, const std::string& what, const std::string& text,
                            const std::string& why) {
  throw ModelError(path + ": metadata " + what + " = '" + text + "' " + why);
}

// Strict: every item a finite number, nothing else in the text.
std::vector<float> parse_floats(const std::string& text, const std::string& what, const std::string& path) {
  std::vector<float> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const char* begin = item.c_str();
    char* end = nullptr;
    const double v = std::strtod(begin, &end);
    while (*end == ' ') ++end;
    if (end == begin || *end != '\0') bad_value(path, what, text, "is not a list of numbers");
    if (!std::isfinite(v) || std::fabs(v) > 1e6) bad_value(path, what, text, "holds a value that is not finite or beyond 1e6");
    values.push_back(static_cast<float>(v));
  }
  return values;
}

// Strict decimal integer (no sign, no spaces, no saturation), within [0, kMaxPixels].
int64_t parse_size(const std::string& text, const std::string& what, const std::string& path) {
  int64_t v = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc::result_out_of_range || (ec == std::errc() && end == text.data() + text.size() && v > kMaxPixels))
    bad_value(path, what, text, "is beyond the largest size the engine takes (" + std::to_string(kMaxPixels) + " pixels)");
  if (ec != std::errc() || end != text.data() + text.size() || v < 0)
    bad_value(path, what, text, "is not a non-negative integer");
  return v;
}

// A flat JSON object of strings, {"name": "role", ...}: all deepshop.inputs/outputs hold.
std::map<std::string, std::string> parse_string_object(const std::string& text, const std::string& what,
                                                       const std::string& path) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  auto fail = [&](const char* why) { bad_value(path, what, text, std::string("is not a JSON object of strings (") + why + ")"); };
  auto skip_ws = [&] { while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i; };
  auto expect = [&](char c) {
    skip_ws();
    if (i >= text.size() || text[i] != c) fail("unexpected character");
    ++i;
  };
  auto read_string = [&] {
    skip_ws();
    if (i >= text.size() || text[i] != '"') fail("expected a string");
    std::string s;
    for (++i; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\\') {
        if (++i >= text.size()) break;
        const char e = text[i];
        if (e == '"' || e == '\\' || e == '/') s += e;
        else fail("unsupported escape");
      } else {
        s += text[i];
      }
    }
    if (i >= text.size()) fail("unterminated string");
    ++i;
    return s;
  };
  expect('{');
  skip_ws();
  if (i < text.size() && text[i] == '}') {
    ++i;
  } else {
    for (;;) {
      std::string k = read_string();
      expect(':');
      std::string v = read_string();
      if (!out.emplace(std::move(k), std::move(v)).second) fail("a name appears twice");
      skip_ws();
      if (i < text.size() && text[i] == ',') { ++i; continue; }
      expect('}');
      break;
    }
  }
  skip_ws();
  if (i != text.size()) fail("trailing characters");
  return out;
}

Role parse_role(const std::string& text, bool for_input, const std::string& tensor, const std::string& what,
                const std::string& path) {
  if (text == key::kRoleImage) return Role::image;
  if (text == key::kRoleAux) return Role::aux;
  if (for_input && text == key::kRoleTileMask) return Role::tile_mask;
  if (!for_input && text == key::kRoleClasses) return Role::classes;
  if (!for_input && text == key::kRoleScalar) return Role::scalar;
  if (!for_input && text == key::kRoleFeatures) return Role::features;
  throw ModelError(path + ": metadata " + what + " gives '" + tensor + "' the role '" + text + "'; " +
                   (for_input ? "inputs are 'image', 'aux' or 'tile_mask'" : "outputs are 'image', 'classes', 'aux', 'scalar' or 'features'"));
}

// Roles from `what` (deepshop.inputs or deepshop.outputs): every tensor of the graph must be named
// there, and every name there must be a tensor of the graph.
void assign_roles(std::vector<TensorSpec>& tensors, const std::string& text, bool for_input, const std::string& what,
                  const std::string& path) {
  auto roles = parse_string_object(text, what, path);
  std::set<std::string> seen;
  for (auto& t : tensors) {
    auto it = roles.find(t.name);
    if (it == roles.end())
      throw ModelError(path + ": metadata " + what + " gives no role to the model's " + (for_input ? "input" : "output") +
                       " '" + t.name + "'");
    t.role = parse_role(it->second, for_input, t.name, what, path);
    seen.insert(t.name);
  }
  for (const auto& [name, role] : roles)
    if (!seen.count(name))
      throw ModelError(path + ": metadata " + what + " names '" + name + "', which is not an " +
                       (for_input ? "input" : "output") + " of the model");
}

void check_tensor(const TensorSpec& spec, const char* kind, const std::string& path) {
  const bool is_float = spec.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || spec.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
  if (!is_float)
    throw ModelError(path + ": " + kind + " '" + spec.name + "' is of type " + type_name(spec.type) +
                     "; deepshop runs models whose inputs and outputs are float32 or float16 tensors");
  if (spec.spatial() && spec.shape.size() != 4)
    throw ModelError(path + ": " + role_name(spec.role) + " " + kind + " '" + spec.name + "' has shape " +
                     shape_text(spec.shape) + "; spatial tensors must be N x C x H x W");
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::image: return key::kRoleImage;
    case Role::classes: return key::kRoleClasses;
    case Role::scalar: return key::kRoleScalar;
    case Role::tile_mask: return key::kRoleTileMask;
    case Role::features: return key::kRoleFeatures;
    case Role::aux: break;
  }
  return key::kRoleAux;
}

const TensorSpec* ModelInfo::find_input(const std::string& name) const {
  for (const auto& t : inputs)
    if (t.name == name) return &t;
  return nullptr;
}
const TensorSpec* ModelInfo::find_output(const std::string& name) const {
  for (const auto& t : outputs)
    if (t.name == name) return &t;
  return nullptr;
}
std::vector<const TensorSpec*> ModelInfo::inputs_with(Role role) const {
  std::vector<const TensorSpec*> r;
  for (const auto& t : inputs)
    if (t.role == role) r.push_back(&t);
  return r;
}
std::vector<const TensorSpec*> ModelInfo::outputs_with(Role role) const {
  std::vector<const TensorSpec*> r;
  for (const auto& t : outputs)
    if (t.role == role) r.push_back(&t);
  return r;
}
const TensorSpec* ModelInfo::first_spatial_input() const {
  for (const auto& t : inputs)
    if (t.spatial()) return &t;
  return nullptr;
}

TilingGeometry ModelInfo::geometry() const {
  TilingGeometry g;
  g.stride = stride_multiple;
  g.receptive_field = receptive_field;
  g.model = path;
  if (const TensorSpec* s = first_spatial_input()) {
    g.fixed_batch = s->shape[0] > 0 ? s->shape[0] : -1;
    g.fixed_height = s->shape[2] > 0 ? s->shape[2] : -1;
    g.fixed_width = s->shape[3] > 0 ? s->shape[3] : -1;
  }
  return g;
}

ModelInfo describe_model(Ort::Session& session, const std::string& path, const PixelFormatOverrides& overrides) {
  ModelInfo info;
  info.path = path;
  Ort::AllocatorWithDefaultOptions allocator;
  for (size_t i = 0; i < session.GetInputCount(); ++i)
    info.inputs.push_back(tensor_spec(session.GetInputNameAllocated(i, allocator).get(), session.GetInputTypeInfo(i)));
  for (size_t i = 0; i < session.GetOutputCount(); ++i)
    info.outputs.push_back(tensor_spec(session.GetOutputNameAllocated(i, allocator).get(), session.GetOutputTypeInfo(i)));

  Ort::ModelMetadata meta = session.GetModelMetadata();
  for (auto& k : meta.GetCustomMetadataMapKeysAllocated(allocator)) {
    auto value = meta.LookupCustomMetadataMapAllocated(k.get(), allocator);
    info.metadata[k.get()] = value ? value.get() : "";
  }
  auto meta_value = [&](const char* k) -> std::optional<std::string> {
    auto it = info.metadata.find(k);
    if (it == info.metadata.end()) return std::nullopt;
    return it->second;
  };
  if (auto v = meta_value(key::kFamily)) info.family = *v;

  // Roles: declared, or today's meaning (one image input, the first output the image output).
  if (auto v = meta_value(key::kInputs)) {
    assign_roles(info.inputs, *v, true, key::kInputs, path);
  } else if (info.inputs.size() == 1) {
    info.inputs[0].role = Role::image;
  } else {
    std::string names;
    for (size_t i = 0; i < info.inputs.size(); ++i) names += (i ? ", " : "") + info.inputs[i].name;
    throw ModelError(path + ": the model has " + std::to_string(info.inputs.size()) + " inputs (" + names +
                     ") and no metadata " + key::kInputs + " saying what each one is ('image' or 'aux')");
  }
  if (auto v = meta_value(key::kOutputs)) {
    assign_roles(info.outputs, *v, false, key::kOutputs, path);
  } else if (!info.outputs.empty()) {
    info.outputs[0].role = Role::image;  // further outputs are left aux, computed only when asked for
  }
  if (info.outputs.empty()) throw ModelError(path + ": the model has no outputs");
  for (const auto& t : info.inputs) check_tensor(t, "input", path);
  for (const auto& t : info.outputs) check_tensor(t, "output", path);

  const bool has_images = !info.inputs_with(Role::image).empty() || !info.outputs_with(Role::image).empty();
  PixelFormat& px = info.pixels;
  // Value range: what turns pixels into network values.  Without it the engine would guess
  // between 0..1 and 0..255, and a wrong guess gives a washed-out or blown-out picture with no
  // error at all: so a model without metadata must be told explicitly.
  if (overrides.value_range) {
    px.range_lo = (*overrides.value_range)[0];
    px.range_hi = (*overrides.value_range)[1];
  } else if (auto v = meta_value(key::kValueRange)) {
    auto r = parse_floats(*v, key::kValueRange, path);
    if (r.size() != 2) bad_value(path, key::kValueRange, *v, "must be 'lo,hi'");
    px.range_lo = r[0];
    px.range_hi = r[1];
  } else if (has_images) {
    throw ModelError(path + ": the model carries no deepshop metadata (deepshop.value_range); say how it takes pixels: "
                     "value_range=(0, 255) or (0, 1), and if needed channel_order='BGR', mean=(...), stride_multiple=N "
                     "(CLI: --value-range, --channel-order, --mean, --stride-multiple), or export it with deepshop-export");
  }
  // A span below 1e-3 or values beyond 1e6 give nothing but noise or overflow in 8/16-bit pixels.
  const float span = px.range_hi - px.range_lo;
  if (!std::isfinite(px.range_lo) || !std::isfinite(px.range_hi) || std::fabs(px.range_lo) > 1e6f ||
      std::fabs(px.range_hi) > 1e6f || !(span >= 1e-3f))
    throw ModelError(path + ": value range (" + std::to_string(px.range_lo) + ", " + std::to_string(px.range_hi) +
                     ") must be finite, within +-1e6, with hi - lo >= 0.001");

  const auto order = overrides.channel_order ? overrides.channel_order : meta_value(key::kChannelOrder);
  if (order) {
    if (*order == "BGR") px.bgr = true;
    else if (*order != "RGB") throw ModelError(path + ": channel order '" + *order + "' is neither RGB nor BGR");
  }
  if (overrides.mean) {
    px.mean = *overrides.mean;
  } else if (auto v = meta_value(key::kMean)) {
    auto m = parse_floats(*v, key::kMean, path);
    if (m.size() != 3) bad_value(path, key::kMean, *v, "must hold 3 numbers");
    px.mean = {m[0], m[1], m[2]};
  }
  for (float m : px.mean)
    if (!std::isfinite(m) || std::fabs(m) > 1e6f) throw ModelError(path + ": mean values must be finite, within +-1e6");

  if (overrides.stride_multiple) info.stride_multiple = *overrides.stride_multiple;
  else if (auto v = meta_value(key::kStrideMultiple)) info.stride_multiple = parse_size(*v, key::kStrideMultiple, path);
  if (info.stride_multiple < 1 || info.stride_multiple > kMaxPixels)
    throw ModelError(path + ": stride multiple " + std::to_string(info.stride_multiple) + " is out of range [1, " +
                     std::to_string(kMaxPixels) + "]");
  if (overrides.receptive_field) info.receptive_field = *overrides.receptive_field;
  else if (auto v = meta_value(key::kReceptiveField)) info.receptive_field = parse_size(*v, key::kReceptiveField, path);
  if (info.receptive_field < 0 || info.receptive_field > kMaxPixels)
    throw ModelError(path + ": receptive field " + std::to_string(info.receptive_field) + " is out of range [0, " +
                     std::to_string(kMaxPixels) + "]");
  if (auto v = meta_value(key::kNormalization)) info.instance_norm = (*v == "instance");
  return info;
}

}  // namespace deepshop
