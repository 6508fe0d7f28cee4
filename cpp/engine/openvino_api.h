#pragma once
// The part of OpenVINO's C API (openvino/c/*.h, stable since OpenVINO 2022.1) that the direct
// backend calls, declared here so that the engine builds without OpenVINO installed: the library
// (libopenvino_c.so, from the `openvino` wheel) is dlopen'ed at run time by OpenVinoRuntime.
// Only the opaque handles, the few plain structs the calls pass by value, and the enum values
// used are declared; their layouts are those of the public headers.
#include <cstddef>
#include <cstdint>

namespace deepshop::ov {

// ov_status_e: 0 is OK, every failure is negative.
using Status = int;
constexpr Status kOk = 0;

// ov_element_type_e, in the header's order (DYNAMIC = 0, BOOLEAN, BF16, F16, F32, ...).
using ElementType = int;
constexpr ElementType kF16 = 3;
constexpr ElementType kF32 = 4;

struct Core;            // ov_core_t
struct Model;           // ov_model_t
struct CompiledModel;   // ov_compiled_model_t
struct InferRequest;    // ov_infer_request_t
struct OvTensor;        // ov_tensor_t

struct Shape {  // ov_shape_t
  int64_t rank;
  int64_t* dims;
};
struct Dimension {  // ov_dimension_t (and ov_rank_t)
  int64_t min;
  int64_t max;
};
struct PartialShape {  // ov_partial_shape_t
  Dimension rank;
  Dimension* dims;
};
struct AvailableDevices {  // ov_available_devices_t
  char** devices;
  size_t size;
};
struct Version {  // ov_version_t
  const char* build_number;
  const char* description;
};

// The entry points, resolved by name from the library.
struct Api {
  const char* (*get_last_err_msg)();
  void (*free_string)(const char*);  // ov_free
  Status (*get_openvino_version)(Version*);
  void (*version_free)(Version*);

  Status (*core_create)(Core**);
  void (*core_free)(Core*);
  Status (*core_get_available_devices)(const Core*, AvailableDevices*);
  void (*available_devices_free)(AvailableDevices*);
  Status (*core_read_model)(const Core*, const char* model_path, const char* bin_path, Model**);
  // Variadic: property_args_size key/value C strings follow the out-parameter.
  Status (*core_compile_model)(const Core*, const Model*, const char* device, size_t property_args_size,
                               CompiledModel**, ...);

  void (*model_free)(Model*);
  Status (*model_reshape)(const Model*, const char** tensor_names, const PartialShape* shapes, size_t size);
  Status (*partial_shape_create_static)(int64_t rank, const int64_t* dims, PartialShape*);
  void (*partial_shape_free)(PartialShape*);

  Status (*compiled_model_create_infer_request)(const CompiledModel*, InferRequest**);
  void (*compiled_model_free)(CompiledModel*);

  Status (*infer_request_set_tensor)(InferRequest*, const char* tensor_name, const OvTensor*);
  Status (*infer_request_get_tensor)(const InferRequest*, const char* tensor_name, OvTensor**);
  Status (*infer_request_infer)(InferRequest*);
  Status (*infer_request_cancel)(InferRequest*);  // optional: null where the library lacks it
  void (*infer_request_free)(InferRequest*);

  Status (*shape_create)(int64_t rank, const int64_t* dims, Shape*);
  Status (*shape_free)(Shape*);
  Status (*tensor_create_from_host_ptr)(ElementType, Shape, void* host_ptr, OvTensor**);
  Status (*tensor_get_shape)(const OvTensor*, Shape*);
  Status (*tensor_get_element_type)(const OvTensor*, ElementType*);
  Status (*tensor_data)(const OvTensor*, void**);
  void (*tensor_free)(OvTensor*);
};

}  // namespace deepshop::ov
