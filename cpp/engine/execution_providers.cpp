#include "engine/execution_providers.h"

#include <cpuid.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <memory>
#include <unordered_map>

#include <unistd.h>

#include "engine/errors.h"
#include "engine/metadata_keys.h"
#include "engine/openvino_network.h"
#include "engine/openvino_runtime.h"
#include "engine/ort_runtime.h"
#include "engine/tiled_runner.h"

namespace deepshop {

const char* const kOpenVinoDirectProvider = "OpenVINO";

namespace {

constexpr const char* kCpu = "CPUExecutionProvider";
constexpr const char* kCuda = "CUDAExecutionProvider";
// The plugin's factory for plain devices; its meta-device factories are named "...AUTO" etc.
constexpr const char* kOpenVino = "OpenVINOExecutionProvider";
constexpr const char* kOpenVinoRegistration = "deepshop.openvino";

struct CudaOptionsDeleter {
  void operator()(OrtCUDAProviderOptionsV2* p) const { Ort::GetApi().ReleaseCUDAProviderOptions(p); }
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

OrtHardwareDeviceType hardware_type(const std::string& openvino_device) {
  if (openvino_device == "GPU") return OrtHardwareDeviceType_GPU;
  if (openvino_device == "NPU") return OrtHardwareDeviceType_NPU;
  return OrtHardwareDeviceType_CPU;
}

// The CPU's vendor as ORT's device discovery reports it (for saying why OpenVINO lists no device).
std::string cpu_vendor(const std::vector<Ort::ConstEpDevice>& devices) {
  for (const auto& d : devices)
    if (std::string(d.EpName()) == kCpu) return d.Device().Vendor();
  return "unknown";
}

// Collects the providers to try, and the reasons for those left out.  With an explicit device a
// reason is an error; with "auto" it is recorded and the next provider is tried.
class Planner {
 public:
  Planner(const ProviderRequest& request, const DeviceRequest& device, Precision precision)
      : request_(request), device_(device), precision_(precision) {
    plan_.is_auto = device.kind == DeviceRequest::Kind::Auto;
  }

  void refuse(const std::string& provider, const std::string& why) {
    if (!plan_.is_auto) throw DeviceError("device '" + request_.device + "' requested, but " + why);
    plan_.skipped.push_back(provider + ": " + why);
  }

  void add_cuda() {
    OrtRuntime& runtime = OrtRuntime::get();
    // What CUDA cannot do at all is said first, whether or not this ONNX Runtime has CUDA.
    if (precision_ == Precision::BF16 || precision_ == Precision::INT8)
      return refuse("CUDA", std::string("precision '") + precision_name(precision_) +
                                "' is not offered on CUDA (fp32, or fp16 with a float16 model)");
    if (request_.model_is_int8)
      return refuse("CUDA", "the model is an int8 file, which runs on OpenVINO's CPU device or the CPU provider only");
    if (!runtime.has_provider(kCuda))
      return refuse("CUDA", "this ONNX Runtime (" + runtime.version() +
                                (plan_.is_auto ? "" : ", " + runtime.library_path()) +
                                ") has no CUDA execution provider (install onnxruntime-gpu in place of onnxruntime)");
    ProviderCandidate c;
    c.label = "CUDA";
    c.provider = kCuda;
    c.cuda_device = device_.cuda_device;
    c.device = "cuda:" + std::to_string(device_.cuda_device);
    // Auto: the model's own precision, known once it is open (InferenceSession resolves it).
    c.precision = precision_;
    plan_.candidates.push_back(std::move(c));
  }

