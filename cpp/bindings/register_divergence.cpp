// register_divergence.cpp: Gaussian KL divergences and the fused VAE latent pair.
#include "common.hpp"

namespace vk::bind {

namespace {

template <class T>
void def_divergence(py::module_& m) {
    m.def("kl_standard_normal", [](Arr<T> mu, Arr<T> logvar, Arr<T> out) {
        const Rows s = rows_of(mu, "mu");
        same_shape(mu, "mu", logvar, "logvar");
        vector_of(out, "out", s.rows);
        T* o = writable(out, "out");
        py::gil_scoped_release nogil;
        kt<T>().kl_standard_normal(mu.data(), logvar.data(), s.rows, s.cols, o);
    }, py::arg("mu").noconvert(), py::arg("logvar").noconvert(), py::arg("out").noconvert());

    m.def("kl_standard_normal_backward", [](Arr<T> grad, Arr<T> mu, Arr<T> logvar, Arr<T> dmu, Arr<T> dlogvar) {
        const Rows s = rows_of(mu, "mu");
        vector_of(grad, "grad", s.rows);
        same_shape(mu, "mu", logvar, "logvar");
        same_shape(mu, "mu", dmu, "dmu");
        same_shape(mu, "mu", dlogvar, "dlogvar");
        T* a = writable(dmu, "dmu");
        T* b = writable(dlogvar, "dlogvar");
        py::gil_scoped_release nogil;
        kt<T>().kl_standard_normal_backward(grad.data(), mu.data(), logvar.data(), s.rows, s.cols, a, b);
    }, py::arg("grad").noconvert(), py::arg("mu").noconvert(), py::arg("logvar").noconvert(),
       py::arg("dmu").noconvert(), py::arg("dlogvar").noconvert());

    m.def("kl_normal", [](Arr<T> mq, Arr<T> lq, Arr<T> mp, Arr<T> lp, Arr<T> out) {
        const Rows s = rows_of(mq, "mu_q");
        same_shape(mq, "mu_q", lq, "logvar_q");
        same_shape(mq, "mu_q", mp, "mu_p");
        same_shape(mq, "mu_q", lp, "logvar_p");
        vector_of(out, "out", s.rows);
        T* o = writable(out, "out");
        py::gil_scoped_release nogil;
        kt<T>().kl_normal(mq.data(), lq.data(), mp.data(), lp.data(), s.rows, s.cols, o);
    }, py::arg("mu_q").noconvert(), py::arg("logvar_q").noconvert(), py::arg("mu_p").noconvert(),
       py::arg("logvar_p").noconvert(), py::arg("out").noconvert());

    m.def("kl_normal_backward", [](Arr<T> grad, Arr<T> mq, Arr<T> lq, Arr<T> mp, Arr<T> lp, Arr<T> dmq, Arr<T> dlq,
                                   Arr<T> dmp, Arr<T> dlp) {
        const Rows s = rows_of(mq, "mu_q");
        vector_of(grad, "grad", s.rows);
        same_shape(mq, "mu_q", lq, "logvar_q");
        same_shape(mq, "mu_q", mp, "mu_p");
        same_shape(mq, "mu_q", lp, "logvar_p");
        same_shape(mq, "mu_q", dmq, "dmu_q");
        same_shape(mq, "mu_q", dlq, "dlogvar_q");
        same_shape(mq, "mu_q", dmp, "dmu_p");
        same_shape(mq, "mu_q", dlp, "dlogvar_p");
        T* a = writable(dmq, "dmu_q");
        T* b = writable(dlq, "dlogvar_q");
        T* c = writable(dmp, "dmu_p");
        T* d = writable(dlp, "dlogvar_p");
        py::gil_scoped_release nogil;
        kt<T>().kl_normal_backward(grad.data(), mq.data(), lq.data(), mp.data(), lp.data(), s.rows, s.cols, a, b, c, d);
    }, py::arg("grad").noconvert(), py::arg("mu_q").noconvert(), py::arg("logvar_q").noconvert(),
       py::arg("mu_p").noconvert(), py::arg("logvar_p").noconvert(), py::arg("dmu_q").noconvert(),
       py::arg("dlogvar_q").noconvert(), py::arg("dmu_p").noconvert(), py::arg("dlogvar_p").noconvert());

    m.def("latent_forward", [](Arr<T> mu, Arr<T> logvar, uint64_t seed, uint64_t offset, Arr<T> z, Arr<T> kl) {
        const Rows s = rows_of(mu, "mu");
        same_shape(mu, "mu", logvar, "logvar");
        same_shape(mu, "mu", z, "z");
        vector_of(kl, "kl", s.rows);
        T* zo = writable(z, "z");
        T* ko = writable(kl, "kl");
        py::gil_scoped_release nogil;
        kt<T>().latent_forward(mu.data(), logvar.data(), s.rows, s.cols, seed, offset, zo, ko);
    }, py::arg("mu").noconvert(), py::arg("logvar").noconvert(), py::arg("seed"), py::arg("offset"),
       py::arg("z").noconvert(), py::arg("kl").noconvert());

    m.def("latent_backward", [](Arr<T> dz, Arr<T> mu, Arr<T> logvar, uint64_t seed, uint64_t offset, double kl_weight,
                                Arr<T> dmu, Arr<T> dlogvar) {
        const Rows s = rows_of(mu, "mu");
        same_shape(mu, "mu", dz, "dz");
        same_shape(mu, "mu", logvar, "logvar");
        same_shape(mu, "mu", dmu, "dmu");
        same_shape(mu, "mu", dlogvar, "dlogvar");
        T* a = writable(dmu, "dmu");
        T* b = writable(dlogvar, "dlogvar");
        py::gil_scoped_release nogil;
        kt<T>().latent_backward(dz.data(), mu.data(), logvar.data(), s.rows, s.cols, seed, offset, T(kl_weight), a, b);
    }, py::arg("dz").noconvert(), py::arg("mu").noconvert(), py::arg("logvar").noconvert(), py::arg("seed"),
       py::arg("offset"), py::arg("kl_weight"), py::arg("dmu").noconvert(), py::arg("dlogvar").noconvert());
}

}  // namespace

void register_divergence(py::module_& m) {
    def_divergence<float>(m);
    def_divergence<double>(m);
}

}  // namespace vk::bind
