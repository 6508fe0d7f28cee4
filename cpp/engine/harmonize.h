#pragma once
// Harmonize: tiles of an instance-norm network each normalise with their own statistics and
// get their own colour cast.  The whole image is first stylized as a small thumbnail, and every
// tile's low-frequency colour is pulled to the thumbnail's (its detail is kept), so that tiles
// agree with each other and with the whole image.
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/pixel_codec.h"

namespace deepshop {

// A box (area) average of an RGB image: every thumbnail pixel is the mean of the `factor` x
// `factor` pixels it covers (fewer at the right and bottom edges), in the unit interval.
struct Thumbnail {
  int64_t factor = 0;  // full-resolution pixels per thumbnail pixel, per axis
  int64_t height = 0, width = 0;
  std::vector<float> rgb;  // height x width x 3
};
// The thumbnail of `input` whose longer side is about `side` (the factor is an integer), on up to
// `threads` threads.
template <typename T>
Thumbnail box_thumbnail(ImageView<const T> input, int64_t side, int threads = 1);

// The stylized thumbnail that tiles take their low-frequency colour from.
struct ColourReference {
  int64_t factor = 0;  // full-resolution pixels per thumbnail pixel, per axis
  int64_t height = 0, width = 0;
  std::vector<float> rgb;  // height x width x 3, unit interval
  int64_t radius = 0;      // box-blur radius of the correction, in thumbnail pixels
  int threads = 1;         // threads harmonize_tile may use
};

// Stylizes a whole float RGB image (unit interval) in one window, into `out` of its size.
using StylizeWholeFn = std::function<void(ImageView<const float> in, ImageView<float> out)>;

// Box-averages `input` (RGB) to a thumbnail whose longer side is about `side`, and stylizes it;
// the averaging and each tile's harmonize_tile run on up to `threads` threads.
template <typename T>
ColourReference make_colour_reference(ImageView<const T> input, int64_t side, const StylizeWholeFn& stylize_whole,
                                      int threads = 1);

// Adds to `tile` (rows x cols x 3, unit RGB, at image offset y0, x0) the blurred difference
// between the reference and the tile's own colour at the reference's resolution.
void harmonize_tile(float* tile, int64_t rows, int64_t cols, int64_t y0, int64_t x0, const ColourReference& ref);

}  // namespace deepshop
