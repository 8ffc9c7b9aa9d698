// kernel_abi.hpp: the vocabulary of the generated argument records (kernel_args.hpp): array roles and
// directions, the two extents, and the element count each role implies.
//
// Every kernel takes one record: named pointers to C-contiguous arrays, the extent ((rows, cols) for
// kernels that reduce rows, n otherwise) and its scalars. Generic code (the pybind11 registrations of
// _core and _cuda, and framework adapters) fills a record through its visit_arrays / visit_scalars
// members and checks each array against element_count() before any kernel runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "config.hpp"

namespace vk {

// kFull: the kernel's whole shape; kBatch: one value per row; kSamples: n_samples copies of the whole
// shape; kBlocks / kKeys: 4 / 2 uint32 words per Philox block.
enum class Role { kFull, kBatch, kSamples, kBlocks, kKeys };
enum class Io { kIn, kOut, kInOut };
enum class Layout { kRows, kFlat };

struct ArraySpec {
    const char* name;
    Role role;
    Io io;
};

// A scalar of a record and the values it admits, from the table's Scalar (kernels/spec.py): seeds and
// offsets are any uint64, counts (n_samples) and Adam's step are >= 1, reals are numbers (never NaN)
// within [lo, hi] (hi excluded when hi_open). Callers whose scalars arrive as run-time values (the XLA FFI
// handlers) check them with these; the Python API checks the same rules before any call.
enum class ScalarKind { kSeed, kOffset, kCount, kStep, kReal };

struct ScalarSpec {
    const char* name;
    ScalarKind kind;
    bool has_lo = false;
    double lo = 0;
    bool has_hi = false;
    double hi = 0;
    bool hi_open = false;
};

struct RowsExtent {
    static constexpr Layout kLayout = Layout::kRows;
    int64_t rows = 0, cols = 0;
};

struct FlatExtent {
    static constexpr Layout kLayout = Layout::kFlat;
    int64_t n = 0;
};

}  // namespace vk

// The helpers are inline functions: inside the per-ISA namespace, like every function of these headers
// (config.hpp), so no instruction-set build can lend its copy to another.
VK_BEGIN_NAMESPACE

// a * b for sizes a, b >= 0; false when the product does not fit in int64 (no array can be that big).
inline bool checked_mul(int64_t a, int64_t b, int64_t& out) {
    if (a < 0 || b < 0) return false;
    if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) return false;
    out = a * b;
    return true;
}

// Number of elements an array of `role` holds for the record's extent; false on overflow or a negative
// size (the caller refuses the call).
template <class Args>
bool element_count(const Args& a, Role role, int64_t& count) {
    if constexpr (Args::kLayout == Layout::kRows) {
        if (a.rows < 0 || a.cols < 0) return false;
        if (role == Role::kBatch) { count = a.rows; return true; }
        return role == Role::kFull && checked_mul(a.rows, a.cols, count);
    } else {
        if (a.n < 0) return false;
        switch (role) {
            case Role::kFull: count = a.n; return true;
            case Role::kSamples: return checked_mul(a.n, a.sample_count(), count);
            case Role::kBlocks: return checked_mul(a.n, 4, count);
            case Role::kKeys: return checked_mul(a.n, 2, count);
            default: return false;
        }
    }
}

// Fills a record's extent and scalars from a caller's two sequences (in both extensions pybind11 tuples:
// anything with size() and operator[] giving objects with cast<T>()), and checks the number of arrays the
// caller brings. Returns "" or what is wrong (the bindings raise it as ValueError). Scalars arrive in
// visit_scalars order, each converted to its field's type.
template <class Args, class Seq>
std::string fill_extent_and_scalars(Args& a, const Seq& extent, const Seq& scalars, size_t n_arrays) {
    const std::string kernel = Args::kName;
    if constexpr (Args::kLayout == Layout::kRows) {
        if (extent.size() != 2) return kernel + ": extent must be (rows, cols)";
        a.rows = extent[0].template cast<int64_t>();
        a.cols = extent[1].template cast<int64_t>();
    } else {
        if (extent.size() != 1) return kernel + ": extent must be (n,)";
        a.n = extent[0].template cast<int64_t>();
    }
    if (scalars.size() != static_cast<size_t>(Args::kNumScalars) || n_arrays != static_cast<size_t>(Args::kNumArrays))
        return kernel + ": expected " + std::to_string(Args::kNumArrays) + " arrays and " +
               std::to_string(Args::kNumScalars) + " scalars, got " + std::to_string(n_arrays) + " and " +
               std::to_string(scalars.size());
    size_t i = 0;
    a.visit_scalars([&](const ScalarSpec&, auto& value) {
        value = scalars[i++].template cast<std::decay_t<decltype(value)>>();
    });
    return std::string();
}

// The bytes an array of a call occupies, [begin, end) (host or device addresses alike; empty if it has no
// elements).
struct Span {
    uintptr_t begin = 0, end = 0;
};

// "" when no array the kernel writes (an output or an in-place array) shares memory with another array of
// the call; otherwise a message naming both. Overlap is refused, never "handled": the kernels read input
// elements after writing others (the GPU's latent_forward rereads mu and logvar after writing z; CPU
// loops run in chunks), and the CPU kernels promise the compiler (__restrict) that what they write is not
// read through another pointer. spans: one per array, in visit_arrays order.
template <class Args>
std::string overlap_error(Args& a, const Span* spans) {
    struct Entry { const char* name; Io io; int out_index; };
    Entry entries[Args::kNumArrays];
    int n = 0, n_out = 0;
    a.visit_arrays([&](const ArraySpec& spec, auto*&) {
        entries[n++] = Entry{spec.name, spec.io, spec.io == Io::kOut ? n_out++ : -1};
    });
    auto label = [&](const Entry& e) {
        if (e.io == Io::kOut)
            return std::string("output ") + e.name + (n_out > 1 ? " (out[" + std::to_string(e.out_index) + "])"
                                                                : std::string(" (out)"));
        return std::string(e.io == Io::kInOut ? "in-place argument " : "argument ") + e.name;
    };
    for (int i = 0; i < n; ++i) {
        if (entries[i].io == Io::kIn || spans[i].begin == spans[i].end) continue;
        for (int j = 0; j < n; ++j) {
            if (j == i || spans[j].begin == spans[j].end) continue;
            if (spans[i].begin < spans[j].end && spans[j].begin < spans[i].end)
                return std::string(Args::kName) + ": " + label(entries[i]) + " shares memory with " +
                       label(entries[j]) + "; arrays a kernel writes must not overlap any other argument "
                       "(pass a separate array, or copy the input first)";
        }
    }
    return std::string();
}

// Elements of the kernel's whole shape (what a kernel iterates over).
template <class Args>
int64_t full_size(const Args& a) {
    if constexpr (Args::kLayout == Layout::kRows) return a.rows * a.cols; else return a.n;
}

VK_END_NAMESPACE
