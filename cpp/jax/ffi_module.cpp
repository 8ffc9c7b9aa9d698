// ffi_module.cpp: the pybind11 module vaekernels._jax: XLA FFI handlers for every kernel of the table
// (CPU, and CUDA when the CUDA extension is built), for jax.ffi.ffi_call. Built only on request (the XLA
// FFI headers come with the jax wheel; see CMakeLists.txt and build_backend/).
//
// The handlers hold no kernel code: _core hands over its CPU kernel set and _cuda its launchers as
// capsules (kernel_tables.hpp), so one kernel is one compiled function for every front end.
//
// Calling convention of a handler (python/vaekernels/jax.py builds the calls from the same table):
//   arguments: the kernel's array parameters in order (in-place arrays included), then one buffer per
//              C++ scalar of the record, in order: a uint32[2] (low word, high word) carrying its 64 bits
//              (the value of an integer, the IEEE bits of a double), or one element: a signed or unsigned
//              integer or a float (traced JAX values arrive so);
//   results:   the in-place arrays (their updated values) in order, then the outputs in order.
// The extent comes from the buffers' shapes. Before any kernel runs, the handler checks what would make it
// unsafe or wrong: buffer counts, element types, element counts against the roles, every scalar against its
// rule in the table (ScalarSpec: a traced beta1 = 1 or step = 0 is refused as the same Python value is)
// and the stream end (offset + positions read <= 2^64); Python checks all of these at trace time for the
// values it knows. On the GPU every operand is device memory, which the handler cannot read on the host:
// there the kernels that take scalars (seed, offset, step, reals) return an error saying so instead of
// reading them; the others run.
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "vaekernels/kernel_abi.hpp"
#include "vaekernels/kernel_tables.hpp"
#include "xla/ffi/api/ffi.h"

namespace py = pybind11;
namespace ffi = xla::ffi;

