// Python bindings of the engine: load_runtime / runtime info; Session (one model on one device:
// its named inputs and outputs, run() on named arrays, run_tiled() through the channel-generic
// tiled runner); and Engine, the image path's binding (one image in, one stylized image out)
// built on the same session and runner.  The GIL is released while the network runs; the
// progress callback (and Ctrl-C) are served between batches with the GIL taken back briefly.
#include <pybind11/stl.h>

#include <memory>
#include <optional>

#include "bindings/bindings.h"
#include "bindings/session.h"
#include "engine/errors.h"
#include "engine/image_runner.h"
#include "engine/limits.h"
#include "engine/model_runner.h"
#include "engine/openvino_runtime.h"
#include "engine/ort_runtime.h"

namespace deepshop::bindings {
namespace {

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

py::dict tensor_description(const TensorSpec& t) {
  py::dict d;
  d["name"] = t.name;
  d["type"] = t.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 ? "float16" : "float32";
  d["shape"] = py::tuple(py::cast(t.shape));
  d["role"] = role_name(t.role);
  return d;
}

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
      .def_property_readonly("default_tile", [](const Class& e) { return default_tile(e.session()); })
      .def_property_readonly("default_tile_area", [](const Class& e) { return default_tile_area(e.session()); })
      .def_property_readonly("whole_area", [](const Class& e) { return whole_area(e.session()); })
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

Session::Session(const std::string& model_path, const SessionConfig& config) {
  py::gil_scoped_release release;  // session creation parses and optimizes the graph
  session_ = std::make_unique<InferenceSession>(model_path, config);
}

py::dict Session::plan(int64_t height, int64_t width, const TileOptions& requested) const {
  const RunPlan p = plan_run(model(), height, width, requested);
  py::dict d;
  d["tiles_y"] = p.tiles.rows.count();
  d["tiles_x"] = p.tiles.cols.count();
  d["window"] = py::make_tuple(p.tiles.rows.window, p.tiles.cols.window);
  d["halo"] = py::make_tuple(p.tiles.rows.halo, p.tiles.cols.halo);
  d["row_starts"] = p.tiles.rows.starts;
  d["col_starts"] = p.tiles.cols.starts;
  d["kept"] = py::make_tuple(p.tiles.rows.kept, p.tiles.cols.kept);
  d["statistics"] = statistics_mode_name(p.statistics);
  d["passes"] = p.passes;
  d["harmonize"] = p.harmonize;
  return d;
}

py::dict Session::run(const py::dict& inputs, std::optional<std::vector<std::string>> outputs) const {
  std::vector<FloatArray> keep;  // holds the (converted) buffers while the GIL is released
  const TensorViews views = views_of(inputs, keep, "input");
  Tensors result;
  CancelToken token;  // Ctrl-C stops the run within the network call
  run_interruptible(token, [&] { result = session_->run(views, outputs.value_or(std::vector<std::string>{})); });
  py::dict d;
  for (auto& [name, t] : result) d[py::str(name)] = to_numpy(std::move(t));
  return d;
}

py::dict Session::run_tiled(const py::dict& spatial, const py::dict& aux, const TileOptions& requested,
                            const py::dict& palettes, std::optional<std::vector<std::string>> outputs,
                            const std::optional<py::function>& progress, const py::dict& temperatures) const {
  const ModelInfo& m = model();
  check_tile_options(requested);
  const TileOptions tiles = with_session_threads(requested);
  // Image inputs: H x W x C (or H x W) pixel arrays, float32 in [0, 1].
  std::vector<FloatArray> keep;
  ModelInputs inputs;
  for (auto [k, v] : spatial) {
    const std::string name = py::str(k);
    FloatArray a = FloatArray::ensure(v);
    if (!a || (a.ndim() != 2 && a.ndim() != 3))
      throw std::invalid_argument("spatial input '" + name + "' must be an H x W or H x W x C array");
    keep.push_back(a);
    inputs.images[name] = ImageView<const float>{a.data(), a.shape(0), a.shape(1), a.ndim() == 3 ? a.shape(2) : 1};
  }
  inputs.aux = views_of(aux, keep, "aux input");
  const auto [H, W] = check_model_inputs(m, inputs);
  std::map<std::string, std::vector<uint8_t>> palette_of;
  for (auto [k, v] : palettes) {
    auto p = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(v);
    if (!p || p.ndim() != 2 || p.shape(1) != 3 || p.shape(0) < 1)
      throw std::invalid_argument("palette for '" + py::str(k).cast<std::string>() + "' must be a K x 3 uint8 array");
    palette_of[py::str(k)] = std::vector<uint8_t>(p.data(), p.data() + p.size());
  }
  std::map<std::string, float> temperature_of;
  for (auto [k, v] : temperatures) temperature_of[py::str(k)] = v.cast<float>();
  const TilingSummary plan = plan_tiles(m.geometry(), H, W, tiles);
  const std::vector<OutputRequest> requests = request_outputs(m, outputs, plan, palette_of, temperature_of);

  // The spatial outputs' buffers, as numpy arrays the result hands back.
  py::dict images, labels, colours, whole;
  OutputBuffers buffers;
  for (const OutputRequest& r : requests) {
    if (r.kind == OutputKind::image) {
      py::array_t<float> out({H, W, r.channels});
      images[py::str(r.name)] = out;
      buffers.images[r.name] = out.mutable_data();
    } else if (r.kind == OutputKind::classes) {
      py::array_t<int32_t> lab({H, W});
      labels[py::str(r.name)] = lab;
      buffers.labels[r.name] = lab.mutable_data();
      if (!r.palette.empty()) {
        py::array_t<uint8_t> rgb({H, W, int64_t(3)});
        colours[py::str(r.name)] = rgb;
        buffers.colours[r.name] = rgb.mutable_data();
      }
    }
  }
  std::map<std::string, std::vector<Tensor>> per_call;
  run_with_progress(progress, [&](const ProgressFn& on_progress) {
    per_call = run_model(*session_, inputs, requests, buffers, plan, tiles, on_progress);
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
py::array_t<T> Session::run_image(py::array_t<T, py::array::c_style> image, const TileOptions& requested,
                                  const PostOptions& post, const py::dict& aux,
                                  const std::optional<py::function>& progress,
                                  const std::optional<std::pair<FloatArray, FloatArray>>& statistics) const {
  if (image.ndim() != 3 || image.shape(2) != 3) throw std::invalid_argument("image must be a contiguous H x W x 3 array");
  check_tile_options(requested);
  const TileOptions tiles = with_session_threads(requested);
  std::vector<FloatArray> keep;
  const TensorViews aux_views = views_of(aux, keep, "aux input");
  std::optional<PackedStatistics> given;
  if (statistics) {
    const auto& [mean, var] = *statistics;
    if (!mean || !var || mean.ndim() != 1 || var.ndim() != 1)
      throw std::invalid_argument("statistics: expected (means, variances), two 1-D float arrays");
    given = PackedStatistics{std::vector<float>(mean.data(), mean.data() + mean.size()),
                             std::vector<float>(var.data(), var.data() + var.size())};
  }
  const int64_t h = image.shape(0), w = image.shape(1);
  py::array_t<T> result({h, w, int64_t(3)});
  ImageView<const T> in{image.data(), h, w, 3};
  ImageView<T> out{result.mutable_data(), h, w, 3};
  run_with_progress(progress, [&](const ProgressFn& on_progress) {
    deepshop::run_image<T>(*session_, in, out, tiles, post, aux_views, on_progress, given ? &*given : nullptr);
  });
  return result;
}

template <typename T>
py::tuple Session::image_statistics(py::array_t<T, py::array::c_style> image, const TileOptions& requested,
                                    const std::string& mode, const py::dict& aux) const {
  if (image.ndim() != 3 || image.shape(2) != 3) throw std::invalid_argument("image must be a contiguous H x W x 3 array");
  check_tile_options(requested);
  const TileOptions tiles = with_session_threads(requested);
  if (mode != "thumbnail" && mode != "exact")
    throw std::invalid_argument("statistics: mode must be 'thumbnail' or 'exact', got '" + mode + "'");
  std::vector<FloatArray> keep;
  const TensorViews aux_views = views_of(aux, keep, "aux input");
  PackedStatistics stats;
  const ImageView<const T> in{image.data(), image.shape(0), image.shape(1), 3};
  {
    py::gil_scoped_release release;
    stats = deepshop::image_statistics<T>(*session_, in, tiles,
                                          mode == "exact" ? StatisticsMode::exact : StatisticsMode::thumbnail,
                                          aux_views, nullptr);
  }
  return py::make_tuple(to_numpy(Tensor{{static_cast<int64_t>(stats.mean.size())}, std::move(stats.mean)}),
                        to_numpy(Tensor{{static_cast<int64_t>(stats.var.size())}, std::move(stats.var)}));
}


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
                       const std::string& statistics, int64_t statistics_size, int64_t tile_area,
                       int64_t whole_area) {
             TileOptions o{tile, halo, overlap, batch, harmonize};
             o.tile_area = tile_area;
             o.whole_area = whole_area;
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
           py::arg("statistics_size") = TileOptions{}.statistics_size, py::arg("tile_area") = TileOptions{}.tile_area,
           py::arg("whole_area") = TileOptions{}.whole_area)
      .def_property_readonly("statistics", [](const TileOptions& o) { return statistics_mode_name(o.statistics); })
      .def_readonly("statistics_size", &TileOptions::statistics_size)
      .def_readonly("tile", &TileOptions::tile)
      .def_readonly("tile_area", &TileOptions::tile_area)
      .def_readonly("whole_area", &TileOptions::whole_area)
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
      .def("statistics", [](const Engine& e, py::array image, const TileOptions& tiles, const py::dict& aux,
                            const std::string& mode) -> py::tuple {
             if (py::isinstance<py::array_t<uint8_t>>(image))
               return e.image_statistics<uint8_t>(image.cast<py::array_t<uint8_t, py::array::c_style>>(), tiles, mode, aux);
             if (py::isinstance<py::array_t<uint16_t>>(image))
               return e.image_statistics<uint16_t>(image.cast<py::array_t<uint16_t, py::array::c_style>>(), tiles, mode, aux);
             if (py::isinstance<py::array_t<float>>(image))
               return e.image_statistics<float>(image.cast<py::array_t<float, py::array::c_style>>(), tiles, mode, aux);
             throw std::invalid_argument("image dtype must be uint8, uint16 or float32, got " +
                                         std::string(py::str(image.dtype())));
           },
           py::kw_only(), py::arg("image"), py::arg("tiles"), py::arg("aux") = py::dict(), py::arg("mode") = "thumbnail",
           "(means, variances) a global-statistics graph normalises this image with: its thumbnail's, or (exact) the "
           "whole image's measured over the tiles.")
      .def("run", [](const Engine& e, py::array image, const TileOptions& tiles, float strength, bool preserve_colors,
                     const py::dict& aux, int64_t working_size, int64_t guided_radius, float guided_eps,
                     std::optional<std::pair<FloatArray, FloatArray>> statistics,
                     std::optional<py::function> progress) -> py::array {
             if (!std::isfinite(strength) || strength < 0.f || strength > 1.f)
               throw std::invalid_argument("strength must be within [0, 1], got " + std::to_string(strength));
             check_range(working_size, 0, kMaxPixels, "working_size");
             check_range(guided_radius, 0, 1024, "guided_radius");
             if (!(guided_eps > 0.f) || !std::isfinite(guided_eps))
               throw std::invalid_argument("guided_eps must be a finite number > 0");
             const PostOptions post{strength, preserve_colors, working_size, guided_radius, guided_eps};
             if (py::isinstance<py::array_t<uint8_t>>(image))
               return e.run_image<uint8_t>(image.cast<py::array_t<uint8_t, py::array::c_style>>(), tiles, post, aux,
                                           progress, statistics);
             if (py::isinstance<py::array_t<uint16_t>>(image))
               return e.run_image<uint16_t>(image.cast<py::array_t<uint16_t, py::array::c_style>>(), tiles, post, aux,
                                            progress, statistics);
             if (py::isinstance<py::array_t<float>>(image))
               return e.run_image<float>(image.cast<py::array_t<float, py::array::c_style>>(), tiles, post, aux, progress,
                                         statistics);
             throw std::invalid_argument("image dtype must be uint8, uint16 or float32, got " +
                                         std::string(py::str(image.dtype())));
           },
           py::kw_only(), py::arg("image"), py::arg("tiles"), py::arg("strength") = 1.f, py::arg("preserve_colors") = false,
           py::arg("aux") = py::dict(), py::arg("working_size") = PostOptions{}.working_size,
           py::arg("guided_radius") = PostOptions{}.guided_radius, py::arg("guided_eps") = PostOptions{}.guided_eps,
           py::arg("statistics") = py::none(), py::arg("progress") = py::none(),
           "Stylize a C-contiguous H x W x 3 image (uint8, uint16, or float32 in [0, 1]); returns the same type. "
           "`aux`: the model's aux inputs (a style's Gram matrix or vector), given whole to every run.  "
           "`working_size`: run the network on the image downscaled to this longer side and guided-upsample the "
           "result (0: full size).");
  m.def("working_shape", &working_shape, py::kw_only(), py::arg("height"), py::arg("width"), py::arg("working_size"),
        "The (height, width) the network runs at for an image of this size and a working size.");
}

void register_errors(py::module_& m) {
  // The exception classes live in Python (deepshop_native.core.errors) so that Python code and the
  // core raise the very same types.
  py::module_ errors = py::module_::import("deepshop_native.core.errors");
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
