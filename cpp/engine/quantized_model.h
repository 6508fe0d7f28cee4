#pragma once
// The int8 form of a model: NAME.int8.onnx beside NAME.onnx, made by `deepshop-export quantize`
// (post-training static quantization, QDQ: export/deepshop_export/onnx/quantize.py says how).
//
// The quantized file carries the source's deepshop metadata plus
//   deepshop.precision        "int8"
//   deepshop.quantized_from   "BYTES:CRC32" of the fp32 file it was made from (8 hex digits):
//                             a source changed since (re-exported, retrained) makes it stale
//   deepshop.quantized_psnr   the least PSNR (dB, 0..255 outputs) against the fp32 model over
//                             the held-out photos, measured when it was made
//   deepshop.quantization     JSON provenance: method, calibration and held-out data, command
// Both are read here without an ONNX Runtime session (a scan of the file's top-level fields), so
// that choosing a precision costs no model load.
#include <cstdint>
#include <map>
#include <string>

namespace deepshop {

// NAME.int8.onnx for NAME.onnx (any other name: NAME.int8.onnx appended to the full name).
std::string quantized_path(const std::string& model_path);

struct QuantizedModel {
  std::string path;     // the usable int8 file; empty when there is none
  std::string missing;  // when path is empty: why (no file, stale, unreadable, not int8)
  double psnr_db = 0;   // deepshop.quantized_psnr of the file
};

// Looks for the int8 file beside `model_path` and checks it against the model file.
QuantizedModel find_quantized(const std::string& model_path);

// The metadata_props of an ONNX file, read from its top-level protobuf fields (the graph is
// skipped, not parsed).  Throws ModelError naming the file when it is not a readable protobuf.
std::map<std::string, std::string> read_onnx_metadata(const std::string& path);

// Whether a model's metadata says it is an int8 model (deepshop.precision "int8").
bool is_quantized(const std::map<std::string, std::string>& metadata);

// "BYTES:CRC32" of a file (CRC-32 as zlib computes it, 8 lower-case hex digits), as written
// into deepshop.quantized_from.  Throws ModelError when the file cannot be read.
std::string file_fingerprint(const std::string& path);

}  // namespace deepshop
