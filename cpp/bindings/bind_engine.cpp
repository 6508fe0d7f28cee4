// Python bindings of the engine: load_runtime / runtime info; Session (one model on one device:
// its named inputs and outputs, run() on named arrays, run_tiled() through the channel-generic
// tiled runner); and Engine, the image path's binding (one image in, one stylized image out)
// built on the same session and runner.  The GIL is released while the network runs; the
// progress callback (and Ctrl-C) are served between batches with the GIL taken back briefly.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>

#include "bindings/bindings.h"
#include "engine/errors.h"
#include "engine/image_runner.h"
#include "engine/inference_session.h"
#include "engine/openvino_runtime.h"
#include "engine/limits.h"
#include "engine/ort_runtime.h"
#include "engine/statistics_mode.h"

namespace py = pybind11;

namespace deepshop::bindings {
namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// Options of every constructor, checked here, at the edge, so that a bad value is an OptionError
// naming the option (pybind11 turns std::invalid_argument into one, see register_errors).
SessionConfig session_config(const std::string& device, int64_t threads, PixelFormatOverrides overrides,
                             bool cpu_memory_arena, const std::string& precision, PluginLibrary openvino,
                             PluginLibrary openvino_direct = {}) {
  SessionConfig config;
  config.cpu_memory_arena = cpu_memory_arena;
  config.device = device;
  config.precision = precision;
  config.openvino = std::move(openvino);
  config.openvino_direct = std::move(openvino_direct);
  config.intra_op_threads = check_threads(threads);
  if (overrides.stride_multiple) check_range(*overrides.stride_multiple, 1, kMaxPixels, "stride_multiple");
  if (overrides.receptive_field) check_range(*overrides.receptive_field, 0, kMaxPixels, "receptive_field");
  config.overrides = std::move(overrides);
  return config;
}

// Runs `fn` with the GIL released, serving `progress` (a Python callable or None) and Ctrl-C in
// between.  Python errors raised in the callback (KeyboardInterrupt included) are kept and
// re-raised once the native run has unwound.
template <typename Fn>
void run_with_progress(const std::optional<py::function>& progress, Fn&& fn) {
  std::optional<py::error_already_set> callback_error;
  ProgressFn on_progress = [&](int64_t done, int64_t total) {
    py::gil_scoped_acquire gil;
    try {
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (progress) {
        py::object r = (*progress)(done, total);
        if (r.is_none()) return true;
        // bool, int or numpy.bool_: anything else is a mistake better named than guessed at.
        const bool numpy_bool = py::hasattr(r, "dtype") && py::str(r.attr("dtype").attr("kind")).cast<std::string>() == "b";
        if (!py::isinstance<py::bool_>(r) && !py::isinstance<py::int_>(r) && !numpy_bool)
          throw std::invalid_argument("progress callback must return None, True or False, not " +
                                      std::string(py::str(r.get_type().attr("__name__"))));
        return PyObject_IsTrue(r.ptr()) == 1;
      }
    } catch (py::error_already_set& e) {
      callback_error.emplace(std::move(e));
      return false;
    }
    return true;
  };
  try {
    py::gil_scoped_release release;
    fn(on_progress);
  } catch (const Cancelled&) {
    if (callback_error) throw std::move(*callback_error);
    throw;
  }
}

py::dict tensor_description(const TensorSpec& t) {
  py::dict d;
  d["name"] = t.name;
  d["type"] = t.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 ? "float16" : "float32";
  d["shape"] = py::tuple(py::cast(t.shape));
  d["role"] = role_name(t.role);
  return d;
}

TensorView view_of(const FloatArray& a) {
  return TensorView{a.data(), std::vector<int64_t>(a.shape(), a.shape() + a.ndim())};
}

py::array_t<float> to_numpy(Tensor&& t) {
  auto* owned = new std::vector<float>(std::move(t.data));
  py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<float>*>(p); });
  std::vector<py::ssize_t> strides(t.shape.size());
  py::ssize_t s = sizeof(float);
  for (size_t i = t.shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= static_cast<py::ssize_t>(t.shape[i]);
  }
  return py::array_t<float>(std::vector<py::ssize_t>(t.shape.begin(), t.shape.end()), strides, owned->data(),
                            free_when_done);
}

