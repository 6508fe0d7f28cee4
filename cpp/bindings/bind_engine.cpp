// Python bindings of the engine: load_runtime / runtime info, and Engine (one model on one
// device) whose run() stylizes a numpy image.  The GIL is released while tiles run; the
// progress callback (and Ctrl-C) are served between batches with the GIL taken back briefly.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>

#include "bindings/bindings.h"
#include "engine/errors.h"
#include "engine/inference_session.h"
#include "engine/ort_runtime.h"
#include "engine/tiled_runner.h"

namespace py = pybind11;

namespace deepshop::bindings {
namespace {

class Engine {
 public:
  Engine(const std::string& model_path, const std::string& device, int threads, PixelFormatOverrides overrides,
         bool cpu_memory_arena, const std::string& precision, PluginLibrary openvino) {
    SessionConfig config;
    config.cpu_memory_arena = cpu_memory_arena;
    config.device = device;
    config.precision = precision;
    config.openvino = std::move(openvino);
    config.intra_op_threads = threads;
    config.overrides = std::move(overrides);
    py::gil_scoped_release release;  // session creation parses and optimizes the graph
    session_ = std::make_unique<InferenceSession>(model_path, config);
  }

  const InferenceSession& session() const { return *session_; }

  py::dict plan(int64_t height, int64_t width, const TileOptions& options) const {
    const TilingSummary s = plan_tiles(session_->model(), height, width, options);
    py::dict d;
    d["tiles_y"] = s.rows.count();
    d["tiles_x"] = s.cols.count();
    d["window"] = py::make_tuple(s.rows.window, s.cols.window);
    d["halo"] = py::make_tuple(s.rows.halo, s.cols.halo);
    d["row_starts"] = s.rows.starts;
    d["col_starts"] = s.cols.starts;
    d["kept"] = py::make_tuple(s.rows.kept, s.cols.kept);
    return d;
  }

  template <typename T>
  py::array_t<T> run(py::array_t<T, py::array::c_style> image, const TileOptions& tiles, const PostOptions& post,
                     std::optional<py::function> progress) {
    if (image.ndim() != 3 || image.shape(2) != 3)
      throw std::invalid_argument("image must be a contiguous H x W x 3 array");
    const int64_t h = image.shape(0), w = image.shape(1);
    py::array_t<T> result({h, w, int64_t(3)});
    ImageView<const T> in{image.data(), h, w};
    ImageView<T> out{result.mutable_data(), h, w};

    // Python errors raised in the callback (KeyboardInterrupt included) are kept and re-raised
    // once the native run has unwound.
    std::optional<py::error_already_set> callback_error;
    ProgressFn on_progress = [&](int64_t done, int64_t total) {
      py::gil_scoped_acquire gil;
      try {
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        if (progress) {
          py::object r = (*progress)(done, total);
          if (!r.is_none() && !r.cast<bool>()) return false;
        }
      } catch (py::error_already_set& e) {
        callback_error.emplace(std::move(e));
        return false;
      }
      return true;
    };
    try {
      py::gil_scoped_release release;
      run_tiled<T>(*session_, in, out, tiles, post, on_progress);
    } catch (const Cancelled&) {
      if (callback_error) throw std::move(*callback_error);
      throw;
    }
    return result;
  }

 private:
  std::unique_ptr<InferenceSession> session_;
};

py::dict model_metadata(const ModelInfo& m) {
  py::dict d;
  for (const auto& [k, v] : m.metadata) d[py::str(k)] = v;
  return d;
}

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
  m.def("cpu_has_bf16", &cpu_has_bf16, "Whether this CPU has bf16 instructions (AVX512-BF16 or AMX-BF16).");

  py::class_<TileOptions>(m, "TileOptions")
      .def(py::init([](int64_t tile, int64_t halo, int64_t overlap, int64_t batch, int64_t harmonize) {
             if (tile < 0 || overlap < 0 || batch < 1 || harmonize < 0)
               throw std::invalid_argument("tile, overlap and harmonize must be >= 0 and batch >= 1");
             return TileOptions{tile, halo, overlap, batch, harmonize};
           }), py::arg("tile") = TileOptions{}.tile, py::arg("halo") = TileOptions{}.halo,
           py::arg("overlap") = TileOptions{}.overlap, py::arg("batch") = TileOptions{}.batch,
           py::arg("harmonize") = TileOptions{}.harmonize)
      .def_readwrite("tile", &TileOptions::tile)
      .def_readwrite("halo", &TileOptions::halo)
      .def_readwrite("overlap", &TileOptions::overlap)
      .def_readwrite("batch", &TileOptions::batch)
      .def_readwrite("harmonize", &TileOptions::harmonize);

