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

// tanh(|x|) = (1 - e) / (1 + e) with e = e^-2|x|: one exp and one division. Below kTanhTaylor the quotient
// would cancel (relative error ~ eps e / (1 - e)), so there the odd Taylor series is used instead, truncated
// where its next term falls below eps/10 of the result. Both are computed and one is selected (vectorises).
// Measured against long double on 300,000 points in [-10, 10] and [1e-30, 20]: at most 2.1 ulp (float32),
// 3.0 ulp (float64).
template <class T> struct TanhSeries;
template <> struct TanhSeries<float> {
    static constexpr float kBelow = 0.25f;   // quotient error at the switch: ~1.5 eps; series error: 0.14 ulp
    static constexpr int kTerms = 4;         // coefficients of x^3 .. x^9
    static constexpr float c[kTerms] = {-1.0f / 3, 2.0f / 15, -17.0f / 315, 62.0f / 2835};
};
template <> struct TanhSeries<double> {
    static constexpr double kBelow = 0.125;  // quotient error at the switch: ~3.5 eps
    static constexpr int kTerms = 7;         // x^3 .. x^15
    static constexpr double c[kTerms] = {-1.0 / 3, 2.0 / 15, -17.0 / 315, 62.0 / 2835, -1382.0 / 155925,
                                         21844.0 / 6081075, -929569.0 / 638512875};
};

template <class T>
VK_HD T act_tanh(T x) {
    using S = TanhSeries<T>;
    const T a = x < T(0) ? -x : x;
    const T z = a * a;
    T p = S::c[S::kTerms - 1];
    for (int i = S::kTerms - 2; i >= 0; --i) p = p * z + S::c[i];
    const T series = a + a * (z * p);
    const T e = vexp(T(-2) * a);
    const T quotient = (T(1) - e) / (T(1) + e);
    const T t = a < S::kBelow ? series : quotient;
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