class Session {
 public:
  Session(const std::string& model_path, const SessionConfig& config) {
    py::gil_scoped_release release;  // session creation parses and optimizes the graph
    session_ = std::make_unique<InferenceSession>(model_path, config);
  }
  const InferenceSession& session() const { return *session_; }
  const ModelInfo& model() const { return session_->model(); }

  py::dict plan(int64_t height, int64_t width, const TileOptions& requested) const {
    const StatisticsMode mode = resolve_statistics_mode(model(), requested, height, width);
    const TileOptions options = statistics_tile_options(model(), requested, mode);
    const TilingSummary s = plan_tiles(model().geometry(), height, width, options);
    py::dict d;
    d["tiles_y"] = s.rows.count();
    d["tiles_x"] = s.cols.count();
    d["window"] = py::make_tuple(s.rows.window, s.cols.window);
    d["halo"] = py::make_tuple(s.rows.halo, s.cols.halo);
    d["row_starts"] = s.rows.starts;
    d["col_starts"] = s.cols.starts;
    d["kept"] = py::make_tuple(s.rows.kept, s.cols.kept);
    d["statistics"] = statistics_mode_name(mode);
    const auto layout = statistics_layout(model());
    d["passes"] = layout ? statistics_passes(mode, *layout) : int64_t(1);
    d["harmonize"] = mode == StatisticsMode::off && options.harmonize > 0 && model().instance_norm && s.tiles() > 1;
    return d;
  }

  py::dict run(const py::dict& inputs, std::optional<std::vector<std::string>> outputs) const {
    std::vector<FloatArray> keep;  // holds the (converted) buffers while the GIL is released
    TensorViews views;
    for (auto [k, v] : inputs) {
      keep.push_back(FloatArray::ensure(v));
      if (!keep.back()) throw std::invalid_argument("input '" + py::str(k).cast<std::string>() + "' is not a numeric array");
      views[py::str(k)] = view_of(keep.back());
    }
    Tensors result;
    {
      py::gil_scoped_release release;
      result = session_->run(views, outputs.value_or(std::vector<std::string>{}));
    }
    py::dict d;
    for (auto& [name, t] : result) d[py::str(name)] = to_numpy(std::move(t));
    return d;
  }

