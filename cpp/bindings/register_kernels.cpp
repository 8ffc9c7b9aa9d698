// register_kernels.cpp: every kernel of the table as a function of _core.f32 / _core.f64 / _core.u32,
// registered from the X-macro lists of kernel_args.hpp, so no kernel signature is written here.
//
// Each function is name(arrays, extent, scalars): the arrays in the order of the kernel's record
// (parameters, then outputs), the extent ((rows, cols) or (n,)) and the C++ scalars in signature order.
// The Python layer (python/vaekernels/kernels/dispatch.py) validates, makes inputs contiguous and allocates
// outputs; this is the last line of defence, so that a direct call can never read or write out of bounds:
// every array must have exactly the record's dtype, be C-contiguous, hold exactly the number of elements
// its role implies (sizes computed with overflow checks), and outputs must be writable.
#include <string>

#include "common.hpp"

namespace vk::bind {

namespace {

template <class E>
const char* dtype_name() {
    if constexpr (std::is_same_v<E, float>) return "float32";
    else if constexpr (std::is_same_v<E, double>) return "float64";
    else return "uint32";
}

// Fills the record from Python; throws ValueError / TypeError naming the kernel and the argument.
template <class E, class Args>
void fill(Args& a, const py::tuple& arrays, const py::tuple& extent, const py::tuple& scalars) {
    const char* kernel = Args::kName;   // messages are built only when a check fails (the per-step path)
    if (const std::string err = fill_extent_and_scalars(a, extent, scalars, arrays.size()); !err.empty())
        throw py::value_error(err);
    size_t ai = 0;
    Span spans[Args::kNumArrays];
    a.visit_arrays([&](const ArraySpec& spec, auto*& ptr) {
        const auto name = [&] { return std::string(kernel) + " argument " + spec.name; };
        py::handle h = arrays[ai++];
        if (!py::isinstance<py::array>(h)) throw py::type_error(name() + " must be a NumPy array");
        auto arr = py::reinterpret_borrow<py::array>(h);
        if (!py::isinstance<py::array_t<E>>(arr))   // dtype equivalence (native byte order), not identity
            throw py::type_error(name() + " must have dtype " + dtype_name<E>() + ", got " +
                                 std::string(py::str(arr.dtype())));
        if (!(arr.flags() & py::array::c_style)) throw py::value_error(name() + " must be C-contiguous");
        if (!(arr.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
            throw py::value_error(name() + " must be aligned to its element size");
        int64_t count = 0;
        if (!element_count(a, spec.role, count))
            throw py::value_error(std::string(kernel) + ": the extent and n_samples give a size that overflows int64");
        if (static_cast<int64_t>(arr.size()) != count)
            throw py::value_error(name() + " must hold " + std::to_string(count) + " elements, got " +
                                  std::to_string(arr.size()) + " (shape " + shape_str(arr) + ")");
        if (spec.io != Io::kIn && !arr.writeable()) throw py::value_error(name() + " is read-only");
        using P = std::remove_reference_t<decltype(ptr)>;
        ptr = static_cast<P>(const_cast<void*>(arr.data()));   // writability checked above for outputs
        const auto begin = reinterpret_cast<uintptr_t>(arr.data());
        spans[ai - 1] = Span{begin, begin + static_cast<uintptr_t>(count) * sizeof(E)};
    });
    if (const std::string err = overlap_error(a, spans); !err.empty()) throw py::value_error(err);
}

template <class E, class Args>
void def_kernel(py::module_& m, void (*run)(const Args&), const char* doc) {
    m.def(Args::kName, [run](const py::tuple& arrays, const py::tuple& extent, const py::tuple& scalars) {
        Args a;
        fill<E>(a, arrays, extent, scalars);
        py::gil_scoped_release nogil;
        run(a);
    }, py::arg("arrays"), py::arg("extent"), py::arg("scalars"), doc);
}

template <class T> const cpu::KernelTable<T>& kt() { return cpu::table<T>(cpu::kernels()); }

// The kernel set of the level in use, for the XLA FFI handlers of _jax (kernel_tables.hpp).
py::capsule kernel_set() {
    static const CpuKernelSet set = [] {
        const cpu::Kernels& k = cpu::kernels();
        return CpuKernelSet{k.name, k.f32, k.f64, &cpu::philox4x32_10};
    }();
    return py::capsule(static_cast<const void*>(&set), kCpuKernelSetCapsule);
}

}  // namespace

void register_kernels(py::module_& m) {
    m.def("_kernel_set", &kernel_set, "The CPU kernels as a capsule of function pointers (for vaekernels._jax).");
    auto f32 = m.def_submodule("f32", "float32 kernels: name(arrays, extent, scalars)");
    auto f64 = m.def_submodule("f64", "float64 kernels: name(arrays, extent, scalars)");
    auto u32 = m.def_submodule("u32", "uint32 kernels: name(arrays, extent, scalars)");
#define VK_DEF_FLOAT(name, Args)                                                                     \
    def_kernel<float, Args<float>>(f32, [](const Args<float>& a) { kt<float>().name(a); }, #name);   \
    def_kernel<double, Args<double>>(f64, [](const Args<double>& a) { kt<double>().name(a); }, #name);
    VK_FLOAT_KERNELS(VK_DEF_FLOAT)
#undef VK_DEF_FLOAT
#define VK_DEF_UINT32(name, Args) def_kernel<uint32_t, Args>(u32, &cpu::name, #name);
    VK_UINT32_KERNELS(VK_DEF_UINT32)
#undef VK_DEF_UINT32
}

}  // namespace vk::bind