namespace vk::jaxffi {
namespace {

const CpuKernelSet* g_cpu = nullptr;      // from _core, set by bind()
const GpuLauncherSet* g_gpu = nullptr;    // from _cuda, when it is built

template <class E> constexpr ffi::DataType kType = ffi::DataType::F32;
template <> constexpr ffi::DataType kType<double> = ffi::DataType::F64;
template <> constexpr ffi::DataType kType<uint32_t> = ffi::DataType::U32;

template <class T> const CpuKernels<T>& cpu_table() {
    if constexpr (std::is_same_v<T, float>) return g_cpu->f32; else return g_cpu->f64;
}
template <class T> const GpuLaunchers<T>& gpu_table() {
    if constexpr (std::is_same_v<T, float>) return g_gpu->f32; else return g_gpu->f64;
}

ffi::Error invalid(const std::string& kernel, const std::string& what) {
    return ffi::Error::InvalidArgument("vaekernels " + kernel + ": " + what);
}

// Shortest decimal text of a double that reads back to it (error messages name the bad value).
std::string number_text(double v) {
    char buf[40];
    for (int precision = 1; precision <= 17; ++precision) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (std::strtod(buf, nullptr) == v || v != v) break;
    }
    return buf;
}

// Reads a scalar buffer into the record field `value` and checks it against the table's rule for it
// (ScalarSpec). The buffers: a uint32[2] (low word, high word) carrying the field's 64 bits (an integer's
// value, a double's IEEE bits), or one element: a signed integer (negative values refused: -1 is never
// silently 2^32 - 1 or 2^64 - 1), an unsigned one, or a float. Returns "" or what is wrong, naming the
// scalar and its value: traced values reach the kernel only through here.
template <class V>
std::string read_scalar(const ffi::AnyBuffer& b, const ScalarSpec& spec, V& value) {
    const std::string name = spec.name;
    const size_t n = b.element_count();
    const void* p = b.untyped_data();
    double real = 0;            // the value as a double, for the rules below
    bool integral = true;
    uint64_t bits = 0;
    if (b.element_type() == ffi::DataType::U32 && n == 2) {
        const auto* w = static_cast<const uint32_t*>(p);
        bits = static_cast<uint64_t>(w[0]) | (static_cast<uint64_t>(w[1]) << 32);
        if constexpr (std::is_same_v<V, double>) { std::memcpy(&value, &bits, sizeof value); real = value; integral = false; }
        else { value = static_cast<V>(bits); real = static_cast<double>(bits); }
    } else if (n == 1) {
        switch (b.element_type()) {
            case ffi::DataType::S32: case ffi::DataType::S64: {
                const int64_t v = b.element_type() == ffi::DataType::S32 ? *static_cast<const int32_t*>(p)
                                                                          : *static_cast<const int64_t*>(p);
                if (v < 0)
                    return name + (spec.kind == ScalarKind::kStep || spec.kind == ScalarKind::kCount
                                       ? " must be in [1, 2**62), got " : " must be >= 0, got ") + std::to_string(v);
                bits = static_cast<uint64_t>(v);
                break;
            }
            case ffi::DataType::U32: bits = *static_cast<const uint32_t*>(p); break;
            case ffi::DataType::U64: bits = *static_cast<const uint64_t*>(p); break;
            case ffi::DataType::F32: real = *static_cast<const float*>(p); integral = false; break;
            case ffi::DataType::F64: real = *static_cast<const double*>(p); integral = false; break;
            default: return "scalar " + name + " must be a uint32[2] (64-bit) buffer or an integer or float scalar";
        }
        if (integral) { value = static_cast<V>(bits); real = static_cast<double>(bits); }
        else if constexpr (std::is_same_v<V, double>) value = real;
        else {
            if (!(real >= 0) || real != std::floor(real) || real >= 18446744073709551616.0)
                return name + " must be an integer >= 0, got " + number_text(real);
            value = static_cast<V>(real);
            bits = static_cast<uint64_t>(real);
            integral = true;
        }
    } else {
        return "scalar " + name + " must be a uint32[2] (64-bit) buffer or an integer or float scalar";
    }
    switch (spec.kind) {
        case ScalarKind::kSeed: case ScalarKind::kOffset: return std::string();
        case ScalarKind::kCount: case ScalarKind::kStep:
            if (integral ? bits == 0 || bits >= (uint64_t{1} << 62) : !(real >= 1))
                return name + " must be in [1, 2**62), got " + (integral ? std::to_string(bits) : number_text(real));
            return std::string();
        case ScalarKind::kReal:
            if (real != real) return name + " must be a number, got nan";
            if (spec.has_lo && spec.has_hi &&
                !(real >= spec.lo && (spec.hi_open ? real < spec.hi : real <= spec.hi)))
                return name + " must be in [" + number_text(spec.lo) + ", " + number_text(spec.hi) +
                       (spec.hi_open ? ")" : "]") + ", got " + number_text(real);
            if (spec.has_lo && !spec.has_hi && !(real >= spec.lo))
                return name + " must be >= " + number_text(spec.lo) + ", got " + number_text(real);
            return std::string();
    }
    return std::string();
}

// Fills the record from the call frame; "" on success, else what is wrong.
template <class E, class Args>
std::string fill(Args& a, ffi::RemainingArgs& args, ffi::RemainingRets& rets, void* stream) {
    const std::string kernel = Args::kName;
    int n_in = 0, n_ret = 0;
    a.visit_arrays([&](const ArraySpec& spec, auto*&) {
        n_in += spec.io != Io::kOut;
        n_ret += spec.io != Io::kIn;
    });
    if (args.size() != static_cast<size_t>(n_in + Args::kNumScalars) || rets.size() != static_cast<size_t>(n_ret))
        return "expected " + std::to_string(n_in + Args::kNumScalars) + " arguments and " + std::to_string(n_ret) +
               " results, got " + std::to_string(args.size()) + " and " + std::to_string(rets.size());
    // the extent, from the first array that has the kernel's whole shape
    bool have_extent = false;
    size_t ai = 0, ri = 0;
    std::string err;
    a.visit_arrays([&](const ArraySpec& spec, auto*&) {
        if (have_extent || !err.empty()) return;
        ffi::AnyBuffer b = spec.io == Io::kOut ? *rets.get<ffi::AnyBuffer>(ri).value() : args.get<ffi::AnyBuffer>(ai).value();
        spec.io == Io::kOut ? ++ri : ++ai;
        if (spec.role != Role::kFull && spec.role != Role::kBlocks) return;
        const auto dims = b.dimensions();
        if constexpr (Args::kLayout == Layout::kRows) {
            if (dims.size() == 0) { err = std::string(spec.name) + " must have at least one dimension"; return; }
            int64_t rows = 1;
            for (size_t i = 0; i + 1 < dims.size(); ++i) rows *= dims[i];
            a.rows = rows;
            a.cols = dims[dims.size() - 1];
        } else if (spec.role == Role::kBlocks) {
            a.n = dims.size() ? dims[0] : 0;
        } else {
            a.n = static_cast<int64_t>(b.element_count());
        }
        have_extent = true;
    });
    if (!err.empty()) return err;
    if (!have_extent) return "no array gives the extent";
    // scalars, after the arrays (host memory only: see the top of this file)
    if (stream != nullptr && Args::kNumScalars > 0)
        return "on a GPU this kernel is not available through vaekernels.jax yet: its scalar operands (seed, "
               "offset, step, reals) are device memory, which the handler cannot read";
    size_t si = static_cast<size_t>(n_in);
    a.visit_scalars([&](const ScalarSpec& spec, auto& value) {
        if (err.empty()) err = read_scalar(args.get<ffi::AnyBuffer>(si++).value(), spec, value);
    });
    if (!err.empty()) return err;
    // arrays: pointers, types and sizes; in-place arrays are copied to their results first
    ai = 0;
    ri = 0;
    size_t inplace_ret = 0;
    int n_inplace = 0;
    a.visit_arrays([&](const ArraySpec& spec, auto*&) { n_inplace += spec.io == Io::kInOut; });
    size_t out_ret = static_cast<size_t>(n_inplace);
    a.visit_arrays([&](const ArraySpec& spec, auto*& ptr) {
        if (!err.empty()) return;
        int64_t count = 0;
        if (!element_count(a, spec.role, count)) { err = "the extent gives a size that overflows int64"; return; }
        ffi::AnyBuffer in = spec.io != Io::kOut ? args.get<ffi::AnyBuffer>(ai++).value() : ffi::AnyBuffer(nullptr);
        if (spec.io != Io::kOut && (in.element_type() != kType<E> || static_cast<int64_t>(in.element_count()) != count)) {
            err = std::string(spec.name) + " has the wrong element type or size";
            return;
        }
        void* data = spec.io != Io::kOut ? in.untyped_data() : nullptr;
        if (spec.io != Io::kIn) {
            auto r = rets.get<ffi::AnyBuffer>(spec.io == Io::kInOut ? inplace_ret++ : out_ret++).value();
            if (r->element_type() != kType<E> || static_cast<int64_t>(r->element_count()) != count) {
                err = std::string(spec.name) + " (result) has the wrong element type or size";
                return;
            }
            if (spec.io == Io::kInOut && r->untyped_data() != data && count > 0) {
                if (stream == nullptr) std::memcpy(r->untyped_data(), data, static_cast<size_t>(count) * sizeof(E));
                else { err = "in-place arrays must be aliased to their results on the GPU"; return; }
            }
            data = r->untyped_data();
        }
        ptr = static_cast<std::remove_reference_t<decltype(ptr)>>(data);
    });
    if (!err.empty()) return err;
    if constexpr (std::is_same_v<E, float> || std::is_same_v<E, double>) {
        // the stream end: offset + positions read <= 2^64 (positions never wrap)
        uint64_t offset = 0;
        bool has_offset = false;
        a.visit_scalars([&](const ScalarSpec& spec, auto& value) {
            if (spec.kind == ScalarKind::kOffset) { offset = static_cast<uint64_t>(value); has_offset = true; }
        });
        if (has_offset) {
            int64_t count = 0;
            element_count(a, Args::kLayout == Layout::kRows ? Role::kFull : Role::kFull, count);
            const int64_t total = static_cast<int64_t>(count) * a.sample_count();
            if (total > 0 && static_cast<uint64_t>(total - 1) > ~offset)
                return "offset + number of draws must not exceed 2**64 (the stream length)";
        }
    }
    return std::string();
}

template <class E, class Args>
ffi::Error run_cpu(ffi::RemainingArgs args, ffi::RemainingRets rets) {
    Args a;
    if (const std::string err = fill<E>(a, args, rets, nullptr); !err.empty()) return invalid(Args::kName, err);
    if (g_cpu == nullptr) return ffi::Error::Internal("vaekernels._jax is not bound to _core (import vaekernels.jax)");
    if constexpr (std::is_same_v<E, uint32_t>) g_cpu->philox4x32_10(a);
    else {
#define VK_CALL(name, ArgsT) if constexpr (std::is_same_v<Args, ArgsT<E>>) cpu_table<E>().name(a);
        VK_FLOAT_KERNELS(VK_CALL)
#undef VK_CALL
    }
    return ffi::Error::Success();
}

template <class E, class Args>
ffi::Error run_gpu(void* stream, ffi::RemainingArgs args, ffi::RemainingRets rets) {
    Args a;
    if (const std::string err = fill<E>(a, args, rets, stream); !err.empty()) return invalid(Args::kName, err);
    if (g_gpu == nullptr) return ffi::Error::Internal("vaekernels._jax has no CUDA launchers (no CUDA build)");
    try {
        if constexpr (std::is_same_v<E, uint32_t>) g_gpu->philox4x32_10(a, stream);
        else {
#define VK_CALL(name, ArgsT) if constexpr (std::is_same_v<Args, ArgsT<E>>) gpu_table<E>().name(a, stream);
            VK_FLOAT_KERNELS(VK_CALL)
#undef VK_CALL
        }
    } catch (const std::exception& e) {
        return ffi::Error::Internal(e.what());
    }
    return ffi::Error::Success();
}

template <class E, class Args>
XLA_FFI_Error* cpu_handler(XLA_FFI_CallFrame* frame) {
    static auto* h = ffi::Ffi::Bind().RemainingArgs().RemainingRets().To(run_cpu<E, Args>).release();
    return h->Call(frame);
}

template <class E, class Args>
XLA_FFI_Error* gpu_handler(XLA_FFI_CallFrame* frame) {
    static auto* h = ffi::Ffi::Bind().Ctx<ffi::PlatformStream<void*>>().RemainingArgs().RemainingRets()
                         .To(run_gpu<E, Args>).release();
    return h->Call(frame);
}

py::capsule capsule_of(XLA_FFI_Handler* fn) { return py::capsule(reinterpret_cast<void*>(fn)); }

void bind(py::capsule cpu, py::object gpu) {
    if (std::string(cpu.name()) != kCpuKernelSetCapsule)
        throw py::value_error("not a vaekernels CPU kernel set: " + std::string(cpu.name()));
    g_cpu = static_cast<const CpuKernelSet*>(cpu.get_pointer());
    if (!gpu.is_none()) {
        auto c = gpu.cast<py::capsule>();
        if (std::string(c.name()) != kGpuLauncherSetCapsule)
            throw py::value_error("not a vaekernels GPU launcher set: " + std::string(c.name()));
        g_gpu = static_cast<const GpuLauncherSet*>(c.get_pointer());
    }
}

}  // namespace
}  // namespace vk::jaxffi

