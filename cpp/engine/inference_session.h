#pragma once
// One ONNX Runtime session on one execution provider, or OpenVINO called directly (OpenVinoNetwork,
// where ONNX Runtime's OpenVINO plugin does not serve the device): builds it, and runs named
// float32 host tensors through it (float16 model I/O is converted inside).  Safe to call from several threads
// at once (OrtSession::Run is thread-safe and every call owns its buffers).
#include <memory>
#include <string>
#include <vector>

#include "engine/execution_providers.h"
#include "engine/model_info.h"
#include "engine/openvino_network.h"
#include "engine/ort_api.h"
#include "engine/tensor.h"

namespace deepshop {

struct SessionConfig {
  std::string device = "auto";     // "auto", "cpu", "cuda[:N]", "openvino[:CPU|GPU|NPU]"
  std::string precision = "auto";  // "auto", "fp32", "bf16", "fp16", "int8" (see execution_providers.h)
  int intra_op_threads = 0;        // 0: ONNX Runtime's default (one per physical core)
  PluginLibrary openvino;          // the OpenVINO plugin library, if installed
  PluginLibrary openvino_direct;   // OpenVINO's own C API library (the `openvino` wheel), if installed
  // ORT's CPU arena keeps every block it ever allocated for reuse: runs are faster (about 15%
  // at 512x512: no fresh pages to fault in), but with large tiles it held memory far above the
  // live set (2.3 GB against 1.1 GB for a 1536 tile).  Off by default: memory bounded first.
  bool cpu_memory_arena = false;
  PixelFormatOverrides overrides;
};

class InferenceSession {
 public:
  InferenceSession(const std::string& model_path, const SessionConfig& config);

  const ModelInfo& model() const { return model_; }
  // ORT's name of the provider in use: "CPUExecutionProvider", "CUDAExecutionProvider", ...; or
  // "OpenVINO" for OpenVINO called directly.
  const std::string& provider() const { return provider_; }
  // Ours: "cpu", "cuda:0", "openvino:CPU".
  const std::string& device() const { return device_; }
  // The precision the provider computes in: "fp32", "bf16" or "fp16".
  const std::string& precision() const { return precision_; }
  // Why device="auto" did not pick each faster provider, one clause each ("" when it took the fastest).
  const std::string& fallback_reason() const { return fallback_reason_; }
  // Why precision="auto" computes in precision() here ("" when a precision was named), e.g.
  // "fp32: no AVX512-BF16 or AMX for bf16, and int8 not taken: there is no m.int8.onnx ...".
  const std::string& precision_reason() const { return precision_reason_; }
  // The thread count the session was made with (0: the provider's default); the engine's own
  // pixel stages use as many.
  int threads() const { return threads_; }

  // Runs the model on `inputs` (every model input, by name) and returns the outputs named in
  // `outputs` (empty: all of them).  A wrong name, rank or fixed dimension is the caller's
  // std::invalid_argument; a failure inside ONNX Runtime is a ModelError naming the model.
  Tensors run(const TensorViews& inputs, const std::vector<std::string>& outputs = {}) const;

 private:
  std::unique_ptr<Ort::Session> open(const std::string& model_path, const SessionConfig& config,
                                     const ProviderCandidate& provider);

  // OpenVINO called directly: the model described by a CPU session, then run by OpenVINO.
  void open_openvino(const std::string& model_path, const SessionConfig& config, const ProviderCandidate& provider);

  std::unique_ptr<Ort::Session> session_;          // null when OpenVINO is called directly
  std::unique_ptr<OpenVinoNetwork> openvino_;      // the direct backend, else null
  ModelInfo model_;
  std::string provider_;
  std::string device_;
  std::string precision_;
  std::string fallback_reason_;
  std::string precision_reason_;
  int threads_ = 0;
};

}  // namespace deepshop
