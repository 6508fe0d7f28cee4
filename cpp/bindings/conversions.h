#pragma once
// What every binding file shares: numpy <-> engine tensors, and running native code with the GIL
// released, stopped soon after Ctrl-C, serving a Python progress callback between batches.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/cancel.h"
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

// How often the waiting Python thread looks for signals (Ctrl-C, SIGTERM) while native code runs.
constexpr std::chrono::milliseconds kSignalPoll{50};

// Runs `work()` with the GIL released, and stops it soon after Ctrl-C: the work runs on a worker
// thread under a CancelToken (engine/cancel.h) while this thread -- the one Python delivers
// signals to -- waits, running Python's signal handlers every kSignalPoll.  A handler that raises
// (KeyboardInterrupt, or the CLI's SIGTERM exception) cancels the token, which stops the network
// run in progress (ONNX Runtime's terminate flag, OpenVINO's cancel) and every later tile; that
// exception is re-raised once the worker has unwound.  Python signal handlers run only in the
// main thread, so elsewhere the work runs here, in the calling thread, as before.
template <typename Work>
void run_interruptible(CancelToken& token, Work&& work) {
  static const unsigned long main_thread =
      py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  if (PyThread_get_thread_ident() != main_thread) {
    py::gil_scoped_release release;
    CancelScope scope(token);
    work();
    return;
  }
  std::exception_ptr failure;
  std::optional<py::error_already_set> signal_error;
  {
    py::gil_scoped_release release;
    std::mutex mutex;
    std::condition_variable finished;
    bool done = false;
    std::thread worker([&] {
      try {
        CancelScope scope(token);
        work();
      } catch (...) {
        failure = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex);
      done = true;
      finished.notify_one();
    });
    std::unique_lock<std::mutex> lock(mutex);
    while (!finished.wait_for(lock, kSignalPoll, [&] { return done; })) {
      if (signal_error) continue;  // cancelled already: wait for the worker to unwind
      lock.unlock();
      {
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() != 0) signal_error.emplace();  // takes the pending Python error
      }
      if (signal_error) token.cancel();
      lock.lock();
    }
    lock.unlock();
    worker.join();
  }
  if (signal_error) throw std::move(*signal_error);  // Ctrl-C wins over the Cancelled it caused
  if (failure) std::rethrow_exception(failure);
}

// Runs `fn(progress)` interruptibly (run_interruptible), serving `progress` (a Python callable or
// None) between batches of tiles with the GIL taken back briefly.  Python errors raised in the
// callback are kept and re-raised once the native run has unwound.
template <typename Fn>
void run_with_progress(const std::optional<py::function>& progress, Fn&& fn) {
  CancelToken token;
  std::optional<py::error_already_set> callback_error;
  ProgressFn on_progress = [&](int64_t done, int64_t total) {
    if (token.cancelled()) return false;
    if (!progress) return true;
    py::gil_scoped_acquire gil;
    try {
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // a no-op outside the main thread
      py::object r = (*progress)(done, total);
      if (r.is_none()) return true;
      // bool, int or numpy.bool_: anything else is a mistake better named than guessed at.
      const bool numpy_bool = py::hasattr(r, "dtype") && py::str(r.attr("dtype").attr("kind")).cast<std::string>() == "b";
      if (!py::isinstance<py::bool_>(r) && !py::isinstance<py::int_>(r) && !numpy_bool)
        throw std::invalid_argument("progress callback must return None, True or False, not " +
                                    std::string(py::str(r.get_type().attr("__name__"))));
      return PyObject_IsTrue(r.ptr()) == 1;
    } catch (py::error_already_set& e) {
      callback_error.emplace(std::move(e));
      return false;
    }
  };
  try {
    run_interruptible(token, [&] { fn(on_progress); });
  } catch (const Cancelled&) {
    if (callback_error) throw std::move(*callback_error);
    throw;
  }
}

}  // namespace deepshop::bindings
