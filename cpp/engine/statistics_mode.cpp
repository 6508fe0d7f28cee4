#include "engine/statistics_mode.h"

#include <cctype>
#include <cmath>
#include <map>
#include <memory>
#include <stdexcept>

#include "engine/errors.h"
#include "engine/harmonize.h"
#include "engine/metadata_keys.h"
#include "engine/tile_stages.h"
#include "kernels/parallel.h"

namespace deepshop {
namespace {

namespace key = metadata;

// A JSON value, as much of JSON as the deepshop.statistics record uses (objects, arrays,
// strings without escapes beyond \" and \\, numbers, true/false/null).
struct Json {
  enum Kind { null, boolean, number, string, array, object } kind = null;
  double num = 0;
  std::string str;
  std::vector<Json> items;
  std::map<std::string, Json> fields;
};

class JsonReader {
 public:
  JsonReader(const std::string& text, std::string where) : s_(text), where_(std::move(where)) {}
  Json document() {
    Json v = value();
    ws();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw ModelError(where_ + " is not valid JSON (" + why + " at character " + std::to_string(i_) + ")");
  }
  void ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  std::string text() {
    if (!eat('"')) fail("expected a string");
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      out += s_[i_++];
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  Json value() {
    if (depth_ > 32) fail("nested too deeply");
    ws();
    if (i_ >= s_.size()) fail("unexpected end");
    Json v;
    const char c = s_[i_];
    if (c == '{') {
      ++i_, ++depth_;
      v.kind = Json::object;
      if (!eat('}')) {
        do {
          std::string k = text();
          if (!eat(':')) fail("expected ':'");
          v.fields[k] = value();
        } while (eat(','));
        if (!eat('}')) fail("expected '}'");
      }
      --depth_;
    } else if (c == '[') {
      ++i_, ++depth_;
      v.kind = Json::array;
      if (!eat(']')) {
        do v.items.push_back(value());
        while (eat(','));
        if (!eat(']')) fail("expected ']'");
      }
      --depth_;
    } else if (c == '"') {
      v.kind = Json::string;
      v.str = text();
    } else if (s_.compare(i_, 4, "true") == 0 || s_.compare(i_, 5, "false") == 0) {
      v.kind = Json::boolean;
      i_ += s_[i_] == 't' ? 4 : 5;
    } else if (s_.compare(i_, 4, "null") == 0) {
      i_ += 4;
    } else {
      size_t used = 0;
      try {
        v.num = std::stod(s_.substr(i_, 64), &used);
      } catch (const std::exception&) {
        fail("unexpected character");
      }
      v.kind = Json::number;
      i_ += used;
    }
    return v;
  }

  const std::string& s_;
  std::string where_;
  size_t i_ = 0;
  int depth_ = 0;
};

// Field access that names the record and the field in its errors.
struct Record {
  const Json& json;
  std::string where;
  const Json& field(const std::string& name, Json::Kind kind) const {
    auto it = json.fields.find(name);
    if (json.kind != Json::object || it == json.fields.end() || it->second.kind != kind)
      throw ModelError(where + " lacks a valid '" + name + "'");
    return it->second;
  }
  int64_t count(const std::string& name, int64_t lo, int64_t hi) const {
    const double v = field(name, Json::number).num;
    if (!(v >= lo && v <= hi) || v != std::floor(v))
      throw ModelError(where + ": '" + name + "' must be an integer in [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "]");
    return static_cast<int64_t>(v);
  }
  std::string name(const std::string& group, const std::string& which) const {
    return Record{field(group, Json::object), where + " '" + group + "'"}.field(which, Json::string).str;
  }
};

// Packed vectors beyond this are no TransformerNet-like network (it has ~1000 channels).
constexpr int64_t kMaxStatisticsChannels = 1 << 20;

}  // namespace

std::optional<StatisticsLayout> statistics_layout(const ModelInfo& model) {
  auto it = model.metadata.find(key::kStatistics);
  if (it == model.metadata.end()) return std::nullopt;
  const std::string where = model.path + ": metadata " + key::kStatistics;
  const Json doc = JsonReader(it->second, where).document();
  const Record rec{doc, where};
  StatisticsLayout layout;
  for (const Json& layer : rec.field("layers", Json::array).items)
    layout.layer_channels.push_back(Record{layer, where + " layer"}.count("channels", 1, kMaxStatisticsChannels));
  layout.total_channels = rec.count("total_channels", 1, kMaxStatisticsChannels);
  int64_t sum = 0;
  for (int64_t c : layout.layer_channels) sum += c;
  if (layout.layer_channels.empty() || sum != layout.total_channels)
    throw ModelError(where + ": its layers' channels add up to " + std::to_string(sum) + ", not total_channels " +
                     std::to_string(layout.total_channels));
  layout.mean_input = rec.name("inputs", "mean");
  layout.var_input = rec.name("inputs", "var");
  layout.mix_input = rec.name("inputs", "mix");
  layout.mask_input = rec.name("inputs", "mask");
  layout.count_output = rec.name("outputs", "count");
  layout.mean_output = rec.name("outputs", "mean");
  layout.m2_output = rec.name("outputs", "m2");

  // The graph must have these tensors, with the roles that let the engine supply and collect them.
  auto need = [&](const TensorSpec* t, const std::string& name, Role role, const char* kind) {
    if (!t || t->role != role)
      throw ModelError(where + " names " + kind + " '" + name + "', which is not a " + role_name(role) + " " + kind +
                       " of the model");
  };
  for (const auto* n : {&layout.mean_input, &layout.var_input, &layout.mix_input})
    need(model.find_input(*n), *n, Role::aux, "input");
  need(model.find_input(layout.mask_input), layout.mask_input, Role::tile_mask, "input");
  for (const auto* n : {&layout.count_output, &layout.mean_output, &layout.m2_output})
    need(model.find_output(*n), *n, Role::aux, "output");
  return layout;
}

StatisticsAccumulator::StatisticsAccumulator(const StatisticsLayout& layout)
    : layout_(layout),
      count_(static_cast<size_t>(layout.total_channels), 0.0),
      mean_(count_.size(), 0.0),
      m2_(count_.size(), 0.0) {
  for (int64_t l = 0; l < layout.layers(); ++l) layer_of_channel_.insert(layer_of_channel_.end(), layout.layer_channels[l], l);
}

void StatisticsAccumulator::add(const Tensor& count, const Tensor& mean, const Tensor& m2) {
  const int64_t L = layout_.layers(), C = layout_.total_channels;
  const int64_t n = count.shape.empty() ? 0 : count.shape[0];
  if (count.shape != std::vector<int64_t>{n, L} || mean.shape != std::vector<int64_t>{n, C} ||
      m2.shape != std::vector<int64_t>{n, C})
    throw ModelError("statistics outputs of shapes " + shape_string(count.shape) + ", " + shape_string(mean.shape) +
                     ", " + shape_string(m2.shape) + " do not match deepshop.statistics (" + std::to_string(L) +
                     " layers, " + std::to_string(C) + " channels)");
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t c = 0; c < C; ++c) {
      const double nb = count.data[b * L + layer_of_channel_[c]];
      if (!(nb > 0)) continue;  // a tile (or a filled-up batch's extra) without kept pixels here
      const double mb = mean.data[b * C + c], m2b = m2.data[b * C + c];
      if (!std::isfinite(mb) || !std::isfinite(m2b)) throw ModelError("the model measured NaN or infinite statistics");
      // Chan et al.: the union of (n, mean, M2) and (nb, mb, m2b).
      const double total = count_[c] + nb, delta = mb - mean_[c];
      mean_[c] += delta * nb / total;
      m2_[c] += m2b + delta * delta * count_[c] * nb / total;
      count_[c] = total;
    }
  }
}

