#pragma once
// The engine's data path: image in -> tiles -> session -> blended image out.
//
// Tiles are cut straight from the caller's 8- or 16-bit or float image (no full-size float
// copy), run in batches, and blended into an accumulator that holds one band of tile rows only;
// rows are converted to the output as soon as no later tile touches them.  Memory therefore
// grows with the tile and the image width, not with the image area.
#include <cstdint>
#include <functional>

#include "engine/inference_session.h"
#include "engine/tile_plan.h"

namespace deepshop {

struct TileOptions {
  // Network window (pixels, both axes); <= 0: the whole image at once.  1536 keeps one
  // TransformerNet tile's activations near 1 GB, runs 1920x1080 in two tiles, and bounds an
  // 8192x8192 run to about 1.9 GB beyond its input and output (README: figures).
  int64_t tile = 1536;
  int64_t halo = -1;     // context around each tile; < 0: from the model's receptive field
  int64_t overlap = 64;  // least overlap of neighbouring kept spans, blended with linear ramps
  int64_t batch = 1;     // tiles per network call
  // Instance-norm networks normalise each tile with its own statistics, which gives each tile
  // its own colour cast.  When > 0 and the image needs several tiles, the whole image is first
  // stylized as a thumbnail whose longer side is this many pixels, and every tile's
  // low-frequency colour is pulled to the thumbnail's (its detail is kept): tiles then agree
  // with each other and with the whole image.  0 turns it off.
  int64_t harmonize = 512;
};

struct PostOptions {
  float strength = 1.f;          // 1: stylized only, 0: the input unchanged, linear in between
  bool preserve_colors = false;  // keep the input's chroma, take only the stylized luminance
};

// A contiguous H x W x 3 image of element type T (uint8_t, uint16_t or float in [0, 1]).
template <typename T>
struct ImageView {
  T* data = nullptr;
  int64_t height = 0, width = 0;
};

struct TilingSummary {
  AxisPlan rows, cols;
  int64_t tiles() const { return rows.count() * cols.count(); }
};

// Plans the tiles of an image of `height` x `width` for this model.
TilingSummary plan_tiles(const ModelInfo& model, int64_t height, int64_t width, const TileOptions& options);

// Called after each batch with (tiles done, tiles in all); returning false cancels the run.
using ProgressFn = std::function<bool(int64_t, int64_t)>;

template <typename T>
void run_tiled(InferenceSession& session, ImageView<const T> input, ImageView<T> output, const TileOptions& tiles,
               const PostOptions& post, const ProgressFn& progress);

}  // namespace deepshop
