#include "engine/inference_session.h"

#include <sys/stat.h>

#include <fstream>

#include "engine/cancel.h"
#include "engine/errors.h"
#include "engine/limits.h"
#include "engine/openvino_runtime.h"
#include "engine/ort_runtime.h"
#include "engine/quantized_model.h"
#include "engine/statistics_mode.h"

namespace deepshop {
namespace {

void check_model_file(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) throw ModelError(path + ": no such model file");
  if (S_ISDIR(st.st_mode)) throw ModelError(path + ": is a directory, not an ONNX model file");
  // A FIFO or a device would block the reader, or never end: regular files only.
  if (!S_ISREG(st.st_mode)) throw ModelError(path + ": is not a regular file (a pipe or a device?), not an ONNX model");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ModelError(path + ": cannot be opened for reading");
  if (st.st_size == 0) throw ModelError(path + ": empty file, not an ONNX model");
}

}  // namespace

InferenceSession::InferenceSession(const std::string& model_path, const SessionConfig& config)
    : threads_(config.intra_op_threads) {
  OrtRuntime::get();  // a clear error if the runtime is not loaded, before anything else
  check_model_file(model_path);
  ProviderRequest request{config.device, config.precision, config.intra_op_threads, config.openvino,
                          config.openvino_direct};
  try {
    request.model_is_int8 = is_quantized(read_onnx_metadata(model_path));
  } catch (const ModelError&) {
    // Not a readable ONNX file: ONNX Runtime says so below, in its own words, as for every model.
  }
  // The int8 file beside the model, where the precision asked for may take it.
  const Precision asked = parse_precision(config.precision);
  if (!request.model_is_int8 && (asked == Precision::Auto || asked == Precision::INT8))
    request.int8 = find_quantized(model_path);
  const ProviderPlan plan = plan_providers(request);
  std::vector<std::string> reasons = plan.skipped;
  const ProviderCandidate* chosen = nullptr;
  for (const ProviderCandidate& candidate : plan.candidates) {
    std::string failure;
    // An int8 candidate opens the int8 file beside the model.
    const std::string& path = candidate.model_path.empty() ? model_path : candidate.model_path;
    try {
      if (candidate.openvino_direct) {
        open_openvino(path, config, candidate);
      } else {
        session_ = open(path, config, candidate);
        model_ = describe_model(*session_, path, config.overrides);
      }
    } catch (const ModelError&) {
      throw;  // the model itself is bad: no point retrying on another provider
    } catch (const Ort::Exception& e) {
      failure = e.what();
    } catch (const DeviceError& e) {  // OpenVINO's own: it could not read the model, or lacks the device
      failure = e.what();
    }
    if (!failure.empty()) {
      const std::string why = start_failure(candidate, failure);
      if (!plan.is_auto || &candidate == &plan.candidates.back())
        throw DeviceError("device '" + config.device + "' requested, but " + why);
      reasons.push_back(candidate.label + ": " + why);
      continue;
    }
    chosen = &candidate;
    break;
  }
  for (const auto& r : reasons) fallback_reason_ += (fallback_reason_.empty() ? "" : "; ") + r;
  provider_ = chosen->provider;
  device_ = chosen->device;
  precision_ = precision_name(resolve_model_precision(*chosen, model_.metadata, model_path));
  precision_reason_ = chosen->precision_reason;
}

void InferenceSession::open_openvino(const std::string& model_path, const SessionConfig& config,
                                     const ProviderCandidate& provider) {
  // ONNX Runtime reads the model's I/O and metadata (and refuses a bad file with a ModelError, as
  // for every provider); its session is dropped once that is done, OpenVINO runs the network.
  ProviderCandidate cpu;
  cpu.provider = "CPUExecutionProvider";
  model_ = describe_model(*open(model_path, config, cpu), model_path, config.overrides);
  const OpenVinoRuntime& runtime = OpenVinoRuntime::load(config.openvino_direct.path);
  OpenVinoOptions options;
  options.device = provider.openvino_device;
  options.precision = precision_name(provider.precision);
  options.threads = config.intra_op_threads;
  options.statistics_graph = statistics_layout(model_).has_value();
  openvino_ = std::make_unique<OpenVinoNetwork>(runtime, model_, options);
}

std::unique_ptr<Ort::Session> InferenceSession::open(const std::string& model_path, const SessionConfig& config,
                                                     const ProviderCandidate& provider) {
  Ort::SessionOptions options;
  options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  check_threads(config.intra_op_threads);
  if (config.intra_op_threads > 0) options.SetIntraOpNumThreads(config.intra_op_threads);
  if (!config.cpu_memory_arena) options.DisableCpuMemArena();
  append_provider(options, provider);
  try {
    return std::make_unique<Ort::Session>(OrtRuntime::get().env(), model_path.c_str(), options);
  } catch (const Ort::Exception& e) {
    const std::string what = e.what();
    // Loading and parsing failures are the model's fault; provider failures are re-thrown as is.
    if (what.find("Load model") != std::string::npos || what.find("Protobuf") != std::string::npos ||
        what.find("INVALID_PROTOBUF") != std::string::npos || what.find("INVALID_GRAPH") != std::string::npos ||
        e.GetOrtErrorCode() == ORT_INVALID_PROTOBUF || e.GetOrtErrorCode() == ORT_INVALID_GRAPH ||
        e.GetOrtErrorCode() == ORT_NO_SUCHFILE)
      throw ModelError(model_path + ": not a valid ONNX model (" + what + ")");
    // On the CPU every load failure is the model's (e.g. a missing or truncated external
    // weights file); provider failures are left to the caller, which may fall back to the CPU.
    if (provider.provider == "CPUExecutionProvider")
      throw ModelError(model_path + ": ONNX Runtime could not load the model (" + what + ")");
    throw;
  }
}

