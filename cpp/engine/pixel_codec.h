#pragma once
// Pixels <-> network values for `image` tensors, per element type and channel count.
//
// A pixel in the unit interval u becomes lo + u * (hi - lo) - mean[k] in network channel k, and
// back.  3-channel tensors may be BGR and carry a mean; other channel counts (a 1-channel edge
// map, say) take the value range only.
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "engine/model_info.h"

namespace deepshop {

// A contiguous H x W x C image of element type T (uint8_t, uint16_t or float in [0, 1]).
template <typename T>
struct ImageView {
  T* data = nullptr;
  int64_t height = 0, width = 0;
  int64_t channels = 3;
};

template <typename T>
struct PixelCodec;
template <>
struct PixelCodec<uint8_t> {
  static constexpr float kMax = 255.f;
  static constexpr bool kIntegral = true;
};
template <>
struct PixelCodec<uint16_t> {
  static constexpr float kMax = 65535.f;
  static constexpr bool kIntegral = true;
};
template <>
struct PixelCodec<float> {
  static constexpr float kMax = 1.f;
  static constexpr bool kIntegral = false;
};

// Unit interval -> pixel of type T, clamped (the value must be finite).
template <typename T>
inline T from_unit(float v) {
  v = std::min(std::max(v, 0.f), 1.f);
  if constexpr (PixelCodec<T>::kIntegral) return static_cast<T>(v * PixelCodec<T>::kMax + 0.5f);
  else return v;
}

// Network channel holding image channel c.
inline int net_channel(const PixelFormat& px, int64_t channels, int64_t c) {
  return static_cast<int>(channels == 3 && px.bgr ? 2 - c : c);
}
inline float channel_mean(const PixelFormat& px, int64_t channels, int k) { return channels == 3 ? px.mean[k] : 0.f; }

// Maps input pixels to network values.  For 8- and 16-bit images a lookup table per channel
// makes this one load per value.
template <typename T>
class InputEncoder {
 public:
  InputEncoder(const PixelFormat& px, int64_t channels) : scale_(px.range_hi - px.range_lo) {
    net_channel_.resize(channels);
    offset_.resize(channels);
    lut_.resize(channels);
    for (int64_t c = 0; c < channels; ++c) {
      const int k = deepshop::net_channel(px, channels, c);
      net_channel_[c] = k;
      offset_[c] = px.range_lo - channel_mean(px, channels, k);
      if constexpr (PixelCodec<T>::kIntegral) {
        lut_[c].resize(static_cast<size_t>(PixelCodec<T>::kMax) + 1);
        for (size_t v = 0; v < lut_[c].size(); ++v) lut_[c][v] = offset_[c] + scale_ * (v / PixelCodec<T>::kMax);
      }
    }
  }
  int net_channel(int64_t c) const { return net_channel_[c]; }
  float encode(int64_t c, T v) const {
    if constexpr (PixelCodec<T>::kIntegral) return lut_[c][v];
    else return offset_[c] + scale_ * v;
  }

 private:
  float scale_;
  std::vector<int> net_channel_;
  std::vector<float> offset_;
  std::vector<std::vector<float>> lut_;
};

// Network output -> unit interval, per image channel: v * scale[c] + offset[c], read from
// network channel net_channel[c].
struct OutputDecoder {
  std::vector<int> net_channel;
  std::vector<float> scale, offset;

  OutputDecoder(const PixelFormat& px, int64_t channels) : net_channel(channels), scale(channels), offset(channels) {
    for (int64_t c = 0; c < channels; ++c) {
      const int k = deepshop::net_channel(px, channels, c);
      net_channel[c] = k;
      scale[c] = 1.f / (px.range_hi - px.range_lo);
      offset[c] = (channel_mean(px, channels, k) - px.range_lo) * scale[c];
    }
  }
};

}  // namespace deepshop