  py::class_<Engine>(m, "Engine")
      .def(py::init([](const std::string& model, const std::string& device, int threads,
                       std::optional<std::array<float, 2>> value_range, std::optional<std::string> channel_order,
                       std::optional<std::array<float, 3>> mean, std::optional<int64_t> stride_multiple,
                       std::optional<int64_t> receptive_field, bool cpu_memory_arena, const std::string& precision,
                       const std::string& openvino_library, const std::string& openvino_missing) {
             PixelFormatOverrides o{value_range, channel_order, mean, stride_multiple, receptive_field};
             return std::make_unique<Engine>(model, device, threads, o, cpu_memory_arena, precision,
                                             PluginLibrary{openvino_library, openvino_missing});
           }),
           py::arg("model"), py::arg("device") = "auto", py::arg("threads") = 0, py::arg("value_range") = py::none(),
           py::arg("channel_order") = py::none(), py::arg("mean") = py::none(), py::arg("stride_multiple") = py::none(),
           py::arg("receptive_field") = py::none(), py::arg("cpu_memory_arena") = false, py::arg("precision") = "auto",
           py::arg("openvino_library") = "", py::arg("openvino_missing") = "the OpenVINO plugin was not looked for")
      .def_property_readonly("provider", [](const Engine& e) { return e.session().provider(); })
      .def_property_readonly("device", [](const Engine& e) { return e.session().device(); })
      .def_property_readonly("precision", [](const Engine& e) { return e.session().precision(); })
      .def_property_readonly("default_tile", [](const Engine& e) { return default_tile(e.session().provider()); })
      .def_property_readonly("fallback_reason", [](const Engine& e) { return e.session().fallback_reason(); })
      .def_property_readonly("metadata", [](const Engine& e) { return model_metadata(e.session().model()); })
      .def_property_readonly("input_name", [](const Engine& e) { return e.session().model().input.name; })
      .def_property_readonly("output_name", [](const Engine& e) { return e.session().model().output.name; })
      .def_property_readonly("value_range", [](const Engine& e) {
        return py::make_tuple(e.session().model().range_lo, e.session().model().range_hi);
      })
      .def_property_readonly("channel_order", [](const Engine& e) { return e.session().model().bgr ? "BGR" : "RGB"; })
      .def_property_readonly("mean", [](const Engine& e) { return e.session().model().mean; })
      .def_property_readonly("stride_multiple", [](const Engine& e) { return e.session().model().stride_multiple; })
      .def_property_readonly("receptive_field", [](const Engine& e) { return e.session().model().receptive_field; })
      .def("plan", &Engine::plan, py::arg("height"), py::arg("width"), py::arg("tiles"))
      .def("run", [](Engine& e, py::array image, const TileOptions& tiles, float strength, bool preserve_colors,
                     std::optional<py::function> progress) -> py::array {
             const PostOptions post{strength, preserve_colors};
             if (py::isinstance<py::array_t<uint8_t>>(image))
               return e.run<uint8_t>(image.cast<py::array_t<uint8_t, py::array::c_style>>(), tiles, post, progress);
             if (py::isinstance<py::array_t<uint16_t>>(image))
               return e.run<uint16_t>(image.cast<py::array_t<uint16_t, py::array::c_style>>(), tiles, post, progress);
             if (py::isinstance<py::array_t<float>>(image))
               return e.run<float>(image.cast<py::array_t<float, py::array::c_style>>(), tiles, post, progress);
             throw std::invalid_argument("image dtype must be uint8, uint16 or float32, got " +
                                         std::string(py::str(image.dtype())));
           },
           py::arg("image"), py::arg("tiles"), py::arg("strength") = 1.f, py::arg("preserve_colors") = false,
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
    } catch (const OptionError& e) {
      PyErr_SetString(option_error.ptr(), e.what());
    } catch (const Ort::Exception& e) {
      PyErr_SetString(PyExc_RuntimeError, (std::string("ONNX Runtime: ") + e.what()).c_str());
    }
  });
}

}  // namespace deepshop::bindings
