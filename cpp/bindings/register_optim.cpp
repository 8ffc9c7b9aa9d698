// register_optim.cpp: the fused AdamW step.

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
        const cpu::AdamHyper h = cpu::AdamHyper::make(step, lr, beta1, beta2, eps, weight_decay);
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
