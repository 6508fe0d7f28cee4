#include "engine/ort_runtime.h"

#include <dlfcn.h>

#include <algorithm>

#include "engine/errors.h"

namespace deepshop {
namespace {

std::mutex g_load_mutex;
std::unique_ptr<OrtRuntime> g_runtime;

using GetApiBaseFn = const OrtApiBase* (*)();

}  // namespace

OrtRuntime::OrtRuntime(std::string library_path, std::string version)
    : library_path_(std::move(library_path)), version_(std::move(version)) {
  env_ = std::make_unique<Ort::Env>(ORT_LOGGING_LEVEL_WARNING, "deepshop");
}

OrtRuntime& OrtRuntime::load(const std::string& library_path) {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  const std::string path = library_path.empty() ? std::string("libonnxruntime.so") : library_path;
  if (g_runtime) {
    if (g_runtime->library_path_ != path)
      throw RuntimeNotFoundError("ONNX Runtime is already loaded from " + g_runtime->library_path_ +
                                 "; cannot load a second copy from " + path);
    return *g_runtime;
  }
  // The handle is deliberately never closed: ORT keeps threads and static state alive until the
  // process exits, and unloading it underneath them is undefined behaviour.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    throw RuntimeNotFoundError("cannot load ONNX Runtime from " + path + ": " + (why ? why : "unknown error"));
  }
  auto get_api_base = reinterpret_cast<GetApiBaseFn>(dlsym(handle, "OrtGetApiBase"));
  if (!get_api_base)
    throw RuntimeNotFoundError(path + " is not an ONNX Runtime library (no OrtGetApiBase symbol)");
  const OrtApiBase* base = get_api_base();
  const std::string version = base->GetVersionString();
  // The C API is backward compatible: a newer library serves the API version of our headers.  An
  // older one returns null: the headers' version (1.23, for the plugin execution providers) is
  // the least ONNX Runtime deepshop runs on.
  const OrtApi* api = base->GetApi(ORT_API_VERSION);
  if (!api)
    throw RuntimeNotFoundError("ONNX Runtime " + version + " at " + path + " is too old: deepshop needs API version " +
                               std::to_string(ORT_API_VERSION) + ", that is ONNX Runtime 1." +
                               std::to_string(ORT_API_VERSION) + " or newer (pip install -U 'onnxruntime>=1." +
                               std::to_string(ORT_API_VERSION) + "')");
  Ort::InitApi(api);
  g_runtime.reset(new OrtRuntime(path, version));
  return *g_runtime;
}

OrtRuntime& OrtRuntime::get() {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  if (!g_runtime) throw RuntimeNotFoundError("ONNX Runtime is not loaded yet (call load_runtime first)");
  return *g_runtime;
}

bool OrtRuntime::is_loaded() {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  return static_cast<bool>(g_runtime);
}

std::vector<std::string> OrtRuntime::available_providers() const { return Ort::GetAvailableProviders(); }

void OrtRuntime::register_plugin(const std::string& name, const std::string& path) {
  std::lock_guard<std::mutex> lock(plugin_mutex_);
  const auto it = plugins_.find(name);
  if (it != plugins_.end()) {
    if (it->second != path)
      throw DeviceError("execution provider plugin '" + name + "' is already registered from " + it->second +
                        "; cannot register a second copy from " + path + " in the same process");
    return;
  }
  env_->RegisterExecutionProviderLibrary(name.c_str(), path);
  plugins_.emplace(name, path);
}

std::vector<Ort::ConstEpDevice> OrtRuntime::ep_devices() const { return env_->GetEpDevices(); }

bool OrtRuntime::has_provider(const std::string& name) const {
  const auto providers = available_providers();
  return std::find(providers.begin(), providers.end(), name) != providers.end();
}

}  // namespace deepshop
