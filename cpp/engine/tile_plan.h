#pragma once
// Where the tiles of one image go, along one axis, and how their outputs blend.
//
// Each tile has a *kept* span [start, start + kept) of the output, and a network *window* that
// adds `halo` pixels of context on both sides: window = kept + 2 * halo.  Windows reaching
// past the image read it reflected (the image border is reflection-padded).  Kept spans of
// neighbours overlap, and over each overlap the two tiles' weights ramp linearly against each
// other; the weights are normalised so that at every pixel they sum to exactly one.  A 2-D tile's
// weight is the product of its row and column weights, which therefore also sums to one.
//
// Starts, halo and window are multiples of the model's stride, so that every tile sees the
// image on the same sampling grid as a whole-image run would.
#include <cstdint>
#include <vector>

namespace deepshop {

struct AxisPlan {
  int64_t length = 0;  // image length along this axis
  int64_t window = 0;  // network input length of every tile (a multiple of the stride)
  int64_t halo = 0;    // context on each side of the kept span
  int64_t kept = 0;    // window - 2 * halo
  std::vector<int64_t> starts;                // kept-span start of each tile, in image pixels
  std::vector<std::vector<float>> weights;    // per tile, `kept` blend weights (0 beyond the image)

  int64_t count() const { return static_cast<int64_t>(starts.size()); }
  int64_t window_start(int64_t i) const { return starts[i] - halo; }
};

// Plans one axis.  `tile` is the wanted window (network input) length, <= 0 for the whole
// image in one window; `halo` and `min_overlap` are in pixels; all are rounded to `stride`.
// An image that fits in one window gets exactly one tile without halo, padded (reflected) up to
// the stride multiple and to at least `min_window` pixels, since networks that reflection-pad
// inside cannot take inputs smaller than their padding.
AxisPlan plan_axis(int64_t length, int64_t tile, int64_t halo, int64_t min_overlap, int64_t stride,
                   int64_t min_window = 0);

// Index of pixel `i` (possibly outside [0, length)) in the reflected image: ... 2 1 | 0 1 2 ... n-1 | n-2 ...
inline int64_t reflect_index(int64_t i, int64_t length) {
  if (length == 1) return 0;
  const int64_t period = 2 * (length - 1);
  i %= period;
  if (i < 0) i += period;
  return i < length ? i : period - i;
}

}  // namespace deepshop
