#pragma once
// The one place that includes the ONNX Runtime C++ API.  ORT_API_MANUAL_INIT (set by CMake) keeps
// the header from resolving OrtGetApiBase at load time: the library is dlopen'ed by OrtRuntime.
#ifndef ORT_API_MANUAL_INIT
#define ORT_API_MANUAL_INIT
#endif
#include <onnxruntime_cxx_api.h>
