// module.cpp: the pybind11 module vaekernels._cuda. Thin: device pointers arrive as integers, sizes as
// int64, the stream as an integer handle (CuPy's stream.ptr); each function releases the GIL, enqueues one
// kernel and returns without synchronising. Shapes, dtypes and devices are checked in Python
// (python/vaekernels/_cuda_dispatch.py); here only what would make a launch unsafe is refused.
//
// Functions live in two submodules, f32 and f64, with the same names and signatures.
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

template <class T>
void def_kernels(py::module_& m) {
    using P = uintptr_t;
    using I = int64_t;
    using U = uint64_t;
    const auto nogil = py::call_guard<py::gil_scoped_release>();

    m.def("randn", [](P out, I n, U seed, U offset, P s) {
        randn<T>(seed, offset, n, ptr<T>(out), stream_of(s));
    }, py::arg("out"), py::arg("n"), py::arg("seed"), py::arg("offset"), py::arg("stream"), nogil);
    m.def("rand", [](P out, I n, U seed, U offset, P s) {
        rand<T>(seed, offset, n, ptr<T>(out), stream_of(s));
    }, py::arg("out"), py::arg("n"), py::arg("seed"), py::arg("offset"), py::arg("stream"), nogil);
    m.def("reparameterize", [](P mu, P lv, I n, I n_samples, U seed, U offset, P z, P s) {
        reparameterize<T>(ptr<const T>(mu), ptr<const T>(lv), n, n_samples, seed, offset, ptr<T>(z), stream_of(s));
    }, py::arg("mu"), py::arg("logvar"), py::arg("n"), py::arg("n_samples"), py::arg("seed"), py::arg("offset"),
       py::arg("out"), py::arg("stream"), nogil);

    m.def("kl_standard_normal", [](P mu, P lv, I rows, I cols, P kl, P s) {
        kl_standard_normal<T>(ptr<const T>(mu), ptr<const T>(lv), rows, cols, ptr<T>(kl), stream_of(s));
    }, py::arg("mu"), py::arg("logvar"), py::arg("rows"), py::arg("cols"), py::arg("out"), py::arg("stream"), nogil);
    m.def("kl_standard_normal_backward", [](P g, P mu, P lv, I rows, I cols, P dmu, P dlv, P s) {
        kl_standard_normal_backward<T>(ptr<const T>(g), ptr<const T>(mu), ptr<const T>(lv), rows, cols, ptr<T>(dmu),
                                       ptr<T>(dlv), stream_of(s));
    }, py::arg("grad"), py::arg("mu"), py::arg("logvar"), py::arg("rows"), py::arg("cols"), py::arg("dmu"),
       py::arg("dlogvar"), py::arg("stream"), nogil);
    m.def("kl_normal", [](P mq, P lq, P mp, P lp, I rows, I cols, P kl, P s) {
        kl_normal<T>(ptr<const T>(mq), ptr<const T>(lq), ptr<const T>(mp), ptr<const T>(lp), rows, cols, ptr<T>(kl),
                     stream_of(s));
    }, py::arg("mu_q"), py::arg("logvar_q"), py::arg("mu_p"), py::arg("logvar_p"), py::arg("rows"), py::arg("cols"),
       py::arg("out"), py::arg("stream"), nogil);
    m.def("kl_normal_backward", [](P g, P mq, P lq, P mp, P lp, I rows, I cols, P a, P b, P c, P d, P s) {
        kl_normal_backward<T>(ptr<const T>(g), ptr<const T>(mq), ptr<const T>(lq), ptr<const T>(mp), ptr<const T>(lp),
                              rows, cols, ptr<T>(a), ptr<T>(b), ptr<T>(c), ptr<T>(d), stream_of(s));
    }, py::arg("grad"), py::arg("mu_q"), py::arg("logvar_q"), py::arg("mu_p"), py::arg("logvar_p"), py::arg("rows"),
       py::arg("cols"), py::arg("dmu_q"), py::arg("dlogvar_q"), py::arg("dmu_p"), py::arg("dlogvar_p"),
       py::arg("stream"), nogil);

    m.def("bernoulli_log_prob", [](P x, P l, I rows, I cols, P out, P s) {
        bernoulli_log_prob<T>(ptr<const T>(x), ptr<const T>(l), rows, cols, ptr<T>(out), stream_of(s));
    }, py::arg("x"), py::arg("logits"), py::arg("rows"), py::arg("cols"), py::arg("out"), py::arg("stream"), nogil);
    m.def("bernoulli_log_prob_and_grad", [](P x, P l, I rows, I cols, P out, P dl, P s) {
        bernoulli_log_prob_and_grad<T>(ptr<const T>(x), ptr<const T>(l), rows, cols, ptr<T>(out), ptr<T>(dl),
                                       stream_of(s));
    }, py::arg("x"), py::arg("logits"), py::arg("rows"), py::arg("cols"), py::arg("out"), py::arg("dlogits"),
       py::arg("stream"), nogil);
    m.def("normal_log_prob", [](P x, P mean, P lv, I rows, I cols, P out, P s) {
        normal_log_prob<T>(ptr<const T>(x), ptr<const T>(mean), ptr<const T>(lv), rows, cols, ptr<T>(out),
                           stream_of(s));
    }, py::arg("x"), py::arg("mean"), py::arg("logvar"), py::arg("rows"), py::arg("cols"), py::arg("out"),
       py::arg("stream"), nogil);
    m.def("normal_log_prob_and_grad", [](P x, P mean, P lv, I rows, I cols, P out, P dm, P dl, P s) {
        normal_log_prob_and_grad<T>(ptr<const T>(x), ptr<const T>(mean), ptr<const T>(lv), rows, cols, ptr<T>(out),
                                    ptr<T>(dm), ptr<T>(dl), stream_of(s));
    }, py::arg("x"), py::arg("mean"), py::arg("logvar"), py::arg("rows"), py::arg("cols"), py::arg("out"),
       py::arg("dmean"), py::arg("dlogvar"), py::arg("stream"), nogil);
    m.def("standard_normal_log_prob", [](P z, I rows, I cols, P out, P s) {
        standard_normal_log_prob<T>(ptr<const T>(z), rows, cols, ptr<T>(out), stream_of(s));
    }, py::arg("z"), py::arg("rows"), py::arg("cols"), py::arg("out"), py::arg("stream"), nogil);
    m.def("standard_normal_log_prob_and_grad", [](P z, I rows, I cols, P out, P dz, P s) {
        standard_normal_log_prob_and_grad<T>(ptr<const T>(z), rows, cols, ptr<T>(out), ptr<T>(dz), stream_of(s));
    }, py::arg("z"), py::arg("rows"), py::arg("cols"), py::arg("out"), py::arg("dz"), py::arg("stream"), nogil);

    m.def("latent_forward", [](P mu, P lv, I rows, I cols, U seed, U offset, P z, P kl, P s) {
        latent_forward<T>(ptr<const T>(mu), ptr<const T>(lv), rows, cols, seed, offset, ptr<T>(z), ptr<T>(kl),
                          stream_of(s));
    }, py::arg("mu"), py::arg("logvar"), py::arg("rows"), py::arg("cols"), py::arg("seed"), py::arg("offset"),
       py::arg("z"), py::arg("kl"), py::arg("stream"), nogil);
    m.def("latent_backward", [](P dz, P mu, P lv, I rows, I cols, U seed, U offset, double w, P dmu, P dlv, P s) {
        latent_backward<T>(ptr<const T>(dz), ptr<const T>(mu), ptr<const T>(lv), rows, cols, seed, offset, T(w),
                           ptr<T>(dmu), ptr<T>(dlv), stream_of(s));
    }, py::arg("dz"), py::arg("mu"), py::arg("logvar"), py::arg("rows"), py::arg("cols"), py::arg("seed"),
       py::arg("offset"), py::arg("kl_weight"), py::arg("dmu"), py::arg("dlogvar"), py::arg("stream"), nogil);

    m.def("adam_step", [](P p, P g, P m1, P m2, I n, int64_t step, double lr, double beta1, double beta2, double eps,
                          double weight_decay, P s) {
        if (step < 1) throw py::value_error("step must be >= 1 (the 1-based step count), got " + std::to_string(step));
        // The same double-precision bias corrections as the CPU binding (cpp/bindings/register_optim.cpp).
        const cpu::AdamHyper h = cpu::AdamHyper::make(step, lr, beta1, beta2, eps, weight_decay);
        adam_step<T>(ptr<T>(p), ptr<const T>(g), ptr<T>(m1), ptr<T>(m2), n, h, stream_of(s));
    }, py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("n"), py::arg("step"), py::arg("lr"),
       py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("stream"), nogil);
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

BananaParams banana_params(double b, double sigma1, int64_t dim) {
    const double log_norm = -std::log(sigma1) - 0.5 * static_cast<double>(dim) * kLog2Pi;
    return BananaParams{b, 0.5 / (sigma1 * sigma1), b * sigma1 * sigma1, log_norm, dim};
}

LogisticParams logistic_params(uintptr_t X, uintptr_t y, int64_t n_obs, int64_t dim, double prior_scale) {
    const double log_norm = -static_cast<double>(dim) * (std::log(prior_scale) + 0.5 * kLog2Pi);
    return LogisticParams{ptr<const double>(X), ptr<const double>(y), n_obs, dim, 0.5 / (prior_scale * prior_scale),
                          log_norm};
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
        mh_step_banana(banana_params(b, sigma1, dim),
                       mh_state(x, lp, ss, chol, chains, dim, seed, step, co, xp, scratch, acc, nn), stream_of(s));
    }, py::arg("b"), py::arg("sigma1"), py::arg("dim"), VK_MH_STATE_ARGS, nogil);
    m.def("mh_step_logistic", [](P X, P y, I n_obs, I dim, double prior_scale, P x, P lp, P ss, P chol, I chains,
                                 U seed, U step, U co, P xp, P scratch, P acc, P nn, P s) {
        mh_step_logistic(logistic_params(X, y, n_obs, dim, prior_scale),
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
        target_log_prob_banana(banana_params(b, sigma1, dim), ptr<const double>(x), chains, ptr<double>(scratch),
                               ptr<double>(lp), stream_of(s));
    }, py::arg("b"), py::arg("sigma1"), py::arg("dim"), py::arg("x"), py::arg("chains"), py::arg("scratch"),
       py::arg("lp"), py::arg("stream"), nogil);
    m.def("target_log_prob_logistic", [](P X, P y, I n_obs, I dim, double prior_scale, P x, I chains, P scratch, P lp,
                                         P s) {
        target_log_prob_logistic(logistic_params(X, y, n_obs, dim, prior_scale), ptr<const double>(x), chains,
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

    m.def("philox4x32_10", [](uintptr_t counters, uintptr_t keys, int64_t n, uintptr_t out, uintptr_t s) {
        vk::gpu::philox4x32_10(reinterpret_cast<const uint32_t*>(counters), reinterpret_cast<const uint32_t*>(keys), n,
                               reinterpret_cast<uint32_t*>(out), reinterpret_cast<cudaStream_t>(s));
    }, py::arg("counters"), py::arg("keys"), py::arg("n"), py::arg("out"), py::arg("stream"),
       py::call_guard<py::gil_scoped_release>());

    auto f32 = m.def_submodule("f32", "float32 kernels");
    auto f64 = m.def_submodule("f64", "float64 kernels");
    vk::gpu::def_kernels<float>(f32);
    vk::gpu::def_kernels<double>(f64);
    vk::gpu::def_mcmc(m);
}
