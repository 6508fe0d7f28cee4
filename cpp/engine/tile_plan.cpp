#include "engine/tile_plan.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "engine/errors.h"
#include "engine/limits.h"

namespace deepshop {
namespace {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
int64_t round_down(int64_t v, int64_t m) { return v / m * m; }

// Kept-span starts: first at 0, last where its span ends at or past the image end, the rest
// spread evenly between them on the stride grid, with no neighbour closer than min_overlap.
// Empty when `kept` is too short for that.
std::vector<int64_t> place_starts(int64_t length, int64_t kept, int64_t min_overlap, int64_t stride) {
  const int64_t last = std::max<int64_t>(round_up(length - kept, stride), 0);
  const int64_t max_step = kept - min_overlap;
  if (last == 0) return {0};
  if (max_step <= 0) return {};
  for (int64_t n = 1 + (last + max_step - 1) / max_step;; ++n) {
    std::vector<int64_t> starts(n);
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) {
      starts[i] = (i == n - 1) ? last : round_down(last * i / (n - 1), stride);
      if (i > 0 && starts[i] - starts[i - 1] > max_step) ok = false;
    }
    if (ok) return starts;
  }
}

}  // namespace

AxisPlan plan_axis(int64_t length, int64_t tile, int64_t halo, int64_t min_overlap, int64_t stride,
                   int64_t min_window, bool tile_is_kept) {
  // Bounded here too, so that no caller can reach the arithmetic below with sizes that overflow.
  check_range(length, 1, kMaxPixels, "image dimension");
  check_range(stride, 1, kMaxPixels, "stride multiple");
  check_range(tile, -1, kMaxPixels, "tile");
  check_range(halo, -1, kMaxPixels, "halo");
  check_range(min_overlap, 0, kMaxPixels, "overlap");
  check_range(min_window, 0, kMaxPixels, "minimum window");
  AxisPlan plan;
  plan.length = length;
  const int64_t whole = round_up(std::max(length, min_window), stride);
  if (tile <= 0 || whole <= round_down(tile, stride)) {
    // One window covers the image: no halo needed, only padding up to the stride multiple.
    plan.window = plan.kept = whole;
    plan.starts = {0};
    plan.weights.assign(1, std::vector<float>(whole, 0.f));
    std::fill(plan.weights[0].begin(), plan.weights[0].begin() + length, 1.f);
    return plan;
  }
  plan.halo = round_up(std::max<int64_t>(halo, 0), stride);
  plan.window = round_down(tile, stride) + (tile_is_kept ? 2 * plan.halo : 0);
  min_overlap = round_up(std::max<int64_t>(min_overlap, 0), stride);
  plan.kept = plan.window - 2 * plan.halo;
  if (plan.kept < min_overlap + stride || plan.kept < 2 * stride) {
    throw std::invalid_argument("tile size " + std::to_string(tile) + " is too small for a halo of " +
                                std::to_string(plan.halo) + " and an overlap of " + std::to_string(min_overlap) +
                                " pixels: use a tile of at least " +
                                std::to_string(2 * plan.halo + std::max(min_overlap + stride, 2 * stride)));
  }
  // An overlap of more than half the kept span computes every pixel more than twice without
  // blending any better: with small tiles (128 px, a 28 px halo: 72 px kept) the default 64 px
  // stepped tiles 8 px apart, hundreds of them for a 256 px image.  So the overlap is capped.
  min_overlap = std::min(min_overlap, round_down(plan.kept / 2, stride));
  // The fewest tiles that cover the image at the largest window; then the window is shrunk to
  // the least that still covers it with that many tiles, so no tile computes far past the edge.
  const int64_t n_tiles = static_cast<int64_t>(place_starts(length, plan.kept, min_overlap, stride).size());
  for (int64_t kept = round_up((length + (n_tiles - 1) * min_overlap + n_tiles - 1) / n_tiles, stride);
       kept <= plan.kept; kept += stride) {
    auto starts = place_starts(length, kept, min_overlap, stride);
    if (static_cast<int64_t>(starts.size()) == n_tiles) {
      plan.kept = kept;
      plan.starts = std::move(starts);
      break;
    }
  }
  if (plan.starts.empty()) plan.starts = place_starts(length, plan.kept, min_overlap, stride);
  plan.window = plan.kept + 2 * plan.halo;

  // Raw weights: 1 inside, a linear ramp across each overlap with a neighbour (the ramp spans
  // the whole overlap, so wide overlaps blend gently).  Sampled at pixel centres, so no weight
  // is exactly zero inside a ramp.
  const int64_t n = plan.count();
  std::vector<std::vector<float>> raw(n, std::vector<float>(plan.kept, 1.f));
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0) {
      const int64_t overlap = plan.starts[i - 1] + plan.kept - plan.starts[i];
      for (int64_t k = 0; k < overlap; ++k) raw[i][k] = std::min(raw[i][k], (k + 0.5f) / overlap);
    }
    if (i + 1 < n) {
      const int64_t overlap = plan.starts[i] + plan.kept - plan.starts[i + 1];
      for (int64_t k = 0; k < overlap; ++k) {
        float& w = raw[i][plan.kept - 1 - k];
        w = std::min(w, (k + 0.5f) / overlap);
      }
    }
  }
  // Normalise so the weights at every pixel sum to one (needed where three tiles overlap).
  std::vector<double> total(length, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < plan.kept && plan.starts[i] + k < length; ++k) total[plan.starts[i] + k] += raw[i][k];
  plan.weights.assign(n, std::vector<float>(plan.kept, 0.f));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < plan.kept && plan.starts[i] + k < length; ++k)
      plan.weights[i][k] = static_cast<float>(raw[i][k] / total[plan.starts[i] + k]);
  return plan;
}

