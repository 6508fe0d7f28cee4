#pragma once
// Minimal fork-join helper on std::thread for the kernels: split [0, n) into contiguous parts.
#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace deepshop::kernels {

// threads <= 0 means "all hardware threads".  More than 4x the hardware threads is refused
// (std::invalid_argument naming the option): it only slows a run down, and tens of thousands of
// threads exhaust the address space.
inline int resolve_threads(int threads) {
  unsigned hw = std::thread::hardware_concurrency();
  const int hardware = hw == 0 ? 1 : static_cast<int>(hw);
  if (threads > 4 * hardware)
    throw std::invalid_argument("threads = " + std::to_string(threads) + " is out of range: use 0 (all " +
                                std::to_string(hardware) + " hardware threads) up to " + std::to_string(4 * hardware));
  return threads > 0 ? threads : hardware;
}

// Runs fn(part, begin, end) on `parts` contiguous slices of [0, n), the first on the calling
// thread.  An exception thrown by any part is re-thrown here after every thread has joined, so a
// failure never leaves a thread running or terminates the process.
template <class Fn>
void parallel_parts(int64_t n, int parts, Fn&& fn) {
  parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(parts, n)));
  if (parts <= 1) {
    fn(0, int64_t{0}, n);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  auto guarded = [&](int part, int64_t b, int64_t e) {
    try {
      fn(part, b, e);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  // Joins whatever was started, also when starting a thread fails (std::system_error) or the
  // vector cannot grow: a joinable std::thread destroyed unjoined terminates the process.
  struct JoinAll {
    std::vector<std::thread>& threads;
    ~JoinAll() {
      for (auto& th : threads)
        if (th.joinable()) th.join();
    }
  } join_all{pool};
  pool.reserve(parts - 1);
  for (int t = 1; t < parts; ++t)
    pool.emplace_back(guarded, t, n * t / parts, n * (t + 1) / parts);
  guarded(0, 0, n / parts);
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

// Memory-bound loops over rows (pixel stages) are split into contiguous row ranges, one per
// thread, but only as many as give every range this many values: starting a thread costs tens of
// microseconds, which small images would not pay back.
constexpr int64_t kMinValuesPerRange = int64_t{1} << 16;

// Runs fn(begin, end) on contiguous, non-empty ranges of [0, rows) on up to `threads` threads.
template <class Fn>
void for_row_ranges(int threads, int64_t rows, int64_t values_per_row, Fn&& fn) {
  const int64_t by_work = std::max<int64_t>(1, rows * values_per_row / kMinValuesPerRange);
  const int ranges = static_cast<int>(std::min<int64_t>(std::max(threads, 1), by_work));
  parallel_parts(rows, ranges, [&](int, int64_t begin, int64_t end) {
    if (begin < end) fn(begin, end);
  });
}

}  // namespace deepshop::kernels
