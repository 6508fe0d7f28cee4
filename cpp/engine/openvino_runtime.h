#pragma once
// Loading OpenVINO's C API at run time, for the direct OpenVINO backend (OpenVinoNetwork).
//
// As with ONNX Runtime (ort_runtime.h), nothing is linked: libopenvino_c.so comes from the
// `openvino` wheel the user installed (or $DEEPSHOP_OPENVINO_LIBRARY), found by the Python side and
// dlopen'ed here once per process.  Its own dependencies (libopenvino.so, the CPU plugin, the ONNX
// front end) sit next to it and are found through its RPATH.
#include <memory>
#include <string>
#include <vector>

#include "engine/openvino_api.h"

namespace deepshop {

class OpenVinoRuntime {
 public:
  // Loads the library at `library_path` once per process (the same path again: the loaded one;
  // another path: DeviceError, as two OpenVINO copies cannot share one process safely).  Throws
  // DeviceError naming the path when it cannot be loaded or is not OpenVINO's C API.
  static OpenVinoRuntime& load(const std::string& library_path);

  const ov::Api& api() const { return api_; }
  const std::string& library_path() const { return library_path_; }
  const std::string& version() const { return version_; }
  // The process's OpenVINO core (plugins loaded on first use; ov_core_t is thread-safe).
  const ov::Core* core() const { return core_.get(); }
  // Device names OpenVINO serves here: "CPU", "GPU", "GPU.0", "NPU", ...
  std::vector<std::string> devices() const;

  // Throws DeviceError("<what>: <OpenVINO's last error message>") unless `status` is OK.
  void check(ov::Status status, const std::string& what) const;

 private:
  struct CoreDeleter {
    const ov::Api* api;
    void operator()(ov::Core* core) const { api->core_free(core); }
  };

  OpenVinoRuntime() = default;
  std::string library_path_;
  std::string version_;
  ov::Api api_{};
  std::unique_ptr<ov::Core, CoreDeleter> core_{nullptr, CoreDeleter{nullptr}};
};

// The direct backend's library, as the Python side found it: a path, or why there is none.
// Returns "" when OpenVINO loads and serves `device`, else one line saying why not.
std::string openvino_direct_unavailable(const std::string& library_path, const std::string& missing,
                                        const std::string& device);

}  // namespace deepshop