void check_tile_options(const TileOptions& o) {
  check_range(o.tile, 0, kMaxPixels, "tile");
  check_range(o.halo, -1, kMaxPixels, "halo");
  check_range(o.overlap, 0, kMaxPixels, "overlap");
  check_range(o.batch, 1, 4096, "batch");
  check_range(o.harmonize, 0, kMaxPixels, "harmonize");
  check_range(o.statistics_size, 16, kMaxPixels, "statistics_size");
  check_range(o.tile_area, 0, kMaxPixels * kMaxPixels, "tile_area");
  check_range(o.whole_area, 0, kMaxPixels * kMaxPixels, "whole_area");
}

namespace {
int64_t default_halo(const TilingGeometry& model) {
  // The theoretical receptive field of a deep network is much wider than the region that
  // really shapes an output pixel (its effective receptive field); a quarter of it on each side
  // (half its radius) keeps tile borders out of sight at a fraction of the cost.  Measured in
  // tests/test_tiling_quality.py and the README.  Models without the figure get 32 pixels.
  if (model.receptive_field > 0) return std::max<int64_t>(model.receptive_field / 4, model.stride);
  return 32;
}

// The window length along an axis of `length` pixels that plans `n` tiles: the whole (padded)
// axis for one, else the shortest kept span that n tiles overlapping by min_overlap cover, plus
// the halos.  Only a candidate: plan_axis decides the plan it really gives.
int64_t window_for_count(int64_t length, int64_t n, int64_t halo, int64_t min_overlap, int64_t stride,
                         int64_t min_window) {
  if (n == 1) return round_up(std::max(length, min_window), stride);
  const int64_t overlap = round_up(min_overlap, stride);
  return round_up((length + (n - 1) * overlap + n - 1) / n, stride) + 2 * round_up(halo, stride);
}

// Windows of any shape within options.tile_area pixels (TileOptions::tile_area): for each count
// of tiles along one axis, that axis's window, and the other axis's longest window within the
// area; of all these plans, the one computing the fewest window pixels (then the fewest tiles).
// An image within options.whole_area runs as one window.
TilingSummary plan_by_area(int64_t height, int64_t width, int64_t halo, int64_t stride, int64_t min_window,
                           const TileOptions& options) {
  TilingSummary best;
  if (options.whole_area > 0 && window_for_count(height, 1, halo, options.overlap, stride, min_window) *
                                        window_for_count(width, 1, halo, options.overlap, stride, min_window) <=
                                    options.whole_area) {
    best.rows = plan_axis(height, 0, halo, options.overlap, stride, min_window);
    best.cols = plan_axis(width, 0, halo, options.overlap, stride, min_window);
    return best;
  }
  const int64_t area = options.tile_area;
  const int64_t least_kept = round_up(options.overlap, stride) + stride;
  int64_t best_cost = -1;
  for (const bool rows_first : {true, false}) {
    const int64_t first_length = rows_first ? height : width, second_length = rows_first ? width : height;
    // (Up to 256 tiles along an axis: the kept span shrinks towards the overlap, never below it.)
    for (int64_t n = 1; n <= 256; ++n) {
      const int64_t first_window = window_for_count(first_length, n, halo, options.overlap, stride, min_window);
      if (n > 1 && first_window - 2 * round_up(halo, stride) < least_kept) break;  // too short to tile with
      const int64_t second_tile = area / first_window;
      if (second_tile < 1) continue;
      AxisPlan first, second;
      try {
        first = plan_axis(first_length, first_window, halo, options.overlap, stride, min_window);
        second = plan_axis(second_length, second_tile, halo, options.overlap, stride, min_window);
      } catch (const std::invalid_argument&) {
        continue;  // the other axis's window is too short for its halo: more tiles here make it longer
      }
      const bool second_whole = second.count() == 1;
      if (first.window * second.window <= area) {
        const int64_t cost = first.count() * first.window * second.count() * second.window;
        const int64_t tiles = first.count() * second.count();
        if (best_cost < 0 || cost < best_cost || (cost == best_cost && tiles < best.tiles())) {
          best_cost = cost;
          best.rows = rows_first ? first : second;
          best.cols = rows_first ? second : first;
        }
      }
      // Once the other axis runs whole, more tiles along this one only add halos.
      if (second_whole) break;
    }
  }
  if (best_cost < 0)
    throw std::invalid_argument("tile_area = " + std::to_string(area) + " is too small for a halo of " +
                                std::to_string(round_up(halo, stride)) + " and an overlap of " +
                                std::to_string(options.overlap) + " pixels on a " + std::to_string(height) + "x" +
                                std::to_string(width) + " image");
  return best;
}
}  // namespace

