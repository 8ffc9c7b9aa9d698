// gaussian.hpp: per-element terms of the VAE's densities and divergences, and their derivatives.
// The CPU loops (cpp/src) and the CUDA kernels (cuda/) sum these over the last axis; nothing else
// writes these formulas.
//
// Valid inputs: any finite values. logvar enters through exp(+-logvar): |logvar| up to ~88 (float32) or
// ~709 (float64) is finite; beyond, exp overflows to inf and the result is +-inf or NaN as IEEE
// arithmetic gives. NaN in any input gives NaN in the rows it touches.
#pragma once

#include "math.hpp"

VK_BEGIN_NAMESPACE

constexpr double kLog2Pi = 1.8378770664093454835606594728112;

// KL(N(mu, e^lv) || N(0, 1)) for one coordinate: 0.5 (mu^2 + (e^lv - 1 - lv)).
template <class T>
VK_HD T kl_standard_normal_term(T mu, T lv) {
    return T(0.5) * (mu * mu + exp_m1_mx(lv));
}
// d/dmu = mu, d/dlv = 0.5 (e^lv - 1).
template <class T>
VK_HD void kl_standard_normal_grad(T mu, T lv, T& dmu, T& dlv) {
    dmu = mu;
    dlv = T(0.5) * vexpm1(lv);
}

// KL(N(mq, e^lq) || N(mp, e^lp)) for one coordinate: 0.5 ((e^d - 1 - d) + (mq - mp)^2 e^-lp), d = lq - lp.
// d = lq - lp is rounded, and e^d amplifies that rounding to |d| eps / 2 relative error (6 ulp at |d| = 12,
// more than e^lq / e^lp computed naively). TwoSum gives the rounding error dd exactly; the terms are
// corrected to first order, f(d + dd) = f(d) + f'(d) dd. The correction is dropped where it is not finite
// (d infinite, or e^d overflowing), so infinities and NaN propagate as before.
template <class T>
VK_HD T logvar_diff(T lq, T lp, T& dd) {
    const T d = lq - lp;
    const T nb = d - lq;                                          // ~ -lp
    dd = (lq - (d - nb)) - (lp + nb);
    return d;
}
template <class T>
VK_HD T finite_or_zero(T c) { return c - c == T(0) ? c : T(0); }

template <class T>
VK_HD T kl_normal_term(T mq, T lq, T mp, T lp) {
    const T diff = mq - mp;
    T dd;
    const T d = logvar_diff(lq, lp, dd);
    T em1;
    const T em1mx = exp_m1_mx_and_expm1(d, em1) + finite_or_zero(em1 * dd);
    return T(0.5) * (em1mx + diff * diff * vexp(-lp));
}
template <class T>
VK_HD void kl_normal_grad(T mq, T lq, T mp, T lp, T& dmq, T& dlq, T& dmp, T& dlp) {
    const T diff = mq - mp;
    const T prec = vexp(-lp);
    T dd;
    const T d = logvar_diff(lq, lp, dd);
    const T em1 = vexpm1(d);
    const T half_em1 = T(0.5) * (em1 + finite_or_zero((em1 + T(1)) * dd));
    dmq = diff * prec;
    dmp = -dmq;
    dlq = half_em1;
    dlp = -half_em1 - T(0.5) * diff * diff * prec;
}

// The fused latent layer's backward for one element: the gradient of dz z + w KL(q || N(0, 1)) with
// z = mu + e^(lv/2) eps:  dmu = dz + w mu,  dlv = dz eps e^(lv/2) / 2 + w (e^lv - 1) / 2.
template <class T>
VK_HD void latent_backward_term(T dz, T mu, T lv, T eps, T w, T& dmu, T& dlv) {
    T kdm, kdl;
    kl_standard_normal_grad(mu, lv, kdm, kdl);
    dmu = dz + w * kdm;
    // eps e^(lv/2) / 2 first: it stays in the normal range for |eps| <= 8.5 and |lv| < 170 (float32), so the
    // product with a tiny dz rounds once instead of amplifying a subnormal intermediate dz eps.
    dlv = dz * (eps * (T(0.5) * vexp(T(0.5) * lv))) + w * kdl;
}

// log Bernoulli(x | sigmoid(l)) = x l - softplus(l), written as (x - [l >= 0]) l - log1p(e^-|l|) so that
// |l| up to 1e4 (and beyond) costs no cancellation of large terms. x is meant to lie in [0, 1]
// (continuous relaxations such as grey-level pixels are allowed); other x give the same formula's value.
template <class T>
VK_HD T bernoulli_log_prob_term(T x, T l) {
    const T a = l < T(0) ? -l : l;
    const T lin = (l >= T(0) ? x - T(1) : x) * l;
    return lin - log1p_unit(vexp(-a));
}
// d/dl = x - sigmoid(l) from e = e^-|l| and inv = 1 / (1 + e). Written (x - 1) + sigmoid(-l) for l >= 0:
// no cancellation of 1 - sigmoid(l) (which is 0 in float32 beyond l ~ 17), so the gradient at saturated
// logits keeps its relative accuracy.
template <class T>
VK_HD T bernoulli_dlogit(T x, T l, T e, T inv) {
    const T sig_small = e * inv;                                  // sigmoid(-|l|)
    return l >= T(0) ? (x - T(1)) + sig_small : x - sig_small;
}
template <class T>
VK_HD T bernoulli_log_prob_grad(T x, T l) {
    const T e = vexp(-(l < T(0) ? -l : l));
    return bernoulli_dlogit(x, l, e, T(1) / (T(1) + e));
}
// Value and d/dl, sharing e^-|l|.
template <class T>
VK_HD T bernoulli_log_prob_term_grad(T x, T l, T& dl) {
    const T a = l < T(0) ? -l : l;
    const T e = vexp(-a);
    const T inv = T(1) / (T(1) + e);
    dl = bernoulli_dlogit(x, l, e, inv);
    return (l >= T(0) ? x - T(1) : x) * l - log1p_unit(e, inv);
}

// log N(x | m, e^lv) = -0.5 (log 2 pi + lv + (x - m)^2 e^-lv).
template <class T>
VK_HD T normal_log_prob_term(T x, T m, T lv) {
    const T d = x - m;
    return T(-0.5) * ((T(kLog2Pi) + lv) + d * d * vexp(-lv));
}
// d/dm = (x - m) e^-lv, d/dlv = 0.5 ((x - m)^2 e^-lv - 1); returns (x - m)^2 e^-lv for the value.
template <class T>
VK_HD T normal_log_prob_grad(T x, T m, T lv, T& dm, T& dlv) {
    const T d = x - m;
    const T prec = vexp(-lv);
    const T sq = d * d * prec;
    dm = d * prec;
    dlv = T(0.5) * (sq - T(1));
    return sq;
}
template <class T>
VK_HD T normal_log_prob_term_grad(T x, T m, T lv, T& dm, T& dlv) {
    const T sq = normal_log_prob_grad(x, m, lv, dm, dlv);
    return T(-0.5) * ((T(kLog2Pi) + lv) + sq);
}

template <class T>
VK_HD T standard_normal_log_prob_term(T z) {
    return T(-0.5) * (T(kLog2Pi) + z * z);
}

// z = mu + e^(lv/2) eps
template <class T>
VK_HD T reparameterize_term(T mu, T lv, T eps) {
    return mu + vexp(T(0.5) * lv) * eps;
}

VK_END_NAMESPACE
