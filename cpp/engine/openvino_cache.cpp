#include "engine/openvino_cache.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <vector>

namespace deepshop {

std::string openvino_cache_dir() {
  if (const char* root = std::getenv("DEEPSHOP_CACHE"); root && *root) {
    if (std::string(root) == "off") return "";
    return (std::filesystem::path(root) / "openvino").string();
  }
  if (const char* home = std::getenv("HOME"); home && *home)
    return (std::filesystem::path(home) / ".cache" / "deepshop" / "openvino").string();
  return "";
}

void trim_openvino_cache(const std::string& dir, std::uintmax_t budget_bytes) {
  namespace fs = std::filesystem;
  struct Entry {
    fs::path path;
    fs::file_time_type written;
    std::uintmax_t bytes;
  };
  std::vector<Entry> blobs;
  std::uintmax_t total = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code e;
    if (it->path().extension() != ".blob" || !it->is_regular_file(e)) continue;
    const auto bytes = it->file_size(e);
    const auto written = e ? fs::file_time_type{} : it->last_write_time(e);
    if (e) continue;
    blobs.push_back({it->path(), written, bytes});
    total += bytes;
  }
  if (total <= budget_bytes) return;
  std::sort(blobs.begin(), blobs.end(), [](const Entry& a, const Entry& b) { return a.written < b.written; });
  for (const Entry& blob : blobs) {
    if (total <= budget_bytes) break;
    std::error_code e;
    if (fs::remove(blob.path, e)) total -= blob.bytes;
  }
}

}  // namespace deepshop
