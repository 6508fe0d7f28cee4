// Bindings of the engine's family-specific runs: a style encoder's Gram matrix over windows
// (MSG-Net), the Gatys loss and gradient over tiles, and the luminance transfer.  Conversions
// only; the engine decides.
#include <pybind11/stl.h>

#include "bindings/bindings.h"
#include "bindings/session.h"
#include "engine/colour_transfer.h"
#include "engine/gatys_tiles.h"
#include "engine/style_gram.h"

namespace deepshop::bindings {
namespace {

ImageView<const float> rgb_view(const FloatArray& a, const char* what) {
  if (!a || a.ndim() != 3 || a.shape(2) != 3)
    throw std::invalid_argument(std::string(what) + " must be an H x W x 3 float array");
  return ImageView<const float>{a.data(), a.shape(0), a.shape(1), 3};
}

std::vector<GatysLayer> gatys_layers(const std::vector<std::tuple<std::string, int64_t, int64_t>>& layers) {
  std::vector<GatysLayer> out;
  for (const auto& [name, channels, stride] : layers) out.push_back(GatysLayer{name, channels, stride});
  return out;
}

std::vector<TensorView> views(const std::vector<FloatArray>& arrays) {
  std::vector<TensorView> out;
  for (const FloatArray& a : arrays) out.push_back(view_of(a));
  return out;
}

py::list arrays(std::vector<Tensor>&& tensors) {
  py::list l;
  for (Tensor& t : tensors) l.append(to_numpy(std::move(t)));
  return l;
}

}  // namespace

void bind_pipelines(py::module_& m) {
  m.def("style_gram", [](const Session& encoder, const FloatArray& style, int64_t window, bool exact,
                         const std::optional<py::function>& progress) {
        const ImageView<const float> view = rgb_view(style, "style");
        StyleGram g;
        run_with_progress(progress, [&](const ProgressFn& on_progress) {
          g = style_gram(encoder.session(), view, window, exact, encoder.session().threads(), on_progress);
        });
        return to_numpy(Tensor{{g.channels, g.channels}, std::move(g.gram)});
      }, py::kw_only(), py::arg("encoder"), py::arg("style"), py::arg("window") = 0, py::arg("exact") = false,
      py::arg("progress") = py::none(),
      "The Gram matrix F F' / (C h w) of a style encoder's features of an H x W x 3 float image in [0, 1], "
      "window by window when it is larger than `window` (engine/style_gram.h).");
  m.def("style_window_halo", [](const Session& encoder) { return style_window_halo(encoder.model()); },
        py::arg("encoder"), "The halo of a style encoder's windows (its receptive-field radius on the stride grid).");
  m.def("transfer_luminance", [](const FloatArray& luminance_of, const FloatArray& colour_of) {
        const ImageView<const float> l = rgb_view(luminance_of, "luminance_of"), c = rgb_view(colour_of, "colour_of");
        if (l.height != c.height || l.width != c.width) throw std::invalid_argument("images must have the same size");
        py::array_t<float> out({l.height, l.width, int64_t(3)});
        transfer_luminance(l.data, c.data, out.mutable_data(), l.height * l.width);
        return out;
      }, py::arg("luminance_of"), py::arg("colour_of"),
      "The colour of `colour_of` with the BT.601 luma of `luminance_of` (H x W x 3 floats, any scale).");

  py::class_<GatysTiles>(m, "GatysTiles", "Gatys loss and gradient over the tiles of a tile graph (engine/gatys_tiles.h).")
      .def(py::init([](const Session& session, const std::vector<std::tuple<std::string, int64_t, int64_t>>& content,
                       const std::vector<std::tuple<std::string, int64_t, int64_t>>& style, int64_t halo,
                       int64_t stride_multiple) {
             return std::make_unique<GatysTiles>(session.session(),
                                                 GatysTileGraph{gatys_layers(content), gatys_layers(style), halo, stride_multiple});
           }), py::kw_only(), py::arg("session"), py::arg("content"), py::arg("style"), py::arg("halo"),
           py::arg("stride_multiple"), py::keep_alive<1, 2>())
      .def("plan", [](const GatysTiles& g, int64_t height, int64_t width, int64_t tile) {
             const TilingSummary p = g.plan(height, width, tile);
             py::list tiles;
             for (int64_t ty = 0; ty < p.rows.count(); ++ty)
               for (int64_t tx = 0; tx < p.cols.count(); ++tx) {
                 const auto [y0, y1] = p.rows.owned(ty);
                 const auto [x0, x1] = p.cols.owned(tx);
                 const auto r = GatysTiles::region(p, ty, tx);
                 tiles.append(py::make_tuple(py::make_tuple(r[0], r[1], r[2], r[3]), py::make_tuple(y0, y1, x0, x1)));
               }
             return tiles;
           }, py::arg("height"), py::arg("width"), py::arg("tile"),
           "Every tile as ((y0, y1, x0, x1) region run, (y0, y1, x0, x1) owned span), in raster order.")
      .def("targets", [](const GatysTiles& g, const FloatArray& image, int64_t tile,
                         const std::optional<py::function>& progress) {
             GatysTargets t;
             run_with_progress(progress, [&](const ProgressFn& on_progress) { t = g.targets(view_of(image), tile, on_progress); });
             return py::make_tuple(arrays(std::move(t.content)), arrays(std::move(t.grams)));
           }, py::arg("image"), py::arg("tile"), py::arg("progress") = py::none())
      .def("evaluate", [](const GatysTiles& g, const FloatArray& x, const std::vector<FloatArray>& content_targets,
                          const std::vector<FloatArray>& style_targets, const std::vector<double>& content_weights,
                          const std::vector<double>& style_weights, double tv_weight, int64_t tile,
                          const std::optional<py::function>& progress) {
             GatysEvaluation e;
             const auto content = views(content_targets), style = views(style_targets);
             run_with_progress(progress, [&](const ProgressFn& on_progress) {
               e = g.evaluate(view_of(x), content, style, content_weights, style_weights, tv_weight, tile, on_progress);
             });
             py::dict d;
             d["loss"] = e.loss;
             d["tv_loss"] = e.tv;
             d["content_losses"] = e.content_losses;
             d["style_losses"] = e.style_losses;
             d["gradient"] = to_numpy(std::move(e.gradient));
             return d;
           }, py::arg("x"), py::arg("content_targets"), py::arg("style_targets"), py::arg("content_weights"),
           py::arg("style_weights"), py::arg("tv_weight"), py::arg("tile"), py::arg("progress") = py::none());
}

}  // namespace deepshop::bindings
