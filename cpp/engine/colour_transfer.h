#pragma once
// Luminance transfer ("preserve colours"): keep a picture's colour, take another's luminance.
// In YCbCr (BT.601, as JPEG), replacing Y and keeping Cb and Cr moves R, G and B by the same
// amount: the difference of the two lumas.  Linear, so it holds for any pixel scale.
#include <cstdint>

namespace deepshop {

inline float bt601_luma(const float* rgb) { return 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2]; }

// `out` (may be `luminance_of`): the colour of `colour_of` with the luma of `luminance_of`.
inline void transfer_luminance(const float* luminance_of, const float* colour_of, float* out) {
  const float dy = bt601_luma(luminance_of) - bt601_luma(colour_of);
  for (int c = 0; c < 3; ++c) out[c] = colour_of[c] + dy;
}

// The same over `pixels` RGB pixels, interleaved.
inline void transfer_luminance(const float* luminance_of, const float* colour_of, float* out, int64_t pixels) {
  for (int64_t i = 0; i < pixels; ++i) transfer_luminance(luminance_of + 3 * i, colour_of + 3 * i, out + 3 * i);
}

}  // namespace deepshop
