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
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kernels/color_space.h"
#include "kernels/parallel.h"
#include "kernels/simd_dispatch.h"

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

// Palette colours as coordinates of the distance space (RGB as given, or CIELAB).
template <typename T, typename ToLab>
PaletteCoords palette_coords(const T* palette, int colors, ColorSpace space, ToLab to_lab) {
  PaletteCoords pc;
  for (int k = 0; k < colors; ++k) {
    const T r = palette[3 * k], g = palette[3 * k + 1], b = palette[3 * k + 2];
    if (space == ColorSpace::lab) {
      Lab lab = to_lab(r, g, b);
      pc.x.push_back(lab.l), pc.y.push_back(lab.a), pc.z.push_back(lab.b);
    } else {
      pc.x.push_back(r), pc.y.push_back(g), pc.z.push_back(b);
    }
  }
  return pc;
}

PaletteCoords palette_coords_u8(const uint8_t* palette, int colors, ColorSpace space) {
  return palette_coords(palette, colors, space, [](uint8_t r, uint8_t g, uint8_t b) { return srgb8_to_lab(r, g, b); });
}

PaletteCoords palette_coords_f32(const float* palette, int colors, ColorSpace space) {
  return palette_coords(palette, colors, space, [](float r, float g, float b) { return srgb_unit_to_lab(r, g, b); });
}

