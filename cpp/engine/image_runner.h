#pragma once
// The image path: one pixel image in, one stylized image of the same size out.  A use of the
// tiled runner with an ImageSource, an ImageSink and the session as its network, plus the
// statistics modes of global-statistics graphs and harmonize for instance-norm models cut into
// several tiles.  The caller's aux inputs (a style's Gram matrix, style vector or style weights)
// go whole to every run: the measuring passes, the harmonize thumbnail and the tiles.
#include "engine/inference_session.h"
#include "engine/statistics_mode.h"
#include "engine/tile_stages.h"

namespace deepshop {

// Checks that the model has one 3-channel image input and one 3-channel image output, and no
// tile_mask input other than a statistics graph's; ModelError naming the model otherwise.
void check_image_model(const ModelInfo& model);

// Checks the caller's aux inputs against the model's: every aux input the engine does not supply
// itself (a statistics graph's are the engine's) must be given, and only those.
// std::invalid_argument naming the input otherwise.
void check_aux_inputs(const ModelInfo& model, const TensorViews& aux);

// What a run of an image of this size does: its tiles, the statistics mode and the tiled passes
// it runs, and whether the tiles are harmonized.  run_image follows it.
struct RunPlan {
  TileOptions options;  // the options the run uses (statistics modes set their own halo, windows)
  TilingSummary tiles;
  StatisticsMode statistics = StatisticsMode::off;
  int64_t passes = 1;
  bool harmonize = false;
};
RunPlan plan_run(const ModelInfo& model, int64_t height, int64_t width, const TileOptions& requested);

// The size (height, width) the network runs at for an image of this size and a working size
// (PostOptions::working_size; 0: the image's own).
std::pair<int64_t, int64_t> working_shape(int64_t height, int64_t width, int64_t working_size);

// The session's own window size (tile="auto"): the provider's, for a plain or a statistics graph.
int64_t default_tile(const InferenceSession& session);
// The window area tile="auto" bounds windows by (TileOptions::tile_area) on this session's
// provider: OpenVINO called directly, whose working memory follows a window's pixel count, takes
// windows of any shape within the square window's area; 0 elsewhere (square windows).
int64_t default_tile_area(const InferenceSession& session);
// The largest image (pixels) tile="auto" runs as one window on this session's provider
// (openvino_whole_area on OpenVINO called directly; 0 elsewhere: the window bounds every image).
int64_t whole_area(const InferenceSession& session);

// `input` and `output`: H x W x 3 images of the same size.  With a working size smaller than the
// image, the network runs on the downscaled image and the result is guided-upsampled (PostOptions).
// `statistics`: for a global-statistics graph, statistics to normalise every tile with instead of
// measuring the image's (mix 1, whatever the number of tiles): a video's shot statistics, so that
// every frame of a shot is normalised alike.  Null: the statistics mode decides.
template <typename T>
void run_image(const InferenceSession& session, ImageView<const T> input, ImageView<T> output,
               const TileOptions& tiles, const PostOptions& post, const TensorViews& aux, const ProgressFn& progress,
               const PackedStatistics* statistics = nullptr);

// The statistics a global-statistics graph would normalise `input` with in `mode` (thumbnail or
// exact: measured as run_image measures them).  ModelError naming the model for any other graph.
template <typename T>
PackedStatistics image_statistics(const InferenceSession& session, ImageView<const T> input, const TileOptions& tiles,
                                  StatisticsMode mode, const TensorViews& aux, const ProgressFn& progress);

}  // namespace deepshop
