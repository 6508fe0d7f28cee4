#pragma once
// The channel-generic tiled runner: spatial inputs in -> tiles -> network -> blended outputs.
//
// Spatial inputs are cut into windows (image borders reflected) by their TileSource; `aux`
// inputs are passed whole to every call; the network is a callback, so this file knows nothing
// of ONNX Runtime.  Each spatial output's tiles are turned by its TileSink into an interleaved
// kept span, blended into an accumulator that holds one band of tile rows only, and handed back
// to the sink row by row as soon as no later tile touches them (the sink's finish stage: pixel
// decode + blend, or argmax + palette).  Memory therefore grows with the tile and the image
// width, not with the image area.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "engine/tile_plan.h"

namespace deepshop {

// One tile's network window.
struct TileWindow {
  const std::vector<int64_t>& rows;  // the (reflected) image row of every window row
  const std::vector<int64_t>& cols;  // the (reflected) image column of every window column
  // The kept span inside the image, in window coordinates: [row0, row1) x [col0, col1).
  int64_t kept_row0, kept_row1, kept_col0, kept_col1;
};

// Fills one window of a spatial input with network values.
class TileSource {
 public:
  virtual ~TileSource() = default;
  virtual int64_t channels() const = 0;
  // `dst` holds channels() planes of rows x cols values, `plane` apart.  The runner may cut one
  // window in several row ranges at once, from several threads.
  virtual void cut(const TileWindow& window, float* dst, size_t plane) const = 0;
};

// The finish stage of one spatial output.
class TileSink {
 public:
  virtual ~TileSink() = default;
  virtual int64_t channels() const = 0;  // network output channels, and accumulator channels per pixel
  // Converts a tile's kept span (`out`: top-left value of channel 0; channels `plane` apart,
  // rows `row_stride` apart) into `kept`, kh x kw x channels() interleaved.  (y0, x0) is the
  // span's place in the image.  Throws ModelError when the network gave NaN or infinity.  The
  // runner may call it on several row ranges of one tile at once, from several threads.
  virtual void take_tile(const float* out, size_t plane, int64_t row_stride, int64_t kh, int64_t kw, int64_t y0,
                         int64_t x0, float* kept) = 0;
  // Work on a whole tile's kept span once take_tile has converted all of it (harmonize: it
  // measures the tile's colour over areas that cross row ranges).
  virtual void finish_tile(float* /*kept*/, int64_t /*kh*/, int64_t /*kw*/, int64_t /*y0*/, int64_t /*x0*/) {}
  // Image rows [y_from, y_to) are complete: `acc` holds them, width x channels() each.  May be
  // called on several row ranges at once, from several threads.
  virtual void finish_rows(const float* acc, int64_t y_from, int64_t y_to) = 0;
};

struct TiledCall {
  std::vector<std::pair<std::string, const TileSource*>> spatial_inputs;
  TensorViews aux_inputs;                                         // passed whole to every call
  std::vector<std::pair<std::string, TileSink*>> spatial_outputs;  // blended
  std::vector<std::string> whole_outputs;                          // collected per call
  // A `tile_mask` input ("" for none), made here from the tile plan: N x 1 x window, each tile's
  // blend weights on its kept span and 0 on its halo (and on a filled-up batch's extra tiles).
  // The weights of all tiles sum to one at every image pixel, so quantities a network measures
  // under its mask add up over the tiles to the whole image's.
  std::string tile_mask_input;
};

// Runs the network on named inputs, returning the named outputs.
using NetworkFn = std::function<Tensors(const TensorViews& inputs, const std::vector<std::string>& outputs)>;
// Called after each batch with (tiles done, tiles in all); returning false cancels the run.
using ProgressFn = std::function<bool(int64_t, int64_t)>;

// Runs the tiles of `plan` (plan_tiles of the image with `options`).  Returns every whole
// (non-spatial) output, one tensor per network call, in raster order of the tiles.  Throws
// Cancelled when `progress` says so.
std::map<std::string, std::vector<Tensor>> run_tiled(const NetworkFn& network, const TilingGeometry& model,
                                                     const TilingSummary& plan, const TileOptions& options,
                                                     const TiledCall& call, const ProgressFn& progress);
// The same for an image of `height` x `width`, planned here.
std::map<std::string, std::vector<Tensor>> run_tiled(const NetworkFn& network, const TilingGeometry& model,
                                                     int64_t height, int64_t width, const TileOptions& options,
                                                     const TiledCall& call, const ProgressFn& progress);

}  // namespace deepshop
