#pragma once
// Host tensors as the engine passes them around: float32, row-major, with their shape.  A view
// borrows the caller's buffer (no copy on the way in); a Tensor owns its data (outputs).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace deepshop {

struct TensorView {
  const float* data = nullptr;
  std::vector<int64_t> shape;
};

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

using TensorViews = std::map<std::string, TensorView>;
using Tensors = std::map<std::string, Tensor>;

// Number of elements of `shape`; std::length_error if it overflows, invalid_argument if negative.
int64_t element_count(const std::vector<int64_t>& shape);
std::string shape_string(const std::vector<int64_t>& shape);  // "1x3x64x64"

}  // namespace deepshop
