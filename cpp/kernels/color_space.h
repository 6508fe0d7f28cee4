#pragma once
// sRGB -> CIELAB (D65), the colour space in which posterise measures distances when asked.
//
// Formula (IEC 61966-2-1 sRGB, CIE 1976 L*a*b*):
//   c in [0, 1]:      lin(c) = c / 12.92                      if c <= 0.04045
//                             ((c + 0.055) / 1.055)^2.4        otherwise
//   [X Y Z]ᵀ = M · [lin(R) lin(G) lin(B)]ᵀ with the sRGB/D65 matrix below
//   f(t) = cbrt(t)                  if t > (6/29)^3
//          t / (3 (6/29)^2) + 4/29  otherwise
//   L* = 116 f(Y/Yn) - 16,  a* = 500 (f(X/Xn) - f(Y/Yn)),  b* = 200 (f(Y/Yn) - f(Z/Zn))
//   white point D65: Xn = 0.95047, Yn = 1, Zn = 1.08883.
// Computed in float32: every pixel and every palette colour goes through the same code, so a
// palette colour maps exactly onto itself.
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace deepshop::kernels {

struct Lab {
  float l, a, b;
};

inline double srgb_to_linear(double c) {
  return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
}

// Linearised value of each 8-bit code, computed once in double precision.
inline const std::array<float, 256>& srgb8_linear_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[i] = static_cast<float>(srgb_to_linear(i / 255.0));
    return t;
  }();
  return table;
}

// Cube root for t in (0, 2]: a bit-level first guess (exponent divided by three, error < 5 %)
// refined by two Halley steps y <- y (y³ + 2t) / (2y³ + t), each cubing the relative error, to
// float precision (at most 3 ulp from std::cbrt, checked over (0.0088, 2]).  Plain arithmetic with no library call, so the
// compiler vectorises the pixel loops that use it; every caller gets the same bits.
inline float cbrt_unit(float t) {
  uint32_t bits;
  std::memcpy(&bits, &t, sizeof bits);
  bits = bits / 3u + 0x2A514067u;
  float y;
  std::memcpy(&y, &bits, sizeof y);
  for (int i = 0; i < 2; ++i) {
    const float y3 = y * y * y;
    y = y * (y3 + 2.0f * t) / (2.0f * y3 + t);
  }
  return y;
}

inline float lab_f(float t) {
  constexpr float delta = 6.0f / 29.0f;
  constexpr float delta3 = delta * delta * delta;
  // t > delta³ > 0 selects the cube root, whose argument is then in range; the linear branch
  // also covers t <= 0 (black), where the bit trick would not apply.
  const float root = cbrt_unit(t > delta3 ? t : 1.0f);
  return t > delta3 ? root : t / (3.0f * delta * delta) + 4.0f / 29.0f;
}

inline Lab linear_rgb_to_lab(float r, float g, float b) {
  // XYZ already divided by the white point (rows of the sRGB matrix scaled by 1/Xn, 1/Zn).
  const float x = (0.4124564f * r + 0.3575761f * g + 0.1804375f * b) / 0.95047f;
  const float y = 0.2126729f * r + 0.7151522f * g + 0.0721750f * b;
  const float z = (0.0193339f * r + 0.1191920f * g + 0.9503041f * b) / 1.08883f;
  const float fx = lab_f(x), fy = lab_f(y), fz = lab_f(z);
  return {116.0f * fy - 16.0f, 500.0f * (fx - fy), 200.0f * (fy - fz)};
}

inline Lab srgb8_to_lab(uint8_t r, uint8_t g, uint8_t b) {
  const auto& lin = srgb8_linear_table();
  return linear_rgb_to_lab(lin[r], lin[g], lin[b]);
}

// Non-negative values in [0, 1] (float images).
inline Lab srgb_unit_to_lab(float r, float g, float b) {
  return linear_rgb_to_lab(static_cast<float>(srgb_to_linear(r)), static_cast<float>(srgb_to_linear(g)),
                           static_cast<float>(srgb_to_linear(b)));
}

}  // namespace deepshop::kernels
