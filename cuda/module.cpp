// module.cpp: the pybind11 module vaekernels._cuda. Thin: device pointers arrive as integers, sizes as
// int64, the stream as an integer handle (CuPy's stream.ptr); each function releases the GIL, enqueues one
// kernel and returns without synchronising. Shapes, dtypes and devices are checked in Python
// (python/vaekernels/kernels/dispatch.py and cuda.py); here only what would make a launch unsafe is refused.
//
// The kernels of the table live in submodules f32, f64 and u32 (name(pointers, extent, scalars, stream)),
// registered from the X-macro lists of kernel_args.hpp; the MCMC step functions at the top level.
#include <pybind11/pybind11.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "kernels.hpp"

namespace py = pybind11;

namespace vk::gpu {
namespace {

template <class T> T* ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }
cudaStream_t stream_of(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// Number of usable devices; 0 (never an error) when there is no driver or no device.
int device_count() {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();  // clear it so it does not surface in a later launch check
        return 0;
    }
    return n;
}

// Why no device is usable ("" when one is).
std::string device_error() {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return error_message(e, "cudaGetDeviceCount");
    }
    return n > 0 ? std::string() : std::string("no CUDA device is usable (cudaGetDeviceCount found 0 devices)");
}

// Fills a kernel's record from device pointers (integers, in the record's order: parameters, then
// outputs), the extent and the scalars. Device memory cannot be measured from here, so sizes are checked
// in Python (kernels/dispatch.py, the same table); here only what would make a launch unsafe is refused:
// wrong counts, negative extents, sizes that overflow int64, and outputs that overlap another argument.
template <class E, class Args>
void fill(Args& a, const py::tuple& pointers, const py::tuple& extent, const py::tuple& scalars) {
    const std::string kernel = Args::kName;
    if (const std::string err = fill_extent_and_scalars(a, extent, scalars, pointers.size()); !err.empty())
        throw py::value_error(err);
    size_t ai = 0;
    Span spans[Args::kNumArrays];
    a.visit_arrays([&](const ArraySpec& spec, auto*& ptr) {
        int64_t count = 0;
        if (!element_count(a, spec.role, count))
            throw py::value_error(kernel + ": the extent and n_samples give a size that overflows int64");
        const auto begin = pointers[ai].cast<uintptr_t>();
        if (begin % sizeof(E) != 0)
            throw py::value_error(kernel + " argument " + spec.name + " must be aligned to its element size");
        ptr = reinterpret_cast<std::remove_reference_t<decltype(ptr)>>(begin);
        spans[ai++] = Span{begin, begin + static_cast<uintptr_t>(count) * sizeof(E)};
    });
    if (const std::string err = overlap_error(a, spans); !err.empty()) throw py::value_error(err);
}

template <class E, class Args>
void def_kernel(py::module_& m, void (*launch)(const Args&, cudaStream_t), const char* doc) {
    m.def(Args::kName, [launch](const py::tuple& pointers, const py::tuple& extent, const py::tuple& scalars,
                                uintptr_t stream) {
        Args a;
        fill<E>(a, pointers, extent, scalars);
        py::gil_scoped_release nogil;
        launch(a, stream_of(stream));
    }, py::arg("pointers"), py::arg("extent"), py::arg("scalars"), py::arg("stream"), doc);
}

// The launchers for the XLA FFI handlers of _jax (kernel_tables.hpp), the stream passed as void*.
py::capsule launcher_set() {
    static const GpuLauncherSet set = [] {
        GpuLauncherSet s{};
#define VK_SET_LAUNCHER(name, Args)                                                                        \
    s.f32.name = [](const Args<float>& a, void* st) { name<float>(a, static_cast<cudaStream_t>(st)); };     \
    s.f64.name = [](const Args<double>& a, void* st) { name<double>(a, static_cast<cudaStream_t>(st)); };
        VK_FLOAT_KERNELS(VK_SET_LAUNCHER)
#undef VK_SET_LAUNCHER
        s.philox4x32_10 = [](const Philox4x32_10Args& a, void* st) { philox4x32_10(a, static_cast<cudaStream_t>(st)); };
        return s;
    }();
    return py::capsule(static_cast<const void*>(&set), kGpuLauncherSetCapsule);
}

