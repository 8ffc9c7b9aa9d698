// driver.cpp: runs a few CPU kernels from cpp/src/kernels.cpp, built apart from the extension by plain g++
// and run on one thread (OMP_NUM_THREADS=1), and writes their outputs as raw bytes to stdout.
// tests/test_no_openmp.py compares them with the installed extension running two threads: the results
// must depend neither on the build nor on the thread count.
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

template <class A>
static A rows_args(int64_t rows, int64_t cols) {
    A a;
    a.rows = rows;
    a.cols = cols;
    return a;
}

template <class T>
static void run(const vk::cpu::KernelTable<T>& k) {
    const int64_t rows = 300, cols = 257, n = rows * cols;  // above the parallel threshold, odd row length
    std::vector<T> mu(n), lv(n), x(n), z(n), d1(n), d2(n), kl(rows), lp(rows);
    vk::RandnArgs<T> r1;
    r1.n = n; r1.seed = 11; r1.offset = 0; r1.out = mu.data();
    k.randn(r1);
    r1.seed = 12; r1.offset = 5; r1.out = lv.data();
    k.randn(r1);
    vk::RandArgs<T> r2;
    r2.n = n; r2.seed = 13; r2.offset = 3; r2.out = x.data();
    k.rand(r2);
    put(mu); put(lv); put(x);

    auto lf = rows_args<vk::LatentForwardArgs<T>>(rows, cols);
    lf.mu = mu.data(); lf.logvar = lv.data(); lf.seed = 7; lf.offset = 9; lf.z = z.data(); lf.kl = kl.data();
    k.latent_forward(lf);
    put(z); put(kl);
    auto lb = rows_args<vk::LatentBackwardArgs<T>>(rows, cols);
    lb.dz = mu.data(); lb.mu = mu.data(); lb.logvar = lv.data(); lb.seed = 7; lb.offset = 9; lb.kl_weight = 0.5;
    lb.dmu = d1.data(); lb.dlogvar = d2.data();
    k.latent_backward(lb);
    put(d1); put(d2);
    auto bl = rows_args<vk::BernoulliLogProbAndGradArgs<T>>(rows, cols);
    bl.x = x.data(); bl.logits = mu.data(); bl.log_prob = lp.data(); bl.dlogits = d1.data();
    k.bernoulli_log_prob_and_grad(bl);
    put(lp); put(d1);
    auto kn = rows_args<vk::KlNormalArgs<T>>(rows, cols);
    kn.mu_q = mu.data(); kn.logvar_q = lv.data(); kn.mu_p = x.data(); kn.logvar_p = lv.data(); kn.kl = kl.data();
    k.kl_normal(kn);
    put(kl);
}

int main() {
    const vk::cpu::Kernels& k = vk::cpu::kernels_isa_baseline();
    run(k.f32);
    run(k.f64);
    return 0;
}
