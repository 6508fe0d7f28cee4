#pragma once
// OpenVINO's compiled-model cache for the direct backend (OpenVinoNetwork): its CACHE_DIR property
// pointed at the user's cache folder, so that a second process running the same model at the same
// shapes loads the compiled form from disk instead of compiling it again.  Compiled forms are
// several megabytes each (one per model, input shapes and precision), so the folder is trimmed,
// oldest first, to a budget after each compile.
#include <cstdint>
#include <string>

namespace deepshop {

// The folder OpenVINO caches compiled models in: $DEEPSHOP_CACHE/openvino when DEEPSHOP_CACHE is
// set, else $HOME/.cache/deepshop/openvino; "" (no caching) when DEEPSHOP_CACHE is "off" or
// neither variable is set.
std::string openvino_cache_dir();

// Most bytes of compiled models the folder keeps (the newest are kept).
constexpr std::uintmax_t kOpenVinoCacheBudgetBytes = std::uintmax_t(1) << 30;

// Removes OpenVINO's cache files (*.blob) in `dir`, oldest first, until those left take at most
// `budget_bytes`.  Never throws: a folder that cannot be read or a file that cannot be removed
// only leaves the cache larger.
void trim_openvino_cache(const std::string& dir, std::uintmax_t budget_bytes = kOpenVinoCacheBudgetBytes);

}  // namespace deepshop
