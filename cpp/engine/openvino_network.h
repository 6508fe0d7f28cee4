#pragma once
// The direct OpenVINO backend: one ONNX model read by OpenVINO itself (its ONNX front end and
// its own plugin, e.g. the CPU plugin, bypassing ONNX Runtime), run on named float32 host
// tensors.  InferenceSession uses it in place of an ONNX Runtime session where ONNX Runtime's
// OpenVINO plugin does not serve the device (it serves Intel hardware only; OpenVINO's own CPU
// plugin runs on any x86-64 CPU, bf16 where the CPU has AVX512-BF16 or AMX).
//
// OpenVINO runs fastest on a model compiled for static shapes (TransformerNet fp32, 1080p: 9.9 s
// against 23.2 s for the dynamic-shape compile, one run under load), and every tile of an image
// shares one window size: so the model is compiled per set of input shapes, and compiled forms
// are kept within a memory budget (the tiles' window, the statistics or harmonizing thumbnail,
// the next image of the same size).  Safe to call from several threads: each call takes an idle infer request of its form
// (or makes one), and outputs are read with the shape of that request's own result.
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/model_info.h"
#include "engine/openvino_api.h"
#include "engine/tensor.h"

namespace deepshop {

class OpenVinoRuntime;

struct OpenVinoOptions {
  std::string device = "CPU";  // OpenVINO's device name
  // "fp32", "bf16", "fp16" (INFERENCE_PRECISION_HINT f32 / bf16 / f16), or "int8": a quantized
  // (QDQ) model, its int8 layers in int8 and the rest in f32.
  std::string precision = "fp32";
  int threads = 0;             // INFERENCE_NUM_THREADS; 0: OpenVINO's default (one per core)
  bool statistics_graph = false;  // a global-statistics graph (more working memory per pixel)
};

class OpenVinoNetwork {
 public:
  // Reads the model; DeviceError (with OpenVINO's reason) when OpenVINO cannot read it, e.g. an
  // operator its ONNX front end lacks.  Compiles on the first run of each set of input shapes.
  OpenVinoNetwork(const OpenVinoRuntime& runtime, const ModelInfo& model, OpenVinoOptions options);
  ~OpenVinoNetwork();
  OpenVinoNetwork(const OpenVinoNetwork&) = delete;
  OpenVinoNetwork& operator=(const OpenVinoNetwork&) = delete;

  // `inputs`: every model input, checked by the caller (InferenceSession::run); `outputs`: the
  // outputs to return.  Float16 model I/O is converted here.  DeviceError when OpenVINO fails.
  Tensors run(const TensorViews& inputs, const std::vector<const TensorSpec*>& outputs) const;

  // OpenVINO's CPU plugin keeps a compiled form's working memory (every intermediate tensor) in
  // the compiled model until it is freed, not per infer request: forms are kept while their
  // estimated working memory together stays within this budget (the one in use always kept).
  static constexpr double kFormsBudgetBytes = 1.5 * (1 << 30);
  // Working memory per window pixel of a TransformerNet (OpenVINO 2026.4 CPU plugin, the whole
  // working set of a compiled form and its request), by precision and graph: the global-statistics
  // graph (the bundled style) 700 B in bf16 and int8, 1300 B in fp32; the plain graph 320 B in
  // bf16, 600 B in fp32 and int8.
  static double bytes_per_pixel(const std::string& precision, bool statistics_graph);

 private:
  struct Compiled;
  std::shared_ptr<Compiled> compiled_for(const std::vector<std::vector<int64_t>>& shapes) const;

  const OpenVinoRuntime& runtime_;
  std::string path_;
  std::vector<TensorSpec> inputs_;  // the model's, in its order (as described by ONNX Runtime)
  OpenVinoOptions options_;
  struct ModelDeleter {
    const ov::Api* api;
    void operator()(ov::Model* m) const { api->model_free(m); }
  };
  std::unique_ptr<ov::Model, ModelDeleter> source_;  // reshaped to each new set of shapes, under mutex_
  mutable std::mutex mutex_;
  mutable std::list<std::shared_ptr<Compiled>> cache_;  // most recently used first
};

}  // namespace deepshop
