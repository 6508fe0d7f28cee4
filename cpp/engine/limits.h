#pragma once
// Bounds on every size the engine accepts, and overflow-checked arithmetic.  Sizes are checked
// once at the edge (options, metadata, image shapes) against these bounds; with every factor
// below 2^20 the products the planner and runner form stay far inside int64, and buffer sizes are
// multiplied with checks all the same.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

namespace deepshop {

// Largest tile, halo, overlap, stride multiple, receptive field or image side, in pixels.
constexpr int64_t kMaxPixels = int64_t{1} << 20;

// Throws std::invalid_argument ("<what> = <value> is out of range [lo, hi]") unless lo <= v <= hi.
inline int64_t check_range(int64_t value, int64_t lo, int64_t hi, const std::string& what) {
  if (value < lo || value > hi)
    throw std::invalid_argument(what + " = " + std::to_string(value) + " is out of range [" + std::to_string(lo) + ", " +
                                std::to_string(hi) + "]");
  return value;
}

// a * b, or std::length_error naming `what` when it does not fit.
inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r) || r < 0) throw std::length_error(std::string(what) + ": size overflows");
  return r;
}

// Most threads any call may ask for: 4x the hardware threads.  More only slows a run down, and
// tens of thousands of threads exhaust the address space (ONNX Runtime then crashes).
inline int max_threads() {
  const unsigned hw = std::thread::hardware_concurrency();
  return 4 * static_cast<int>(hw == 0 ? 1 : hw);
}

// Checks a thread count (0: the default); throws std::invalid_argument naming the option.
inline int check_threads(int64_t threads, const char* option = "threads") {
  if (threads < 0 || threads > max_threads())
    throw std::invalid_argument(std::string(option) + " = " + std::to_string(threads) + " is out of range: use 0 (the " +
                                "default) up to " + std::to_string(max_threads()) + " (4x the " +
                                std::to_string(max_threads() / 4) + " hardware threads)");
  return static_cast<int>(threads);
}

}  // namespace deepshop
