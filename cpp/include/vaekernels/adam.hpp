// adam.hpp: the fused AdamW update of one parameter, and its per-step constants, shared by the CPU kernel
// (cpp/src/kernels.cpp) and the CUDA kernel (cuda/optim.cu): one source for the formula and the rounding.
#pragma once

#include <cmath>

#include "math.hpp"

// Inside the per-ISA namespace like every inline function here (config.hpp): the kernels of each
// instruction-set build call their own copy.
VK_BEGIN_NAMESPACE

// AdamW hyper-parameters for step t with the bias corrections folded in once, in double (host side):
// decay_factor = 1 - lr wd, step_size = lr / (1 - beta1^t), inv_bc2_sqrt = 1 / sqrt(1 - beta2^t).
struct AdamHyper {
    double beta1, beta2, eps;
    double decay_factor, step_size, inv_bc2_sqrt;

    static AdamHyper make(int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay) {
        const double t = static_cast<double>(step);
        return AdamHyper{beta1, beta2, eps, 1.0 - lr * weight_decay, lr / (1.0 - std::pow(beta1, t)),
                         1.0 / std::sqrt(1.0 - std::pow(beta2, t))};
    }
};

// The constants one element's update uses, rounded to T once per step (both devices round them the same
// way). one_minus_beta1/2 = 1 - beta1/2 are computed in double: in float32, 1 - float(0.999) is 1.3e-5 away
// from 0.001 (100 ulp), which biased v low by that much.
template <class T>
struct AdamConstants {
    T beta1, one_minus_beta1, beta2, one_minus_beta2, eps, decay_factor, step_size, inv_bc2_sqrt;

    static AdamConstants from(const AdamHyper& h) {
        return AdamConstants{T(h.beta1), T(1.0 - h.beta1), T(h.beta2), T(1.0 - h.beta2), T(h.eps),
                             T(h.decay_factor), T(h.step_size), T(h.inv_bc2_sqrt)};
    }
};

// AdamW update of one parameter (PyTorch's order: decay first, then the Adam step); a multiply by
// inv_bc2_sqrt instead of PyTorch's divide: one division per element.
template <class T>
VK_HD void adam_update(T& p, T g, T& m, T& v, const AdamConstants<T>& c) {
    m = c.beta1 * m + c.one_minus_beta1 * g;
    v = c.beta2 * v + c.one_minus_beta2 * (g * g);
    p = p * c.decay_factor;
    p = p - c.step_size * (m / (vsqrt(v) * c.inv_bc2_sqrt + c.eps));
}

VK_END_NAMESPACE
