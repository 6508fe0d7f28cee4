#include "engine/inference_session.h"

#include <sys/stat.h>

#include <fstream>

#include "engine/errors.h"
#include "engine/limits.h"
#include "engine/ort_runtime.h"

namespace deepshop {
namespace {

constexpr const char* kCuda = "CUDAExecutionProvider";

struct CudaOptionsDeleter {
  void operator()(OrtCUDAProviderOptionsV2* p) const { Ort::GetApi().ReleaseCUDAProviderOptions(p); }
};

// Parses "cuda" / "cuda:N" / "cpu" / "auto".  Returns false for CPU.
bool parse_device(const std::string& device, bool& is_auto, int& device_id) {
  is_auto = device == "auto";
  device_id = 0;
  if (device == "cpu") return false;
  if (is_auto || device == "cuda") return true;
  if (device.rfind("cuda:", 0) == 0) {
    const std::string id = device.substr(5);
    // At most 4 digits: std::stoi would throw std::out_of_range (an IndexError) on longer ones.
    if (!id.empty() && id.size() <= 4 && id.find_first_not_of("0123456789") == std::string::npos) {
      device_id = std::stoi(id);
      return true;
    }
  }
  throw std::invalid_argument("device '" + device + "' is not one of 'auto', 'cpu', 'cuda', 'cuda:N'");
}

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

InferenceSession::InferenceSession(const std::string& model_path, const SessionConfig& config) {
  OrtRuntime& runtime = OrtRuntime::get();
  check_model_file(model_path);
  bool is_auto = false;
  const bool want_cuda = parse_device(config.device, is_auto, device_id_);

  if (want_cuda) {
    if (!runtime.has_provider(kCuda)) {
      const std::string why = "this ONNX Runtime (" + runtime.version() + ", " + runtime.library_path() +
                              ") has no CUDA execution provider; install onnxruntime-gpu in place of onnxruntime";
      if (!is_auto) throw DeviceError("device '" + config.device + "' requested, but " + why);
      fallback_reason_ = why;
    } else {
      try {
        session_ = open(model_path, config, true);
        provider_ = kCuda;
      } catch (const ModelError&) {
        throw;  // the model itself is bad: no point retrying on the CPU
      } catch (const Ort::Exception& e) {
        const std::string why = std::string("the CUDA provider could not start (") + e.what() +
                                "); check the NVIDIA driver, CUDA and cuDNN libraries that onnxruntime-gpu needs";
        if (!is_auto) throw DeviceError("device '" + config.device + "' requested, but " + why);
        fallback_reason_ = why;
      }
    }
  }
  if (!session_) {
    session_ = open(model_path, config, false);
    provider_ = "CPUExecutionProvider";
  }
  model_ = describe_model(*session_, model_path, config.overrides);
}

std::unique_ptr<Ort::Session> InferenceSession::open(const std::string& model_path, const SessionConfig& config,
                                                     bool use_cuda) {
  Ort::SessionOptions options;
  options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  check_threads(config.intra_op_threads);
  if (config.intra_op_threads > 0) options.SetIntraOpNumThreads(config.intra_op_threads);
  if (!config.cpu_memory_arena) options.DisableCpuMemArena();
  if (use_cuda) {
    OrtCUDAProviderOptionsV2* raw = nullptr;
    Ort::ThrowOnError(Ort::GetApi().CreateCUDAProviderOptions(&raw));
    std::unique_ptr<OrtCUDAProviderOptionsV2, CudaOptionsDeleter> cuda(raw);
    const std::string id = std::to_string(device_id_);
    const char* keys[] = {"device_id", "cudnn_conv_algo_search"};
    // HEURISTIC rather than EXHAUSTIVE: tile shapes vary at image borders, and an exhaustive
    // search per new shape costs more than it saves.
    const char* values[] = {id.c_str(), "HEURISTIC"};
    Ort::ThrowOnError(Ort::GetApi().UpdateCUDAProviderOptions(cuda.get(), keys, values, 2));
    options.AppendExecutionProvider_CUDA_V2(*cuda);
  }
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
    if (!use_cuda) throw ModelError(model_path + ": ONNX Runtime could not load the model (" + what + ")");
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
  auto cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  for (const auto& [name, view] : inputs)
    if (!model_.find_input(name))
      throw std::invalid_argument(model_.path + ": '" + name + "' is not an input of the model");

  // IO binding with both ends in host memory: on the CPU provider this is zero-copy, on CUDA
  // ORT does the host<->device copies itself.
  Ort::IoBinding binding(*session_);
  std::vector<Ort::Value> input_values;
  std::vector<std::vector<Ort::Float16_t>> half_buffers;  // alive until Run returns
  input_values.reserve(model_.inputs.size());
  half_buffers.reserve(model_.inputs.size());
  for (const TensorSpec& spec : model_.inputs) {
    auto it = inputs.find(spec.name);
    if (it == inputs.end()) throw std::invalid_argument(model_.path + ": input '" + spec.name + "' was not given");
    const TensorView& view = it->second;
    bool fits = view.shape.size() == spec.shape.size();
    for (size_t d = 0; fits && d < spec.shape.size(); ++d) fits = spec.shape[d] <= 0 || spec.shape[d] == view.shape[d];
    if (!fits)
      throw std::invalid_argument(model_.path + ": input '" + spec.name + "' of shape " + shape_string(view.shape) +
                                  " does not fit the model's " + shape_string(spec.shape) + " (-1: any size)");
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
  for (const TensorSpec* t : wanted) binding.BindOutput(t->name.c_str(), cpu);

  std::vector<Ort::Value> values;
  try {
    Ort::RunOptions run_options;
    session_->Run(run_options, binding);
    values = binding.GetOutputValues();
  } catch (const Ort::Exception& e) {
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