  void add_openvino() {
    const std::string& ov_device = device_.openvino_device;
    // Two ways to OpenVINO: ONNX Runtime's plugin, or OpenVINO's own library called directly
    // (OpenVinoNetwork).  "auto" takes the direct one wherever the `openvino` wheel serves the
    // device: it compiles per tile shape, measured faster than the plugin on the same Intel CPU,
    // and it runs on every x86-64 CPU, where the plugin serves Intel ones only.  An explicit
    // "openvino" (the CPU device) does too: through the plugin, a global-statistics graph (the
    // bundled style is one) holds ~2.5 GB for one 1024 px window, called directly ~650 MiB
    // (README, "Global statistics"); "openvino:GPU|NPU" take the plugin where it lists the
    // device, else the direct one.
    std::string direct_why;
    const auto direct_unavailable = [&] {
      direct_why = openvino_direct_unavailable(request_.openvino_direct.path, request_.openvino_direct.missing, ov_device);
      // One clause per provider in fallback_reason, which joins them with "; ".
      for (size_t at; (at = direct_why.find("; ")) != std::string::npos;) direct_why.replace(at, 2, ", ");
      return !direct_why.empty();
    };
    const bool direct_first = plan_.is_auto || ov_device == "CPU";
    bool direct = direct_first && !direct_unavailable();
    std::vector<Ort::ConstEpDevice> matching;
    if (!direct) {
      const std::string missing = register_openvino(request_.openvino);
      const auto devices = OrtRuntime::get().ep_devices();
      for (const auto& d : devices)
        if (missing.empty() && std::string(d.EpName()) == kOpenVino && d.Device().Type() == hardware_type(ov_device))
          matching.push_back(d);
      if (matching.empty()) {
        std::string why = "the OpenVINO plugin lists no " + ov_device + " device here";
        // The plugin serves Intel hardware only (it skips devices of other vendors).
        if (ov_device == "CPU") why += " (it serves Intel CPUs only, and this CPU is " + cpu_vendor(devices) + ")";
        if (direct_first ? !direct_why.empty() : direct_unavailable())
          return refuse("OpenVINO", (missing.empty() ? why : missing) + ", and called directly: " + direct_why);
        direct = true;
      }
    }

    Precision precision = precision_;
    std::string why;
    if (ov_device == "CPU") {
      // OpenVINO's CPU plugin computes in fp32, in bf16 where the CPU has bf16 instructions
      // (measured within the documented error bound: README, "Execution providers"), or runs the
      // model's int8 file (auto_cpu_precision says when "auto" takes which).
      if (request_.model_is_int8 && precision != Precision::Auto && precision != Precision::INT8)
        return refuse("OpenVINO", int8_model_refusal());
      if (precision == Precision::Auto) {
        const PrecisionChoice choice = auto_cpu_precision(cpu_features(), request_.int8, request_.model_is_int8);
        precision = choice.precision;
        why = choice.why;
      }
      if (precision == Precision::BF16 && !cpu_has_bf16())
        return refuse("OpenVINO", "precision 'bf16' needs a CPU with AVX512-BF16 or AMX, which this one lacks");
      if (precision == Precision::FP16)
        return refuse("OpenVINO", "precision 'fp16' is not offered on OpenVINO's CPU device (fp32 or bf16)");
      if (precision == Precision::INT8 && !request_.model_is_int8 && request_.int8.path.empty())
        return refuse("OpenVINO", "precision 'int8' needs the model's int8 file, and " + request_.int8.missing);
    } else {
      // Intel GPUs and NPUs compute in fp16 by default.
      if (precision == Precision::Auto) precision = Precision::FP16;
      if (precision == Precision::BF16 || precision == Precision::INT8 || request_.model_is_int8)
        return refuse("OpenVINO", std::string("precision '") + precision_name(request_.model_is_int8 ? Precision::INT8 : precision) +
                                      "' is not offered on OpenVINO's " + ov_device + " device (fp32 or fp16)");
    }
    ProviderCandidate c;
    c.label = "OpenVINO";
    c.device = "openvino:" + ov_device;
    c.precision = precision;
    c.precision_reason = why;
    if (precision == Precision::INT8 && !request_.model_is_int8) c.model_path = request_.int8.path;
    if (direct) {
      c.provider = kOpenVinoDirectProvider;
      c.openvino_direct = true;
      c.openvino_device = ov_device;
    } else {
      c.provider = kOpenVino;
      c.ep_devices = {matching.front()};
      c.options.emplace_back("load_config", openvino_load_config(ov_device, precision, request_.intra_op_threads));
    }
    plan_.candidates.push_back(std::move(c));
  }

