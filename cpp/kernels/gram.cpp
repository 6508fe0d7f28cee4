// Gram matrix kernel: a blocked SYRK (lower triangle only) over a packed copy of the features.
//
// Layout of the work.  Positions (the long dimension N) are cut into blocks of `kc` positions.
// For each block every channel row is packed into a contiguous, 64-byte aligned float32 panel
// (this is where strides, crops, float16 conversion and the mask are dealt with, so the inner
// kernel sees one simple layout).  The inner kernel then computes an MR × NR tile of dot
// products over the block, held entirely in SIMD registers, and its float32 sums are added into
// the float64 accumulator.  Only tiles touching the lower triangle are computed (half the work
// of F·Fᵀ).  Threads split the positions; each sums into a private float64 matrix, and the
// matrices are added at the end — no synchronisation inside the hot loop.
#include "kernels/gram.h"

#include "kernels/simd_dispatch.h"
#if DEEPSHOP_X86_SIMD
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "kernels/half_float.h"
#include "kernels/parallel.h"

namespace deepshop::kernels {
namespace {

// Channel rows are padded to a multiple of 12, which every kernel's MR and NR divide.
constexpr int64_t kChannelPad = 12;
// Positions in a packed block are padded to a multiple of 16 floats (one AVX-512 vector).
constexpr int64_t kPositionPad = 16;

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<float[], AlignedFree>;

AlignedBuffer make_aligned(int64_t count) {
  size_t bytes = static_cast<size_t>(round_up(count * static_cast<int64_t>(sizeof(float)), 64));
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return AlignedBuffer(p);
}

// ---- inner kernels: out[i*NR + j] = sum_k a[i*ld + k] * b[j*ld + k] ----------------------

using MicroKernel = void (*)(const float* a, const float* b, int64_t ld, int64_t kc, float* out);

struct KernelInfo {
  const char* name;
  int mr, nr;
  MicroKernel fn;
};

// Portable fallback: eight independent partial sums per dot product so that the compiler can
// vectorise with the baseline SSE2 without reordering a single sum.
void micro_scalar(const float* a, const float* b, int64_t ld, int64_t kc, float* out) {
  constexpr int MR = 4, NR = 4, L = 8;
  float acc[MR][NR][L] = {};
  for (int64_t k = 0; k < kc; k += L) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
        for (int l = 0; l < L; ++l) acc[i][j][l] += a[i * ld + k + l] * b[j * ld + k + l];
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float s = 0.f;
      for (int l = 0; l < L; ++l) s += acc[i][j][l];
      out[i * NR + j] = s;
    }
}

#if DEEPSHOP_X86_SIMD
// AVX2/FMA: 3 × 4 tile = 12 accumulators + 3 A vectors + 1 B vector = the 16 ymm registers.
__attribute__((target("avx2,fma"))) void micro_avx2(const float* a, const float* b, int64_t ld,
                                                      int64_t kc, float* out) {
  constexpr int MR = 3, NR = 4;
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k += 8) {
    __m256 av[MR];
    for (int i = 0; i < MR; ++i) av[i] = _mm256_load_ps(a + i * ld + k);
    for (int j = 0; j < NR; ++j) {
      __m256 bv = _mm256_load_ps(b + j * ld + k);
      for (int i = 0; i < MR; ++i) acc[i][j] = _mm256_fmadd_ps(av[i], bv, acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[i][j]), _mm256_extractf128_ps(acc[i][j], 1));
      s = _mm_add_ps(s, _mm_movehl_ps(s, s));
      s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
      out[i * NR + j] = _mm_cvtss_f32(s);
    }
}