namespace {

template <typename Half>
void to_float(const Half* half, float* out, size_t count) {
  for (size_t i = 0; i < count; ++i) out[i] = half[i].ToFloat();
}

}  // namespace

int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw std::invalid_argument("tensor shape " + shape_string(shape) + " has a negative dimension");
    n = checked_mul(n, d, "tensor");
  }
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s.empty() ? "scalar" : s;
}

Tensors InferenceSession::run(const TensorViews& inputs, const std::vector<std::string>& outputs) const {
  for (const auto& [name, view] : inputs)
    if (!model_.find_input(name))
      throw std::invalid_argument(model_.path + ": '" + name + "' is not an input of the model");
  for (const TensorSpec& spec : model_.inputs) {
    auto it = inputs.find(spec.name);
    if (it == inputs.end()) throw std::invalid_argument(model_.path + ": input '" + spec.name + "' was not given");
    const TensorView& view = it->second;
    bool fits = view.shape.size() == spec.shape.size();
    for (size_t d = 0; fits && d < spec.shape.size(); ++d) fits = spec.shape[d] <= 0 || spec.shape[d] == view.shape[d];
    if (!fits)
      throw std::invalid_argument(model_.path + ": input '" + spec.name + "' of shape " + shape_string(view.shape) +
                                  " does not fit the model's " + shape_string(spec.shape) + " (-1: any size)");
  }
  std::vector<const TensorSpec*> wanted;
  if (outputs.empty()) {
    for (const auto& t : model_.outputs) wanted.push_back(&t);
  } else {
    for (const auto& name : outputs) {
      const TensorSpec* t = model_.find_output(name);
      if (!t) throw std::invalid_argument(model_.path + ": '" + name + "' is not an output of the model");
      wanted.push_back(t);
    }
  }
  if (openvino_) return openvino_->run(inputs, wanted);

  auto cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);

  // IO binding with both ends in host memory: on the CPU provider this is zero-copy, on CUDA
  // ORT does the host<->device copies itself.
  Ort::IoBinding binding(*session_);
  std::vector<Ort::Value> input_values;
  std::vector<std::vector<Ort::Float16_t>> half_buffers;  // alive until Run returns
  input_values.reserve(model_.inputs.size());
  half_buffers.reserve(model_.inputs.size());
  for (const TensorSpec& spec : model_.inputs) {
    const TensorView& view = inputs.at(spec.name);
    const size_t count = static_cast<size_t>(element_count(view.shape));
    // Half-precision IO is converted here, so that the rest of the engine only sees float32.
    if (spec.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
      auto& half = half_buffers.emplace_back();
      half.reserve(count);
      for (size_t i = 0; i < count; ++i) half.emplace_back(view.data[i]);
      input_values.push_back(Ort::Value::CreateTensor<Ort::Float16_t>(cpu, half.data(), count, view.shape.data(),
                                                                      view.shape.size()));
    } else {
      input_values.push_back(Ort::Value::CreateTensor<float>(cpu, const_cast<float*>(view.data), count,
                                                             view.shape.data(), view.shape.size()));
    }
    binding.BindInput(spec.name.c_str(), input_values.back());
  }
  for (const TensorSpec* t : wanted) binding.BindOutput(t->name.c_str(), cpu);

  std::vector<Ort::Value> values;
  try {
    Ort::RunOptions run_options;
    // Ctrl-C (the thread's CancelToken) stops the run between two nodes of the graph.
    CancelGuard stop_on_cancel([&run_options] { run_options.SetTerminate(); });
    session_->Run(run_options, binding);
    values = binding.GetOutputValues();
  } catch (const Ort::Exception& e) {
    if (cancel_requested()) throw Cancelled("run cancelled");
    throw ModelError(model_.path + ": ONNX Runtime could not run the model on inputs of shape " + [&] {
      std::string s;
      for (const auto& [name, view] : inputs) s += (s.empty() ? "" : ", ") + name + " " + shape_string(view.shape);
      return s;
    }() + " (" + e.what() + ")");
  }

  Tensors result;
  for (size_t i = 0; i < wanted.size(); ++i) {
    auto info = values.at(i).GetTensorTypeAndShapeInfo();
    Tensor& out = result[wanted[i]->name];
    out.shape = info.GetShape();
    const size_t count = static_cast<size_t>(element_count(out.shape));
    out.data.resize(count);
    if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
      to_float(values[i].GetTensorData<Ort::Float16_t>(), out.data.data(), count);
    } else {
      const float* data = values[i].GetTensorData<float>();
      std::copy(data, data + count, out.data.begin());
    }
  }
  return result;
}

}  // namespace deepshop
