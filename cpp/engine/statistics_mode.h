#pragma once
// Global-statistics tiling: tiles of an instance-norm network normalised with the statistics of
// the whole image instead of their own, so that the tiled output is the whole-image output.
//
// A model carrying deepshop.statistics is a *statistics graph* (deepshop_export/families/
// transformer_net/statistics.py): besides the image it takes packed per-layer means and
// variances, a mix (0: each tile's own statistics, exactly the original network; 1: the given
// ones) and a tile mask, and it returns, besides the image, the statistics every instance-norm
// layer met over the mask (count, weighted mean, weighted M2).  The modes (TileOptions::statistics):
//   thumbnail  one untiled run of a box-averaged thumbnail (longer side statistics_size) with mix
//              0 measures every layer; every tile then runs with mix 1 and those statistics.
//              One cheap extra run; the statistics are the thumbnail's, not the image's.
//   exact      starts from the thumbnail's statistics; measuring pass k runs every tile with the
//              current statistics, whose layers before k are already exact, and combines the
//              tiles' measurements of layer k (Chan's parallel formula, double precision) into
//              layer k's statistics over the full image.  L measuring passes (L layers, run
//              order = packing order), then the output pass: L + 1 times the tiled run.
//   off        each tile its own statistics, harmonized as models without the graph are.
// Measuring passes only ask the network for the statistics outputs: no pixels are decoded or
// blended, and nothing of image size is held.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/model_info.h"
#include "engine/pixel_codec.h"
#include "engine/tiled_runner.h"

namespace deepshop {

// How the graph packs its statistics and names its statistics inputs and outputs.
struct StatisticsLayout {
  std::vector<int64_t> layer_channels;  // per instance-norm layer, in packing order
  int64_t total_channels = 0;           // their sum: the length of the packed vectors
  std::string mean_input, var_input, mix_input, mask_input;
  std::string count_output, mean_output, m2_output;
  int64_t layers() const { return static_cast<int64_t>(layer_channels.size()); }
};

// The model's layout; nullopt when it carries no deepshop.statistics.  ModelError naming the file
// when the record is malformed or does not match the graph's inputs and outputs.
std::optional<StatisticsLayout> statistics_layout(const ModelInfo& model);

// Packed per-channel statistics as the graph takes them (biased variances).
struct PackedStatistics {
  std::vector<float> mean, var;
};

// Adds up the measurements of many network calls (tiles) into the statistics of their union,
// with Chan et al.'s parallel formula in double precision (float32 sums of squares of
// activations in the hundreds would cancel).
class StatisticsAccumulator {
 public:
  explicit StatisticsAccumulator(const StatisticsLayout& layout);
  // One call's outputs: count N x L, mean N x C, m2 N x C.  Tiles with zero count add nothing.
  void add(const Tensor& count, const Tensor& mean, const Tensor& m2);
  // Means and variances (M2 / count) of the union; channels that met no pixel keep `fallback`'s.
  PackedStatistics result(const PackedStatistics& fallback) const;
  // Layer `layer`'s channels of `from` copied into `into`.
  void copy_layer(int64_t layer, const PackedStatistics& from, PackedStatistics& into) const;

 private:
  const StatisticsLayout& layout_;
  std::vector<int64_t> layer_of_channel_;
  std::vector<double> count_, mean_, m2_;
};

// The mode that runs for an image that `options` cut into `tiles` tiles: `off` for models without
// the graph and for images that fit in one tile (the tile's own statistics are then the image's);
// `automatic` resolved.
StatisticsMode resolve_statistics_mode(const ModelInfo& model, const TileOptions& options, int64_t tiles);
const char* statistics_mode_name(StatisticsMode mode);
// Tiled passes over the full image the mode runs, the output pass included.
int64_t statistics_passes(StatisticsMode mode, const StatisticsLayout& layout);

// The tile options the mode runs with: exact mode's default halo is the receptive field's whole
// radius (not the quarter the planner takes), since the tiles' kept spans must compute exactly
// what the whole image does there for their measurements to add up to the image's.
TileOptions statistics_tile_options(const ModelInfo& model, const TileOptions& options, StatisticsMode mode);

// The statistics inputs of one tiled run, with views into them for the network call.
struct StatisticsInputs {
  PackedStatistics stats;
  float mix = 0.f;
  // Adds the aux inputs and the tile mask to `call`; this object must outlive the run.
  void attach(const StatisticsLayout& layout, TiledCall& call) const;
};

// Runs the measuring passes of `mode` (thumbnail or exact) on `input` (H x W x C) and returns the
// statistics the output pass uses.  `aux`: the caller's aux inputs (a style's Gram or vector),
// passed to every run.  `progress` sees the measuring passes as the first
// statistics_passes(mode) - 1 of that many.
template <typename T>
PackedStatistics measure_statistics(const NetworkFn& network, const ModelInfo& model, const StatisticsLayout& layout,
                                    ImageView<const T> input, const TileOptions& options, StatisticsMode mode,
                                    const TensorViews& aux, const ProgressFn& progress);

// The statistics inputs of a tiled run in `mode`: each tile its own (mix 0: exactly the original
// network) when off, else the whole image's as measured_statistics measures them.
template <typename T>
StatisticsInputs statistics_inputs(const NetworkFn& network, const ModelInfo& model, const StatisticsLayout& layout,
                                   ImageView<const T> input, const TileOptions& options, StatisticsMode mode,
                                   const TensorViews& aux, const ProgressFn& progress);

// `progress` for pass `pass` of `passes` equal tiled passes: (done, total) of the pass becomes
// the whole run's.
ProgressFn pass_progress(const ProgressFn& progress, int64_t pass, int64_t passes);

}  // namespace deepshop