PackedStatistics StatisticsAccumulator::result(const PackedStatistics& fallback) const {
  PackedStatistics r = fallback;
  for (size_t c = 0; c < count_.size(); ++c) {
    if (!(count_[c] > 0)) continue;
    r.mean[c] = static_cast<float>(mean_[c]);
    r.var[c] = static_cast<float>(std::max(m2_[c], 0.0) / count_[c]);
  }
  return r;
}

void StatisticsAccumulator::copy_layer(int64_t layer, const PackedStatistics& from, PackedStatistics& into) const {
  for (size_t c = 0; c < layer_of_channel_.size(); ++c)
    if (layer_of_channel_[c] == layer) into.mean[c] = from.mean[c], into.var[c] = from.var[c];
}

StatisticsMode resolve_statistics_mode(const ModelInfo& model, const TileOptions& options, int64_t tiles) {
  if (!statistics_layout(model) || tiles <= 1) return StatisticsMode::off;
  // Thumbnail by default: one extra run of a small image brings the tiled output far closer to
  // the whole-image one than harmonize does, for about harmonize's cost; exact costs L + 1 full
  // tiled passes (16 for TransformerNet) for the last few dB (README, tiling quality).
  if (options.statistics == StatisticsMode::automatic) return StatisticsMode::thumbnail;
  return options.statistics;
}

