// activations.hpp: the hidden-layer activations of vaekernels.nn and their derivatives, one definition each.
// The derivative is written in terms of the activation's *output* y, so a layer keeps y and never the
// pre-activation: tanh' = 1 - y^2, relu' = [y > 0], sigmoid' = y (1 - y), softplus' = 1 - e^-y,
// elu' = min(y, 0) + 1. Explicit IEEE operations only (math.hpp), so every SIMD level gives the same bits.
// NaN inputs give NaN outputs (a diverging model must be seen, not clipped).
#pragma once

#include "math.hpp"

VK_BEGIN_NAMESPACE

// The codes the Python layer passes (python/vaekernels/nn/activations.py, ACTIVATION_CODES).
enum Activation : int { kLinear = 0, kTanh = 1, kRelu = 2, kSigmoid = 3, kSoftplus = 4, kElu = 5 };
constexpr int kNumActivations = 6;

// tanh(x) = sign(x) (1 - e^-2|x|) / (1 + e^-2|x|) = -sign(x) m / (2 + m), m = expm1(-2|x|): no cancellation
// near 0 (m ~ -2|x| exactly to rounding), 1 for large |x|.
template <class T>
VK_HD T act_tanh(T x) {
    const T a = x < T(0) ? -x : x;
    const T m = vexpm1(T(-2) * a);
    const T t = -m / (T(2) + m);
    return x < T(0) ? -t : t;
}

// sigmoid(x) = 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below: e^-|x| never overflows.
template <class T>
VK_HD T act_sigmoid(T x) {
    const T a = x < T(0) ? -x : x;
    const T e = vexp(-a);
    const T inv = T(1) / (T(1) + e);
    return x < T(0) ? e * inv : inv;
}

template <class T>
VK_HD T activate(int act, T x) {
    switch (act) {
        case kTanh: return act_tanh(x);
        case kRelu: return x < T(0) ? T(0) : x;                 // NaN stays NaN
        case kSigmoid: return act_sigmoid(x);
        case kSoftplus: return softplus(x);
        case kElu: return x > T(0) ? x : vexpm1(x);             // expm1(NaN) = NaN
        default: return x;
    }
}

// d activation / d x at the point whose output is y.
template <class T>
VK_HD T activation_slope(int act, T y) {
    switch (act) {
        case kTanh: return T(1) - y * y;
        case kRelu: return y > T(0) ? T(1) : T(0);
        case kSigmoid: return y * (T(1) - y);
        case kSoftplus: return -vexpm1(-y);
        case kElu: return (y < T(0) ? y : T(0)) + T(1);
        default: return T(1);
    }
}

VK_END_NAMESPACE
