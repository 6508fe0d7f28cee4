#pragma once
// Palettes learned from an image: k-means (k-means++ seeding) and median cut.
#include <cstdint>
#include <vector>

#include "kernels/posterize.h"

namespace deepshop::kernels {

// `rgb` holds `n` 8-bit RGB samples.  Returns at most k colours as k' × 3 bytes (fewer when the
// samples hold fewer distinct colours).  Deterministic for a given seed: seeding uses a
// mt19937_64 with our own mapping to [0, 1), so the result does not depend on the standard
// library's distributions.  Clustering runs in `space`; each returned colour is the rounded
// mean sRGB of its members (in RGB space that is the centroid itself).
std::vector<uint8_t> kmeans_palette(const uint8_t* rgb, int64_t n, int k, ColorSpace space,
                                    uint64_t seed, int max_iterations, int threads);

// Heckbert's median cut: repeatedly split the box with the widest channel range at the median
// of that channel; each colour is the rounded mean of its box.
std::vector<uint8_t> median_cut_palette(const uint8_t* rgb, int64_t n, int k);

}  // namespace deepshop::kernels
