#pragma once
// Gatys et al.'s style-transfer loss and its gradient, evaluated tile by tile on a tile graph
// (family gatys_vgg_tiled, deepshop-export gatys --tiled), for images whose whole graph would not
// fit in memory.
//
// The style loss couples every position through the image's Gram matrices, so an evaluation is
// two passes over the tiles of the one tile planner (kept spans of at most `tile` pixels, regions
// of the kept span and the halo clipped to the image, no blending; each tile accounts for its owned
// span, AxisPlan::owned, and the owned spans partition the image):
//   (a) every tile's features: their owned positions go into the Gram matrix of each style layer
//       and into the content sums, which makes both the whole image's;
//   (b) every tile's gradient given, per style layer, S = 2 w (E + E') / (C^3 M) (E = G - A, the
//       whole image's Gram error; M its positions) and per content layer s = 2 w / (C M), cropped
//       to the owned span and stitched.
// A feature at an owned position is exact once the window reaches `reach` pixels beyond it, and
// the gradient there sums contributions from features up to `reach` away: hence the caller's
// halo of twice the reach.  Windows start on multiples of the graph's stride multiple, so every
// pooling grid is the whole image's.  The total variation term is the whole image's, here too.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/inference_session.h"
#include "engine/tile_plan.h"
#include "engine/tiled_runner.h"

namespace deepshop {

struct GatysLayer {
  std::string name;      // e.g. "relu4_2": inputs content_target_<name> / style_gradient_<name>, output features_<name>
  int64_t channels = 0;
  int64_t stride = 1;    // image pixels per feature position
};

struct GatysTileGraph {
  std::vector<GatysLayer> content, style;
  int64_t halo = 0;             // context on each side of a tile's kept span
  int64_t stride_multiple = 1;  // image sides and tile borders are multiples of it
};

struct GatysTargets {
  std::vector<Tensor> content;  // per content layer: 1 x C x H/s x W/s features
  std::vector<Tensor> grams;    // per style layer: C x C, F F' / (C M)
};

struct GatysEvaluation {
  double loss = 0, tv = 0;
  std::vector<double> content_losses, style_losses;  // unweighted
  Tensor gradient;                                   // 1 x 3 x H x W
};

class GatysTiles {
 public:
  GatysTiles(const InferenceSession& session, GatysTileGraph graph);

  // The tiles of an H x W image with kept spans of at most `tile` pixels a side.
  TilingSummary plan(int64_t height, int64_t width, int64_t tile) const;
  // Tile (ty, tx)'s region of the image, (y0, y1, x0, x1).
  static std::array<int64_t, 4> region(const TilingSummary& plan, int64_t ty, int64_t tx);
  // `image`: 1 x 3 x H x W, RGB 0..255.
  GatysTargets targets(const TensorView& image, int64_t tile, const ProgressFn& progress) const;
  // Targets in the layers' order; weights as many as layers.
  GatysEvaluation evaluate(const TensorView& x, const std::vector<TensorView>& content_targets,
                           const std::vector<TensorView>& style_targets, const std::vector<double>& content_weights,
                           const std::vector<double>& style_weights, double tv_weight, int64_t tile,
                           const ProgressFn& progress) const;

 private:
  // One tile's run: the image crop, the content targets' crops (zeros when `content_targets` is
  // null), the content scales and the style gradients; returns the `wanted` outputs.
  Tensors run_tile(const TilingSummary& plan, int64_t ty, int64_t tx, const TensorView& x,
                   const std::vector<TensorView>* content_targets, const std::vector<float>& scales,
                   const std::vector<std::vector<float>>& style_gradients, const std::vector<std::string>& wanted) const;
  // Pass (a): the Gram sums (lower triangles, unnormalised) and, given targets, the content sums of
  // squared differences; without targets, the content features stitched into `stitched`.
  struct Features {
    std::vector<std::vector<double>> grams;
    std::vector<double> squares;
  };
  Features features_pass(const TilingSummary& plan, const TensorView& x, const std::vector<TensorView>* content_targets,
                         std::vector<Tensor>* stitched, const ProgressFn& progress, int64_t total) const;

  const InferenceSession& session_;
  GatysTileGraph graph_;
};

// 0.5 * (sum of squared differences of horizontal and vertical neighbours) of a 1 x 3 x H x W
// image, and its gradient added into `gradient` times `weight`.
double total_variation(const float* x, int64_t height, int64_t width, float* gradient, double weight);

}  // namespace deepshop
