#include "engine/gatys_tiles.h"

#include <algorithm>
#include <stdexcept>

#include "engine/errors.h"
#include "kernels/gram.h"

namespace deepshop {
namespace {

// A tile's region of the image along one axis: its window clipped to the image, so that the graph
// sees only the image (no reflected border), as a whole-image run does; a border tile's region is
// shorter by the halo it would have read outside.
std::pair<int64_t, int64_t> axis_region(const AxisPlan& axis, int64_t i) {
  const int64_t start = std::max<int64_t>(0, axis.window_start(i));
  return {start, std::min(axis.length, axis.window_start(i) + axis.window)};
}

// rows [r0, r1) x cols [c0, c1) of every channel of a C x H x W (per channel) block, contiguous.
std::vector<float> crop(const float* data, int64_t channels, int64_t height, int64_t width, int64_t r0, int64_t r1,
                        int64_t c0, int64_t c1) {
  std::vector<float> out(static_cast<size_t>(channels * (r1 - r0) * (c1 - c0)));
  float* d = out.data();
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t y = r0; y < r1; ++y, d += c1 - c0)
      std::copy(data + (c * height + y) * width + c0, data + (c * height + y) * width + c1, d);
  return out;
}

void check_image(const TensorView& x, int64_t multiple, const char* what) {
  if (x.shape.size() != 4 || x.shape[0] != 1 || x.shape[1] != 3)
    throw std::invalid_argument(std::string(what) + " must be 1 x 3 x H x W, got " + shape_string(x.shape));
  if (x.shape[2] < multiple || x.shape[3] < multiple || x.shape[2] % multiple || x.shape[3] % multiple)
    throw std::invalid_argument(std::string(what) + " size " + std::to_string(x.shape[3]) + "x" +
                                std::to_string(x.shape[2]) + " is not a positive multiple of " + std::to_string(multiple));
}

void tick(const ProgressFn& progress, int64_t done, int64_t total) {
  if (progress && !progress(done, total)) throw Cancelled("cancelled by the progress callback");
}

}  // namespace

GatysTiles::GatysTiles(const InferenceSession& session, GatysTileGraph graph) : session_(session), graph_(std::move(graph)) {
  for (const auto* layers : {&graph_.content, &graph_.style})
    for (const GatysLayer& l : *layers)
      if (l.channels < 1 || l.stride < 1 || graph_.stride_multiple % l.stride)
        throw ModelError(session.model().path + ": Gatys tile graph layer '" + l.name + "' has channels " +
                         std::to_string(l.channels) + " and stride " + std::to_string(l.stride) +
                         ", which do not fit the stride multiple " + std::to_string(graph_.stride_multiple));
}

TilingSummary GatysTiles::plan(int64_t height, int64_t width, int64_t tile) const {
  TilingGeometry geometry = session_.model().geometry();
  geometry.stride = graph_.stride_multiple;
  TileOptions o;
  o.tile = tile;
  o.tile_is_kept = true;
  o.halo = graph_.halo;
  o.overlap = 0;
  o.harmonize = 0;
  return plan_tiles(geometry, height, width, o);
}