  py::dict run_tiled(const py::dict& spatial, const py::dict& aux, const TileOptions& requested,
                     const py::dict& palettes, std::optional<std::vector<std::string>> outputs,
                     const std::optional<py::function>& progress, const py::dict& temperatures) const {
    const ModelInfo& m = model();
    check_tile_options(requested);
    const TileOptions tiles = with_session_threads(requested);
    // Spatial inputs: H x W x C (or H x W) pixel arrays, float32 in [0, 1], all of one size.
    std::vector<FloatArray> keep;
    std::vector<std::unique_ptr<ImageSource<float>>> sources;
    TiledCall call;
    int64_t H = -1, W = -1;
    ImageView<const float> rgb_input{};  // the image input when it is the only one and RGB (harmonize)
    for (const TensorSpec* t : m.inputs_with(Role::image)) {
      if (!spatial.contains(t->name))
        throw std::invalid_argument(m.path + ": image input '" + t->name + "' was not given (spatial=...)");
      FloatArray a = FloatArray::ensure(spatial[py::str(t->name)]);
      if (!a || (a.ndim() != 2 && a.ndim() != 3))
        throw std::invalid_argument("spatial input '" + t->name + "' must be an H x W or H x W x C array");
      const int64_t h = a.shape(0), w = a.shape(1), c = a.ndim() == 3 ? a.shape(2) : 1;
      if (H < 0) H = h, W = w;
      if (h != H || w != W)
        throw std::invalid_argument("spatial inputs differ in size: '" + t->name + "' is " + std::to_string(h) + "x" +
                                    std::to_string(w) + ", not " + std::to_string(H) + "x" + std::to_string(W));
      if (t->channels() > 0 && t->channels() != c)
        throw std::invalid_argument("spatial input '" + t->name + "' has " + std::to_string(c) + " channels; the model " +
                                    "takes " + std::to_string(t->channels()));
      keep.push_back(a);
      if (c == 3 && m.inputs_with(Role::image).size() == 1) rgb_input = ImageView<const float>{a.data(), h, w, c};
      sources.push_back(std::make_unique<ImageSource<float>>(ImageView<const float>{a.data(), h, w, c}, m.pixels));
      call.spatial_inputs.emplace_back(t->name, sources.back().get());
    }
    // Tile masks are made by the runner from the tile plan.
    const auto masks = m.inputs_with(Role::tile_mask);
    if (masks.size() > 1) throw ModelError(m.path + ": the model has more than one tile_mask input");
    if (!masks.empty()) call.tile_mask_input = masks[0]->name;
    for (auto [k, v] : spatial)
      if (!m.find_input(py::str(k)) || m.find_input(py::str(k))->role != Role::image)
        throw std::invalid_argument(m.path + ": '" + py::str(k).cast<std::string>() + "' is not an image input of the model");
    if (H < 0) throw std::invalid_argument(m.path + ": the model has no image input to tile");
    for (const TensorSpec* t : m.inputs_with(Role::aux)) {
      if (!aux.contains(t->name)) throw std::invalid_argument(m.path + ": aux input '" + t->name + "' was not given (aux=...)");
      keep.push_back(FloatArray::ensure(aux[py::str(t->name)]));
      if (!keep.back()) throw std::invalid_argument("aux input '" + t->name + "' is not a numeric array");
      call.aux_inputs[t->name] = view_of(keep.back());
    }
    for (auto [k, v] : aux)
      if (!m.find_input(py::str(k)) || m.find_input(py::str(k))->spatial())
        throw std::invalid_argument(m.path + ": '" + py::str(k).cast<std::string>() + "' is not an aux input of the model");

    // Outputs: image -> H x W x C float32 in [0, 1]; classes -> int32 labels (+ RGB with a
    // palette); aux, scalar, features and gradient -> one array per network call.
    auto wanted = [&](const std::string& name) {
      return !outputs || std::find(outputs->begin(), outputs->end(), name) != outputs->end();
    };
    if (outputs)
      for (const auto& name : *outputs)
        if (!m.find_output(name)) throw std::invalid_argument(m.path + ": '" + name + "' is not an output of the model");
    py::dict images, labels, colours, whole;
    std::vector<std::unique_ptr<TileSink>> sinks;
    // Harmonize, as the image path does (README, Tiling): an instance-norm model with one RGB image
    // input and one RGB image output, cut into several tiles, pulls each tile's low-frequency colour
    // to a stylized thumbnail's.  The thumbnail pass gets the same aux inputs (MSG-Net's style
    // Gram); the reference is made once the GIL is released, below, and read by the image sink.
    const auto image_outputs = m.outputs_with(Role::image);
    const bool harmonize = tiles.harmonize > 0 && m.instance_norm && rgb_input.data && image_outputs.size() == 1 &&
                           image_outputs[0]->channels() == 3 && wanted(image_outputs[0]->name) &&
                           plan_tiles(m.geometry(), H, W, tiles).tiles() > 1;
    ColourReference reference;
    for (const TensorSpec& t : m.outputs) {
      if (!wanted(t.name)) continue;
      if (!t.spatial()) {
        call.whole_outputs.push_back(t.name);
        continue;
      }
      if (t.role == Role::features) {
        // Feature maps are returned as the network gave them, which is the image's only untiled.
        if (plan_tiles(m.geometry(), H, W, tiles).tiles() > 1)
          throw std::invalid_argument(m.path + ": features output '" + t.name + "' is returned whole, for untiled " +
                                      "runs only; run with tile=0 (or a tile covering the image)");
        call.whole_outputs.push_back(t.name);
        continue;
      }
      if (t.channels() < 1)
        throw ModelError(m.path + ": " + role_name(t.role) + " output '" + t.name +
                         "' has no fixed channel count; the tiled runner needs one");
      if (t.role == Role::image) {
        py::array_t<float> out({H, W, t.channels()});
        images[py::str(t.name)] = out;
        sinks.push_back(std::make_unique<ImageSink<float>>(ImageView<float>{out.mutable_data(), H, W, t.channels()},
                                                           m.pixels, ImageView<const float>{}, PostOptions{},
                                                           harmonize ? &reference : nullptr, m.path));
      } else {
        py::array_t<int32_t> lab({H, W});
        labels[py::str(t.name)] = lab;
        std::vector<uint8_t> palette;
        uint8_t* rgb = nullptr;
        if (palettes.contains(t.name)) {
          auto p = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(palettes[py::str(t.name)]);
          if (!p || p.ndim() != 2 || p.shape(1) != 3 || p.shape(0) < 1)
            throw std::invalid_argument("palette for '" + t.name + "' must be a K x 3 uint8 array");
          palette.assign(p.data(), p.data() + p.size());
          py::array_t<uint8_t> out({H, W, int64_t(3)});
          colours[py::str(t.name)] = out;
          rgb = out.mutable_data();
        }
        // Decoding of the colours: 0 (argmax) unless a temperature is given for this output.
        const float temperature = temperatures.contains(t.name) ? temperatures[py::str(t.name)].cast<float>() : 0.f;
        sinks.push_back(
            std::make_unique<ClassesSink>(t.channels(), W, lab.mutable_data(), palette, rgb, m.path, temperature));
      }
      call.spatial_outputs.emplace_back(t.name, sinks.back().get());
    }
    std::map<std::string, std::vector<Tensor>> per_call;
    const InferenceSession& s = *session_;
    const NetworkFn network = [&s](const TensorViews& in, const std::vector<std::string>& out) { return s.run(in, out); };
    run_with_progress(progress, [&](const ProgressFn& on_progress) {
      if (harmonize)
        reference = make_colour_reference<float>(rgb_input, tiles.harmonize, [&](ImageView<const float> in,
                                                                                  ImageView<float> out) {
          const ImageSource<float> source(in, m.pixels);
          ImageSink<float> sink(out, m.pixels, ImageView<const float>{}, PostOptions{}, nullptr, m.path);
          TiledCall thumbnail;
          thumbnail.spatial_inputs = {{m.inputs_with(Role::image)[0]->name, &source}};
          thumbnail.spatial_outputs = {{image_outputs[0]->name, &sink}};
          thumbnail.aux_inputs = call.aux_inputs;
          thumbnail.tile_mask_input = call.tile_mask_input;
          TileOptions one_window;
          one_window.tile = 0;
          one_window.harmonize = 0;
          one_window.pixel_threads = tiles.pixel_threads;
          deepshop::run_tiled(network, m.geometry(), in.height, in.width, one_window, thumbnail, nullptr);
        });
      per_call = deepshop::run_tiled(network, m.geometry(), H, W, tiles, call, on_progress);
    });
    for (auto& [name, list] : per_call) {
      py::list l;
      for (auto& t : list) l.append(to_numpy(std::move(t)));
      whole[py::str(name)] = l;
    }
    py::dict result;
    result["images"] = images;
    result["labels"] = labels;
    result["colours"] = colours;
    result["whole"] = whole;
    return result;
  }