  void add_cpu() {
    if (precision_ == Precision::BF16 || precision_ == Precision::FP16)
      return refuse("CPU", std::string("the CPU provider computes in fp32 only, precision '") +
                               precision_name(precision_) +
                               "' needs device='openvino' (bf16: pip install deepshop-native[openvino], on a CPU "
                               "with AVX512-BF16 or AMX) or 'cuda' (fp16)");
    ProviderCandidate c;
    c.label = "CPU";
    c.provider = kCpu;
    c.device = "cpu";
    c.precision = Precision::FP32;
    if (request_.model_is_int8) {
      if (precision_ != Precision::Auto && precision_ != Precision::INT8) return refuse("CPU", int8_model_refusal());
      c.precision = Precision::INT8;
      c.precision_reason = "int8: the model is an int8 file";
    } else if (precision_ == Precision::INT8) {
      if (request_.int8.path.empty())
        return refuse("CPU", "precision 'int8' needs the model's int8 file, and " + request_.int8.missing);
      c.precision = Precision::INT8;
      c.model_path = request_.int8.path;
    } else if (precision_ == Precision::Auto) {
      // ONNX Runtime's int8 kernels gained little over its fp32 ones here
      // (docs/results/cpu-features.md): "auto" stays on fp32.
      c.precision_reason = "fp32: the CPU provider runs the fp32 model under 'auto'";
    }
    plan_.candidates.push_back(std::move(c));
  }

  std::string int8_model_refusal() const {
    return std::string("the model is an int8 file (made by deepshop-export quantize): precision '") +
           precision_name(precision_) + "' needs the fp32 model it was made from; use 'auto' or 'int8' with this one";
  }

  ProviderPlan finish() {
    if (plan_.candidates.empty()) {
      std::string why;
      for (const auto& s : plan_.skipped) why += (why.empty() ? "" : "; ") + s;
      throw DeviceError(std::string("no execution provider here can compute in precision '") +
                        precision_name(precision_) + "': " + why);
    }
    return std::move(plan_);
  }

 private:
  const ProviderRequest& request_;
  const DeviceRequest& device_;
  Precision precision_;
  ProviderPlan plan_;
};

}  // namespace

std::string register_openvino(const PluginLibrary& library) {
  if (library.path.empty()) return library.missing.empty() ? "the OpenVINO plugin is not installed" : library.missing;
  try {
    OrtRuntime::get().register_plugin(kOpenVinoRegistration, library.path);
  } catch (const Ort::Exception& e) {
    return "the OpenVINO plugin " + library.path + " could not be loaded (" + e.what() + ")";
  } catch (const DeviceError& e) {
    return e.what();
  }
  return "";
}

Precision parse_precision(const std::string& text) {
  const std::string t = lower(text);
  if (t == "auto") return Precision::Auto;
  if (t == "fp32") return Precision::FP32;
  if (t == "bf16") return Precision::BF16;
  if (t == "fp16") return Precision::FP16;
  if (t == "int8") return Precision::INT8;
  throw OptionError("precision '" + text + "' is not one of 'auto', 'fp32', 'bf16', 'fp16', 'int8'");
}

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::FP32: return "fp32";
    case Precision::BF16: return "bf16";
    case Precision::FP16: return "fp16";
    case Precision::INT8: return "int8";
    default: return "auto";
  }
}

