// register_optim.cpp: the fused AdamW step.
#include <cmath>

#include "common.hpp"

namespace vk::bind {

namespace {

template <class T>
void def_optim(py::module_& m) {
    m.def("adam_step", [](Arr<T> param, Arr<T> grad, Arr<T> m1, Arr<T> m2, int64_t step, double lr, double beta1,
                          double beta2, double eps, double weight_decay) {
        same_shape(param, "param", grad, "grad");
        same_shape(param, "param", m1, "m");
        same_shape(param, "param", m2, "v");
        if (step < 1) throw py::value_error("step must be >= 1 (the 1-based step count), got " + std::to_string(step));
        cpu::AdamHyper h;
        h.beta1 = beta1;
        h.beta2 = beta2;
        h.eps = eps;
        h.decay_factor = 1.0 - lr * weight_decay;
        h.step_size = lr / (1.0 - std::pow(beta1, static_cast<double>(step)));
        h.inv_bc2_sqrt = 1.0 / std::sqrt(1.0 - std::pow(beta2, static_cast<double>(step)));
        T* p = writable(param, "param");
        T* a = writable(m1, "m");
        T* b = writable(m2, "v");
        const int64_t n = param.size();
        py::gil_scoped_release nogil;
        kt<T>().adam_step(p, grad.data(), a, b, n, h);
    }, py::arg("param").noconvert(), py::arg("grad").noconvert(), py::arg("m").noconvert(), py::arg("v").noconvert(),
       py::arg("step"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"));
}

}  // namespace

void register_optim(py::module_& m) {
    def_optim<float>(m);
    def_optim<double>(m);
}

}  // namespace vk::bind