  template <typename T>
  py::array_t<T> run_image(py::array_t<T, py::array::c_style> image, const TileOptions& requested,
                           const PostOptions& post, const std::optional<py::function>& progress) const {
    if (image.ndim() != 3 || image.shape(2) != 3)
      throw std::invalid_argument("image must be a contiguous H x W x 3 array");
    check_tile_options(requested);
    const TileOptions tiles = with_session_threads(requested);
    const int64_t h = image.shape(0), w = image.shape(1);
    py::array_t<T> result({h, w, int64_t(3)});
    ImageView<const T> in{image.data(), h, w, 3};
    ImageView<T> out{result.mutable_data(), h, w, 3};
    run_with_progress(progress, [&](const ProgressFn& on_progress) {
      deepshop::run_image<T>(*session_, in, out, tiles, post, on_progress);
    });
    return result;
  }

 private:
  // The engine's pixel stages run on as many threads as the user gave the session.
  TileOptions with_session_threads(TileOptions tiles) const {
    tiles.pixel_threads = session_->threads();
    return tiles;
  }

  std::unique_ptr<InferenceSession> session_;
};

py::dict model_metadata(const ModelInfo& m) {
  py::dict d;
  for (const auto& [k, v] : m.metadata) d[py::str(k)] = v;
  return d;
}

