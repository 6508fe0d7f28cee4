#pragma once
// Loading ONNX Runtime at run time.
//
// The engine is built against ORT's headers only.  The shared library comes from whatever the
// user installed (the onnxruntime or onnxruntime-gpu wheel, or a system ORT) and is dlopen'ed
// here, so one binary works with all of them and no path is baked into it.
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

 private:
  OrtRuntime(std::string library_path, std::string version);

  std::string library_path_;
  std::string version_;
  std::unique_ptr<Ort::Env> env_;
};

}  // namespace deepshop