Tensors GatysTiles::run_tile(const TilingSummary& p, int64_t ty, int64_t tx, const TensorView& x,
                             const std::vector<TensorView>* content_targets, const std::vector<float>& scales,
                             const std::vector<std::vector<float>>& style_gradients,
                             const std::vector<std::string>& wanted) const {
  const int64_t H = x.shape[2], W = x.shape[3];
  const auto [ry0, ry1] = axis_region(p.rows, ty);
  const auto [rx0, rx1] = axis_region(p.cols, tx);
  std::vector<std::vector<float>> keep;
  keep.reserve(1 + graph_.content.size());
  TensorViews feeds;
  keep.push_back(crop(x.data, 3, H, W, ry0, ry1, rx0, rx1));
  feeds["image"] = TensorView{keep.back().data(), {1, 3, ry1 - ry0, rx1 - rx0}};
  for (size_t i = 0; i < graph_.content.size(); ++i) {
    const GatysLayer& l = graph_.content[i];
    const int64_t s = l.stride, h = (ry1 - ry0) / s, w = (rx1 - rx0) / s;
    if (content_targets)
      keep.push_back(crop((*content_targets)[i].data, l.channels, H / s, W / s, ry0 / s, ry1 / s, rx0 / s, rx1 / s));
    else
      keep.emplace_back(static_cast<size_t>(l.channels * h * w), 0.f);
    feeds["content_target_" + l.name] = TensorView{keep.back().data(), {1, l.channels, h, w}};
  }
  feeds["content_scales"] = TensorView{scales.data(), {static_cast<int64_t>(scales.size())}};
  for (size_t i = 0; i < graph_.style.size(); ++i)
    feeds["style_gradient_" + graph_.style[i].name] =
        TensorView{style_gradients[i].data(), {graph_.style[i].channels, graph_.style[i].channels}};
  return session_.run(feeds, wanted);
}

GatysTiles::Features GatysTiles::features_pass(const TilingSummary& p, const TensorView& x,
                                               const std::vector<TensorView>* content_targets,
                                               std::vector<Tensor>* stitched, const ProgressFn& progress,
                                               int64_t total) const {
  const int64_t H = x.shape[2], W = x.shape[3];
  Features sums;
  sums.squares.assign(graph_.content.size(), 0.0);
  const std::vector<float> zero_scales(graph_.content.size(), 0.f);
  std::vector<std::vector<float>> zero_gradients;
  for (const GatysLayer& l : graph_.style) {
    sums.grams.emplace_back(static_cast<size_t>(l.channels * l.channels), 0.0);
    zero_gradients.emplace_back(static_cast<size_t>(l.channels * l.channels), 0.f);
  }
  std::vector<std::string> wanted;
  for (const auto* layers : {&graph_.content, &graph_.style})
    for (const GatysLayer& l : *layers)
      if (std::find(wanted.begin(), wanted.end(), "features_" + l.name) == wanted.end())
        wanted.push_back("features_" + l.name);
  for (int64_t ty = 0; ty < p.rows.count(); ++ty)
    for (int64_t tx = 0; tx < p.cols.count(); ++tx) {
      const Tensors out = run_tile(p, ty, tx, x, content_targets, zero_scales, zero_gradients, wanted);
      const int64_t ry0 = axis_region(p.rows, ty).first, rx0 = axis_region(p.cols, tx).first;
      const auto [oy0, oy1] = p.rows.owned(ty);
      const auto [ox0, ox1] = p.cols.owned(tx);
      for (size_t i = 0; i < graph_.style.size(); ++i) {
        const GatysLayer& l = graph_.style[i];
        const Tensor& f = out.at("features_" + l.name);
        const int64_t fh = f.shape[2], fw = f.shape[3], s = l.stride;
        kernels::FeatureView v;
        v.data = f.data.data() + ((oy0 - ry0) / s) * fw + (ox0 - rx0) / s;
        v.channels = l.channels;
        v.height = (oy1 - oy0) / s;
        v.width = (ox1 - ox0) / s;
        v.stride_c = fh * fw;
        v.stride_h = fw;
        v.stride_w = 1;
        kernels::gram_accumulate(v, nullptr, sums.grams[i].data(), session_.threads());
      }
      for (size_t i = 0; i < graph_.content.size(); ++i) {
        const GatysLayer& l = graph_.content[i];
        const Tensor& f = out.at("features_" + l.name);
        const int64_t fh = f.shape[2], fw = f.shape[3], s = l.stride, th = H / s, tw = W / s;
        double sum = 0;
        for (int64_t c = 0; c < l.channels; ++c)
          for (int64_t y = oy0 / s; y < oy1 / s; ++y) {
            const float* row = f.data.data() + (c * fh + y - ry0 / s) * fw - rx0 / s;
            if (stitched) {
              std::copy(row + ox0 / s, row + ox1 / s, (*stitched)[i].data.begin() + (c * th + y) * tw + ox0 / s);
              continue;
            }
            const float* target = (*content_targets)[i].data + (c * th + y) * tw;
            for (int64_t xx = ox0 / s; xx < ox1 / s; ++xx) {
              const double d = static_cast<double>(row[xx]) - target[xx];
              sum += d * d;
            }
          }
        sums.squares[i] += sum;
      }
      tick(progress, ty * p.cols.count() + tx + 1, total);
    }
  for (size_t i = 0; i < graph_.style.size(); ++i) kernels::symmetrize_lower(sums.grams[i].data(), graph_.style[i].channels);
  return sums;
}