// The constructor both classes share: keyword arguments only.
template <typename Class, typename... Base>
void def_session_init(py::class_<Class, Base...>& cls) {
  cls.def(py::init([](const std::string& model, const std::string& device, int64_t threads,
                      std::optional<std::array<float, 2>> value_range, std::optional<std::string> channel_order,
                      std::optional<std::array<float, 3>> mean, std::optional<int64_t> stride_multiple,
                      std::optional<int64_t> receptive_field, bool cpu_memory_arena, const std::string& precision,
                      const std::string& openvino_library, const std::string& openvino_missing,
                      const std::string& openvino_direct_library, const std::string& openvino_direct_missing) {
            PixelFormatOverrides o{value_range, channel_order, mean, stride_multiple, receptive_field};
            return std::make_unique<Class>(model, session_config(device, threads, o, cpu_memory_arena, precision,
                                                                 PluginLibrary{openvino_library, openvino_missing},
                                                                 PluginLibrary{openvino_direct_library, openvino_direct_missing}));
          }),
          py::kw_only(), py::arg("model"), py::arg("device") = "auto", py::arg("threads") = 0,
          py::arg("value_range") = py::none(), py::arg("channel_order") = py::none(), py::arg("mean") = py::none(),
          py::arg("stride_multiple") = py::none(), py::arg("receptive_field") = py::none(),
          py::arg("cpu_memory_arena") = false, py::arg("precision") = "auto", py::arg("openvino_library") = "",
          py::arg("openvino_missing") = "the OpenVINO plugin was not looked for", py::arg("openvino_direct_library") = "",
          py::arg("openvino_direct_missing") = "the openvino package was not looked for")
      .def_property_readonly("provider", [](const Class& e) { return e.session().provider(); })
      .def_property_readonly("device", [](const Class& e) { return e.session().device(); })
      .def_property_readonly("precision", [](const Class& e) { return e.session().precision(); })
      .def_property_readonly("default_tile",
                             [](const Class& e) {
                               const bool statistics_graph = statistics_layout(e.session().model()).has_value();
                               return default_tile(e.session().provider(), e.session().precision(), statistics_graph);
                             })
      .def_property_readonly("fallback_reason", [](const Class& e) { return e.session().fallback_reason(); })
      .def_property_readonly("precision_reason", [](const Class& e) { return e.session().precision_reason(); })
      .def_property_readonly("metadata", [](const Class& e) { return model_metadata(e.session().model()); })
      .def_property_readonly("family", [](const Class& e) { return e.session().model().family; })
      .def_property_readonly("value_range", [](const Class& e) {
        return py::make_tuple(e.session().model().pixels.range_lo, e.session().model().pixels.range_hi);
      })
      .def_property_readonly("channel_order", [](const Class& e) { return e.session().model().pixels.bgr ? "BGR" : "RGB"; })
      .def_property_readonly("mean", [](const Class& e) { return e.session().model().pixels.mean; })
      .def_property_readonly("stride_multiple", [](const Class& e) { return e.session().model().stride_multiple; })
      .def_property_readonly("receptive_field", [](const Class& e) { return e.session().model().receptive_field; })
      .def("plan", &Class::plan, py::kw_only(), py::arg("height"), py::arg("width"), py::arg("tiles"),
           "How an image of this size is tiled: counts, window, halo, tile starts.");
}

