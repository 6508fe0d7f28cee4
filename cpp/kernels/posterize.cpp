// Posterise kernels.  See posterize.h for the contract (ties: lowest palette index wins).
//
// Speed notes.  Uniform levels are three table look-ups per pixel (memory-bandwidth bound).  The
// palette search converts blocks of 64 pixels to structure-of-arrays coordinates (RGB or
// CIELAB) and scans the palette with the pixels as the vectorised dimension; the function is
// compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time (target_clones).  For
// large 8-bit images the caller may build a 2^24-entry label table once per palette (the same
// search run over every 8-bit colour), after which each pixel costs one look-up.
#include "kernels/posterize.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kernels/color_space.h"
#include "kernels/parallel.h"

namespace deepshop::kernels {
namespace {

constexpr int kBlock = 64;

// Palette coordinates, structure of arrays.
struct PaletteCoords {
  std::vector<float> x, y, z;
};

void check_palette(int colors) {
  if (colors < 1 || colors > kMaxPaletteColors)
    throw std::invalid_argument("posterize: palette must hold 1 to 256 colours, got " + std::to_string(colors));
}

PaletteCoords palette_coords_u8(const uint8_t* palette, int colors, ColorSpace space) {
  PaletteCoords pc;
  for (int k = 0; k < colors; ++k) {
    const uint8_t r = palette[3 * k], g = palette[3 * k + 1], b = palette[3 * k + 2];
    if (space == ColorSpace::lab) {
      Lab lab = srgb8_to_lab(r, g, b);
      pc.x.push_back(lab.l), pc.y.push_back(lab.a), pc.z.push_back(lab.b);
    } else {
      pc.x.push_back(r), pc.y.push_back(g), pc.z.push_back(b);
    }
  }
  return pc;
}

PaletteCoords palette_coords_f32(const float* palette, int colors, ColorSpace space) {
  PaletteCoords pc;
  for (int k = 0; k < colors; ++k) {
    const float r = palette[3 * k], g = palette[3 * k + 1], b = palette[3 * k + 2];
    if (space == ColorSpace::lab) {
      Lab lab = srgb_unit_to_lab(r, g, b);
      pc.x.push_back(lab.l), pc.y.push_back(lab.a), pc.z.push_back(lab.b);
    } else {
      pc.x.push_back(r), pc.y.push_back(g), pc.z.push_back(b);
    }
  }
  return pc;
}

// Nearest palette entry of n <= kBlock points.  Strict '<' keeps the lowest index on ties.
// Written branch-free over the pixels so that every clone vectorises the inner loop; no FMA
// contraction (-ffp-contract=off for this file), so all clones give identical results.
__attribute__((target_clones("avx512f", "avx2", "default"))) void nearest_block(
    const float* x, const float* y, const float* z, int n, const float* px, const float* py,
    const float* pz, int colors, uint8_t* labels) {
  float best[kBlock];
  int32_t index[kBlock];
  for (int p = 0; p < kBlock; ++p) {
    best[p] = std::numeric_limits<float>::infinity();
    index[p] = 0;
  }
  for (int k = 0; k < colors; ++k) {
    const float cx = px[k], cy = py[k], cz = pz[k];
    for (int p = 0; p < kBlock; ++p) {
      const float dx = x[p] - cx, dy = y[p] - cy, dz = z[p] - cz;
      const float d = dx * dx + dy * dy + dz * dz;
      const bool closer = d < best[p];
      best[p] = closer ? d : best[p];
      index[p] = closer ? k : index[p];
    }
  }
  for (int p = 0; p < n; ++p) labels[p] = static_cast<uint8_t>(index[p]);
}

// Coordinates of up to kBlock 8-bit pixels (unused slots are zero: computed, then ignored).
void coords_u8(const uint8_t* rgb, int n, ColorSpace space, float* x, float* y, float* z) {
  for (int p = 0; p < n; ++p) {
    const uint8_t r = rgb[3 * p], g = rgb[3 * p + 1], b = rgb[3 * p + 2];
    if (space == ColorSpace::lab) {
      Lab lab = srgb8_to_lab(r, g, b);
      x[p] = lab.l, y[p] = lab.a, z[p] = lab.b;
    } else {
      x[p] = r, y[p] = g, z[p] = b;
    }
  }
  for (int p = n; p < kBlock; ++p) x[p] = y[p] = z[p] = 0.f;
}

void coords_f32(const float* rgb, int n, ColorSpace space, float* x, float* y, float* z) {
  for (int p = 0; p < n; ++p) {
    const float r = rgb[3 * p], g = rgb[3 * p + 1], b = rgb[3 * p + 2];
    if (space == ColorSpace::lab) {
      Lab lab = srgb_unit_to_lab(r, g, b);
      x[p] = lab.l, y[p] = lab.a, z[p] = lab.b;
    } else {
      x[p] = r, y[p] = g, z[p] = b;
    }
  }
  for (int p = n; p < kBlock; ++p) x[p] = y[p] = z[p] = 0.f;
}

int nearest_scalar(float x, float y, float z, const PaletteCoords& pc) {
  float best = std::numeric_limits<float>::infinity();
  int index = 0;
  for (size_t k = 0; k < pc.x.size(); ++k) {
    const float dx = x - pc.x[k], dy = y - pc.y[k], dz = z - pc.z[k];
    const float d = dx * dx + dy * dy + dz * dz;
    if (d < best) best = d, index = static_cast<int>(k);
  }
  return index;
}

// Per-channel nearest level index of every input code; ties go to the lower level.
template <class T>
std::vector<uint16_t> level_index_table(const T* values, int levels, int64_t codes) {
  if (levels < 2 || levels > 256) throw std::invalid_argument("posterize: levels must be 2 to 256");
  std::vector<uint16_t> table(static_cast<size_t>(codes));
  for (int64_t c = 0; c < codes; ++c) {
    int64_t best = std::numeric_limits<int64_t>::max();
    int index = 0;
    for (int l = 0; l < levels; ++l) {
      const int64_t d = std::abs(c - static_cast<int64_t>(values[l]));
      if (d < best) best = d, index = l;
    }
    table[static_cast<size_t>(c)] = static_cast<uint16_t>(index);
  }
  return table;
}

template <class T>
void posterize_levels(const T* in, int64_t pixels, const T* values, int levels, T* out,
                      uint8_t* labels_u8, int32_t* labels_i32, int threads) {
  const auto table = level_index_table(values, levels, int64_t{1} << (8 * sizeof(T)));
  const int L = levels;
  const int parts = pixels < (1 << 16) ? 1 : resolve_threads(threads);
  parallel_parts(pixels, parts, [&](int, int64_t b, int64_t e) {
    const uint16_t* idx = table.data();
    for (int64_t i = b; i < e; ++i) {
      const int ir = idx[in[3 * i]], ig = idx[in[3 * i + 1]], ib = idx[in[3 * i + 2]];
      if (out) {
        out[3 * i] = values[ir];
        out[3 * i + 1] = values[ig];
        out[3 * i + 2] = values[ib];
      }
      const int32_t label = (ir * L + ig) * L + ib;
      if (labels_u8) labels_u8[i] = static_cast<uint8_t>(label);
      if (labels_i32) labels_i32[i] = label;
    }
  });
}

}  // namespace

void posterize_levels_u8(const uint8_t* in, int64_t pixels, const uint8_t* values, int levels,
                         uint8_t* out, uint8_t* labels_u8, int32_t* labels_i32, int threads) {
  posterize_levels(in, pixels, values, levels, out, labels_u8, labels_i32, threads);
}

void posterize_levels_u16(const uint16_t* in, int64_t pixels, const uint16_t* values, int levels,
                          uint16_t* out, uint8_t* labels_u8, int32_t* labels_i32, int threads) {
  posterize_levels(in, pixels, values, levels, out, labels_u8, labels_i32, threads);
}

void posterize_palette_u8(const uint8_t* in, int64_t pixels, const uint8_t* palette, int colors,
                          ColorSpace space, const uint8_t* lut, uint8_t* labels, uint8_t* out,
                          int threads) {
  check_palette(colors);
  const int parts = pixels < (1 << 14) ? 1 : resolve_threads(threads);
  if (lut) {
    parallel_parts(pixels, parts, [&](int, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const uint32_t key = (uint32_t{in[3 * i]} << 16) | (uint32_t{in[3 * i + 1]} << 8) | in[3 * i + 2];
        const uint8_t k = lut[key];
        labels[i] = k;
        if (out) {
          out[3 * i] = palette[3 * k];
          out[3 * i + 1] = palette[3 * k + 1];
          out[3 * i + 2] = palette[3 * k + 2];
        }
      }
    });
    return;
  }
  const PaletteCoords pc = palette_coords_u8(palette, colors, space);
  parallel_parts(pixels, parts, [&](int, int64_t b, int64_t e) {
    alignas(64) float x[kBlock], y[kBlock], z[kBlock];
    for (int64_t i = b; i < e; i += kBlock) {
      const int n = static_cast<int>(std::min<int64_t>(kBlock, e - i));
      coords_u8(in + 3 * i, n, space, x, y, z);
      nearest_block(x, y, z, n, pc.x.data(), pc.y.data(), pc.z.data(), colors, labels + i);
      if (out) {
        for (int p = 0; p < n; ++p) {
          const uint8_t k = labels[i + p];
          out[3 * (i + p)] = palette[3 * k];
          out[3 * (i + p) + 1] = palette[3 * k + 1];
          out[3 * (i + p) + 2] = palette[3 * k + 2];
        }
      }
    }
  });
}