PYBIND11_MODULE(_jax, m) {
    using namespace vk;
    using namespace vk::jaxffi;
    m.doc() = "vaekernels XLA FFI handlers (private: use vaekernels.jax)";
    m.def("bind", &bind, py::arg("cpu_kernels"), py::arg("gpu_launchers") = py::none(),
          "Point the handlers at _core's kernels (and _cuda's launchers).");
    py::dict cpu, gpu;
#define VK_REGISTER(name, Args)                                                                  \
    cpu[#name ".float32"] = capsule_of(cpu_handler<float, Args<float>>);                         \
    cpu[#name ".float64"] = capsule_of(cpu_handler<double, Args<double>>);                       \
    gpu[#name ".float32"] = capsule_of(gpu_handler<float, Args<float>>);                         \
    gpu[#name ".float64"] = capsule_of(gpu_handler<double, Args<double>>);
    VK_FLOAT_KERNELS(VK_REGISTER)
#undef VK_REGISTER
    cpu["philox4x32_10.uint32"] = capsule_of(cpu_handler<uint32_t, Philox4x32_10Args>);
    gpu["philox4x32_10.uint32"] = capsule_of(gpu_handler<uint32_t, Philox4x32_10Args>);
    m.attr("cpu_handlers") = cpu;
    m.attr("gpu_handlers") = gpu;
}