// Nearest palette entry of n <= kBlock points.  Strict '<' keeps the lowest index on ties.
// Written branch-free over the pixels so that every clone vectorises the inner loop; no FMA
// contraction (-ffp-contract=off for this file), so all clones give identical results.
DEEPSHOP_CLONES("avx512f", "avx2", "default") void nearest_block(
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

DEEPSHOP_CLONES("avx512f", "avx2", "default") void lab_block(
    const float* lr, const float* lg, const float* lb, float* l, float* a, float* bb) {
  for (int p = 0; p < kBlock; ++p) {
    const Lab v = linear_rgb_to_lab(lr[p], lg[p], lb[p]);
    l[p] = v.l, a[p] = v.a, bb[p] = v.b;
  }
}

// Coordinates of up to kBlock 8-bit pixels (unused slots are zero: computed, then ignored).
// CIELAB: the table look-ups first, then one loop of plain arithmetic that vectorises.
void coords_u8(const uint8_t* rgb, int n, ColorSpace space, float* x, float* y, float* z) {
  if (space == ColorSpace::lab) {
    const auto& lin = srgb8_linear_table();
    alignas(64) float lr[kBlock], lg[kBlock], lb[kBlock];
    for (int p = 0; p < n; ++p) lr[p] = lin[rgb[3 * p]], lg[p] = lin[rgb[3 * p + 1]], lb[p] = lin[rgb[3 * p + 2]];
    for (int p = n; p < kBlock; ++p) lr[p] = lg[p] = lb[p] = 0.f;
    lab_block(lr, lg, lb, x, y, z);
    return;
  }
  for (int p = 0; p < n; ++p) x[p] = rgb[3 * p], y[p] = rgb[3 * p + 1], z[p] = rgb[3 * p + 2];
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

// Output codes only (no labels): level k is taken where x >= threshold[k-1], the midpoint
// between levels k-1 and k rounded so that a tie stays on the lower level.  Applying the
// thresholds one after the other over a chunk that sits in L1 makes every pass a compare and a
// blend over 16-64 bytes at a time — memory-bandwidth speed for the few levels of posterising.
template <class T>
void map_levels_chunked(const T* in, T* out, int64_t count, const T* thresholds, const T* values, int levels) {
  constexpr int64_t kChunk = 4096;
  for (int64_t s = 0; s < count; s += kChunk) {
    const int64_t n = std::min(kChunk, count - s);
    const T* x = in + s;
    T* y = out + s;
    const T v0 = values[0];
    for (int64_t i = 0; i < n; ++i) y[i] = v0;
    for (int k = 1; k < levels; ++k) {
      const T t = thresholds[k - 1], v = values[k];
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] >= t ? v : y[i];
    }
  }
}

DEEPSHOP_CLONES("arch=x86-64-v4", "avx2", "default") void map_levels_u8(
    const uint8_t* in, uint8_t* out, int64_t count, const uint8_t* thresholds, const uint8_t* values, int levels) {
  map_levels_chunked(in, out, count, thresholds, values, levels);
}

DEEPSHOP_CLONES("arch=x86-64-v4", "avx2", "default") void map_levels_u16(
    const uint16_t* in, uint16_t* out, int64_t count, const uint16_t* thresholds, const uint16_t* values, int levels) {
  map_levels_chunked(in, out, count, thresholds, values, levels);
}

inline void map_levels(const uint8_t* in, uint8_t* out, int64_t count, const uint8_t* t, const uint8_t* v, int levels) {
  map_levels_u8(in, out, count, t, v, levels);
}
inline void map_levels(const uint16_t* in, uint16_t* out, int64_t count, const uint16_t* t, const uint16_t* v, int levels) {
  map_levels_u16(in, out, count, t, v, levels);
}

template <class T>
void posterize_levels(const T* in, int64_t pixels, const T* values, int levels, T* out,
                      uint8_t* labels_u8, int32_t* labels_i32, int threads) {
  const auto table = level_index_table(values, levels, int64_t{1} << (8 * sizeof(T)));
  const int L = levels;
  const int wanted = resolve_threads(threads);  // checked even when one part will do
  const int parts = pixels < (1 << 16) ? 1 : wanted;
  if (!labels_u8 && !labels_i32 && levels <= 16) {
    if (!out) return;
    // Threshold of level k: the first code whose nearest level (ties: lower) is k.
    std::vector<T> thresholds(static_cast<size_t>(levels - 1));
    for (int k = 1; k < levels; ++k) {
      int64_t c = 0;
      while (table[static_cast<size_t>(c)] < k) ++c;
      thresholds[static_cast<size_t>(k - 1)] = static_cast<T>(c);
    }
    parallel_parts(pixels, parts, [&](int, int64_t b, int64_t e) {
      map_levels(in + 3 * b, out + 3 * b, 3 * (e - b), thresholds.data(), values, levels);
    });
    return;
  }
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
                          ColorSpace space, const uint8_t* table, int64_t table_bytes, uint8_t* labels,
                          uint8_t* out, int threads) {
  check_palette(colors);
  const int wanted = resolve_threads(threads);  // checked even when one part will do
  const int parts = pixels < (1 << 14) ? 1 : wanted;
  if (table) {
    constexpr int64_t kCells = 32 * 32 * 32;
    if (table_bytes < 2 * kCells) throw std::invalid_argument("posterize: label table too small");
    std::vector<uint16_t> cells(kCells);
    std::memcpy(cells.data(), table, sizeof(uint16_t) * kCells);
    const int64_t subtables = (table_bytes - 2 * kCells) / 512;
    for (uint16_t v : cells)  // a corrupt table must not read outside itself
      if ((v < 256 && v >= colors) || (v >= 256 && v - 256 >= subtables))
        throw std::invalid_argument("posterize: label table does not fit this palette");
    const uint8_t* sub = table + 2 * kCells;
    const uint8_t last = static_cast<uint8_t>(colors - 1);
    parallel_parts(pixels, parts, [&](int, int64_t b, int64_t e) {
      const uint16_t* __restrict cell = cells.data();
      const uint8_t* __restrict src = in;
      uint8_t* __restrict lab = labels;
      uint8_t* __restrict dst = out;
      uint8_t pal[3 * kMaxPaletteColors];
      std::memcpy(pal, palette, static_cast<size_t>(3 * colors));
      for (int64_t i = b; i < e; ++i) {
        const uint32_t r = src[3 * i], g = src[3 * i + 1], bl = src[3 * i + 2];
        const uint32_t v = cell[(r >> 3 << 10) | (g >> 3 << 5) | (bl >> 3)];
        uint32_t k = v;
        if (v >= 256) k = sub[(size_t(v - 256) << 9) | ((r & 7) << 6) | ((g & 7) << 3) | (bl & 7)];
        k = std::min<uint32_t>(k, last);  // sub-table bytes are not checked one by one
        lab[i] = static_cast<uint8_t>(k);
        if (dst) {
          dst[3 * i] = pal[3 * k];
          dst[3 * i + 1] = pal[3 * k + 1];
          dst[3 * i + 2] = pal[3 * k + 2];
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

std::vector<uint8_t> build_palette_table(const uint8_t* palette, int colors, ColorSpace space, int threads) {
  check_palette(colors);
  const PaletteCoords pc = palette_coords_u8(palette, colors, space);
  constexpr int64_t kCells = 32 * 32 * 32;
  // Labels of every colour, cell by cell (512 consecutive bytes per cell), then compressed.
  std::vector<uint8_t> full(static_cast<size_t>(kCells * 512));
  parallel_parts(kCells, resolve_threads(threads), [&](int, int64_t cell_begin, int64_t cell_end) {
    alignas(64) float x[kBlock], y[kBlock], z[kBlock];
    uint8_t rgb[3 * kBlock];
    for (int64_t cell = cell_begin; cell < cell_end; ++cell) {
      const int r0 = static_cast<int>(cell >> 10) << 3, g0 = static_cast<int>((cell >> 5) & 31) << 3,
                b0 = static_cast<int>(cell & 31) << 3;
      for (int rl = 0; rl < 8; ++rl) {  // 64 colours: one red value, 8 greens × 8 blues
        for (int p = 0; p < kBlock; ++p) {
          rgb[3 * p] = static_cast<uint8_t>(r0 + rl);
          rgb[3 * p + 1] = static_cast<uint8_t>(g0 + (p >> 3));
          rgb[3 * p + 2] = static_cast<uint8_t>(b0 + (p & 7));
        }
        coords_u8(rgb, kBlock, space, x, y, z);
        nearest_block(x, y, z, kBlock, pc.x.data(), pc.y.data(), pc.z.data(), colors,
                      full.data() + cell * 512 + rl * kBlock);
      }
    }
  });
  std::vector<uint16_t> cells(kCells);
  std::vector<uint8_t> subtables;
  for (int64_t cell = 0; cell < kCells; ++cell) {
    const uint8_t* labels = full.data() + cell * 512;
    if (std::all_of(labels, labels + 512, [&](uint8_t v) { return v == labels[0]; })) {
      cells[static_cast<size_t>(cell)] = labels[0];
    } else {
      cells[static_cast<size_t>(cell)] = static_cast<uint16_t>(256 + subtables.size() / 512);
      subtables.insert(subtables.end(), labels, labels + 512);
    }
  }
  std::vector<uint8_t> table(static_cast<size_t>(2 * kCells) + subtables.size());
  std::memcpy(table.data(), cells.data(), static_cast<size_t>(2 * kCells));
  std::copy(subtables.begin(), subtables.end(), table.begin() + 2 * kCells);
  return table;
}

void posterize_palette_f32(const float* in, int64_t pixels, const float* palette, int colors,
                           ColorSpace space, uint8_t* labels, int threads) {
  check_palette(colors);
  const PaletteCoords pc = palette_coords_f32(palette, colors, space);
  const int wanted = resolve_threads(threads);  // checked even when one part will do
  const int parts = pixels < (1 << 14) ? 1 : wanted;
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