// AVX-512: 4 × 6 tile = 24 accumulators + 4 A + 1 B of the 32 zmm registers; 10 loads feed 24
// FMAs, so the kernel is bound by the FMA units, not by the loads.
__attribute__((target("avx512f"))) void micro_avx512(const float* a, const float* b, int64_t ld,
                                                       int64_t kc, float* out) {
  constexpr int MR = 4, NR = 6;
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k += 16) {
    __m512 av[MR];
    for (int i = 0; i < MR; ++i) av[i] = _mm512_load_ps(a + i * ld + k);
    for (int j = 0; j < NR; ++j) {
      __m512 bv = _mm512_load_ps(b + j * ld + k);
      for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) out[i * NR + j] = _mm512_reduce_add_ps(acc[i][j]);
}

const KernelInfo kAvx2{"avx2", 3, 4, micro_avx2};
const KernelInfo kAvx512{"avx512", 4, 6, micro_avx512};

bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool cpu_has_avx512() { return __builtin_cpu_supports("avx512f"); }
bool cpu_has_f16c() { return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c"); }
#else
// Never selected (the cpu checks say no); they keep the dispatch code the same everywhere.
const KernelInfo kAvx2{"avx2", 4, 4, micro_scalar};
const KernelInfo kAvx512{"avx512", 4, 4, micro_scalar};
bool cpu_has_avx2() { return false; }
bool cpu_has_avx512() { return false; }
bool cpu_has_f16c() { return false; }
#endif
const KernelInfo kScalar{"scalar", 4, 4, micro_scalar};

const KernelInfo* best_kernel() {
  if (cpu_has_avx512()) return &kAvx512;
  if (cpu_has_avx2()) return &kAvx2;
  return &kScalar;
}

std::atomic<const KernelInfo*> g_kernel{nullptr};

const KernelInfo& active_kernel() {
  const KernelInfo* k = g_kernel.load(std::memory_order_relaxed);
  if (!k) {
    k = best_kernel();
    g_kernel.store(k, std::memory_order_relaxed);
  }
  return *k;
}

// ---- packing -------------------------------------------------------------------------------

#if DEEPSHOP_X86_SIMD
__attribute__((target("avx,f16c"))) void halves_to_floats_f16c(const uint16_t* src, float* dst,
                                                               int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) dst[i] = half_to_float(src[i]);
}

#endif

void halves_to_floats(const uint16_t* src, float* dst, int64_t n, bool f16c) {
#if DEEPSHOP_X86_SIMD
  if (f16c) return halves_to_floats_f16c(src, dst, n);
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i]);
}

// Copies positions [p0, p0+len) of channel c into dst[0..len).  Positions run row by row over
// the (height × width) grid, so a block is a handful of row segments.
void pack_channel(const FeatureView& f, int64_t c, int64_t p0, int64_t len, float* dst, bool f16c) {
  int64_t h = p0 / f.width, w = p0 % f.width, done = 0;
  while (done < len) {
    const int64_t run = std::min(len - done, f.width - w);
    const int64_t offset = c * f.stride_c + h * f.stride_h + w * f.stride_w;
    if (f.type == FeatureType::f32) {
      const float* src = static_cast<const float*>(f.data) + offset;
      if (f.stride_w == 1) {
        std::memcpy(dst + done, src, static_cast<size_t>(run) * sizeof(float));
      } else {
        for (int64_t i = 0; i < run; ++i) dst[done + i] = src[i * f.stride_w];
      }
    } else {
      const uint16_t* src = static_cast<const uint16_t*>(f.data) + offset;
      if (f.stride_w == 1) {
        halves_to_floats(src, dst + done, run, f16c);
      } else {
        for (int64_t i = 0; i < run; ++i) dst[done + i] = half_to_float(src[i * f.stride_w]);
      }
    }
    done += run;
    w = 0;
    ++h;
  }
}

void pack_mask(const FeatureView& f, const MaskView& m, int64_t p0, int64_t len, float* dst) {
  int64_t h = p0 / f.width, w = p0 % f.width, done = 0;
  while (done < len) {
    const int64_t run = std::min(len - done, f.width - w);
    const float* src = m.data + h * m.stride_h + w * m.stride_w;
    for (int64_t i = 0; i < run; ++i) dst[done + i] = src[i * m.stride_w];
    done += run;
    w = 0;
    ++h;
  }
}

