#pragma once
// Labels -> colours: the palette lookup that turns a label map (posterise, or argmax of class
// scores) into an RGB image.
#include <cstdint>
#include <stdexcept>
#include <string>

namespace deepshop::kernels {

// out[i] = palette[labels[i]] (8-bit RGB); a label outside [0, colors) is an error.
inline void decode_labels(const int32_t* labels, int64_t count, const uint8_t* palette, int colors, uint8_t* out) {
  for (int64_t i = 0; i < count; ++i) {
    const int32_t l = labels[i];
    if (l < 0 || l >= colors)
      throw std::invalid_argument("label " + std::to_string(l) + " has no colour in a palette of " +
                                  std::to_string(colors));
    out[i * 3] = palette[l * 3];
    out[i * 3 + 1] = palette[l * 3 + 1];
    out[i * 3 + 2] = palette[l * 3 + 2];
  }
}

}  // namespace deepshop::kernels