void build_palette_lut(const uint8_t* palette, int colors, ColorSpace space, uint8_t* lut, int threads) {
  check_palette(colors);
  const PaletteCoords pc = palette_coords_u8(palette, colors, space);
  // One part per red value range; every (r, g) row of 256 blues is four blocks of 64.
  parallel_parts(256, resolve_threads(threads), [&](int, int64_t r_begin, int64_t r_end) {
    alignas(64) float x[kBlock], y[kBlock], z[kBlock];
    uint8_t rgb[3 * kBlock];
    for (int64_t r = r_begin; r < r_end; ++r)
      for (int g = 0; g < 256; ++g)
        for (int b0 = 0; b0 < 256; b0 += kBlock) {
          for (int p = 0; p < kBlock; ++p) {
            rgb[3 * p] = static_cast<uint8_t>(r);
            rgb[3 * p + 1] = static_cast<uint8_t>(g);
            rgb[3 * p + 2] = static_cast<uint8_t>(b0 + p);
          }
          coords_u8(rgb, kBlock, space, x, y, z);
          nearest_block(x, y, z, kBlock, pc.x.data(), pc.y.data(), pc.z.data(), colors,
                        lut + ((r << 16) | (g << 8) | b0));
        }
  });
}

void posterize_palette_f32(const float* in, int64_t pixels, const float* palette, int colors,
                           ColorSpace space, uint8_t* labels, int threads) {
  check_palette(colors);
  const PaletteCoords pc = palette_coords_f32(palette, colors, space);
  const int parts = pixels < (1 << 14) ? 1 : resolve_threads(threads);
  parallel_parts(pixels, parts, [&](int, int64_t b, int64_t e) {
    alignas(64) float x[kBlock], y[kBlock], z[kBlock];
    for (int64_t i = b; i < e; i += kBlock) {
      const int n = static_cast<int>(std::min<int64_t>(kBlock, e - i));
      coords_f32(in + 3 * i, n, space, x, y, z);
      nearest_block(x, y, z, n, pc.x.data(), pc.y.data(), pc.z.data(), colors, labels + i);
    }
  });
}