// Engine: the image path's binding, a Session restricted to image models.
class Engine : public Session {
 public:
  Engine(const std::string& model_path, const SessionConfig& config) : Session(model_path, config) {
    check_image_model(model());
  }
};

}  // namespace

void bind_engine(py::module_& m) {
  m.def("load_runtime", [](const std::string& path) {
        py::gil_scoped_release release;
        return OrtRuntime::load(path).version();
      }, py::arg("library_path"),
      "Load the ONNX Runtime shared library at library_path (empty: the system's libonnxruntime.so); returns its version.");
  m.def("runtime_loaded", &OrtRuntime::is_loaded);
  m.def("runtime_version", [] { return OrtRuntime::get().version(); });
  m.def("runtime_library", [] { return OrtRuntime::get().library_path(); });
  m.def("available_providers", [] { return OrtRuntime::get().available_providers(); });
  m.attr("MAX_PIXELS") = kMaxPixels;
  m.def("max_threads", &max_threads, "Most threads any call may ask for (4x the hardware threads).");
  m.def("register_openvino", [](const std::string& path, const std::string& missing) {
        py::gil_scoped_release release;  // loading OpenVINO's libraries takes a moment
        return register_openvino(PluginLibrary{path, missing});
      }, py::arg("path"), py::arg("missing") = "",
      "Register the OpenVINO plugin library with ONNX Runtime (once per process); returns '' or why it is unavailable.");
  m.def("ep_devices", [] {
        // What each registered provider can run on: (provider, device type, vendor).
        std::vector<std::tuple<std::string, std::string, std::string>> out;
        for (const auto& d : OrtRuntime::get().ep_devices()) {
          const auto type = d.Device().Type();
          out.emplace_back(d.EpName(), type == OrtHardwareDeviceType_GPU ? "GPU" : type == OrtHardwareDeviceType_NPU ? "NPU" : "CPU",
                           d.Device().Vendor());
        }
        return out;
      });
  m.def("openvino_load_config", [](const std::string& device, const std::string& precision, int threads) {
        return openvino_load_config(device, parse_precision(precision), threads);
      }, py::arg("device"), py::arg("precision"), py::arg("threads") = 0,
      "The OpenVINO plugin's load_config option (JSON) for an OpenVINO device type, precision and thread count.");
  m.def("openvino_direct_devices", [](const std::string& path) {
        py::gil_scoped_release release;  // loading OpenVINO and its plugins takes a moment
        const OpenVinoRuntime& runtime = OpenVinoRuntime::load(path);
        return std::make_pair(runtime.version(), runtime.devices());
      }, py::arg("path"),
      "Load OpenVINO's C API library (once per process); returns (its version, the devices it serves). DeviceError if it cannot.");
  m.def("cpu_has_bf16", &cpu_has_bf16, "Whether this CPU has bf16 instructions (AVX512-BF16 or AMX-BF16).");
  m.def("cpu_features", [] { return cpu_features_text(cpu_features()); },
        "The CPU features that decide the precision on OpenVINO's CPU device (AVX2, AVX-512, VNNI, BF16, AMX).");
  m.attr("INT8_AUTO_MIN_PSNR_DB") = kInt8AutoMinPsnrDb;
  m.def("auto_cpu_precision",
        [](const std::vector<std::string>& features, const std::string& int8_path, const std::string& int8_missing,
           double psnr_db, bool model_is_int8) {
          CpuFeatures cpu;
          for (const auto& f : features) {
            bool* flag = f == "avx2" ? &cpu.avx2 : f == "avx512f" ? &cpu.avx512f : f == "avx512_vnni" ? &cpu.avx512_vnni
                       : f == "avx_vnni" ? &cpu.avx_vnni : f == "amx_int8" ? &cpu.amx_int8
                       : f == "avx512_bf16" ? &cpu.avx512_bf16 : f == "amx_bf16" ? &cpu.amx_bf16 : nullptr;
            if (!flag) throw std::invalid_argument("unknown CPU feature '" + f + "'");
            *flag = true;
          }
          const PrecisionChoice c = auto_cpu_precision(cpu, QuantizedModel{int8_path, int8_missing, psnr_db}, model_is_int8);
          return py::make_tuple(precision_name(c.precision), c.why);
        },
        py::arg("features"), py::arg("int8_path"), py::arg("int8_missing"), py::arg("psnr_db"), py::arg("model_is_int8"),
        "The rule of precision='auto' on OpenVINO's CPU device, for CPU features named as in /proc/cpuinfo: "
        "(precision, why).");

  // Statistics modes by name, as the Python API and the CLI spell them.
  static const StatisticsMode kModes[] = {StatisticsMode::automatic, StatisticsMode::thumbnail, StatisticsMode::exact,
                                          StatisticsMode::off};
  py::class_<TileOptions>(m, "TileOptions")
      .def(py::init([](int64_t tile, int64_t halo, int64_t overlap, int64_t batch, int64_t harmonize,
                       const std::string& statistics, int64_t statistics_size) {
             TileOptions o{tile, halo, overlap, batch, harmonize};
             bool known = false;
             for (StatisticsMode mode : kModes)
               if (statistics == statistics_mode_name(mode)) o.statistics = mode, known = true;
             if (!known)
               throw std::invalid_argument("statistics must be 'auto', 'thumbnail', 'exact' or 'off', got '" + statistics +
                                           "'");
             o.statistics_size = statistics_size;
             check_tile_options(o);
             return o;
           }), py::kw_only(), py::arg("tile") = TileOptions{}.tile, py::arg("halo") = TileOptions{}.halo,
           py::arg("overlap") = TileOptions{}.overlap, py::arg("batch") = TileOptions{}.batch,
           py::arg("harmonize") = TileOptions{}.harmonize,
           py::arg("statistics") = statistics_mode_name(TileOptions{}.statistics),
           py::arg("statistics_size") = TileOptions{}.statistics_size)
      .def_property_readonly("statistics", [](const TileOptions& o) { return statistics_mode_name(o.statistics); })
      .def_readonly("statistics_size", &TileOptions::statistics_size)
      .def_readonly("tile", &TileOptions::tile)
      .def_readonly("halo", &TileOptions::halo)
      .def_readonly("overlap", &TileOptions::overlap)
      .def_readonly("batch", &TileOptions::batch)
      .def_readonly("harmonize", &TileOptions::harmonize);

  py::class_<Session> session(m, "Session", "One model on one device: named inputs and outputs with their roles.");
  def_session_init(session);
  session
      .def_property_readonly("inputs", [](const Session& s) {
        py::list l;
        for (const auto& t : s.model().inputs) l.append(tensor_description(t));
        return l;
      }, "Each input as a dict: name, type, shape (-1: dynamic), role.")
      .def_property_readonly("outputs", [](const Session& s) {
        py::list l;
        for (const auto& t : s.model().outputs) l.append(tensor_description(t));
        return l;
      })
      .def("run", &Session::run, py::kw_only(), py::arg("inputs"), py::arg("outputs") = py::none(),
           "Run on a dict of float32 arrays (every input, by name); returns a dict of the outputs named in "
           "`outputs` (None: all) as float32 arrays.")
      .def("run_tiled", &Session::run_tiled, py::kw_only(), py::arg("spatial"), py::arg("aux") = py::dict(),
           py::arg("tiles") = TileOptions{}, py::arg("palettes") = py::dict(), py::arg("outputs") = py::none(),
           py::arg("progress") = py::none(), py::arg("temperatures") = py::dict(),
           "Tile the image inputs (dict of H x W x C float32 pixel arrays in [0, 1]) and pass the aux inputs (dict "
           "of float32 arrays) whole to every tile.  Returns {'images': {name: H x W x C float32 in [0, 1]}, "
           "'labels': {name: H x W int32 argmax of the blended class scores}, 'colours': {name: H x W x 3 uint8, "
           "for each classes output given a K x 3 palette in `palettes`: the argmax class's colour, or with "
           "`temperatures[name]` = T > 0 the annealed mean sum_k softmax(scores / T)_k palette_k}, 'whole': {name: [one array per network "
           "call]} for aux, scalar and features outputs; tile_mask inputs are made for every tile}.");

  py::class_<Engine, Session> engine(m, "Engine", "The image path: one RGB image in, one stylized image out.");
  def_session_init(engine);
  engine
      .def_property_readonly("input_name", [](const Engine& e) { return e.model().inputs_with(Role::image)[0]->name; })
      .def_property_readonly("output_name", [](const Engine& e) { return e.model().outputs_with(Role::image)[0]->name; })
      .def("run", [](const Engine& e, py::array image, const TileOptions& tiles, float strength, bool preserve_colors,
                     std::optional<py::function> progress) -> py::array {
             if (!std::isfinite(strength) || strength < 0.f || strength > 1.f)
               throw std::invalid_argument("strength must be within [0, 1], got " + std::to_string(strength));
             const PostOptions post{strength, preserve_colors};
             if (py::isinstance<py::array_t<uint8_t>>(image))
               return e.run_image<uint8_t>(image.cast<py::array_t<uint8_t, py::array::c_style>>(), tiles, post, progress);
             if (py::isinstance<py::array_t<uint16_t>>(image))
               return e.run_image<uint16_t>(image.cast<py::array_t<uint16_t, py::array::c_style>>(), tiles, post, progress);
             if (py::isinstance<py::array_t<float>>(image))
               return e.run_image<float>(image.cast<py::array_t<float, py::array::c_style>>(), tiles, post, progress);
             throw std::invalid_argument("image dtype must be uint8, uint16 or float32, got " +
                                         std::string(py::str(image.dtype())));
           },
           py::kw_only(), py::arg("image"), py::arg("tiles"), py::arg("strength") = 1.f, py::arg("preserve_colors") = false,
           py::arg("progress") = py::none(),
           "Stylize a C-contiguous H x W x 3 image (uint8, uint16, or float32 in [0, 1]); returns the same type.");
}

