// Python bindings of the image kernels (cpp/kernels/).  These are the low-level entry points
// (underscore names) used by python/deepshop_native/kernels.py, which validates and converts user
// input; here every array is checked once more (dtype, shape, contiguity, writability) so that
// a wrong call raises ValueError instead of reading out of bounds.  Long loops run with the GIL
// released; the py::array handles held in this frame keep the buffers alive meanwhile.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "bindings/bindings.h"
#include "kernels/gram.h"
#include "kernels/palette_builder.h"
#include "kernels/posterize.h"

namespace py = pybind11;
using namespace deepshop::kernels;

namespace deepshop::bindings {
namespace {

// Same element type and native byte order (numpy's type equivalence, not object identity).
template <class T>
bool has_dtype(const py::array& a) {
  return py::array_t<T>::check_(a);
}

bool is_float16(const py::array& a) { return a.dtype().kind() == 'f' && a.dtype().itemsize() == 2; }

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

// A C-contiguous array of dtype T, optionally writable, with a fixed number of elements.
template <class T>
T* checked_pointer(const py::array& a, const char* name, int64_t count, bool writable) {
  require(has_dtype<T>(a), std::string(name) + ": wrong dtype");
  require((a.flags() & py::array::c_style) != 0, std::string(name) + ": must be C-contiguous");
  require(a.size() == count, std::string(name) + ": wrong number of elements");
  if (writable) {
    require(a.writeable(), std::string(name) + ": must be writable");
    return static_cast<T*>(const_cast<void*>(a.data()));
  }
  return static_cast<T*>(const_cast<void*>(a.data()));
}

ColorSpace parse_space(const std::string& space) {
  if (space == "rgb") return ColorSpace::rgb;
  if (space == "lab") return ColorSpace::lab;
  throw std::invalid_argument("space must be 'rgb' or 'lab', got '" + space + "'");
}

// Pixels of an (..., 3) array.
int64_t rgb_pixels(const py::array& a, const char* name) {
  require(a.ndim() >= 1 && a.shape(a.ndim() - 1) == 3, std::string(name) + ": last axis must hold 3 channels");
  return a.size() / 3;
}

void gram_accumulate_py(const py::array& features, const py::object& mask_obj, const py::array& acc, int threads) {
  require(features.ndim() == 3, "features must have shape (C, H, W)");
  const bool f32 = has_dtype<float>(features);
  require(f32 || is_float16(features), "features must be float32 or float16");
  FeatureView f;
  f.data = features.data();
  f.type = f32 ? FeatureType::f32 : FeatureType::f16;
  f.channels = features.shape(0), f.height = features.shape(1), f.width = features.shape(2);
  const int64_t item = features.itemsize();
  for (int d = 0; d < 3; ++d) require(features.strides(d) % item == 0, "features: strides must be whole elements");
  f.stride_c = features.strides(0) / item, f.stride_h = features.strides(1) / item, f.stride_w = features.strides(2) / item;
  double* out = checked_pointer<double>(acc, "acc", f.channels * f.channels, true);
  MaskView mask_view;
  const MaskView* mask_ptr = nullptr;
  py::array mask;
  if (!mask_obj.is_none()) {
    mask = py::reinterpret_borrow<py::array>(mask_obj);
    require(has_dtype<float>(mask) && mask.ndim() == 2 && mask.shape(0) == f.height && mask.shape(1) == f.width,
            "mask must be float32 of shape (H, W) matching the features");
    require(mask.strides(0) % 4 == 0 && mask.strides(1) % 4 == 0, "mask: strides must be whole elements");
    mask_view.data = static_cast<const float*>(mask.data());
    mask_view.stride_h = mask.strides(0) / 4, mask_view.stride_w = mask.strides(1) / 4;
    mask_ptr = &mask_view;
  }
  py::gil_scoped_release release;
  gram_accumulate(f, mask_ptr, out, threads);
}

void symmetrize_py(const py::array& acc) {
  require(acc.ndim() == 2 && acc.shape(0) == acc.shape(1), "acc must be square");
  double* p = checked_pointer<double>(acc, "acc", acc.size(), true);
  symmetrize_lower(p, acc.shape(0));
}

template <class T>
void levels_impl(const py::array& image, const py::array& values, const py::object& out_obj,
                 const py::object& labels_obj, int threads) {
  const int64_t n = rgb_pixels(image, "image");
  const T* in = checked_pointer<T>(image, "image", image.size(), false);
  const int levels = static_cast<int>(values.size());
  const T* vals = checked_pointer<T>(values, "values", levels, false);
  T* out = nullptr;
  uint8_t* lab8 = nullptr;
  int32_t* lab32 = nullptr;
  py::array out_arr, labels;
  if (!out_obj.is_none()) {
    out_arr = py::reinterpret_borrow<py::array>(out_obj);
    out = checked_pointer<T>(out_arr, "out", image.size(), true);
  }
  if (!labels_obj.is_none()) {
    labels = py::reinterpret_borrow<py::array>(labels_obj);
    if (has_dtype<uint8_t>(labels)) {
      require(static_cast<int64_t>(levels) * levels * levels <= 256, "labels: uint8 cannot hold levels^3 labels");
      lab8 = checked_pointer<uint8_t>(labels, "labels", n, true);
    } else {
      lab32 = checked_pointer<int32_t>(labels, "labels", n, true);
    }
  }
  py::gil_scoped_release release;
  if constexpr (sizeof(T) == 1)
    posterize_levels_u8(in, n, vals, levels, out, lab8, lab32, threads);
  else
    posterize_levels_u16(in, n, vals, levels, out, lab8, lab32, threads);
}

void levels_py(const py::array& image, const py::array& values, const py::object& out,
               const py::object& labels, int threads) {
  if (has_dtype<uint8_t>(image)) return levels_impl<uint8_t>(image, values, out, labels, threads);
  if (has_dtype<uint16_t>(image)) return levels_impl<uint16_t>(image, values, out, labels, threads);
  throw std::invalid_argument("image must be uint8 or uint16");
}

void palette_u8_py(const py::array& image, const py::array& palette, const std::string& space,
                   const py::object& lut_obj, const py::array& labels, const py::object& out_obj, int threads) {
  const int64_t n = rgb_pixels(image, "image");
  const uint8_t* in = checked_pointer<uint8_t>(image, "image", image.size(), false);
  const int colors = static_cast<int>(rgb_pixels(palette, "palette"));
  const uint8_t* pal = checked_pointer<uint8_t>(palette, "palette", palette.size(), false);
  uint8_t* lab = checked_pointer<uint8_t>(labels, "labels", n, true);
  const ColorSpace cs = parse_space(space);
  py::array lut, out_arr;
  const uint8_t* lut_ptr = nullptr;
  int64_t lut_bytes = 0;
  uint8_t* out = nullptr;
  if (!lut_obj.is_none()) {
    lut = py::reinterpret_borrow<py::array>(lut_obj);
    require(lut.ndim() == 1, "lut: must be one-dimensional");
    lut_bytes = lut.size();
    lut_ptr = checked_pointer<uint8_t>(lut, "lut", lut_bytes, false);
  }
  if (!out_obj.is_none()) {
    out_arr = py::reinterpret_borrow<py::array>(out_obj);
    out = checked_pointer<uint8_t>(out_arr, "out", image.size(), true);
  }
  py::gil_scoped_release release;
  posterize_palette_u8(in, n, pal, colors, cs, lut_ptr, lut_bytes, lab, out, threads);
}

py::array build_lut_py(const py::array& palette, const std::string& space, int threads) {
  const int colors = static_cast<int>(rgb_pixels(palette, "palette"));
  const uint8_t* pal = checked_pointer<uint8_t>(palette, "palette", palette.size(), false);
  const ColorSpace cs = parse_space(space);
  std::vector<uint8_t> table;
  {
    py::gil_scoped_release release;
    table = build_palette_table(pal, colors, cs, threads);
  }
  py::array_t<uint8_t> lut(static_cast<py::ssize_t>(table.size()));
  std::copy(table.begin(), table.end(), lut.mutable_data());
  return lut;
}

void palette_f32_py(const py::array& image, const py::array& palette, const std::string& space,
                    const py::array& labels, int threads) {
  const int64_t n = rgb_pixels(image, "image");
  const float* in = checked_pointer<float>(image, "image", image.size(), false);
  const int colors = static_cast<int>(rgb_pixels(palette, "palette"));
  const float* pal = checked_pointer<float>(palette, "palette", palette.size(), false);
  uint8_t* lab = checked_pointer<uint8_t>(labels, "labels", n, true);
  const ColorSpace cs = parse_space(space);
  py::gil_scoped_release release;
  posterize_palette_f32(in, n, pal, colors, cs, lab, threads);
}

void dither_py(const py::array& image, const py::array& palette, const std::string& space, const py::array& labels) {
  require(image.ndim() == 3 && image.shape(2) == 3, "image must have shape (H, W, 3)");
  const float* in = checked_pointer<float>(image, "image", image.size(), false);
  const int colors = static_cast<int>(rgb_pixels(palette, "palette"));
  const float* pal = checked_pointer<float>(palette, "palette", palette.size(), false);
  uint8_t* lab = checked_pointer<uint8_t>(labels, "labels", image.shape(0) * image.shape(1), true);
  const ColorSpace cs = parse_space(space);
  py::gil_scoped_release release;
  posterize_dither_f32(in, image.shape(0), image.shape(1), pal, colors, cs, lab);
}

py::array to_palette_array(const std::vector<uint8_t>& colors) {
  py::array_t<uint8_t> arr({static_cast<py::ssize_t>(colors.size() / 3), py::ssize_t{3}});
  std::copy(colors.begin(), colors.end(), arr.mutable_data());
  return arr;
}

py::array kmeans_py(const py::array& samples, int k, const std::string& space, uint64_t seed,
                    int max_iterations, int threads) {
  const int64_t n = rgb_pixels(samples, "samples");
  const uint8_t* p = checked_pointer<uint8_t>(samples, "samples", samples.size(), false);
  const ColorSpace cs = parse_space(space);
  std::vector<uint8_t> colors;
  {
    py::gil_scoped_release release;
    colors = kmeans_palette(p, n, k, cs, seed, max_iterations, threads);
  }
  return to_palette_array(colors);
}

py::array median_cut_py(const py::array& samples, int k) {
  const int64_t n = rgb_pixels(samples, "samples");
  const uint8_t* p = checked_pointer<uint8_t>(samples, "samples", samples.size(), false);
  std::vector<uint8_t> colors;
  {
    py::gil_scoped_release release;
    colors = median_cut_palette(p, n, k);
  }
  return to_palette_array(colors);
}

}  // namespace

void bind_kernels(py::module_& m) {
  m.def("_gram_accumulate", &gram_accumulate_py, py::arg("features"), py::arg("mask"), py::arg("acc"),
        py::arg("threads") = 0,
        "Add the lower triangle of F·diag(mask)·Fᵀ for features (C, H, W) float32/float16 into acc (C, C) float64.");
  m.def("_symmetrize", &symmetrize_py, py::arg("acc"), "Copy the lower triangle of acc onto the upper.");
  m.def("gram_kernel", &gram_kernel_name, "Inner Gram kernel chosen for this CPU: avx512, avx2 or scalar.");
  m.def("set_gram_kernel", &set_gram_kernel, py::arg("name"),
        "Force the Gram kernel: 'auto', 'avx512', 'avx2' or 'scalar' (tests and benchmarks).");
  m.def("_posterize_levels", &levels_py, py::arg("image"), py::arg("values"), py::arg("out"),
        py::arg("labels"), py::arg("threads") = 0);
  m.def("_posterize_palette_u8", &palette_u8_py, py::arg("image"), py::arg("palette"), py::arg("space"),
        py::arg("lut"), py::arg("labels"), py::arg("out"), py::arg("threads") = 0);
  m.def("_build_palette_lut", &build_lut_py, py::arg("palette"), py::arg("space"), py::arg("threads") = 0);
  m.def("_posterize_palette_f32", &palette_f32_py, py::arg("image"), py::arg("palette"), py::arg("space"),
        py::arg("labels"), py::arg("threads") = 0);
  m.def("_posterize_dither", &dither_py, py::arg("image"), py::arg("palette"), py::arg("space"), py::arg("labels"));
  m.def("_kmeans_palette", &kmeans_py, py::arg("samples"), py::arg("k"), py::arg("space"), py::arg("seed"),
        py::arg("max_iterations"), py::arg("threads") = 0);
  m.def("_median_cut_palette", &median_cut_py, py::arg("samples"), py::arg("k"));
}

}  // namespace deepshop::bindings