void def_kernels(py::module_& m) {
    m.def("_launcher_set", &launcher_set, "The CUDA launchers as a capsule of function pointers (for _jax).");
    auto f32 = m.def_submodule("f32", "float32 kernels: name(pointers, extent, scalars, stream)");
    auto f64 = m.def_submodule("f64", "float64 kernels: name(pointers, extent, scalars, stream)");
    auto u32 = m.def_submodule("u32", "uint32 kernels: name(pointers, extent, scalars, stream)");
#define VK_DEF_FLOAT(name, Args)                 \
    def_kernel<float, Args<float>>(f32, &name<float>, #name); \
    def_kernel<double, Args<double>>(f64, &name<double>, #name);
    VK_FLOAT_KERNELS(VK_DEF_FLOAT)
#undef VK_DEF_FLOAT
#define VK_DEF_UINT32(name, Args) def_kernel<uint32_t, Args>(u32, &name, #name);
    VK_UINT32_KERNELS(VK_DEF_UINT32)
#undef VK_DEF_UINT32
}

// MCMC: the built-in targets' parameters as the CPU binding builds them (cpp/bindings/register_mcmc.cpp),
// device pointers for their arrays, and the sampler state (cuda/kernels.hpp, MhState).
MhState mh_state(uintptr_t x, uintptr_t lp, uintptr_t step_size, uintptr_t chol, int64_t chains, int64_t dim,
                 uint64_t seed, uint64_t step, uint64_t chain_offset, uintptr_t xp, uintptr_t scratch,
                 uintptr_t accepted, uintptr_t n_nan) {
    return MhState{ptr<double>(x), ptr<double>(lp), ptr<const double>(step_size), ptr<const double>(chol), chains, dim,
                   seed, step, chain_offset, ptr<double>(xp), ptr<double>(scratch), ptr<int64_t>(accepted),
                   ptr<int64_t>(n_nan)};
}

void def_mcmc(py::module_& m) {
    using P = uintptr_t;
    using I = int64_t;
    using U = uint64_t;
    const auto nogil = py::call_guard<py::gil_scoped_release>();
#define VK_MH_STATE_ARGS                                                                                          \
    py::arg("x"), py::arg("lp"), py::arg("step_size"), py::arg("chol"), py::arg("chains"), py::arg("seed"),       \
        py::arg("step"), py::arg("chain_offset"), py::arg("xp"), py::arg("scratch"), py::arg("accepted"),         \
        py::arg("n_nan"), py::arg("stream")

    m.def("mh_step_gaussian", [](P mean, P inv_chol, double log_norm, I dim, P x, P lp, P ss, P chol, I chains, U seed,
                                 U step, U co, P xp, P scratch, P acc, P nn, P s) {
        const GaussianParams p{ptr<const double>(mean), ptr<const double>(inv_chol), log_norm, dim};
        mh_step_gaussian(p, mh_state(x, lp, ss, chol, chains, dim, seed, step, co, xp, scratch, acc, nn), stream_of(s));
    }, py::arg("mean"), py::arg("inv_chol"), py::arg("log_norm"), py::arg("dim"), VK_MH_STATE_ARGS, nogil);
    m.def("mh_step_banana", [](double b, double sigma1, I dim, P x, P lp, P ss, P chol, I chains, U seed, U step, U co,
                               P xp, P scratch, P acc, P nn, P s) {
        mh_step_banana(make_banana_params(b, sigma1, dim),
                       mh_state(x, lp, ss, chol, chains, dim, seed, step, co, xp, scratch, acc, nn), stream_of(s));
    }, py::arg("b"), py::arg("sigma1"), py::arg("dim"), VK_MH_STATE_ARGS, nogil);
    m.def("mh_step_logistic", [](P X, P y, I n_obs, I dim, double prior_scale, P x, P lp, P ss, P chol, I chains,
                                 U seed, U step, U co, P xp, P scratch, P acc, P nn, P s) {
        mh_step_logistic(make_logistic_params(ptr<const double>(X), ptr<const double>(y), n_obs, dim, prior_scale),
                         mh_state(x, lp, ss, chol, chains, dim, seed, step, co, xp, scratch, acc, nn), stream_of(s));
    }, py::arg("X"), py::arg("y"), py::arg("n_obs"), py::arg("dim"), py::arg("prior_scale"), VK_MH_STATE_ARGS, nogil);
#undef VK_MH_STATE_ARGS

    m.def("target_log_prob_gaussian", [](P mean, P inv_chol, double log_norm, I dim, P x, I chains, P scratch, P lp,
                                         P s) {
        const GaussianParams p{ptr<const double>(mean), ptr<const double>(inv_chol), log_norm, dim};
        target_log_prob_gaussian(p, ptr<const double>(x), chains, ptr<double>(scratch), ptr<double>(lp), stream_of(s));
    }, py::arg("mean"), py::arg("inv_chol"), py::arg("log_norm"), py::arg("dim"), py::arg("x"), py::arg("chains"),
       py::arg("scratch"), py::arg("lp"), py::arg("stream"), nogil);
    m.def("target_log_prob_banana", [](double b, double sigma1, I dim, P x, I chains, P scratch, P lp, P s) {
        target_log_prob_banana(make_banana_params(b, sigma1, dim), ptr<const double>(x), chains, ptr<double>(scratch),
                               ptr<double>(lp), stream_of(s));
    }, py::arg("b"), py::arg("sigma1"), py::arg("dim"), py::arg("x"), py::arg("chains"), py::arg("scratch"),
       py::arg("lp"), py::arg("stream"), nogil);
    m.def("target_log_prob_logistic", [](P X, P y, I n_obs, I dim, double prior_scale, P x, I chains, P scratch, P lp,
                                         P s) {
        target_log_prob_logistic(make_logistic_params(ptr<const double>(X), ptr<const double>(y), n_obs, dim, prior_scale), ptr<const double>(x), chains,
                                 ptr<double>(scratch), ptr<double>(lp), stream_of(s));
    }, py::arg("X"), py::arg("y"), py::arg("n_obs"), py::arg("dim"), py::arg("prior_scale"), py::arg("x"),
       py::arg("chains"), py::arg("scratch"), py::arg("lp"), py::arg("stream"), nogil);
}

}  // namespace
}  // namespace vk::gpu

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "vaekernels CUDA kernels (private: call the functions of the vaekernels package with CuPy arrays)";
    py::register_exception<vk::gpu::CudaError>(m, "CudaError", PyExc_RuntimeError);

    m.def("device_count", &vk::gpu::device_count, "Usable CUDA devices (0 when there is no driver or no device).");
    m.def("device_error", &vk::gpu::device_error, "Why no CUDA device is usable, or '' when one is.");
    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    m.attr("runtime_version") = rt;

    vk::gpu::def_kernels(m);
    vk::gpu::def_mcmc(m);
}