void posterize_dither_f32(const float* in, int64_t height, int64_t width, const float* palette,
                          int colors, ColorSpace space, uint8_t* labels) {
  check_palette(colors);
  const PaletteCoords pc = palette_coords_f32(palette, colors, space);
  // Error of the current and the next row, with one guard pixel on each side.
  std::vector<float> err_cur(static_cast<size_t>(3 * (width + 2)), 0.f);
  std::vector<float> err_next(err_cur.size(), 0.f);
  for (int64_t yrow = 0; yrow < height; ++yrow) {
    std::fill(err_next.begin(), err_next.end(), 0.f);
    for (int64_t x = 0; x < width; ++x) {
      const int64_t i = yrow * width + x;
      float v[3];
      for (int c = 0; c < 3; ++c)
        v[c] = std::clamp(in[3 * i + c] + err_cur[static_cast<size_t>(3 * (x + 1) + c)], 0.f, 1.f);
      int k;
      if (space == ColorSpace::lab) {
        Lab lab = srgb_unit_to_lab(v[0], v[1], v[2]);
        k = nearest_scalar(lab.l, lab.a, lab.b, pc);
      } else {
        k = nearest_scalar(v[0], v[1], v[2], pc);
      }
      labels[i] = static_cast<uint8_t>(k);
      for (int c = 0; c < 3; ++c) {
        const float e = v[c] - palette[3 * k + c];
        err_cur[static_cast<size_t>(3 * (x + 2) + c)] += e * (7.f / 16.f);
        err_next[static_cast<size_t>(3 * x + c)] += e * (3.f / 16.f);
        err_next[static_cast<size_t>(3 * (x + 1) + c)] += e * (5.f / 16.f);
        err_next[static_cast<size_t>(3 * (x + 2) + c)] += e * (1.f / 16.f);
      }
    }
    std::swap(err_cur, err_next);
  }
}

}  // namespace deepshop::kernels
