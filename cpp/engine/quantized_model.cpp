#include "engine/quantized_model.h"

#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "engine/errors.h"
#include "engine/metadata_keys.h"

namespace deepshop {
namespace {

// Protobuf wire types.
constexpr int kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;
// ModelProto.metadata_props; StringStringEntryProto.key / .value.
constexpr uint64_t kMetadataProps = 14, kEntryKey = 1, kEntryValue = 2;

class ProtoReader {
 public:
  ProtoReader(std::istream& in, uint64_t size, std::string path) : in_(in), size_(size), path_(std::move(path)) {}
  bool at_end() { return in_.tellg() >= static_cast<std::streamoff>(size_); }
  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const int c = in_.get();
      if (c == EOF) fail("ends inside a field");
      value |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return value;
    }
    fail("has a malformed varint");
  }
  uint64_t length() {
    const uint64_t n = varint();
    const auto at = static_cast<uint64_t>(in_.tellg());
    if (n > size_ - at) fail("has a field longer than the file");
    return n;
  }
  void skip(int wire_type) {
    switch (wire_type) {
      case kVarint: varint(); return;
      case kFixed64: seek(8); return;
      case kFixed32: seek(4); return;
      case kLengthDelimited: seek(length()); return;
      default: fail("has an unknown protobuf wire type");
    }
  }
  std::string bytes(uint64_t n) {
    std::string s(n, '\0');
    if (!in_.read(s.data(), static_cast<std::streamsize>(n))) fail("ends inside a field");
    return s;
  }
  [[noreturn]] void fail(const char* why) const { throw ModelError(path_ + ": not an ONNX model (the file " + why + ")"); }

 private:
  void seek(uint64_t n) {
    const auto at = static_cast<uint64_t>(in_.tellg());
    if (n > size_ - at) fail("ends inside a field");
    in_.seekg(static_cast<std::streamoff>(n), std::ios::cur);
  }
  std::istream& in_;
  uint64_t size_;
  std::string path_;
};

// key/value of one StringStringEntryProto.
std::pair<std::string, std::string> read_entry(const std::string& data, const std::string& path) {
  std::pair<std::string, std::string> entry;
  size_t i = 0;
  const auto fail = [&] { throw ModelError(path + ": not an ONNX model (a metadata entry is malformed)"); };
  const auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (i >= data.size()) fail();
      const auto c = static_cast<unsigned char>(data[i++]);
      v |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
    fail();
    return v;
  };
  while (i < data.size()) {
    const uint64_t tag = varint();
    if ((tag & 7) != kLengthDelimited) fail();
    const uint64_t n = varint();
    if (n > data.size() - i) fail();
    std::string s = data.substr(i, n);
    i += n;
    if ((tag >> 3) == kEntryKey) entry.first = std::move(s);
    else if ((tag >> 3) == kEntryValue) entry.second = std::move(s);
  }
  return entry;
}

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  return table;
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string base_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string quantized_path(const std::string& model_path) {
  const std::string suffix = ".onnx";
  if (model_path.size() > suffix.size() && model_path.compare(model_path.size() - suffix.size(), suffix.size(), suffix) == 0)
    return model_path.substr(0, model_path.size() - suffix.size()) + ".int8.onnx";
  return model_path + ".int8.onnx";
}

std::map<std::string, std::string> read_onnx_metadata(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError(path + ": cannot be opened for reading");
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  ProtoReader reader(in, size, path);
  std::map<std::string, std::string> metadata;
  while (!reader.at_end()) {
    const uint64_t tag = reader.varint();
    const int wire_type = static_cast<int>(tag & 7);
    if ((tag >> 3) == 0) reader.fail("has a field number 0");
    if ((tag >> 3) == kMetadataProps && wire_type == kLengthDelimited) {
      const std::string entry = reader.bytes(reader.length());
      metadata.insert(read_entry(entry, path));
    } else {
      reader.skip(wire_type);
    }
  }
  return metadata;
}

bool is_quantized(const std::map<std::string, std::string>& metadata) {
  const auto it = metadata.find(metadata::kPrecision);
  return it != metadata.end() && it->second == "int8";
}

std::string file_fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError(path + ": cannot be opened for reading");
  const auto& table = crc_table();
  uint32_t crc = 0xFFFFFFFFu;
  uint64_t bytes = 0;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto n = static_cast<size_t>(in.gcount());
    for (size_t i = 0; i < n; ++i) crc = table[(crc ^ static_cast<unsigned char>(buffer[i])) & 0xFF] ^ (crc >> 8);
    bytes += n;
  }
  if (in.bad()) throw ModelError(path + ": could not be read");
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", crc ^ 0xFFFFFFFFu);
  return std::to_string(bytes) + ":" + hex;
}

QuantizedModel find_quantized(const std::string& model_path) {
  QuantizedModel q;
  const std::string path = quantized_path(model_path);
  const std::string name = base_name(path);
  const std::string remake = " (make it with: deepshop-export quantize " + base_name(model_path) + ")";
  if (!is_regular_file(path)) {
    q.missing = "there is no " + name + " beside the model" + remake;
    return q;
  }
  std::map<std::string, std::string> metadata;
  try {
    metadata = read_onnx_metadata(path);
  } catch (const ModelError& e) {
    q.missing = e.what();
    return q;
  }
  const auto value = [&](const char* key) {
    const auto it = metadata.find(key);
    return it == metadata.end() ? std::string() : it->second;
  };
  if (!is_quantized(metadata)) {
    q.missing = path + " is not an int8 model made by deepshop-export quantize (no deepshop.precision 'int8')";
    return q;
  }
  const std::string made_from = value(metadata::kQuantizedFrom);
  std::string now;
  try {
    now = file_fingerprint(model_path);
  } catch (const ModelError& e) {
    q.missing = e.what();
    return q;
  }
  if (made_from != now) {
    q.missing = path + " was made from another version of " + base_name(model_path) + " (stale: the model changed since)" + remake;
    return q;
  }
  const std::string psnr = value(metadata::kQuantizedPsnr);
  char* end = nullptr;
  errno = 0;
  const double db = std::strtod(psnr.c_str(), &end);
  if (psnr.empty() || end != psnr.c_str() + psnr.size() || errno != 0 || !(db >= 0) || db > 1000) {
    q.missing = path + ": its deepshop.quantized_psnr '" + psnr + "' is not a PSNR in dB" + remake;
    return q;
  }
  q.path = path;
  q.psnr_db = db;
  return q;
}

}  // namespace deepshop
