#pragma once
// The deepshop.* metadata keys and I/O role names the engine reads: the C++ copy of the contract
// in python/deepshop_native/model_metadata.py (tests/test_engine_core.py checks that every string
// here is declared there).  Nothing else in cpp/ spells a key out.
namespace deepshop::metadata {

constexpr const char* kPrefix = "deepshop.";
constexpr const char* kFamily = "deepshop.family";
constexpr const char* kValueRange = "deepshop.value_range";
constexpr const char* kChannelOrder = "deepshop.channel_order";
constexpr const char* kMean = "deepshop.mean";
constexpr const char* kStrideMultiple = "deepshop.stride_multiple";
constexpr const char* kReceptiveField = "deepshop.receptive_field";
constexpr const char* kNormalization = "deepshop.normalization";
constexpr const char* kInputs = "deepshop.inputs";
constexpr const char* kOutputs = "deepshop.outputs";
constexpr const char* kStatistics = "deepshop.statistics";
constexpr const char* kPrecision = "deepshop.precision";
// int8 files made by `deepshop-export quantize` (engine/quantized_model.h).
constexpr const char* kQuantizedFrom = "deepshop.quantized_from";
constexpr const char* kQuantizedPsnr = "deepshop.quantized_psnr";

// Roles (values of deepshop.inputs / deepshop.outputs).
constexpr const char* kRoleImage = "image";
constexpr const char* kRoleAux = "aux";
constexpr const char* kRoleClasses = "classes";
constexpr const char* kRoleScalar = "scalar";
constexpr const char* kRoleTileMask = "tile_mask";  // input: made by the engine per tile from the tile plan
constexpr const char* kRoleFeatures = "features";   // output: spatial, returned whole (untiled runs)
// dLoss/dImage of a loss-and-gradient graph: spatial, not pixel-encoded, returned whole.
constexpr const char* kRoleGradient = "gradient";

}  // namespace deepshop::metadata
