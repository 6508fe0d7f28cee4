#pragma once
// The image path: one pixel image in, one stylized image of the same size out.  A use of the
// tiled runner with an ImageSource, an ImageSink and the session as its network, plus
// harmonize for instance-norm models cut into several tiles.
#include "engine/inference_session.h"
#include "engine/tile_stages.h"

namespace deepshop {

// Checks that the model has one 3-channel image input, one 3-channel image output and no aux
// inputs (which an image alone cannot supply); ModelError naming the model otherwise.
void check_image_model(const ModelInfo& model);

// `input` and `output`: H x W x 3 images of the same size.
template <typename T>
void run_image(const InferenceSession& session, ImageView<const T> input, ImageView<T> output,
               const TileOptions& tiles, const PostOptions& post, const ProgressFn& progress);

}  // namespace deepshop