const char* statistics_mode_name(StatisticsMode mode) {
  switch (mode) {
    case StatisticsMode::automatic: return "auto";
    case StatisticsMode::thumbnail: return "thumbnail";
    case StatisticsMode::exact: return "exact";
    case StatisticsMode::off: break;
  }
  return "off";
}

int64_t statistics_passes(StatisticsMode mode, const StatisticsLayout& layout) {
  return mode == StatisticsMode::exact ? layout.layers() + 1 : 1;
}

TileOptions statistics_tile_options(const ModelInfo& model, const TileOptions& options, StatisticsMode mode) {
  TileOptions o = options;
  o.windows_inside = mode == StatisticsMode::thumbnail || mode == StatisticsMode::exact;
  if (mode == StatisticsMode::exact && o.halo < 0 && model.receptive_field > 0) o.halo = (model.receptive_field + 1) / 2;
  return o;
}

void StatisticsInputs::attach(const StatisticsLayout& layout, TiledCall& call) const {
  const int64_t C = layout.total_channels;
  call.aux_inputs[layout.mean_input] = TensorView{stats.mean.data(), {C}};
  call.aux_inputs[layout.var_input] = TensorView{stats.var.data(), {C}};
  call.aux_inputs[layout.mix_input] = TensorView{&mix, {1}};
  call.tile_mask_input = layout.mask_input;
}

ProgressFn pass_progress(const ProgressFn& progress, int64_t pass, int64_t passes) {
  if (!progress) return nullptr;
  return [progress, pass, passes](int64_t done, int64_t total) {
    return progress(pass * total + done, passes * total);
  };
}

