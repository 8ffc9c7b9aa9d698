// register_likelihood.cpp: Bernoulli-with-logits and diagonal Gaussian log-likelihoods, values and gradients.
#include "common.hpp"

namespace vk::bind {

namespace {

template <class T>
void def_likelihood(py::module_& m) {
    m.def("bernoulli_log_prob", [](Arr<T> x, Arr<T> logits, Arr<T> out) {
        const Rows s = rows_of(logits, "logits");
        same_shape(logits, "logits", x, "x");
        vector_of(out, "out", s.rows);
        T* o = writable(out, "out");
        py::gil_scoped_release nogil;
        kt<T>().bernoulli_log_prob(x.data(), logits.data(), s.rows, s.cols, o);
    }, py::arg("x").noconvert(), py::arg("logits").noconvert(), py::arg("out").noconvert());

    m.def("bernoulli_log_prob_and_grad", [](Arr<T> x, Arr<T> logits, Arr<T> out, Arr<T> dlogits) {
        const Rows s = rows_of(logits, "logits");
        same_shape(logits, "logits", x, "x");
        same_shape(logits, "logits", dlogits, "dlogits");
        vector_of(out, "out", s.rows);
        T* o = writable(out, "out");
        T* d = writable(dlogits, "dlogits");
        py::gil_scoped_release nogil;
        kt<T>().bernoulli_log_prob_and_grad(x.data(), logits.data(), s.rows, s.cols, o, d);
    }, py::arg("x").noconvert(), py::arg("logits").noconvert(), py::arg("out").noconvert(),
       py::arg("dlogits").noconvert());

    m.def("normal_log_prob", [](Arr<T> x, Arr<T> mean, Arr<T> logvar, Arr<T> out) {
        const Rows s = rows_of(mean, "mean");
        same_shape(mean, "mean", x, "x");
        same_shape(mean, "mean", logvar, "logvar");
        vector_of(out, "out", s.rows);
        T* o = writable(out, "out");
        py::gil_scoped_release nogil;
        kt<T>().normal_log_prob(x.data(), mean.data(), logvar.data(), s.rows, s.cols, o);
    }, py::arg("x").noconvert(), py::arg("mean").noconvert(), py::arg("logvar").noconvert(), py::arg("out").noconvert());

    m.def("normal_log_prob_and_grad", [](Arr<T> x, Arr<T> mean, Arr<T> logvar, Arr<T> out, Arr<T> dmean, Arr<T> dlogvar) {
        const Rows s = rows_of(mean, "mean");
        same_shape(mean, "mean", x, "x");
        same_shape(mean, "mean", logvar, "logvar");
        same_shape(mean, "mean", dmean, "dmean");
        same_shape(mean, "mean", dlogvar, "dlogvar");
        vector_of(out, "out", s.rows);
        T* o = writable(out, "out");
        T* a = writable(dmean, "dmean");
        T* b = writable(dlogvar, "dlogvar");
        py::gil_scoped_release nogil;
        kt<T>().normal_log_prob_and_grad(x.data(), mean.data(), logvar.data(), s.rows, s.cols, o, a, b);
    }, py::arg("x").noconvert(), py::arg("mean").noconvert(), py::arg("logvar").noconvert(), py::arg("out").noconvert(),
       py::arg("dmean").noconvert(), py::arg("dlogvar").noconvert());

    m.def("standard_normal_log_prob", [](Arr<T> z, Arr<T> out) {
        const Rows s = rows_of(z, "z");
        vector_of(out, "out", s.rows);
        T* o = writable(out, "out");
        py::gil_scoped_release nogil;
        kt<T>().standard_normal_log_prob(z.data(), s.rows, s.cols, o);
    }, py::arg("z").noconvert(), py::arg("out").noconvert());

    m.def("standard_normal_log_prob_and_grad", [](Arr<T> z, Arr<T> out, Arr<T> dz) {
        const Rows s = rows_of(z, "z");
        vector_of(out, "out", s.rows);
        same_shape(z, "z", dz, "dz");
        T* o = writable(out, "out");
        T* d = writable(dz, "dz");
        py::gil_scoped_release nogil;
        kt<T>().standard_normal_log_prob_and_grad(z.data(), s.rows, s.cols, o, d);
    }, py::arg("z").noconvert(), py::arg("out").noconvert(), py::arg("dz").noconvert());
}

}  // namespace

void register_likelihood(py::module_& m) {
    def_likelihood<float>(m);
    def_likelihood<double>(m);
}

}  // namespace vk::bind
