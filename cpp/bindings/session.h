#pragma once
// The Python face of an InferenceSession (`_native.Session`, and `_native.Engine` for the image
// path), shared by the binding files.  Conversions only: every decision is the engine's.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bindings/conversions.h"
#include "engine/inference_session.h"
#include "engine/tile_plan.h"
#include "engine/tile_stages.h"

namespace deepshop::bindings {

class Session {
 public:
  Session(const std::string& model_path, const SessionConfig& config);
  const InferenceSession& session() const { return *session_; }
  const ModelInfo& model() const { return session_->model(); }

  // How an image of this size runs: tiles, statistics mode and passes, harmonize.
  py::dict plan(int64_t height, int64_t width, const TileOptions& requested) const;
  // One whole run on named arrays.
  py::dict run(const py::dict& inputs, std::optional<std::vector<std::string>> outputs) const;
  // A tiled run on named pixel inputs and aux arrays (engine/model_runner.h).
  py::dict run_tiled(const py::dict& spatial, const py::dict& aux, const TileOptions& requested,
                     const py::dict& palettes, std::optional<std::vector<std::string>> outputs,
                     const std::optional<py::function>& progress, const py::dict& temperatures) const;
  // The image path (engine/image_runner.h): an H x W x 3 image of T in, the same out.
  template <typename T>
  py::array_t<T> run_image(py::array_t<T, py::array::c_style> image, const TileOptions& requested,
                           const PostOptions& post, const py::dict& aux, const std::optional<py::function>& progress,
                           const std::optional<std::pair<FloatArray, FloatArray>>& statistics) const;
  // The statistics a global-statistics graph normalises the image with (engine/image_runner.h).
  template <typename T>
  py::tuple image_statistics(py::array_t<T, py::array::c_style> image, const TileOptions& requested,
                             const std::string& mode, const py::dict& aux) const;

  // The engine's pixel stages run on as many threads as the user gave the session.
  TileOptions with_session_threads(TileOptions tiles) const {
    tiles.pixel_threads = session_->threads();
    return tiles;
  }

 private:
  std::unique_ptr<InferenceSession> session_;
};

}  // namespace deepshop::bindings