TilingSummary plan_tiles(const TilingGeometry& model, int64_t height, int64_t width, const TileOptions& options) {
  if (height < 1 || width < 1)
    throw std::invalid_argument("image is empty (" + std::to_string(height) + "x" + std::to_string(width) + ")");
  check_range(height, 1, kMaxPixels, "image height");
  check_range(width, 1, kMaxPixels, "image width");
  check_tile_options(options);
  const int64_t halo = options.halo < 0 ? default_halo(model) : options.halo;
  const int64_t stride = model.stride;
  // A model with a fixed input size can only be run at that size: it becomes the tile.
  const int64_t fh = model.fixed_height, fw = model.fixed_width;
  // Tiny images are reflected up to a small minimum: a TransformerNet, for one, reflection-pads
  // by 4 pixels at full resolution and by 1 at a quarter of it.
  const int64_t min_window = std::min(8 * stride, kMaxPixels);
  TilingSummary s;
  const bool by_area = options.tile_area > 0 && fh <= 0 && fw <= 0 && !options.tile_is_kept;
  try {
    if (by_area) {
      s = plan_by_area(height, width, halo, stride, min_window, options);
    } else {
      s.rows = plan_axis(height, fh > 0 ? fh : options.tile, halo, options.overlap, stride, fh > 0 ? 0 : min_window,
                         fh <= 0 && options.tile_is_kept);
      s.cols = plan_axis(width, fw > 0 ? fw : options.tile, halo, options.overlap, stride, fw > 0 ? 0 : min_window,
                         fw <= 0 && options.tile_is_kept);
    }
  } catch (const std::invalid_argument& e) {
    // A halo from the model's receptive field is the model's figure, not the caller's option.
    if (options.halo < 0 && model.receptive_field > 0)
      throw std::invalid_argument(model.model + ": " + e.what() + " (the halo comes from the model's receptive field, " +
                                  std::to_string(model.receptive_field) + " px: pass a smaller halo or a larger tile)");
    throw;
  }
  if ((fh > 0 && s.rows.window != fh) || (fw > 0 && s.cols.window != fw))
    throw ModelError(model.model + ": the model only takes " + std::to_string(fh) + "x" + std::to_string(fw) +
                     " inputs, which cannot tile a " + std::to_string(height) + "x" + std::to_string(width) + " image");
  if (options.windows_inside) {
    for (AxisPlan* axis : {&s.rows, &s.cols}) {
      if (axis->window > axis->length) continue;  // one window reflected up to size: nothing to move
      // The last window ends at or past the image end: its start rounded *up* to the stride.
      // Rounded down, a length - window that is no stride multiple left the last kept rows
      // beyond the window (and the tile mask was written past its buffer).  The few rows past
      // the end (< stride) are read reflected, as a whole-image run pads to a stride multiple.
      const int64_t last = (axis->length - axis->window + stride - 1) / stride * stride;
      for (int64_t i = 0; i < axis->count(); ++i)
        axis->inside_starts.push_back(std::clamp<int64_t>(axis->starts[i] - axis->halo, 0, last));
    }
  }
  return s;
}

}  // namespace deepshop
