#include "engine/openvino_network.h"

#include <algorithm>

#include "engine/cancel.h"
#include "engine/errors.h"
#include "engine/openvino_cache.h"
#include "engine/openvino_runtime.h"
#include "engine/ort_api.h"  // Ort::Float16_t, for float16 model I/O

namespace deepshop {
namespace {

// An OpenVINO handle with its own free function.
template <typename T>
using Owned = std::unique_ptr<T, void (*)(T*)>;

// ov_shape_t / ov_partial_shape_t own their dims array until freed.
class ShapeHolder {
 public:
  explicit ShapeHolder(const ov::Api& api) : api_(api) {}
  ~ShapeHolder() {
    if (shape.dims) api_.shape_free(&shape);
  }
  ShapeHolder(const ShapeHolder&) = delete;
  ShapeHolder& operator=(const ShapeHolder&) = delete;
  ov::Shape shape{0, nullptr};

 private:
  const ov::Api& api_;
};

class PartialShapes {
 public:
  explicit PartialShapes(const ov::Api& api, size_t count) : api_(api), shapes(count, ov::PartialShape{{0, 0}, nullptr}) {}
  ~PartialShapes() {
    for (auto& s : shapes)
      if (s.dims) api_.partial_shape_free(&s);
  }
  PartialShapes(const PartialShapes&) = delete;
  PartialShapes& operator=(const PartialShapes&) = delete;

 private:
  const ov::Api& api_;

