#pragma once
// Posterise: map every pixel to the nearest colour of a palette (uniform levels or any list of
// colours), distance measured in RGB or CIELAB.  Plain C++ on contiguous interleaved RGB.
//
// Ties: when two palette colours are exactly as near, the LOWER palette index wins (the same
// rule as numpy's argmin), on every code path (direct search, lookup table, uniform levels).
#include <cstdint>
#include <vector>

namespace deepshop::kernels {

enum class ColorSpace { rgb, lab };

// Upper bound of palette sizes for the palette search (labels are stored as uint8).
constexpr int kMaxPaletteColors = 256;

// ---- uniform levels: independent per channel (exact nearest in RGB for a full grid) -------
// `values` holds the `levels` output codes of one channel (ascending).  label = (ir*L + ig)*L + ib.
// labels_u8 / labels_i32 / out may each be null; at most one labels pointer is used.
void posterize_levels_u8(const uint8_t* in, int64_t pixels, const uint8_t* values, int levels,
                         uint8_t* out, uint8_t* labels_u8, int32_t* labels_i32, int threads);
void posterize_levels_u16(const uint16_t* in, int64_t pixels, const uint16_t* values, int levels,
                          uint16_t* out, uint8_t* labels_u8, int32_t* labels_i32, int threads);

// ---- palette search --------------------------------------------------------------------
// 8-bit RGB in, palette of `colors` 8-bit RGB triples.  `out` (pixels × 3) may be null.
// `table` may be null (direct search) or a label table made by build_palette_table for this
// palette (`table_bytes` long); both give the same labels.
void posterize_palette_u8(const uint8_t* in, int64_t pixels, const uint8_t* palette, int colors,
                          ColorSpace space, const uint8_t* table, int64_t table_bytes, uint8_t* labels,
                          uint8_t* out, int threads);

// Label table over the whole 8-bit RGB cube, in two levels so that it stays small and
// cache-friendly.  The cube is cut into 32³ cells of 8 × 8 × 8 colours.  The first 64 KiB hold
// one uint16 per cell (index (r>>3)<<10 | (g>>3)<<5 | b>>3): a value below 256 is the label
// shared by all 512 colours of the cell; 256 + m points to the m-th 512-byte sub-table that
// follows, indexed by (r&7)<<6 | (g&7)<<3 | (b&7), for cells that straddle a boundary.
// It is filled by the very same search as the direct path, so it changes no result.
std::vector<uint8_t> build_palette_table(const uint8_t* palette, int colors, ColorSpace space, int threads);

// Float RGB in [0, 1] (pixels × 3), palette also as floats in [0, 1] (colors × 3).
void posterize_palette_f32(const float* in, int64_t pixels, const float* palette, int colors,
                           ColorSpace space, uint8_t* labels, int threads);

// Floyd–Steinberg error diffusion (raster order, left to right on every row).  `in` is float
// RGB in [0, 1], height × width × 3, palette as floats in [0, 1].  The nearest colour is chosen
// in `space`; the error is diffused in RGB, clamped to [0, 1] before each search.
void posterize_dither_f32(const float* in, int64_t height, int64_t width, const float* palette,
                          int colors, ColorSpace space, uint8_t* labels);

}  // namespace deepshop::kernels
