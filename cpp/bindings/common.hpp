// common.hpp: shared helpers for the _core bindings: typed array aliases, shape checks that raise
// ValueError naming the argument, and the (float, double) registration helper.
//
// The Python layer validates dtypes, makes inputs contiguous and allocates outputs; these checks are the
// last line of defence so that a direct call into _core can never read or write out of bounds.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "../src/kernels.hpp"

namespace vk::bind {

namespace py = pybind11;

// C-contiguous array of exactly T; with .noconvert() on the argument, no silent casts or copies.
template <class T>
using Arr = py::array_t<T, py::array::c_style>;

inline std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

struct Rows { int64_t rows, cols; };

inline Rows rows_of(const py::array& a, const char* name) {
    if (a.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D (rows, cols), got shape " + shape_str(a));
    return {static_cast<int64_t>(a.shape(0)), static_cast<int64_t>(a.shape(1))};
}

inline void same_shape(const py::array& a, const char* an, const py::array& b, const char* bn) {
    bool ok = a.ndim() == b.ndim();
    for (py::ssize_t i = 0; ok && i < a.ndim(); ++i) ok = a.shape(i) == b.shape(i);
    if (!ok)
        throw py::value_error(std::string(bn) + " must have the shape of " + an + " " + shape_str(a) + ", got " +
                              shape_str(b));
}

inline void vector_of(const py::array& v, const char* name, int64_t rows) {
    if (v.ndim() != 1 || v.shape(0) != rows)
        throw py::value_error(std::string(name) + " must have shape (" + std::to_string(rows) + ",), got " + shape_str(v));
}

template <class T>
T* writable(Arr<T>& a, const char* name) {
    if (!a.writeable()) throw py::value_error(std::string(name) + " is read-only");
    return a.mutable_data();
}

}  // namespace vk::bind