 public:
  std::vector<ov::PartialShape> shapes;
};

std::string shapes_text(const std::vector<TensorSpec>& specs, const std::vector<std::vector<int64_t>>& shapes) {
  std::string s;
  for (size_t i = 0; i < specs.size(); ++i) s += (i ? ", " : "") + specs[i].name + " " + shape_string(shapes[i]);
  return s;
}

}  // namespace

struct OpenVinoNetwork::Compiled {
  Compiled(std::vector<std::vector<int64_t>> s, Owned<ov::CompiledModel> m) : shapes(std::move(s)), model(std::move(m)) {}
  std::vector<std::vector<int64_t>> shapes;
  Owned<ov::CompiledModel> model;
  // Declared after `model`, so freed before it.  Guarded by the network's mutex_.
  std::vector<Owned<ov::InferRequest>> idle;
};

double OpenVinoNetwork::bytes_per_pixel(const std::string& precision, bool statistics_graph) {
  // The largest figure measured, rounded up.  fp32: the plain graph 538 B (README's machine) and
  // 576 B (an Intel Xeon with AVX-512 and VNNI, no bf16); the statistics graph 1162 B there and
  // 615-665 B on the Xeon.  int8 (a QDQ model: activations stay f32 between the int8
  // convolutions), measured on the Xeon only, the kind of CPU precision="auto" takes int8 on:
  // 579 B plain, 619 B statistics.  bf16: 282 / 635 B (README's machine).
  if (precision == "fp32") return statistics_graph ? 1300 : 600;
  if (precision == "int8") return statistics_graph ? 700 : 600;
  return statistics_graph ? 700 : 320;  // bf16 (and fp16 on GPUs/NPUs, unmeasured: taken as bf16)
}

OpenVinoNetwork::OpenVinoNetwork(const OpenVinoRuntime& runtime, const ModelInfo& model, OpenVinoOptions options)
    : runtime_(runtime), path_(model.path), inputs_(model.inputs), options_(std::move(options)),
      source_(nullptr, ModelDeleter{&runtime.api()}) {
  ov::Model* raw = nullptr;
  // The bin path is for OpenVINO's own IR format; an ONNX file's external weights are found
  // next to it by the ONNX front end.
  runtime_.check(runtime_.api().core_read_model(runtime_.core(), path_.c_str(), "", &raw),
                 path_ + ": OpenVINO could not read the model");
  source_.reset(raw);
}

OpenVinoNetwork::~OpenVinoNetwork() = default;

std::shared_ptr<OpenVinoNetwork::Compiled> OpenVinoNetwork::compiled_for(
    const std::vector<std::vector<int64_t>>& shapes) const {
  // Held by the caller: compiling a new form blocks other callers, who would mostly want it too.
  const ov::Api& api = runtime_.api();
  for (auto it = cache_.begin(); it != cache_.end(); ++it)
    if ((*it)->shapes == shapes) {
      cache_.splice(cache_.begin(), cache_, it);
      return cache_.front();
    }
  // Every input with a dynamic dimension fixed to the shape it is given (static ones keep theirs).
  PartialShapes partial(api, inputs_.size());
  std::vector<const char*> names;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const auto& declared = inputs_[i].shape;
    if (std::none_of(declared.begin(), declared.end(), [](int64_t d) { return d <= 0; })) continue;
    runtime_.check(api.partial_shape_create_static(static_cast<int64_t>(shapes[i].size()), shapes[i].data(),
                                                   &partial.shapes[names.size()]),
                   "OpenVINO could not make a shape");
    names.push_back(inputs_[i].name.c_str());
  }
  partial.shapes.resize(names.size());
  const std::string for_shapes = " for inputs of shape " + shapes_text(inputs_, shapes);
  if (!names.empty())
    runtime_.check(api.model_reshape(source_.get(), names.data(), partial.shapes.data(), names.size()),
                   path_ + ": OpenVINO could not reshape the model" + for_shapes);
  ov::CompiledModel* compiled = nullptr;
  const char* device = options_.device.c_str();
  const char* hint = options_.precision == "bf16" ? "bf16" : options_.precision == "fp16" ? "f16" : "f32";
  const std::string threads = std::to_string(options_.threads);
  // LATENCY: one stream over all cores, which is what one image at a time wants.  CACHE_DIR: the
  // compiled form is kept on disk for the next process (openvino_cache.h; "" compiles without).
  const auto compile = [&](const char* cache_dir) {
    return options_.threads > 0 && options_.device == "CPU"
               ? api.core_compile_model(runtime_.core(), source_.get(), device, 8, &compiled, "INFERENCE_PRECISION_HINT",
                                        hint, "PERFORMANCE_HINT", "LATENCY", "INFERENCE_NUM_THREADS", threads.c_str(),
                                        "CACHE_DIR", cache_dir)
               : api.core_compile_model(runtime_.core(), source_.get(), device, 6, &compiled, "INFERENCE_PRECISION_HINT",
                                        hint, "PERFORMANCE_HINT", "LATENCY", "CACHE_DIR", cache_dir);
  };
  const std::string cache_dir = openvino_cache_dir();
  ov::Status status = compile(cache_dir.c_str());
  if (status != ov::kOk && !cache_dir.empty()) status = compile("");  // e.g. a folder that cannot be made
  else if (!cache_dir.empty()) trim_openvino_cache(cache_dir);
  runtime_.check(status, path_ + ": OpenVINO could not compile the model for " + options_.device + for_shapes);
  cache_.push_front(std::make_shared<Compiled>(shapes, Owned<ov::CompiledModel>(compiled, api.compiled_model_free)));
  // Older forms go first while the estimate is over budget (forms in use elsewhere stay alive
  // through their callers' shared_ptr until those finish).
  const auto form_bytes = [&](const Compiled& form) {
    double pixels = 0;  // the largest spatial input's N x H x W
    for (const auto& shape : form.shapes)
      if (shape.size() == 4) pixels = std::max(pixels, double(shape[0]) * double(shape[2]) * double(shape[3]));
    return pixels * bytes_per_pixel(options_.precision, options_.statistics_graph);
  };
  double total = 0;
  for (const auto& form : cache_) total += form_bytes(*form);
  while (cache_.size() > 1 && total > kFormsBudgetBytes) {
    total -= form_bytes(*cache_.back());
    cache_.pop_back();
  }
  return cache_.front();
}