void register_errors(py::module_& m) {
  // The exception classes live in Python (deepshop_native.errors) so that Python code and the
  // core raise the very same types.
  py::module_ errors = py::module_::import("deepshop_native.errors");
  // Held for the life of the process (released, never decref'ed at exit after the interpreter).
  static py::handle model_error = py::object(errors.attr("ModelError")).release();
  static py::handle device_error = py::object(errors.attr("DeviceError")).release();
  static py::handle runtime_error = py::object(errors.attr("RuntimeNotFoundError")).release();
  static py::handle cancelled = py::object(errors.attr("Cancelled")).release();
  static py::handle option_error = py::object(errors.attr("OptionError")).release();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ModelError& e) {
      PyErr_SetString(model_error.ptr(), e.what());
    } catch (const DeviceError& e) {
      PyErr_SetString(device_error.ptr(), e.what());
    } catch (const RuntimeNotFoundError& e) {
      PyErr_SetString(runtime_error.ptr(), e.what());
    } catch (const Cancelled& e) {
      PyErr_SetString(cancelled.ptr(), e.what());
    } catch (const std::invalid_argument& e) {
      // A bad option or argument value: OptionError is both a DeepshopError and a ValueError.
      PyErr_SetString(option_error.ptr(), e.what());
    } catch (const Ort::Exception& e) {
      PyErr_SetString(PyExc_RuntimeError, (std::string("ONNX Runtime: ") + e.what()).c_str());
    }
  });
}

}  // namespace deepshop::bindings