DeviceRequest parse_device(const std::string& text) {
  DeviceRequest r;
  const std::string t = lower(text);
  const auto suffix = [&](size_t n) { return t.size() > n ? t.substr(n) : std::string(); };
  if (t == "auto") return r;
  if (t == "cpu") {
    r.kind = DeviceRequest::Kind::Cpu;
    return r;
  }
  if (t == "cuda" || t.rfind("cuda:", 0) == 0) {
    r.kind = DeviceRequest::Kind::Cuda;
    const std::string id = suffix(5);
    if (t == "cuda") return r;
    if (!id.empty() && id.size() < 6 && id.find_first_not_of("0123456789") == std::string::npos) {
      r.cuda_device = std::stoi(id);
      return r;
    }
  } else if (t == "openvino" || t.rfind("openvino:", 0) == 0) {
    r.kind = DeviceRequest::Kind::OpenVino;
    if (t == "openvino") return r;
    const std::string name = suffix(9);
    if (name == "cpu" || name == "gpu" || name == "npu") {
      r.openvino_device = name == "cpu" ? "CPU" : name == "gpu" ? "GPU" : "NPU";
      return r;
    }
  }
  throw OptionError("device '" + text +
                    "' is not one of 'auto', 'cpu', 'cuda', 'cuda:N', 'openvino', 'openvino:CPU', 'openvino:GPU', "
                    "'openvino:NPU'");
}

ProviderPlan plan_providers(const ProviderRequest& request) {
  const DeviceRequest device = parse_device(request.device);
  const Precision precision = parse_precision(request.precision);
  Planner planner(request, device, precision);
  using Kind = DeviceRequest::Kind;
  // The order is the order of speed for this network (README, "Execution providers"): a GPU
  // first; OpenVINO where its plugin serves the CPU (bf16 where the CPU has it, and faster than
  // ORT's CPU provider in fp32 too); ORT's CPU provider last, as it runs everywhere.
  if (device.kind == Kind::Auto || device.kind == Kind::Cuda) planner.add_cuda();
  if (device.kind == Kind::Auto || device.kind == Kind::OpenVino) planner.add_openvino();
  if (device.kind == Kind::Auto || device.kind == Kind::Cpu) planner.add_cpu();
  return planner.finish();
}

void append_provider(Ort::SessionOptions& options, const ProviderCandidate& candidate) {
  if (candidate.provider == kCuda) {
    OrtCUDAProviderOptionsV2* raw = nullptr;
    Ort::ThrowOnError(Ort::GetApi().CreateCUDAProviderOptions(&raw));
    std::unique_ptr<OrtCUDAProviderOptionsV2, CudaOptionsDeleter> cuda(raw);
    const std::string id = std::to_string(candidate.cuda_device);
    const char* keys[] = {"device_id", "cudnn_conv_algo_search"};
    // HEURISTIC rather than EXHAUSTIVE: tile shapes vary at image borders, and an exhaustive
    // search per new shape costs more than it saves.
    const char* values[] = {id.c_str(), "HEURISTIC"};
    Ort::ThrowOnError(Ort::GetApi().UpdateCUDAProviderOptions(cuda.get(), keys, values, 2));
    options.AppendExecutionProvider_CUDA_V2(*cuda);
  } else if (!candidate.ep_devices.empty()) {
    const std::unordered_map<std::string, std::string> provider_options(candidate.options.begin(),
                                                                         candidate.options.end());
    options.AppendExecutionProvider_V2(OrtRuntime::get().env(), candidate.ep_devices, provider_options);
    // The plugin runs the graph on its own threads; ORT's idle intra-op threads must not spin
    // on the same cores meanwhile.
    options.AddConfigEntry("session.intra_op.allow_spinning", "0");
  }
}

std::string openvino_load_config(const std::string& ov_device, Precision precision, int threads) {
  const char* hint = precision == Precision::BF16 ? "bf16" : precision == Precision::FP16 ? "f16" : "f32";
  std::string config = "{\"" + ov_device + "\": {\"INFERENCE_PRECISION_HINT\": \"" + hint + "\"";
  if (threads > 0 && ov_device == "CPU") config += ", \"INFERENCE_NUM_THREADS\": \"" + std::to_string(threads) + "\"";
  return config + "}}";
}

