#include "engine/inference_session.h"

#include <sys/stat.h>

#include <fstream>

#include "engine/errors.h"
#include "engine/ort_runtime.h"

namespace deepshop {
namespace {

void check_model_file(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) throw ModelError(path + ": no such model file");
  if (S_ISDIR(st.st_mode)) throw ModelError(path + ": is a directory, not an ONNX model file");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ModelError(path + ": cannot be opened for reading");
  if (st.st_size == 0) throw ModelError(path + ": empty file, not an ONNX model");
}

}  // namespace

InferenceSession::InferenceSession(const std::string& model_path, const SessionConfig& config) {
  OrtRuntime::get();  // a clear error if the runtime is not loaded, before anything else
  check_model_file(model_path);
  const ProviderPlan plan = plan_providers({config.device, config.precision, config.intra_op_threads, config.openvino});
  std::vector<std::string> reasons = plan.skipped;
  const ProviderCandidate* chosen = nullptr;
  for (const ProviderCandidate& candidate : plan.candidates) {
    try {
      session_ = open(model_path, config, candidate);
    } catch (const ModelError&) {
      throw;  // the model itself is bad: no point retrying on another provider
    } catch (const Ort::Exception& e) {
      const std::string why = start_failure(candidate, e.what());
      if (!plan.is_auto || &candidate == &plan.candidates.back())
        throw DeviceError("device '" + config.device + "' requested, but " + why);
      reasons.push_back(candidate.label + ": " + why);
      continue;
    }
    chosen = &candidate;
    break;
  }
  for (const auto& r : reasons) fallback_reason_ += (fallback_reason_.empty() ? "" : "; ") + r;
  model_ = describe_model(*session_, model_path, config.overrides);
  provider_ = chosen->provider;
  device_ = chosen->device;
  precision_ = precision_name(resolve_model_precision(*chosen, model_.metadata, model_path));
}

std::unique_ptr<Ort::Session> InferenceSession::open(const std::string& model_path, const SessionConfig& config,
                                                     const ProviderCandidate& provider) {
  Ort::SessionOptions options;
  options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
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
    throw;
  }
}

std::vector<float> InferenceSession::run(const std::vector<float>& input, int64_t batch, int64_t height, int64_t width) {
  const std::array<int64_t, 4> shape{batch, 3, height, width};
  const size_t count = static_cast<size_t>(batch * 3 * height * width);
  auto cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);

  // Half-precision IO is converted here, so that the rest of the engine only sees float32.
  std::vector<Ort::Float16_t> input_half;
  Ort::Value input_tensor{nullptr};
  if (model_.input.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
    input_half.reserve(count);
    for (float v : input) input_half.emplace_back(v);
    input_tensor = Ort::Value::CreateTensor<Ort::Float16_t>(cpu, input_half.data(), count, shape.data(), shape.size());
  } else {
    input_tensor = Ort::Value::CreateTensor<float>(cpu, const_cast<float*>(input.data()), count, shape.data(), shape.size());
  }

  // IO binding with both ends in host memory: on the CPU provider this is zero-copy, on CUDA
  // ORT does the host<->device copies itself.
  Ort::IoBinding binding(*session_);
  binding.BindInput(model_.input.name.c_str(), input_tensor);
  binding.BindOutput(model_.output.name.c_str(), cpu);
  Ort::RunOptions run_options;
  session_->Run(run_options, binding);
  std::vector<Ort::Value> outputs = binding.GetOutputValues();

  auto info = outputs.at(0).GetTensorTypeAndShapeInfo();
  const auto out_shape = info.GetShape();
  if (out_shape.size() != 4 || out_shape[0] != batch || out_shape[1] != 3 || out_shape[2] != height ||
      out_shape[3] != width) {
    std::string got;
    for (size_t i = 0; i < out_shape.size(); ++i) got += (i ? "x" : "") + std::to_string(out_shape[i]);
    throw ModelError(model_.path + ": for an input of " + std::to_string(batch) + "x3x" + std::to_string(height) + "x" +
                     std::to_string(width) + " the model gave an output of " + got +
                     "; deepshop needs an output of the input's size (is the stride multiple right?)");
  }
  std::vector<float> result(count);
  if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
    const Ort::Float16_t* half = outputs[0].GetTensorData<Ort::Float16_t>();
    for (size_t i = 0; i < count; ++i) result[i] = half[i].ToFloat();
  } else {
    const float* data = outputs[0].GetTensorData<float>();
    std::copy(data, data + count, result.begin());
  }
  return result;
}

}  // namespace deepshop
