// The CPU's measured fp32 peak: independent fused multiply-adds on 16 vector registers, on 1..N
// threads, AVX-512 (16 lanes) or AVX2 (8 lanes).  The physical limit against which
// docs/results/cpu-features.md puts the network's throughput (2 FLOP per lane per FMA).
//
//   g++ -O2 -mavx512f -mfma -pthread bench/fma_peak.cpp -o /tmp/fma_peak && /tmp/fma_peak
//   g++ -O2 -mavx2 -mfma -pthread bench/fma_peak.cpp -o /tmp/fma_peak && /tmp/fma_peak   # AVX2 CPUs
//
// Prints GFLOP/s for 1 thread and for every hardware thread, by the wall clock and per second of
// CPU time each thread got (the figure that holds on a shared, loaded machine), and per cycle at
// the nominal clock given as the first argument (GHz), if any.
#include <immintrin.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

#if defined(__AVX512F__)
using Vec = __m512;
constexpr int kLanes = 16;
inline Vec splat(float v) { return _mm512_set1_ps(v); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline float sum(Vec v) { return _mm512_reduce_add_ps(v); }
#else
using Vec = __m256;
constexpr int kLanes = 8;
inline Vec splat(float v) { return _mm256_set1_ps(v); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline float sum(Vec v) {
  alignas(32) float x[8];
  _mm256_store_ps(x, v);
  float s = 0;
  for (float f : x) s += f;
  return s;
}
#endif

constexpr int kChains = 16;  // independent accumulators: more than latency x FMA ports (4 x 2)

// `iterations` rounds of kChains FMAs; returns a value that depends on all of them.
float run(long iterations) {
  Vec acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = splat(0.001f * i);
  const Vec a = splat(0.999999f), b = splat(1e-7f);
  for (long n = 0; n < iterations; ++n) {
    // Unrolled, so that the accumulators live in registers (not in memory between rounds).
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = fma(acc[i], a, b);
  }
  float s = 0;
  for (int i = 0; i < kChains; ++i) s += sum(acc[i]);
  return s;
}

double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Rate {
  double wall = 0;  // GFLOP/s of wall-clock time, all threads together
  double cpu = 0;   // GFLOP per second of CPU time each thread got, summed: the cores' rate even
                    // where other processes share them (each thread alone on its core meanwhile)
};

Rate gflops(int threads, long iterations) {
  std::vector<std::thread> pool;
  std::vector<float> out(threads);
  std::vector<double> cpu(threads);
  const auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      const double c0 = thread_seconds();
      out[t] = run(iterations);
      cpu[t] = thread_seconds() - c0;
    });
  for (auto& th : pool) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  volatile float sink = out[0];
  (void)sink;
  const double flop = double(iterations) * kChains * kLanes * 2;
  Rate r;
  r.wall = threads * flop / s / 1e9;
  for (double c : cpu) r.cpu += flop / c / 1e9;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const double ghz = argc > 1 ? std::atof(argv[1]) : 0;
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  const long iterations = 200'000'000;
  gflops(1, iterations / 10);  // warm up (clock ramp)
  for (int threads : {1, hw}) {
    Rate best;
    for (int rep = 0; rep < 3; ++rep) {
      const Rate r = gflops(threads, iterations);
      best.wall = std::max(best.wall, r.wall);
      best.cpu = std::max(best.cpu, r.cpu);
    }
    std::printf("%d thread(s), %d-lane FMA: %.1f GFLOP/s wall clock, %.1f GFLOP per CPU-second", threads, kLanes,
                best.wall, best.cpu);
    if (ghz > 0) std::printf(" = %.1f FLOP per cycle per thread at %.2f GHz", best.cpu / threads / ghz, ghz);
    std::printf("\n");
    if (hw == 1) break;
  }
  return 0;
}
