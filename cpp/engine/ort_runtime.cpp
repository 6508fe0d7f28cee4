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
  // The C API is backward compatible: a newer library serves the API version of our headers.
  const OrtApi* api = base->GetApi(ORT_API_VERSION);
  if (!api)
    throw RuntimeNotFoundError("ONNX Runtime " + version + " at " + path + " is too old: deepshop needs API version " +
                               std::to_string(ORT_API_VERSION) + " (ONNX Runtime 1." +
                               std::to_string(ORT_API_VERSION) + " or newer)");
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

bool OrtRuntime::has_provider(const std::string& name) const {
  const auto providers = available_providers();
  return std::find(providers.begin(), providers.end(), name) != providers.end();
}

}  // namespace deepshop
