#pragma once
#include <pybind11/pybind11.h>

namespace deepshop::bindings {
// Exception types shared by every binding: registered once, before the rest.
void register_errors(pybind11::module_& m);
void bind_engine(pybind11::module_& m);
// The engine's family-specific runs: style encoder Gram, Gatys tiles, luminance transfer.
void bind_pipelines(pybind11::module_& m);
// Gram matrix, posterise and palette kernels (cpp/kernels/).
void bind_kernels(pybind11::module_& m);
// L-BFGS-B and Adam (cpp/optim/) on a Python objective.
void bind_optim(pybind11::module_& m);
}  // namespace deepshop::bindings
