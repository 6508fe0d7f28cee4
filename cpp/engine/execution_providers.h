#pragma once
// Choosing and configuring a session's execution provider.
//
// Parses what the user asked for (device "auto" | "cpu" | "cuda[:N]" | "openvino[:CPU|GPU|NPU]",
// precision "auto" | "fp32" | "bf16" | "fp16" | "int8"), and turns it into the providers to try, in order:
// device="auto" lists CUDA, then OpenVINO, then the CPU provider, and records why each faster one
// was left out.  InferenceSession opens the first candidate that starts.
//
// OpenVINO comes as an ONNX Runtime *plugin* (the onnxruntime-ep-openvino wheel): its library is
// registered with the ORT environment once per process, and the devices it serves are taken from
// GetEpDevices().  The plugin serves Intel devices only: on another CPU it lists none, and OpenVINO
// is then called directly (OpenVinoNetwork, from the `openvino` wheel's C API library), whose own
// CPU plugin runs on any x86-64 CPU.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/ort_api.h"
#include "engine/quantized_model.h"

namespace deepshop {

// INT8: the model's int8 file (NAME.int8.onnx beside it, engine/quantized_model.h), run by the
// provider with its int8 kernels; the layers left unquantized compute in fp32.
enum class Precision { Auto, FP32, BF16, FP16, INT8 };

// "auto", "fp32", "bf16", "fp16", "int8"; anything else: OptionError naming the option.
Precision parse_precision(const std::string& text);
const char* precision_name(Precision precision);

struct DeviceRequest {
  enum class Kind { Auto, Cpu, Cuda, OpenVino };
  Kind kind = Kind::Auto;
  int cuda_device = 0;                  // cuda:N
  std::string openvino_device = "CPU";  // openvino:CPU / GPU / NPU (OpenVINO's device type)
};

// "auto", "cpu", "cuda", "cuda:N", "openvino", "openvino:CPU|GPU|NPU" (case-insensitive after the
// colon); anything else: OptionError listing the accepted forms.
DeviceRequest parse_device(const std::string& text);

// The OpenVINO plugin library, as the Python side found it: a path, or why there is none.
struct PluginLibrary {
  std::string path;
  std::string missing;  // when path is empty: why (not installed, $DEEPSHOP_OPENVINO_EP_LIBRARY wrong, ...)
};

// Registers the OpenVINO plugin with ONNX Runtime (once per process); returns "" when it is
// registered, else why not (the library's `missing`, or ORT's reason for refusing it).
std::string register_openvino(const PluginLibrary& library);

struct ProviderRequest {
  std::string device = "auto";
  std::string precision = "auto";
  int intra_op_threads = 0;
  PluginLibrary openvino;
  PluginLibrary openvino_direct;  // OpenVINO's C API library (libopenvino_c.so), for the direct backend
  // The int8 file beside the model (InferenceSession looks for it where "int8" or "auto" may take
  // it), and whether the model itself is an int8 file (then it runs as it is, in "int8").
  QuantizedModel int8;
  bool model_is_int8 = false;
};

// One provider to try, with everything needed to append it to session options.
struct ProviderCandidate {
  std::string label;     // in reasons: "CUDA", "OpenVINO", "CPU"
  std::string provider;  // ORT's name: "CUDAExecutionProvider", "OpenVINOExecutionProvider", ...
  std::string device;    // ours: "cuda:0", "openvino:CPU", "cpu"
  Precision precision = Precision::FP32;  // resolved; Auto only on CUDA (then: the model's own precision)
  std::string precision_reason;           // why this precision (precision "auto"), for `deepshop info`
  std::string model_path;                 // the file to open: the int8 file for INT8, else "" (the model)
  int cuda_device = 0;
  std::vector<Ort::ConstEpDevice> ep_devices;              // plugin providers: the devices to run on
  std::vector<std::pair<std::string, std::string>> options;  // plugin providers: provider options
  // OpenVINO called directly, not through ONNX Runtime: provider "OpenVINO", device openvino_device.
  bool openvino_direct = false;
  std::string openvino_device;
};

struct ProviderPlan {
  bool is_auto = false;
  std::vector<ProviderCandidate> candidates;  // in order of preference; "auto" always ends with the CPU
  std::vector<std::string> skipped;           // one "LABEL: why" per provider left out
};

// Throws OptionError for a malformed device/precision, DeviceError when the provider asked for
// explicitly (not "auto") cannot run here or cannot compute in the precision asked for.
ProviderPlan plan_providers(const ProviderRequest& request);

// Adds the candidate's provider to the options (the CPU provider needs nothing: it is ORT's fallback).
void append_provider(Ort::SessionOptions& options, const ProviderCandidate& candidate);

// The plugin's "load_config" option: OpenVINO's own properties for the device, as JSON: the
// precision hint ("f32", "bf16", "f16") and, on the CPU, the thread count (the plugin does not
// take ORT's intra-op setting; threads <= 0: OpenVINO's default).
std::string openvino_load_config(const std::string& ov_device, Precision precision, int threads);

// Why a candidate that was planned failed to start (`what`: ORT's message), with a hint where one helps.
std::string start_failure(const ProviderCandidate& candidate, const std::string& what);

// The precision a session computes in once its model is known: on CUDA, "auto" is the model's own
// (metadata precision "fp16": a float16 export), and 'fp16' needs such a model (else DeviceError).
Precision resolve_model_precision(const ProviderCandidate& candidate, const std::map<std::string, std::string>& metadata,
                                  const std::string& model_path);

// The provider name of the direct OpenVINO backend (not an ONNX Runtime provider).
extern const char* const kOpenVinoDirectProvider;

// The network window (pixels per side) Stylizer(tile="auto") uses on a provider (ORT's name):
// the fastest measured within the memory bound (README, "Execution providers"), smaller for a
// global-statistics graph (statistics_mode.h), which needs more memory per window pixel.
// OpenVINO called directly: the largest square window whose working memory
// (OpenVinoNetwork::bytes_per_pixel, by precision and graph) fits OpenVinoNetwork's budget.
int64_t default_tile(const std::string& provider, const std::string& precision, bool statistics_graph);
// OpenVINO called directly: that window ("fp32", "bf16", "fp16", "int8"), a multiple of 32 px.
// TransformerNet: plain graph 1536 px in fp32 and int8, 2176 in bf16; statistics graph 1088 in
// fp32, 1504 in bf16 and int8.
int64_t openvino_window(const std::string& precision, bool statistics_graph);
// OpenVINO called directly: the largest image (pixels) Stylizer(tile="auto") runs as one window,
// however large against the window above: the pixels whose working memory fits a quarter of the
// memory this process may use (the machine's, or its cgroup's limit where lower), at most 8 GiB.
// So a 3840 x 2160 frame runs whole, as OpenVINO called from Python runs it, where memory allows
// (fp32: about 5 GB, on machines of 20 GB and more), while larger images are cut into windows
// that keep within the 1.5 GB budget (8192 x 8192 among them).
int64_t openvino_whole_area(const std::string& precision, bool statistics_graph);
// The memory this process may use: physical memory, or the cgroup's limit where lower (bytes).
double usable_memory_bytes();

// CPU features OpenVINO uses for bf16 (AVX512-BF16 or AMX-BF16), from cpuid.
bool cpu_has_bf16();

// The CPU features that decide the precision on OpenVINO's CPU device, from cpuid.
struct CpuFeatures {
  bool avx2 = false, avx512f = false;
  bool avx512_vnni = false, avx_vnni = false, amx_int8 = false;  // int8 dot products
  bool avx512_bf16 = false, amx_bf16 = false;
  bool bf16() const { return avx512_bf16 || amx_bf16; }
  bool int8_dot() const { return avx512_vnni || avx_vnni || amx_int8; }
};
CpuFeatures cpu_features();
// "AVX2 AVX-512 AVX512-VNNI ..." (the features above that the CPU has), for `deepshop info`.
std::string cpu_features_text(const CpuFeatures& cpu);

// precision="auto" takes an int8 file only where its held-out PSNR against the fp32 model
// (deepshop.quantized_psnr) is at least this: output differences then stay under ~1 level in
// 255 on average (docs/results/cpu-features.md).
constexpr double kInt8AutoMinPsnrDb = 38.0;

// What precision="auto" computes in on OpenVINO's CPU device, and why (one clause):
//   bf16 where the CPU has AVX512-BF16 or AMX (int8 against bf16 is unmeasured there, and bf16's
//        error is two orders of magnitude smaller);
//   else int8 where the CPU has int8 dot products (AVX512-VNNI, AVX-VNNI or AMX-INT8) and the
//        model's int8 file is present, current and within kInt8AutoMinPsnrDb (measured 2x fp32
//        on an AVX512-VNNI Xeon: docs/results/cpu-features.md);
//   else fp32.
// `model_is_int8`: the model itself is an int8 file: int8.
struct PrecisionChoice {
  Precision precision = Precision::FP32;
  std::string why;
};
PrecisionChoice auto_cpu_precision(const CpuFeatures& cpu, const QuantizedModel& int8, bool model_is_int8);

}  // namespace deepshop