std::string start_failure(const ProviderCandidate& candidate, const std::string& what) {
  std::string why = candidate.device + " could not start (" + what + ")";
  // No "; " inside a reason: fallback_reason joins one reason per provider with it.
  if (candidate.provider == kCuda) why += ", check the NVIDIA driver, CUDA and cuDNN libraries that onnxruntime-gpu needs";
  return why;
}

Precision resolve_model_precision(const ProviderCandidate& candidate, const std::map<std::string, std::string>& metadata,
                                  const std::string& model_path) {
  if (candidate.provider != kCuda) return candidate.precision;
  // The key is declared in python/deepshop_native/model_metadata.py ("precision" of the weights).
  const auto it = metadata.find(::deepshop::metadata::kPrecision);
  const bool half_model = it != metadata.end() && it->second == "fp16";
  if (candidate.precision == Precision::FP16 && !half_model)
    throw DeviceError(model_path + ": precision 'fp16' on CUDA needs a float16 model (deepshop-export --fp16); "
                      "this one is float32");
  if (candidate.precision == Precision::FP32 && half_model)
    throw DeviceError(model_path + ": precision 'fp32' asked for, but this model holds float16 weights; "
                      "export it without --fp16, or ask for 'fp16' or 'auto'");
  return half_model ? Precision::FP16 : Precision::FP32;
}

int64_t openvino_window(const std::string& precision, bool statistics_graph) {
  double pixels = OpenVinoNetwork::kFormsBudgetBytes / OpenVinoNetwork::bytes_per_pixel(precision, statistics_graph);
  // A plain graph's tiled run also compiles the harmonizing thumbnail (512 px): both forms fit the
  // budget, so that calls on images of one size compile nothing after the first.  (A statistics
  // graph's 1024 px statistics thumbnail cannot share it with a window of useful size.)
  if (!statistics_graph) pixels -= static_cast<double>(TileOptions{}.harmonize) * static_cast<double>(TileOptions{}.harmonize);
  return static_cast<int64_t>(std::sqrt(pixels)) / 32 * 32;
}

double usable_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  double bytes = pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
  // cgroup v2, then v1: a container's limit ("max" or a huge number where there is none).
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    if (FILE* f = std::fopen(path, "r")) {
      double limit = 0;
      if (std::fscanf(f, "%lf", &limit) == 1 && limit > 0 && (bytes <= 0 || limit < bytes)) bytes = limit;
      std::fclose(f);
    }
  }
  return bytes;
}

int64_t openvino_whole_area(const std::string& precision, bool statistics_graph) {
  constexpr double kMaxWholeBytes = 8.0 * (1 << 30);
  const double budget = std::min(usable_memory_bytes() / 4, kMaxWholeBytes);
  return static_cast<int64_t>(budget / OpenVinoNetwork::bytes_per_pixel(precision, statistics_graph));
}

int64_t default_tile(const std::string& provider, const std::string& precision, bool statistics_graph) {
  // OpenVINO called directly: the largest square window whose working memory
  // (OpenVinoNetwork::bytes_per_pixel, measured per precision and graph) fits the compiled forms'
  // budget, so that 8192 x 8192 keeps within 2 GB beyond the image buffers.  A Stylizer runs an
  // image no larger in area than one window whole (one compiled shape, no halo, no thumbnail): a
  // 1080p frame on the plain graph in every precision, and on the statistics graph in bf16 and
  // int8; the statistics graph in fp32 takes 1088 px windows, and there, at 1080p, the window's
  // form and the 1024 px statistics thumbnail's do not both fit the budget: each image compiles
  // both again (0.8 s of CPU each on the Xeon measured).
  if (provider == kOpenVinoDirectProvider) return openvino_window(precision, statistics_graph);
  // A global-statistics graph writes instance norm out in plain operators and measures every
  // layer: on the CPU provider ~920 bytes of working memory per window pixel against ~530 for
  // the plain network (bench/peak_memory.py --size 1024 --tile 0: the whole image in one
  // window).  1024 px windows keep 8192 x 8192 under the 2 GB bound there (README, "Global
  // statistics").
  constexpr int64_t kStatisticsGraphTile = 1024;
  if (statistics_graph) return kStatisticsGraphTile;
  // OpenVINO: a 1920 window runs a 1080p frame whole, one shape and no harmonizing thumbnail;
  // measured 16% faster than two 1080 x 1048 windows plus the 512 thumbnail (OpenVINO's CPU
  // plugin, bf16).  It cuts 8192 x 8192 into 25 windows of 1748 px.
  if (provider == kOpenVino) return 1920;
  return TileOptions{}.tile;  // the CPU and CUDA providers: the engine's default
}

