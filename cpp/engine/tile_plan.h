#pragma once
// Where the tiles of one image go, along one axis, and how their outputs blend.
//
// Each tile has a *kept* span [start, start + kept) of the output, and a network *window* that
// adds `halo` pixels of context on both sides: window = kept + 2 * halo.  Windows reaching
// past the image read it reflected (the image border is reflection-padded).  Kept spans of
// neighbours overlap, and over each overlap the two tiles' weights ramp linearly against each
// other; the weights are normalised so that at every pixel they sum to exactly one.  A 2-D tile's
// weight is the product of its row and column weights, which therefore also sums to one.
//
// Starts, halo and window are multiples of the model's stride, so that every tile sees the
// image on the same sampling grid as a whole-image run would.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace deepshop {

struct AxisPlan {
  int64_t length = 0;  // image length along this axis
  int64_t window = 0;  // network input length of every tile (a multiple of the stride)
  int64_t halo = 0;    // context on each side of the kept span
  int64_t kept = 0;    // window - 2 * halo
  std::vector<int64_t> starts;                // kept-span start of each tile, in image pixels
  std::vector<std::vector<float>> weights;    // per tile, `kept` blend weights (0 beyond the image)
  // Window starts moved inside the image (TileOptions::windows_inside); empty: starts - halo.
  std::vector<int64_t> inside_starts;

  int64_t count() const { return static_cast<int64_t>(starts.size()); }
  int64_t window_start(int64_t i) const { return inside_starts.empty() ? starts[i] - halo : inside_starts[i]; }
  // Where tile i's kept span begins inside its window.
  int64_t kept_offset(int64_t i) const { return starts[i] - window_start(i); }
  // The image span tile i alone accounts for, [first, second): from its start to the next tile's
  // (the last one's to the image end).  The owned spans partition the image, so quantities summed
  // over pixels (Gram matrices, loss terms, a stitched gradient) add up over them to the image's.
  std::pair<int64_t, int64_t> owned(int64_t i) const {
    return {starts[i], i + 1 < count() ? starts[i + 1] : length};
  }
};

// What the planner needs to know of a model (see ModelInfo::geometry()).
struct TilingGeometry {
  int64_t stride = 1;           // tile starts and windows are multiples of it
  int64_t receptive_field = 0;  // 0: unknown
  int64_t fixed_batch = -1, fixed_height = -1, fixed_width = -1;  // -1: dynamic
  std::string model;            // named in errors
};

// How tiles of a global-statistics graph (models carrying deepshop.statistics) are normalised;
// engine/statistics_mode.h says what each mode runs.  Models without such a graph harmonize.
enum class StatisticsMode {
  automatic,  // the default for the model: thumbnail (statistics_mode.h says why)
  thumbnail,  // one untiled run of a thumbnail measures every layer's statistics
  exact,      // the statistics of the full image, layer by layer over all tiles
  off,        // every tile its own statistics, harmonized as for models without the graph
};

// Tiling options.  Sizes are bounded by kMaxPixels (engine/limits.h).
struct TileOptions {
  // Network window (pixels, both axes); <= 0: the whole image at once.  1536 keeps one
  // TransformerNet tile's activations near 1 GB, runs 1920x1080 in two tiles, and bounds an
  // 8192x8192 run to about 1.9 GB beyond its input and output (README: figures).
  int64_t tile = 1536;
  int64_t halo = -1;     // context around each tile; < 0: from the model's receptive field
  int64_t overlap = 64;  // least overlap of neighbouring kept spans (at most half a kept span),
                         // blended with linear ramps
  int64_t batch = 1;     // tiles per network call
  // Instance-norm networks normalise each tile with its own statistics, which gives each tile
  // its own colour cast.  When > 0 and the image needs several tiles, the whole image is first
  // stylized as a thumbnail whose longer side is this many pixels, and every tile's
  // low-frequency colour is pulled to the thumbnail's (its detail is kept): tiles then agree
  // with each other and with the whole image.  0 turns it off.
  int64_t harmonize = 512;
  StatisticsMode statistics = StatisticsMode::automatic;
  // Longer side of the thumbnail whose statistics the thumbnail mode uses and the exact mode
  // starts from.  1024: README, tiling quality.
  int64_t statistics_size = 1024;
  // Border tiles' windows moved inside the image (a stride-multiple shift) instead of reading it
  // reflected: the network then pads at the image border exactly as a whole-image run does.
  // Set by the statistics modes, whose tiled output is meant to equal the whole-image one.
  bool windows_inside = false;
  // `tile` bounds each tile's kept span rather than its window (the window is the kept span and a
  // halo on each side): an image longer than `tile` is tiled however wide the halo.  Used where the
  // halo is large against the tile (the Gatys tile graph: twice the network's reach).
  bool tile_is_kept = false;
  // Threads of the pixel stages (cutting windows, decoding, blending and finishing rows): memory-
  // bound loops that took ~12% of a 1080p OpenVINO bf16 run on one thread.  0: all hardware
  // threads.  The engine sets it to the session's thread count.
  int pixel_threads = 0;
  // When > 0, `tile` is not used: windows may be of any shape whose area is at most this many
  // pixels, and the planner takes the shape that computes the fewest pixels in all (halos and
  // overlaps included).  For a provider whose working memory follows the window's area (OpenVINO
  // called directly): a 3840x2160 frame runs as two 1952 px wide windows of full height rather than
  // six squares, in the same memory.  Not combined with tile_is_kept or a fixed-size model's input.
  int64_t tile_area = 0;
  // With tile_area: an image whose (stride-padded) area is at most this many pixels runs as one
  // window however large against tile_area (0: none beyond tile_area).  OpenVINO called directly
  // sets it from the memory a whole run may take (engine/execution_providers.h, openvino_whole_area).
  int64_t whole_area = 0;
};

// Throws std::invalid_argument naming the option when a value is out of its range.
void check_tile_options(const TileOptions& options);

struct TilingSummary {
  AxisPlan rows, cols;
  int64_t tiles() const { return rows.count() * cols.count(); }
};

// Plans the tiles of an image of `height` x `width` for a model of this geometry.
TilingSummary plan_tiles(const TilingGeometry& model, int64_t height, int64_t width, const TileOptions& options);

// Plans one axis.  `tile` is the wanted window (network input) length (the kept span's, with
// `tile_is_kept`), <= 0 for the whole image in one window; `halo` and `min_overlap` are in pixels; all are rounded to `stride`.
// An image that fits in one window gets exactly one tile without halo, padded (reflected) up to
// the stride multiple and to at least `min_window` pixels, since networks that reflection-pad
// inside cannot take inputs smaller than their padding.
AxisPlan plan_axis(int64_t length, int64_t tile, int64_t halo, int64_t min_overlap, int64_t stride,
                   int64_t min_window = 0, bool tile_is_kept = false);

// Index of pixel `i` (possibly outside [0, length)) in the reflected image: ... 2 1 | 0 1 2 ... n-1 | n-2 ...
inline int64_t reflect_index(int64_t i, int64_t length) {
  if (length == 1) return 0;
  const int64_t period = 2 * (length - 1);
  i %= period;
  if (i < 0) i += period;
  return i < length ? i : period - i;
}

}  // namespace deepshop
