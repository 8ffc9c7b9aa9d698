// module.cpp: assembles the _core extension: the kernels of the table (register_kernels.cpp), the MCMC
// sampler (register_mcmc.cpp), the MLPs (register_dense.cpp) and the build's SIMD and thread facts.
#include <pybind11/stl.h>

#include "common.hpp"

namespace vk::bind {
void register_kernels(py::module_& m);
void register_mcmc(py::module_& m);
void register_dense(py::module_& m);
}  // namespace vk::bind

PYBIND11_MODULE(_core, m) {
    namespace py = pybind11;
    m.doc() = "vaekernels CPU kernels (private: use the functions in the vaekernels package)";
    const vk::cpu::Kernels& k = vk::cpu::kernels();  // raises at import if VAEKERNELS_SIMD names a bad level
    m.attr("simd_level") = std::string(k.name);
    m.def("simd_levels", &vk::cpu::available_levels, "Instruction-set levels compiled in and usable on this CPU.");
    m.def("set_team_size", &vk::cpu::set_team_size, py::arg("n"),
          "Threads per parallel region of the kernels (0: the default, OMP_NUM_THREADS or the usable CPUs). "
          "Process-wide; no result changes.");
    m.def("team_size", &vk::cpu::team_size, "Threads a parallel region of the kernels starts now.");
    vk::bind::register_kernels(m);
    vk::bind::register_mcmc(m);
    vk::bind::register_dense(m);
}
