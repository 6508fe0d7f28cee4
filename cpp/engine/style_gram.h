#pragma once
// The style statistics of an encoder (MSG-Net's): the Gram matrix G = F F^T / (C h w) of its
// features of a style image, which the generator then takes as an aux input.
//
// An image larger than `window` pixels a side goes through the encoder window by window (the one
// tile planner: windows inside the image, a halo of the encoder's receptive-field radius on the
// stride grid, no blending), and the Gram is summed over each tile's owned span on the feature
// grid (AxisPlan::owned), so that no window needs the activations of the whole image.  Instance
// norm inside the encoder then sees each window's statistics, unless `exact`: an encoder exported
// as a global-statistics graph is first measured over the windows, layer by layer (the exact mode
// of statistics_mode.h), and every window is normalised with the whole image's statistics, which
// makes the Gram the whole image's.
#include <cstdint>
#include <vector>

#include "engine/inference_session.h"
#include "engine/pixel_codec.h"
#include "engine/tiled_runner.h"

namespace deepshop {

struct StyleGram {
  int64_t channels = 0;
  std::vector<float> gram;  // channels x channels
};

// The halo of the encoder's windows: its receptive-field radius, rounded up to the stride.
int64_t style_window_halo(const ModelInfo& encoder);

// `style`: H x W x 3 float pixels in [0, 1].  `window` <= 0, or an image no larger than it: one
// run of the whole image.  `exact` needs a statistics graph (ModelError naming the file
// otherwise); a statistics graph run without it normalises each window with its own statistics.
StyleGram style_gram(const InferenceSession& encoder, ImageView<const float> style, int64_t window, bool exact,
                     int pixel_threads, const ProgressFn& progress);

}  // namespace deepshop