Tensors OpenVinoNetwork::run(const TensorViews& inputs, const std::vector<const TensorSpec*>& outputs) const {
  const ov::Api& api = runtime_.api();
  std::vector<std::vector<int64_t>> shapes;
  for (const TensorSpec& spec : inputs_) shapes.push_back(inputs.at(spec.name).shape);

  // The form for these shapes, and an idle request of it.  `form` is declared before `request`,
  // so the request is freed before the compiled model it belongs to.
  std::shared_ptr<Compiled> form;
  Owned<ov::InferRequest> request(nullptr, api.infer_request_free);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    form = compiled_for(shapes);
    if (!form->idle.empty()) {
      request = std::move(form->idle.back());
      form->idle.pop_back();
    }
  }
  if (!request) {
    ov::InferRequest* raw = nullptr;
    runtime_.check(api.compiled_model_create_infer_request(form->model.get(), &raw),
                   path_ + ": OpenVINO could not make an infer request");
    request.reset(raw);
  }

  Tensors result;
  try {
    // Inputs: the caller's float32 buffers, wrapped without a copy; float16 inputs converted into
    // buffers that live until the run is over.
    std::vector<std::vector<Ort::Float16_t>> half_buffers;
    half_buffers.reserve(inputs_.size());
    std::vector<Owned<ov::OvTensor>> tensors;
    for (size_t i = 0; i < inputs_.size(); ++i) {
      const TensorSpec& spec = inputs_[i];
      const TensorView& view = inputs.at(spec.name);
      ShapeHolder shape(api);
      // ov_shape_create refuses rank 0; a scalar is a shape without dims, which needs no allocation.
      if (!view.shape.empty())
        runtime_.check(api.shape_create(static_cast<int64_t>(view.shape.size()), view.shape.data(), &shape.shape),
                       "OpenVINO could not make a shape");
      void* data = const_cast<float*>(view.data);
      ov::ElementType type = ov::kF32;
      if (spec.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
        const size_t count = static_cast<size_t>(element_count(view.shape));
        auto& half = half_buffers.emplace_back();
        half.reserve(count);
        for (size_t k = 0; k < count; ++k) half.emplace_back(view.data[k]);
        data = half.data();
        type = ov::kF16;
      }
      ov::OvTensor* tensor = nullptr;
      runtime_.check(api.tensor_create_from_host_ptr(type, shape.shape, data, &tensor), "OpenVINO could not wrap input '" + spec.name + "'");
      tensors.emplace_back(tensor, api.tensor_free);
      runtime_.check(api.infer_request_set_tensor(request.get(), spec.name.c_str(), tensor),
                     "OpenVINO could not set input '" + spec.name + "'");
    }
    {
      // Ctrl-C (the thread's CancelToken) cancels the request within the run; it is then dropped.
      CancelGuard stop_on_cancel([&api, &request] {
        if (api.infer_request_cancel) api.infer_request_cancel(request.get());
      });
      runtime_.check(api.infer_request_infer(request.get()), "inference failed");
    }

    // Outputs, each read with the shape of this request's own result tensor.
    for (const TensorSpec* spec : outputs) {
      ov::OvTensor* raw = nullptr;
      runtime_.check(api.infer_request_get_tensor(request.get(), spec->name.c_str(), &raw),
                     "OpenVINO has no output '" + spec->name + "'");
      Owned<ov::OvTensor> tensor(raw, api.tensor_free);
      ShapeHolder shape(api);
      // ov_tensor_get_shape refuses rank 0 (it makes the shape with ov_shape_create): a declared
      // scalar is taken as one.
      if (!spec->shape.empty())
        runtime_.check(api.tensor_get_shape(raw, &shape.shape), "OpenVINO could not give the shape of '" + spec->name + "'");
      ov::ElementType type = 0;
      runtime_.check(api.tensor_get_element_type(raw, &type), "OpenVINO could not give the type of '" + spec->name + "'");
      void* data = nullptr;
      runtime_.check(api.tensor_data(raw, &data), "OpenVINO could not give the data of '" + spec->name + "'");
      Tensor& out = result[spec->name];
      if (shape.shape.dims) out.shape.assign(shape.shape.dims, shape.shape.dims + shape.shape.rank);
      const size_t count = static_cast<size_t>(element_count(out.shape));
      if (type == ov::kF32) {
        const float* values = static_cast<const float*>(data);
        out.data.assign(values, values + count);  // one pass: no zero fill before the copy
      } else if (type == ov::kF16) {
        const uint16_t* bits = static_cast<const uint16_t*>(data);
        out.data.resize(count);
        for (size_t k = 0; k < count; ++k) out.data[k] = Ort::Float16_t::FromBits(bits[k]).ToFloat();
      } else {
        throw DeviceError("output '" + spec->name + "' came back in an element type other than float32 or float16 (" +
                          std::to_string(type) + ")");
      }
    }
  } catch (const DeviceError& e) {
    if (cancel_requested()) throw Cancelled("run cancelled");
    throw ModelError(path_ + ": OpenVINO could not run the model on inputs of shape " + shapes_text(inputs_, shapes) +
                     " (" + e.what() + ")");
  }

  std::lock_guard<std::mutex> lock(mutex_);
  form->idle.push_back(std::move(request));
  return result;
}

}  // namespace deepshop
