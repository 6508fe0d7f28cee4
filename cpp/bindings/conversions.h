#pragma once
// What every binding file shares: numpy <-> engine tensors, and running native code with the GIL
// released while serving a Python progress callback and Ctrl-C in between.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>
#include <string>
#include <vector>

#include "engine/errors.h"
#include "engine/tensor.h"
#include "engine/tiled_runner.h"

namespace deepshop::bindings {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

inline TensorView view_of(const FloatArray& a) {
  return TensorView{a.data(), std::vector<int64_t>(a.shape(), a.shape() + a.ndim())};
}

// A float32 numpy array that owns the tensor's buffer (no copy).
inline py::array_t<float> to_numpy(Tensor&& t) {
  auto* owned = new std::vector<float>(std::move(t.data));
  py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<float>*>(p); });
  std::vector<py::ssize_t> strides(t.shape.size());
  py::ssize_t s = sizeof(float);
  for (size_t i = t.shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= static_cast<py::ssize_t>(t.shape[i]);
  }
  return py::array_t<float>(std::vector<py::ssize_t>(t.shape.begin(), t.shape.end()), strides, owned->data(),
                            free_when_done);
}

// Named float32 arrays (a dict) as tensor views; `keep` holds the converted buffers while the views
// are used.  std::invalid_argument naming an entry that is not numeric.
inline TensorViews views_of(const py::dict& arrays, std::vector<FloatArray>& keep, const char* what) {
  TensorViews views;
  keep.reserve(keep.size() + arrays.size());
  for (auto [k, v] : arrays) {
    keep.push_back(FloatArray::ensure(v));
    if (!keep.back())
      throw std::invalid_argument(std::string(what) + " '" + py::str(k).cast<std::string>() + "' is not a numeric array");
    views[py::str(k)] = view_of(keep.back());
  }
  return views;
}

// Runs `fn(progress)` with the GIL released, serving `progress` (a Python callable or None) and
// Ctrl-C in between.  Python errors raised in the callback (KeyboardInterrupt included) are kept
// and re-raised once the native run has unwound.
template <typename Fn>
void run_with_progress(const std::optional<py::function>& progress, Fn&& fn) {
  std::optional<py::error_already_set> callback_error;
  ProgressFn on_progress = [&](int64_t done, int64_t total) {
    py::gil_scoped_acquire gil;
    try {
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (progress) {
        py::object r = (*progress)(done, total);
        if (r.is_none()) return true;
        // bool, int or numpy.bool_: anything else is a mistake better named than guessed at.
        const bool numpy_bool = py::hasattr(r, "dtype") && py::str(r.attr("dtype").attr("kind")).cast<std::string>() == "b";
        if (!py::isinstance<py::bool_>(r) && !py::isinstance<py::int_>(r) && !numpy_bool)
          throw std::invalid_argument("progress callback must return None, True or False, not " +
                                      std::string(py::str(r.get_type().attr("__name__"))));
        return PyObject_IsTrue(r.ptr()) == 1;
      }
    } catch (py::error_already_set& e) {
      callback_error.emplace(std::move(e));
      return false;
    }
    return true;
  };
  try {
    py::gil_scoped_release release;
    fn(on_progress);
  } catch (const Cancelled&) {
    if (callback_error) throw std::move(*callback_error);
    throw;
  }
}

}  // namespace deepshop::bindings
