// driver.cpp: runs a few CPU kernels from cpp/src/kernels.cpp built WITHOUT OpenMP (the pragmas are ignored)
// and writes their outputs as raw bytes to stdout. tests/test_no_openmp.py compares them with the
// OpenMP-parallel _core extension: the results must not depend on whether OpenMP exists.
#include <cstdio>
#include <vector>

#include "kernels.hpp"

namespace vk::cpu {
const Kernels& kernels_isa_baseline();
}

template <class T>
static void put(const std::vector<T>& v) {
    std::fwrite(v.data(), sizeof(T), v.size(), stdout);
}

template <class T>
static void run(const vk::cpu::KernelTable<T>& k) {
    const int64_t rows = 300, cols = 257, n = rows * cols;  // above the parallel threshold, odd row length
    std::vector<T> mu(n), lv(n), x(n), z(n), d1(n), d2(n), kl(rows), lp(rows);
    k.randn(11, 0, n, mu.data());
    k.randn(12, 5, n, lv.data());
    k.rand(13, 3, n, x.data());
    put(mu); put(lv); put(x);
    k.latent_forward(mu.data(), lv.data(), rows, cols, 7, 9, z.data(), kl.data());
    put(z); put(kl);
    k.latent_backward(mu.data(), mu.data(), lv.data(), rows, cols, 7, 9, T(0.5), d1.data(), d2.data());
    put(d1); put(d2);
    k.bernoulli_log_prob_and_grad(x.data(), mu.data(), rows, cols, lp.data(), d1.data());
    put(lp); put(d1);
    k.kl_normal(mu.data(), lv.data(), x.data(), lv.data(), rows, cols, kl.data());
    put(kl);
}

int main() {
    const vk::cpu::Kernels& k = vk::cpu::kernels_isa_baseline();
    run(k.f32);
    run(k.f64);
    return 0;
}