std::array<int64_t, 4> GatysTiles::region(const TilingSummary& plan, int64_t ty, int64_t tx) {
  const auto [y0, y1] = axis_region(plan.rows, ty);
  const auto [x0, x1] = axis_region(plan.cols, tx);
  return {y0, y1, x0, x1};
}

GatysTargets GatysTiles::targets(const TensorView& image, int64_t tile, const ProgressFn& progress) const {
  check_image(image, graph_.stride_multiple, "image");
  const int64_t H = image.shape[2], W = image.shape[3];
  const TilingSummary p = plan(H, W, tile);
  GatysTargets t;
  for (const GatysLayer& l : graph_.content)
    t.content.push_back(Tensor{{1, l.channels, H / l.stride, W / l.stride},
                               std::vector<float>(static_cast<size_t>(l.channels * (H / l.stride) * (W / l.stride)))});
  const Features sums = features_pass(p, image, nullptr, &t.content, progress, p.tiles());
  for (size_t i = 0; i < graph_.style.size(); ++i) {
    const GatysLayer& l = graph_.style[i];
    const double n = static_cast<double>(l.channels) * static_cast<double>((H / l.stride) * (W / l.stride));
    Tensor g{{l.channels, l.channels}, std::vector<float>(sums.grams[i].size())};
    for (size_t k = 0; k < g.data.size(); ++k) g.data[k] = static_cast<float>(sums.grams[i][k] / n);
    t.grams.push_back(std::move(g));
  }
  return t;
}

