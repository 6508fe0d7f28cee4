// The extension module `deepshop_native._native`.  Each part of the core registers its own
// bindings (bind_*.cpp); this file only assembles them.
#include <pybind11/pybind11.h>

#include "bindings/bindings.h"

PYBIND11_MODULE(_native, m) {
  m.doc() = "Deepshop native core: ONNX Runtime engine with tiled inference, and image kernels";
  deepshop::bindings::register_errors(m);
  deepshop::bindings::bind_engine(m);
  deepshop::bindings::bind_pipelines(m);
  deepshop::bindings::bind_kernels(m);
  deepshop::bindings::bind_optim(m);
}
