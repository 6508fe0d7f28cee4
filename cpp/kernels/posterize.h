#pragma once
// Posterise: map every pixel to the nearest colour of a palette (uniform levels or any list of
// colours), distance measured in RGB or CIELAB.  Plain C++ on contiguous interleaved RGB.
//
// Ties: when two palette colours are exactly as near, the LOWER palette index wins (the same
// rule as numpy's argmin), on every code path (direct search, lookup table, uniform levels).
#include <cstdint>

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
// `lut` may be null (direct search) or a table built by build_palette_lut for this palette.
void posterize_palette_u8(const uint8_t* in, int64_t pixels, const uint8_t* palette, int colors,
                          ColorSpace space, const uint8_t* lut, uint8_t* labels, uint8_t* out,
                          int threads);

// Fills lut[(r << 16) | (g << 8) | b] with the label of every one of the 2^24 8-bit colours —
// the very same search as the direct path, so using the table changes no result.
void build_palette_lut(const uint8_t* palette, int colors, ColorSpace space, uint8_t* lut, int threads);

// Float RGB in [0, 1] (pixels × 3), palette also as floats in [0, 1] (colors × 3).
void posterize_palette_f32(const float* in, int64_t pixels, const float* palette, int colors,
                           ColorSpace space, uint8_t* labels, int threads);

// Floyd–Steinberg error diffusion (raster order, left to right on every row).  `in` is float
// RGB in [0, 1], height × width × 3, palette as floats in [0, 1].  The nearest colour is chosen
// in `space`; the error is diffused in RGB, clamped to [0, 1] before each search.
void posterize_dither_f32(const float* in, int64_t height, int64_t width, const float* palette,
                          int colors, ColorSpace space, uint8_t* labels);

}  // namespace deepshop::kernels
