#pragma once
// The tiled runner's pluggable ends: where spatial inputs come from and how spatial outputs
// are finished.
//   ImageSource<T>  cuts windows from an H x W x C pixel image and encodes them (pixel format).
//   ImageSink<T>    decodes an `image` output to pixels, harmonizes the tile if asked, and
//                   writes finished rows, blended with the input by strength/preserve_colors.
//   ClassesSink     blends K class scores, then decodes finished rows by argmax (lowest index
//                   on ties) to labels, and through a palette to RGB when one is given: the
//                   argmax class's colour, or with a temperature T > 0 the "annealed mean"
//                   sum_k softmax(s / T)_k * palette_k (Zhang et al. 2016's colourisation decoding).
#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "engine/colour_transfer.h"
#include "engine/harmonize.h"
#include "engine/pixel_codec.h"
#include "engine/tiled_runner.h"

namespace deepshop {

struct PostOptions {
  float strength = 1.f;          // 1: stylized only, 0: the input unchanged, linear in between
  bool preserve_colors = false;  // keep the input's chroma, take only the stylized luminance
  // Working size: the network runs on the image downscaled so that its longer side is this many
  // pixels (0 or an image no larger: full size), and the result is brought back to full size by
  // guided upsampling with the photo's luma as the guide (kernels/guided_upsample.h): radius in
  // working-size pixels, eps the regulariser.
  int64_t working_size = 0;
  int64_t guided_radius = 2;
  float guided_eps = 1e-3f;
};

// One finished pixel: the stylized RGB `s` (unit floats) blended with the input pixel `src` by
// strength and preserve_colors, written to `dst`.
template <typename T>
inline void finish_pixel(std::array<float, 3> s, const T* src, T* dst, const PostOptions& post) {
  std::array<float, 3> c;
  for (int ch = 0; ch < 3; ++ch) {
    s[ch] = std::min(std::max(s[ch], 0.f), 1.f);
    c[ch] = static_cast<float>(src[ch]) / PixelCodec<T>::kMax;
  }
  if (post.preserve_colors) transfer_luminance(s.data(), c.data(), s.data());  // the input's colour
  for (int ch = 0; ch < 3; ++ch) dst[ch] = from_unit<T>(post.strength * s[ch] + (1.f - post.strength) * c[ch]);
}

template <typename T>
class ImageSource final : public TileSource {
 public:
  ImageSource(ImageView<const T> image, const PixelFormat& px) : image_(image), encoder_(px, image.channels) {}
  int64_t channels() const override { return image_.channels; }
  void cut(const TileWindow& window, float* dst, size_t plane) const override;

 private:
  ImageView<const T> image_;
  InputEncoder<T> encoder_;
};

template <typename T>
class ImageSink final : public TileSink {
 public:
  // `original`: the input image the output is blended with (RGB, same size), or null data for
  // none (strength and preserve_colors then do not apply).  `reference`: harmonize, or null.
  ImageSink(ImageView<T> output, const PixelFormat& px, ImageView<const T> original, const PostOptions& post,
            const ColourReference* reference, std::string model);
  int64_t channels() const override { return output_.channels; }
  void take_tile(const float* out, size_t plane, int64_t row_stride, int64_t kh, int64_t kw, int64_t y0, int64_t x0,
                 float* kept) override;
  void finish_tile(float* kept, int64_t kh, int64_t kw, int64_t y0, int64_t x0) override;
  void finish_rows(const float* acc, int64_t y_from, int64_t y_to) override;

 private:
  ImageView<T> output_;
  OutputDecoder decoder_;
  ImageView<const T> original_;
  PostOptions post_;
  const ColourReference* reference_;
  std::string model_;
};

class ClassesSink final : public TileSink {
 public:
  // `labels`: height x width; `rgb`: height x width x 3, written when `palette` (colors x 3,
  // 8-bit RGB) is not empty.  `temperature` 0: the argmax colour; > 0: the annealed mean.
  ClassesSink(int64_t classes, int64_t width, int32_t* labels, const std::vector<uint8_t>& palette, uint8_t* rgb,
              std::string model, float temperature = 0.f);
  int64_t channels() const override { return classes_; }
  void take_tile(const float* out, size_t plane, int64_t row_stride, int64_t kh, int64_t kw, int64_t y0, int64_t x0,
                 float* kept) override;
  void finish_rows(const float* acc, int64_t y_from, int64_t y_to) override;

 private:
  int64_t classes_, width_;
  int32_t* labels_;
  std::vector<uint8_t> palette_;
  uint8_t* rgb_;
  std::string model_;
  float temperature_;
};

}  // namespace deepshop