// Positions per packed block: 1024.  Long enough that the horizontal sums closing each inner
// call (about ten instructions per output) cost little next to its kc/16 FMAs per output, short
// enough that the MR + NR rows one inner call streams (40 KiB) stay in a 48 KiB L1.  The panel
// of large C then spills from L2 to L3, which measured cheaper than the epilogues of shorter
// blocks (C=512: 6.7 ms instead of 7.7 ms for 256-position blocks, one thread, CPU time).
int64_t block_positions() { return 1024; }

// Software prefetch of the next block's source rows, spread evenly over the inner calls of the
// current block.  Only for rows whose positions are contiguous (row-major f32/f16 maps).
class Prefetcher {
 public:
  Prefetcher(const FeatureView& f, int64_t p0, int64_t len, int64_t C, int64_t cpad, int mr, int nr) {
    const bool contiguous = f.stride_w == 1 && (f.height == 1 || f.stride_h == f.width);
    if (!contiguous || len <= 0) return;
    const int64_t item = f.type == FeatureType::f32 ? 4 : 2;
    base_ = static_cast<const char*>(f.data) + p0 * item;
    row_stride_ = f.stride_c * item;
    lines_per_row_ = (len * item + 63) / 64;
    channels_ = C;
    // Inner calls of one block: about (cpad/mr) · (cpad/nr) / 2.
    const int64_t calls = std::max<int64_t>(1, (cpad / mr) * (cpad / nr) / 2);
    per_step_ = (C * lines_per_row_ + calls - 1) / calls;
  }
  void step() {
    for (int64_t n = 0; n < per_step_ && row_ < channels_; ++n) {
      __builtin_prefetch(base_ + row_ * row_stride_ + line_ * 64, 0, 2);
      if (++line_ == lines_per_row_) line_ = 0, ++row_;
    }
  }

 private:
  const char* base_ = nullptr;
  int64_t row_stride_ = 0, lines_per_row_ = 0, channels_ = 0, per_step_ = 0;
  int64_t row_ = 0, line_ = 0;
};

// Lower-triangle Gram of positions [p_begin, p_end), added into acc (C × C, float64).
void accumulate_range(const FeatureView& f, const MaskView* mask, int64_t p_begin, int64_t p_end,
                      double* acc, const KernelInfo& kern) {
  const int64_t C = f.channels;
  const int64_t cpad = round_up(C, kChannelPad);
  const int64_t kc_max = block_positions();
  const bool f16c = f.type == FeatureType::f16 && cpu_has_f16c();
  AlignedBuffer panel = make_aligned(cpad * kc_max);  // pad rows stay zero
  AlignedBuffer weighted = mask ? make_aligned(cpad * kc_max) : AlignedBuffer();
  AlignedBuffer weights = mask ? make_aligned(kc_max) : AlignedBuffer();
  const int mr = kern.mr, nr = kern.nr;
  std::vector<float> tile(static_cast<size_t>(mr * nr));
  // Rows of the B panel kept hot in L2 while all A rows stream past them.
  const int64_t row_block = std::max<int64_t>(kChannelPad, (cpad / 4) / kChannelPad * kChannelPad);

  for (int64_t p0 = p_begin; p0 < p_end; p0 += kc_max) {
    const int64_t len = std::min(kc_max, p_end - p0);
    const int64_t kc = round_up(len, kPositionPad);
    const int64_t ld = kc;
    for (int64_t c = 0; c < C; ++c) {
      float* row = panel.get() + c * ld;
      pack_channel(f, c, p0, len, row, f16c);
      std::fill(row + len, row + kc, 0.f);
    }
    const float* a_panel = panel.get();
    if (mask) {
      pack_mask(f, *mask, p0, len, weights.get());
      for (int64_t c = 0; c < C; ++c) {
        const float* src = panel.get() + c * ld;
        float* dst = weighted.get() + c * ld;
        for (int64_t k = 0; k < kc; ++k) dst[k] = src[k] * (k < len ? weights[k] : 0.f);
      }
      a_panel = weighted.get();
    }
    // While this block is computed, pull the next block's rows towards the cache a few lines
    // per inner call, so that packing it does not stall on memory (small C is otherwise bound
    // by reading the features from DRAM in bursts).
    Prefetcher prefetch(f, p0 + len, std::min(kc_max, p_end - p0 - len), C, cpad, mr, nr);
    for (int64_t jb = 0; jb < cpad; jb += row_block) {
      const int64_t jb_end = std::min(cpad, jb + row_block);
      for (int64_t i0 = jb; i0 < cpad; i0 += mr) {
        if (i0 >= C) break;
        const int64_t j_end = std::min(jb_end, i0 + mr);
        for (int64_t j0 = jb; j0 < j_end; j0 += nr) {
          prefetch.step();
          kern.fn(a_panel + i0 * ld, panel.get() + j0 * ld, ld, kc, tile.data());
          for (int ii = 0; ii < mr; ++ii) {
            const int64_t i = i0 + ii;
            if (i >= C) break;
            double* acc_row = acc + i * C;
            for (int jj = 0; jj < nr; ++jj) {
              const int64_t j = j0 + jj;
              if (j > i) break;
              acc_row[j] += static_cast<double>(tile[ii * nr + jj]);
            }
          }
        }
      }
    }
  }
}

}  // namespace

