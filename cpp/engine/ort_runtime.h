#pragma once
// Loading ONNX Runtime at run time.
//
// The engine is built against ORT's headers only.  The shared library comes from whatever the
// user installed (the onnxruntime or onnxruntime-gpu wheel, or a system ORT) and is dlopen'ed
// here, so one binary works with all of them and no path is baked into it.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/ort_api.h"

namespace deepshop {

class OrtRuntime {
 public:
  // Loads the library at `library_path` (or, if empty, "libonnxruntime.so" from the system's
  // search path) and initialises the C++ API.  Idempotent for the same path; a second, different
  // path is refused, since two ORT copies cannot share one C++ API global.
  static OrtRuntime& load(const std::string& library_path);
  // The loaded runtime; throws RuntimeNotFoundError when load() has not succeeded yet.
  static OrtRuntime& get();
  static bool is_loaded();

  const std::string& library_path() const { return library_path_; }
  const std::string& version() const { return version_; }
  std::vector<std::string> available_providers() const;
  bool has_provider(const std::string& name) const;
  Ort::Env& env() { return *env_; }

  // Registers an execution-provider plugin library (e.g. OpenVINO's) with the environment, once
  // per process: a second call with the same name and path does nothing, another path is refused
  // (ORT cannot unload a plugin that sessions may still use).  Throws Ort::Exception when ORT
  // cannot load the library.
  void register_plugin(const std::string& name, const std::string& path);
  // The devices every registered provider (built-in and plugin) can run on.
  std::vector<Ort::ConstEpDevice> ep_devices() const;

 private:
  OrtRuntime(std::string library_path, std::string version);

  std::string library_path_;
  std::string version_;
  std::unique_ptr<Ort::Env> env_;
  mutable std::mutex plugin_mutex_;
  std::map<std::string, std::string> plugins_;  // registration name -> library path
};

}  // namespace deepshop
