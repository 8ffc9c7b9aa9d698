// register_random.cpp: philox4x32_10, randn, rand, reparameterize.
#include "common.hpp"

namespace vk::bind {

namespace {

template <class T>
void def_random(py::module_& m) {
    m.def("randn", [](Arr<T> out, uint64_t seed, uint64_t offset) {
        T* o = writable(out, "out");
        const int64_t n = out.size();
        py::gil_scoped_release nogil;
        kt<T>().randn(seed, offset, n, o);
    }, py::arg("out").noconvert(), py::arg("seed"), py::arg("offset"));

    m.def("rand", [](Arr<T> out, uint64_t seed, uint64_t offset) {
        T* o = writable(out, "out");
        const int64_t n = out.size();
        py::gil_scoped_release nogil;
        kt<T>().rand(seed, offset, n, o);
    }, py::arg("out").noconvert(), py::arg("seed"), py::arg("offset"));

    m.def("reparameterize", [](Arr<T> mu, Arr<T> logvar, uint64_t seed, uint64_t offset, int64_t n_samples, Arr<T> out) {
        same_shape(mu, "mu", logvar, "logvar");
        if (n_samples < 1) throw py::value_error("n_samples must be >= 1");
        if (out.size() != mu.size() * n_samples)
            throw py::value_error("out must hold n_samples * mu.size elements, got shape " + shape_str(out));
        T* o = writable(out, "out");
        const int64_t n = mu.size();
        py::gil_scoped_release nogil;
        kt<T>().reparameterize(mu.data(), logvar.data(), n, n_samples, seed, offset, o);
    }, py::arg("mu").noconvert(), py::arg("logvar").noconvert(), py::arg("seed"), py::arg("offset"),
       py::arg("n_samples"), py::arg("out").noconvert());
}

}  // namespace

void register_random(py::module_& m) {
    m.def("philox4x32_10", [](Arr<uint32_t> counters, Arr<uint32_t> keys, Arr<uint32_t> out) {
        if (counters.ndim() != 2 || counters.shape(1) != 4)
            throw py::value_error("counters must have shape (N, 4), got " + shape_str(counters));
        if (keys.ndim() != 2 || keys.shape(1) != 2 || keys.shape(0) != counters.shape(0))
            throw py::value_error("keys must have shape (" + std::to_string(counters.shape(0)) + ", 2), got " + shape_str(keys));
        same_shape(counters, "counters", out, "out");
        uint32_t* o = writable(out, "out");
        const int64_t n = counters.shape(0);
        py::gil_scoped_release nogil;
        cpu::philox4x32_10(counters.data(), keys.data(), n, o);
    }, py::arg("counters").noconvert(), py::arg("keys").noconvert(), py::arg("out").noconvert());
    def_random<float>(m);
    def_random<double>(m);
}

}  // namespace vk::bind