void gram_accumulate(const FeatureView& f, const MaskView* mask, double* acc, int threads) {
  if (f.channels <= 0 || f.height < 0 || f.width < 0)
    throw std::invalid_argument("gram: feature map must have at least one channel");
  const int64_t n = f.height * f.width;
  if (n == 0) return;
  const KernelInfo& kern = active_kernel();
  // Threads only pay off with enough work: at least ~4 M multiply-adds and 2048 positions each.
  const double work = static_cast<double>(f.channels) * f.channels * n / 2;
  int parts = resolve_threads(threads);
  parts = static_cast<int>(std::min<double>(parts, std::max(1.0, work / 4e6)));
  parts = static_cast<int>(std::min<int64_t>(parts, std::max<int64_t>(1, n / 2048)));
  const int64_t C = f.channels;
  std::vector<std::vector<double>> partials(static_cast<size_t>(std::max(parts - 1, 0)));
  for (auto& p : partials) p.assign(static_cast<size_t>(C * C), 0.0);
  parallel_parts(n, parts, [&](int part, int64_t b, int64_t e) {
    double* target = part == 0 ? acc : partials[static_cast<size_t>(part - 1)].data();
    accumulate_range(f, mask, b, e, target, kern);
  });
  for (const auto& p : partials)
    for (int64_t i = 0; i < C; ++i)
      for (int64_t j = 0; j <= i; ++j) acc[i * C + j] += p[static_cast<size_t>(i * C + j)];
}

void symmetrize_lower(double* acc, int64_t C) {
  for (int64_t i = 0; i < C; ++i)
    for (int64_t j = 0; j < i; ++j) acc[j * C + i] = acc[i * C + j];
}

std::string gram_kernel_name() { return active_kernel().name; }

void set_gram_kernel(const std::string& name) {
  const KernelInfo* k = nullptr;
  if (name == "auto") {
    k = best_kernel();
  } else if (name == "scalar") {
    k = &kScalar;
  } else if (name == "avx2") {
    if (!cpu_has_avx2()) throw std::invalid_argument("gram kernel 'avx2' needs AVX2 and FMA, which this CPU lacks");
    k = &kAvx2;
  } else if (name == "avx512") {
    if (!cpu_has_avx512()) throw std::invalid_argument("gram kernel 'avx512' needs AVX-512F, which this CPU lacks");
    k = &kAvx512;
  } else {
    throw std::invalid_argument("unknown gram kernel '" + name + "' (use auto, avx512, avx2 or scalar)");
  }
  g_kernel.store(k, std::memory_order_relaxed);
}

}  // namespace deepshop::kernels