CpuFeatures cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  f.avx2 = (ebx >> 5) & 1;
  f.avx512f = (ebx >> 16) & 1;
  f.avx512_vnni = (ecx >> 11) & 1;
  f.amx_bf16 = (edx >> 22) & 1;
  f.amx_int8 = (edx >> 25) & 1;
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  f.avx_vnni = (eax >> 4) & 1;
  f.avx512_bf16 = (eax >> 5) & 1;
#endif
  return f;
}

std::string cpu_features_text(const CpuFeatures& cpu) {
  std::string s;
  const auto add = [&](bool has, const char* name) {
    if (has) s += (s.empty() ? "" : " ") + std::string(name);
  };
  add(cpu.avx2, "AVX2");
  add(cpu.avx512f, "AVX-512");
  add(cpu.avx512_vnni, "AVX512-VNNI");
  add(cpu.avx_vnni, "AVX-VNNI");
  add(cpu.avx512_bf16, "AVX512-BF16");
  add(cpu.amx_bf16, "AMX-BF16");
  add(cpu.amx_int8, "AMX-INT8");
  return s.empty() ? "none of AVX2, AVX-512, VNNI, BF16, AMX" : s;
}

PrecisionChoice auto_cpu_precision(const CpuFeatures& cpu, const QuantizedModel& int8, bool model_is_int8) {
  if (model_is_int8) return {Precision::INT8, "int8: the model is an int8 file"};
  if (cpu.bf16())
    return {Precision::BF16, "bf16: the CPU has " + std::string(cpu.amx_bf16 ? "AMX-BF16" : "AVX512-BF16") +
                                 " (an int8 file is not taken there: unmeasured against bf16)"};
  const std::string no_bf16 = "fp32: no AVX512-BF16 or AMX for bf16, and int8 not taken: ";
  if (!cpu.int8_dot()) return {Precision::FP32, no_bf16 + "no AVX512-VNNI, AVX-VNNI or AMX-INT8 for int8"};
  if (int8.path.empty()) return {Precision::FP32, no_bf16 + int8.missing};
  char db[32];
  std::snprintf(db, sizeof db, "%.1f dB", int8.psnr_db);
  const size_t slash = int8.path.find_last_of('/');
  const std::string name = slash == std::string::npos ? int8.path : int8.path.substr(slash + 1);
  char bound[16];
  std::snprintf(bound, sizeof bound, "%.0f dB", kInt8AutoMinPsnrDb);
  if (int8.psnr_db < kInt8AutoMinPsnrDb)
    return {Precision::FP32, no_bf16 + name + " holds a held-out PSNR of " + db + " against fp32, below " + bound};
  return {Precision::INT8, "int8: the CPU has " + std::string(cpu.avx512_vnni ? "AVX512-VNNI" : cpu.amx_int8 ? "AMX-INT8" : "AVX-VNNI") +
                               " and " + name + " is current, held-out PSNR " + db + " against fp32 (>= " + bound + ")"};
}

bool cpu_has_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool amx_bf16 = (edx >> 22) & 1;
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  const bool avx512_bf16 = (eax >> 5) & 1;
  return amx_bf16 || avx512_bf16;
#else
  return false;
#endif
}

}  // namespace deepshop