GatysEvaluation GatysTiles::evaluate(const TensorView& x, const std::vector<TensorView>& content_targets,
                                     const std::vector<TensorView>& style_targets,
                                     const std::vector<double>& content_weights, const std::vector<double>& style_weights,
                                     double tv_weight, int64_t tile, const ProgressFn& progress) const {
  check_image(x, graph_.stride_multiple, "x");
  const int64_t H = x.shape[2], W = x.shape[3];
  if (content_targets.size() != graph_.content.size() || style_targets.size() != graph_.style.size() ||
      content_weights.size() != graph_.content.size() || style_weights.size() != graph_.style.size())
    throw std::invalid_argument("Gatys tiles: one target and one weight per layer expected");
  for (size_t i = 0; i < graph_.content.size(); ++i) {
    const GatysLayer& l = graph_.content[i];
    if (content_targets[i].shape != std::vector<int64_t>{1, l.channels, H / l.stride, W / l.stride})
      throw std::invalid_argument("content target of " + l.name + " has shape " + shape_string(content_targets[i].shape));
  }
  for (size_t i = 0; i < graph_.style.size(); ++i)
    if (style_targets[i].shape != std::vector<int64_t>{graph_.style[i].channels, graph_.style[i].channels})
      throw std::invalid_argument("style target of " + graph_.style[i].name + " has shape " +
                                  shape_string(style_targets[i].shape));
  const TilingSummary p = plan(H, W, tile);
  const int64_t total = 2 * p.tiles();
  const Features sums = features_pass(p, x, &content_targets, nullptr, progress, total);

  // The loss terms, and the factors pass (b) gives the tiles.
  GatysEvaluation e;
  std::vector<float> scales(graph_.content.size());
  for (size_t i = 0; i < graph_.content.size(); ++i) {
    const GatysLayer& l = graph_.content[i];
    const double n = static_cast<double>(l.channels) * static_cast<double>((H / l.stride) * (W / l.stride));
    e.content_losses.push_back(sums.squares[i] / n);
    scales[i] = static_cast<float>(2.0 * content_weights[i] / n);
  }
  std::vector<std::vector<float>> style_gradients;
  for (size_t i = 0; i < graph_.style.size(); ++i) {
    const GatysLayer& l = graph_.style[i];
    const int64_t C = l.channels;
    const double positions = static_cast<double>((H / l.stride) * (W / l.stride));
    std::vector<double> error(static_cast<size_t>(C * C));
    double sum = 0;
    for (int64_t k = 0; k < C * C; ++k) {
      error[k] = sums.grams[i][k] / (static_cast<double>(C) * positions) - style_targets[i].data[k];
      sum += error[k] * error[k];
    }
    e.style_losses.push_back(sum / static_cast<double>(C * C));
    std::vector<float> g(static_cast<size_t>(C * C));
    const double factor = 2.0 * style_weights[i] / (static_cast<double>(C) * C * C * positions);
    for (int64_t a = 0; a < C; ++a)
      for (int64_t b = 0; b < C; ++b) g[a * C + b] = static_cast<float>(factor * (error[a * C + b] + error[b * C + a]));
    style_gradients.push_back(std::move(g));
  }

  // Pass (b): every tile's gradient, cropped to its owned span and stitched.
  e.gradient = Tensor{{1, 3, H, W}, std::vector<float>(static_cast<size_t>(3 * H * W), 0.f)};
  for (int64_t ty = 0; ty < p.rows.count(); ++ty)
    for (int64_t tx = 0; tx < p.cols.count(); ++tx) {
      const Tensor g = std::move(run_tile(p, ty, tx, x, &content_targets, scales, style_gradients, {"gradient"}).at("gradient"));
      const auto [ry0, ry1] = axis_region(p.rows, ty);
      const auto [rx0, rx1] = axis_region(p.cols, tx);
      const auto [oy0, oy1] = p.rows.owned(ty);
      const auto [ox0, ox1] = p.cols.owned(tx);
      const int64_t gh = ry1 - ry0, gw = rx1 - rx0;
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = oy0; y < oy1; ++y) {
          const float* row = g.data.data() + (c * gh + y - ry0) * gw - rx0;
          std::copy(row + ox0, row + ox1, e.gradient.data.begin() + (c * H + y) * W + ox0);
        }
      tick(progress, p.tiles() + ty * p.cols.count() + tx + 1, total);
    }
  e.tv = total_variation(x.data, H, W, e.gradient.data.data(), tv_weight);
  e.loss = tv_weight * e.tv;
  for (size_t i = 0; i < graph_.content.size(); ++i) e.loss += content_weights[i] * e.content_losses[i];
  for (size_t i = 0; i < graph_.style.size(); ++i) e.loss += style_weights[i] * e.style_losses[i];
  return e;
}

double total_variation(const float* x, int64_t height, int64_t width, float* gradient, double weight) {
  double tv = 0;
  for (int64_t c = 0; c < 3; ++c) {
    const float* p = x + c * height * width;
    float* g = gradient + c * height * width;
    for (int64_t y = 0; y < height; ++y)
      for (int64_t xx = 0; xx < width; ++xx) {
        const int64_t i = y * width + xx;
        if (xx + 1 < width) {
          const double d = static_cast<double>(p[i + 1]) - p[i];
          tv += 0.5 * d * d;
          g[i + 1] += static_cast<float>(weight * d);
          g[i] -= static_cast<float>(weight * d);
        }
        if (y + 1 < height) {
          const double d = static_cast<double>(p[i + width]) - p[i];
          tv += 0.5 * d * d;
          g[i + width] += static_cast<float>(weight * d);
          g[i] -= static_cast<float>(weight * d);
        }
      }
  }
  return tv;
}

}  // namespace deepshop
