#include "engine/openvino_runtime.h"

#include <dlfcn.h>

#include <algorithm>
#include <mutex>

#include "engine/errors.h"

namespace deepshop {
namespace {

std::mutex g_load_mutex;
std::unique_ptr<OpenVinoRuntime> g_runtime;

template <typename Fn>
void resolve(void* handle, const std::string& path, const char* symbol, Fn& fn) {
  void* address = dlsym(handle, symbol);
  if (!address) throw DeviceError(path + " is not OpenVINO's C API library (no " + symbol + " symbol)");
  fn = reinterpret_cast<Fn>(address);
}

}  // namespace

OpenVinoRuntime& OpenVinoRuntime::load(const std::string& library_path) {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  if (g_runtime) {
    if (g_runtime->library_path_ != library_path)
      throw DeviceError("OpenVINO is already loaded from " + g_runtime->library_path_ + "; cannot load a second copy from " +
                        library_path);
    return *g_runtime;
  }
  if (library_path.empty()) throw DeviceError("no OpenVINO library was given");
  // Never closed, like ONNX Runtime's: OpenVINO's plugins keep threads (TBB) alive until exit.
  void* handle = dlopen(library_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    throw DeviceError("cannot load OpenVINO from " + library_path + ": " + (why ? why : "unknown error"));
  }
  std::unique_ptr<OpenVinoRuntime> runtime(new OpenVinoRuntime());
  runtime->library_path_ = library_path;
  ov::Api& a = runtime->api_;
  const std::string& p = library_path;
  resolve(handle, p, "ov_get_last_err_msg", a.get_last_err_msg);
  resolve(handle, p, "ov_free", a.free_string);
  resolve(handle, p, "ov_get_openvino_version", a.get_openvino_version);
  resolve(handle, p, "ov_version_free", a.version_free);
  resolve(handle, p, "ov_core_create", a.core_create);
  resolve(handle, p, "ov_core_free", a.core_free);
  resolve(handle, p, "ov_core_get_available_devices", a.core_get_available_devices);
  resolve(handle, p, "ov_available_devices_free", a.available_devices_free);
  resolve(handle, p, "ov_core_read_model", a.core_read_model);
  resolve(handle, p, "ov_core_compile_model", a.core_compile_model);
  resolve(handle, p, "ov_model_free", a.model_free);
  resolve(handle, p, "ov_model_reshape", a.model_reshape);
  resolve(handle, p, "ov_partial_shape_create_static", a.partial_shape_create_static);
  resolve(handle, p, "ov_partial_shape_free", a.partial_shape_free);
  resolve(handle, p, "ov_compiled_model_create_infer_request", a.compiled_model_create_infer_request);
  resolve(handle, p, "ov_compiled_model_free", a.compiled_model_free);
  resolve(handle, p, "ov_infer_request_set_tensor", a.infer_request_set_tensor);
  resolve(handle, p, "ov_infer_request_get_tensor", a.infer_request_get_tensor);
  resolve(handle, p, "ov_infer_request_infer", a.infer_request_infer);
  resolve(handle, p, "ov_infer_request_free", a.infer_request_free);
  a.infer_request_cancel = reinterpret_cast<decltype(a.infer_request_cancel)>(dlsym(handle, "ov_infer_request_cancel"));
  resolve(handle, p, "ov_shape_create", a.shape_create);
  resolve(handle, p, "ov_shape_free", a.shape_free);
  resolve(handle, p, "ov_tensor_create_from_host_ptr", a.tensor_create_from_host_ptr);
  resolve(handle, p, "ov_tensor_get_shape", a.tensor_get_shape);
  resolve(handle, p, "ov_tensor_get_element_type", a.tensor_get_element_type);
  resolve(handle, p, "ov_tensor_data", a.tensor_data);
  resolve(handle, p, "ov_tensor_free", a.tensor_free);

  ov::Version version{};
  if (a.get_openvino_version(&version) == ov::kOk) {
    runtime->version_ = version.build_number ? version.build_number : "";
    a.version_free(&version);
  }
  ov::Core* core = nullptr;
  runtime->check(a.core_create(&core), "OpenVINO (" + library_path + ") could not start");
  runtime->core_ = std::unique_ptr<ov::Core, CoreDeleter>(core, CoreDeleter{&runtime->api_});
  g_runtime = std::move(runtime);
  return *g_runtime;
}

void OpenVinoRuntime::check(ov::Status status, const std::string& what) const {
  if (status == ov::kOk) return;
  std::string message = "status " + std::to_string(status);
  // The message is a copy the caller owns (ov_free).
  if (const char* last = api_.get_last_err_msg()) {
    message = last;
    api_.free_string(last);
  }
  // OpenVINO's messages run over several lines (with source locations): the first lines suffice.
  std::replace(message.begin(), message.end(), '\n', ' ');
  if (message.size() > 600) message = message.substr(0, 600) + "...";
  throw DeviceError(what + ": " + message);
}

std::vector<std::string> OpenVinoRuntime::devices() const {
  ov::AvailableDevices list{};
  check(api_.core_get_available_devices(core_.get(), &list), "OpenVINO could not list its devices");
  std::vector<std::string> names;
  for (size_t i = 0; i < list.size; ++i) names.emplace_back(list.devices[i]);
  api_.available_devices_free(&list);
  return names;
}

std::string openvino_direct_unavailable(const std::string& library_path, const std::string& missing,
                                        const std::string& device) {
  if (library_path.empty()) return missing.empty() ? "the openvino package is not installed" : missing;
  try {
    const auto names = OpenVinoRuntime::load(library_path).devices();
    // "GPU" also matches OpenVINO's numbered "GPU.0", "GPU.1".
    for (const auto& name : names)
      if (name == device || name.rfind(device + ".", 0) == 0) return "";
    std::string listed;
    for (const auto& name : names) listed += (listed.empty() ? "" : ", ") + name;
    return "OpenVINO lists no " + device + " device here (it has: " + (listed.empty() ? "none" : listed) + ")";
  } catch (const DeviceError& e) {
    return e.what();
  }
}

}  // namespace deepshop