template <typename T>
PackedStatistics measure_statistics(const NetworkFn& network, const ModelInfo& model, const StatisticsLayout& layout,
                                    ImageView<const T> input, const TileOptions& options, StatisticsMode mode,
                                    const TensorViews& aux, const ProgressFn& progress) {
  const TilingGeometry geometry = model.geometry();
  const std::vector<std::string> measured{layout.count_output, layout.mean_output, layout.m2_output};
  // One tiled run that only measures: no spatial output, the statistics outputs collected.
  auto measure = [&](const TileSource& source, int64_t height, int64_t width, const TileOptions& tiles,
                     const StatisticsInputs& with, const ProgressFn& on_progress) {
    TiledCall call;
    call.spatial_inputs = {{model.inputs_with(Role::image)[0]->name, &source}};
    call.whole_outputs = measured;
    call.aux_inputs = aux;
    with.attach(layout, call);
    auto out = run_tiled(network, geometry, height, width, tiles, call, on_progress);
    StatisticsAccumulator acc(layout);
    for (size_t i = 0; i < out.at(layout.count_output).size(); ++i)
      acc.add(out.at(layout.count_output)[i], out.at(layout.mean_output)[i], out.at(layout.m2_output)[i]);
    return acc;
  };

  // The thumbnail, untiled, with its own statistics (mix 0): each layer's are taken after the
  // earlier layers were normalised with the thumbnail's own, as in the whole-image run.
  const Thumbnail thumb = box_thumbnail(input, options.statistics_size, kernels::resolve_threads(options.pixel_threads));
  const ImageSource<float> thumb_source(ImageView<const float>{thumb.rgb.data(), thumb.height, thumb.width, 3},
                                        model.pixels);
  TileOptions whole = options;
  whole.tile = 0;
  StatisticsInputs own;
  own.stats.mean.assign(static_cast<size_t>(layout.total_channels), 0.f);
  own.stats.var.assign(static_cast<size_t>(layout.total_channels), 1.f);
  own.mix = 0.f;
  StatisticsInputs given;
  given.stats = measure(thumb_source, thumb.height, thumb.width, whole, own, nullptr).result(own.stats);
  given.mix = 1.f;
  if (mode != StatisticsMode::exact) return given.stats;

  // Exact: pass k makes layer k's statistics those of the full image (its input there depends
  // only on layers before k, which are exact by then).
  const ImageSource<T> source(input, model.pixels);
  const int64_t passes = statistics_passes(mode, layout);
  for (int64_t k = 0; k < layout.layers(); ++k) {
    const StatisticsAccumulator acc =
        measure(source, input.height, input.width, options, given, pass_progress(progress, k, passes));
    acc.copy_layer(k, acc.result(given.stats), given.stats);
  }
  return given.stats;
}

template <typename T>
StatisticsInputs statistics_inputs(const NetworkFn& network, const ModelInfo& model, const StatisticsLayout& layout,
                                   ImageView<const T> input, const TileOptions& options, StatisticsMode mode,
                                   const TensorViews& aux, const ProgressFn& progress) {
  StatisticsInputs inputs;
  if (mode == StatisticsMode::off) {
    inputs.stats.mean.assign(static_cast<size_t>(layout.total_channels), 0.f);
    inputs.stats.var.assign(static_cast<size_t>(layout.total_channels), 1.f);
    return inputs;
  }
  inputs.stats = measure_statistics<T>(network, model, layout, input, options, mode, aux, progress);
  inputs.mix = 1.f;
  return inputs;
}

template PackedStatistics measure_statistics<uint8_t>(const NetworkFn&, const ModelInfo&, const StatisticsLayout&,
                                                      ImageView<const uint8_t>, const TileOptions&, StatisticsMode,
                                                      const TensorViews&, const ProgressFn&);
template StatisticsInputs statistics_inputs<uint8_t>(const NetworkFn&, const ModelInfo&, const StatisticsLayout&,
                                                     ImageView<const uint8_t>, const TileOptions&, StatisticsMode,
                                                     const TensorViews&, const ProgressFn&);
template PackedStatistics measure_statistics<uint16_t>(const NetworkFn&, const ModelInfo&, const StatisticsLayout&,
                                                      ImageView<const uint16_t>, const TileOptions&, StatisticsMode,
                                                      const TensorViews&, const ProgressFn&);
template StatisticsInputs statistics_inputs<uint16_t>(const NetworkFn&, const ModelInfo&, const StatisticsLayout&,
                                                     ImageView<const uint16_t>, const TileOptions&, StatisticsMode,
                                                     const TensorViews&, const ProgressFn&);
template PackedStatistics measure_statistics<float>(const NetworkFn&, const ModelInfo&, const StatisticsLayout&,
                                                      ImageView<const float>, const TileOptions&, StatisticsMode,
                                                      const TensorViews&, const ProgressFn&);
template StatisticsInputs statistics_inputs<float>(const NetworkFn&, const ModelInfo&, const StatisticsLayout&,
                                                     ImageView<const float>, const TileOptions&, StatisticsMode,
                                                     const TensorViews&, const ProgressFn&);

}  // namespace deepshop
