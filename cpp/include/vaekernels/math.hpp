// math.hpp: exp, log, log1p, expm1-style helpers and the Box-Muller sine/cosine, written with explicit
// IEEE operations only (+, -, *, /, sqrt, integer bit manipulation; no libm, no fma, no intrinsics).
//
// Why not libm: results must be bit-identical across the scalar, SSE2, AVX2 and AVX-512 CPU paths and the
// GPU. libm/libmvec/CUDA's math library differ in the last bit between each other and vectorise only
// under fast-math. These routines vectorise as plain loops and, built without floating-point
// contraction (-ffp-contract=off, nvcc --fmad=false), give the same bits everywhere.
//
// Accuracy (checked in tests/test_math.py against float64/longdouble references):
//   exp, log: <= 2 ulp in float32 and float64 over the whole finite range (subnormals included);
//   log1p_unit (argument in [0, 1]): <= 2 ulp; exp_m1_mx(x) = e^x - 1 - x and expm1: <= 3 ulp relative.
// Special values follow IEEE/C99: exp(-inf)=0, exp(+inf)=inf, log(0)=-inf, log(x<0)=NaN, NaN -> NaN.
#pragma once

#include "config.hpp"

VK_BEGIN_NAMESPACE

template <class T> struct FloatTraits;

template <> struct FloatTraits<float> {
    using Bits = uint32_t;
    using SBits = int32_t;
    static constexpr int kMantissa = 23;
    static constexpr int kBias = 127;
    static constexpr float kInf = __builtin_huge_valf();
    static constexpr float kRoundMagic = 12582912.0f;              // 1.5 * 2^23: x + M - M rounds to an integer
    static constexpr float kLn2Hi = 0.693145751953125f;            // 16 significant bits: n * kLn2Hi exact
    static constexpr float kLn2Lo = 1.428606765330187045e-06f;
    static constexpr float kLog2e = 1.44269504088896341f;
    static constexpr float kExpHi = 88.7228393554687f;             // above: overflow to +inf
    static constexpr float kExpLo = -103.972084045410f;            // below: underflow to 0
    static constexpr float kSqrt2 = 1.41421356237309505f;
    static constexpr float kMinNormal = 1.17549435e-38f;
    static constexpr float kTwoPow = 8388608.0f;                   // 2^23, scales subnormals up in log
};

template <> struct FloatTraits<double> {
    using Bits = uint64_t;
    using SBits = int64_t;
    static constexpr int kMantissa = 52;
    static constexpr int kBias = 1023;
    static constexpr double kInf = __builtin_huge_val();
    static constexpr double kRoundMagic = 6755399441055744.0;      // 1.5 * 2^52
    static constexpr double kLn2Hi = 6.93147180369123816490e-01;   // fdlibm split: n * kLn2Hi exact
    static constexpr double kLn2Lo = 1.90821492927058770002e-10;
    static constexpr double kLog2e = 1.44269504088896338700e+00;
    static constexpr double kExpHi = 709.782712893383973096;
    static constexpr double kExpLo = -745.133219101941108420;
    static constexpr double kSqrt2 = 1.41421356237309504880;
    static constexpr double kMinNormal = 2.2250738585072014e-308;
    static constexpr double kTwoPow = 4503599627370496.0;          // 2^52
};

VK_HD float from_bits(uint32_t u, float) { return float_from_bits(u); }
VK_HD double from_bits(uint64_t u, double) { return double_from_bits(u); }

// 2^n for n in the normal exponent range, built from bits.
template <class T>
VK_HD T pow2i(typename FloatTraits<T>::SBits n) {
    using Tr = FloatTraits<T>;
    using Bits = typename Tr::Bits;
    return from_bits(static_cast<Bits>(static_cast<Bits>(n + Tr::kBias) << Tr::kMantissa), T(0));
}

// Correctly rounded square root on both devices (IEEE; needs -fno-math-errno on the host to vectorise).
VK_HD float vsqrt(float x) {
#if defined(__CUDA_ARCH__)
    return __fsqrt_rn(x);
#else
    return __builtin_sqrtf(x);
#endif
}
VK_HD double vsqrt(double x) {
#if defined(__CUDA_ARCH__)
    return __dsqrt_rn(x);
#else
    return __builtin_sqrt(x);
#endif
}

// ---------------------------------------------------------------------------------------------
// Polynomial kernels (Taylor coefficients; degrees chosen so truncation < 0.1 ulp on the reduced range)
// ---------------------------------------------------------------------------------------------

// e^r on |r| <= ln2/2.
VK_HD float exp_poly(float r) {
    float p = 1.0f / 40320;
    p = p * r + 1.0f / 5040; p = p * r + 1.0f / 720; p = p * r + 1.0f / 120; p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6; p = p * r + 0.5f; p = p * r + 1.0f; p = p * r + 1.0f;
    return p;
}
VK_HD double exp_poly(double r) {
    double p = 1.0 / 6227020800.0;                                // 1/13!
    p = p * r + 1.0 / 479001600.0; p = p * r + 1.0 / 39916800.0; p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0; p = p * r + 1.0 / 40320.0; p = p * r + 1.0 / 5040.0; p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0; p = p * r + 1.0 / 24.0; p = p * r + 1.0 / 6.0; p = p * r + 0.5;
    p = p * r + 1.0; p = p * r + 1.0;
    return p;
}

// R(z) = sum_k 2 z^k / (2k+1), z = s^2, s = f/(2+f), |s| <= 0.1716 (fdlibm's log1p decomposition).
VK_HD float log_poly(float z) {
    float p = 2.0f / 9;
    p = p * z + 2.0f / 7; p = p * z + 2.0f / 5; p = p * z + 2.0f / 3;
    return p * z;
}
VK_HD double log_poly(double z) {
    double p = 2.0 / 23;
    p = p * z + 2.0 / 21; p = p * z + 2.0 / 19; p = p * z + 2.0 / 17; p = p * z + 2.0 / 15;
    p = p * z + 2.0 / 13; p = p * z + 2.0 / 11; p = p * z + 2.0 / 9; p = p * z + 2.0 / 7;
    p = p * z + 2.0 / 5; p = p * z + 2.0 / 3;
    return p * z;
}

// (e^x - 1 - x) / x^2 on |x| < 1, the series sum_k x^k / (k+2)!.
VK_HD float exp_m1_mx_series(float x) {
    float p = 1.0f / 39916800;                                    // 1/11!
    p = p * x + 1.0f / 3628800; p = p * x + 1.0f / 362880; p = p * x + 1.0f / 40320; p = p * x + 1.0f / 5040;
    p = p * x + 1.0f / 720; p = p * x + 1.0f / 120; p = p * x + 1.0f / 24; p = p * x + 1.0f / 6; p = p * x + 0.5f;
    return p;
}
VK_HD double exp_m1_mx_series(double x) {
    double p = 1.0 / 121645100408832000.0;                        // 1/19!
    p = p * x + 1.0 / 6402373705728000.0; p = p * x + 1.0 / 355687428096000.0;
    p = p * x + 1.0 / 20922789888000.0; p = p * x + 1.0 / 1307674368000.0; p = p * x + 1.0 / 87178291200.0;
    p = p * x + 1.0 / 6227020800.0; p = p * x + 1.0 / 479001600.0; p = p * x + 1.0 / 39916800.0;
    p = p * x + 1.0 / 3628800.0; p = p * x + 1.0 / 362880.0; p = p * x + 1.0 / 40320.0; p = p * x + 1.0 / 5040.0;
    p = p * x + 1.0 / 720.0; p = p * x + 1.0 / 120.0; p = p * x + 1.0 / 24.0; p = p * x + 1.0 / 6.0; p = p * x + 0.5;
    return p;
}

// sin(a), cos(a) on |a| <= pi/4.
VK_HD void sincos_poly(float a, float& s, float& c) {
    const float z = a * a;
    float ps = -1.0f / 39916800;
    ps = ps * z + 1.0f / 362880; ps = ps * z - 1.0f / 5040; ps = ps * z + 1.0f / 120; ps = ps * z - 1.0f / 6;
    s = a + a * (z * ps);
    float pc = 1.0f / 479001600;
    pc = pc * z - 1.0f / 3628800; pc = pc * z + 1.0f / 40320; pc = pc * z - 1.0f / 720; pc = pc * z + 1.0f / 24;
    c = (1.0f - 0.5f * z) + z * (z * pc);
}
VK_HD void sincos_poly(double a, double& s, double& c) {
    const double z = a * a;
    double ps = -1.0 / 121645100408832000.0;                      // -1/19!
    ps = ps * z + 1.0 / 355687428096000.0; ps = ps * z - 1.0 / 1307674368000.0; ps = ps * z + 1.0 / 6227020800.0;
    ps = ps * z - 1.0 / 39916800.0; ps = ps * z + 1.0 / 362880.0; ps = ps * z - 1.0 / 5040.0;
    ps = ps * z + 1.0 / 120.0; ps = ps * z - 1.0 / 6.0;
    s = a + a * (z * ps);
    double pc = 1.0 / 2432902008176640000.0;                      // 1/20!
    pc = pc * z - 1.0 / 6402373705728000.0; pc = pc * z + 1.0 / 20922789888000.0; pc = pc * z - 1.0 / 87178291200.0;
    pc = pc * z + 1.0 / 479001600.0; pc = pc * z - 1.0 / 3628800.0; pc = pc * z + 1.0 / 40320.0;
    pc = pc * z - 1.0 / 720.0; pc = pc * z + 1.0 / 24.0;
    c = (1.0 - 0.5 * z) + z * (z * pc);
}

// ---------------------------------------------------------------------------------------------
// exp, log, log1p on [0, 1], e^x - 1 - x, expm1
// ---------------------------------------------------------------------------------------------

// Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, shared by vexp, vexpm1 and exp_m1_mx.
template <class T>
struct ExpReduced {
    T r;
    typename FloatTraits<T>::SBits n;
};
template <class T>
VK_HD ExpReduced<T> exp_reduce(T x) {
    using Tr = FloatTraits<T>;
    using SBits = typename Tr::SBits;
    // Clamp keeps n bounded (a NaN passes through the comparisons untouched and poisons the result).
    T xc = x > Tr::kExpHi + T(1) ? Tr::kExpHi + T(1) : x;
    xc = xc < Tr::kExpLo - T(1) ? Tr::kExpLo - T(1) : xc;
    const T shifted = xc * Tr::kLog2e + Tr::kRoundMagic;
    const T nf = shifted - Tr::kRoundMagic;
    // n from the low mantissa bits of `shifted` (no float->int conversion, so no UB on NaN).
    const SBits n = static_cast<SBits>(bits_of(shifted) - bits_of(Tr::kRoundMagic));
    return {(xc - nf * Tr::kLn2Hi) - nf * Tr::kLn2Lo, n};
}
// p * 2^n, applied in two halves so that results in the subnormal range are rounded once and n never
// leaves the normal exponent range; overflow/underflow of the original x decided by the caller.
template <class T>
VK_HD T exp_scale(T p, typename FloatTraits<T>::SBits n) {
    using SBits = typename FloatTraits<T>::SBits;
    const SBits n1 = static_cast<SBits>(n / 2);
    return (p * pow2i<T>(n1)) * pow2i<T>(n - n1);
}

// e^x.
template <class T>
VK_HD T vexp(T x) {
    using Tr = FloatTraits<T>;
    const ExpReduced<T> e = exp_reduce(x);
    T y = exp_scale(exp_poly(e.r), e.n);
    y = x > Tr::kExpHi ? Tr::kInf : y;
    y = x < Tr::kExpLo ? T(0) : y;
    return y;
}

// Natural log. x = 2^e m, m in [sqrt(1/2), sqrt(2)); log(m) = f - (f^2/2 - s (f^2/2 + R(s^2))), f = m - 1.
template <class T>
VK_HD T vlog(T x) {
    using Tr = FloatTraits<T>;
    using Bits = typename Tr::Bits;
    using SBits = typename Tr::SBits;
    const bool subnormal = x < Tr::kMinNormal;
    const T xs = subnormal ? x * Tr::kTwoPow : x;
    const Bits b = bits_of(xs);
    const Bits exp_mask = (Bits(1) << (sizeof(T) * 8 - 1 - Tr::kMantissa)) - 1;
    const Bits man_mask = (Bits(1) << Tr::kMantissa) - 1;
    SBits e = static_cast<SBits>((b >> Tr::kMantissa) & exp_mask) - Tr::kBias - (subnormal ? Tr::kMantissa : 0);
    T m = from_bits(static_cast<Bits>((b & man_mask) | (static_cast<Bits>(Tr::kBias) << Tr::kMantissa)), T(0));
    const bool big = m > Tr::kSqrt2;
    m = big ? m * T(0.5) : m;
    e = big ? e + 1 : e;
    const T f = m - T(1);                                         // exact (Sterbenz)
    const T s = f / (T(2) + f);
    const T hfsq = T(0.5) * f * f;
    const T log_m = f - (hfsq - s * (hfsq + log_poly(s * s)));
    const T ef = static_cast<T>(e);
    T y = ef * Tr::kLn2Hi + (log_m + ef * Tr::kLn2Lo);
    y = x == Tr::kInf ? Tr::kInf : y;
    y = x == T(0) ? -Tr::kInf : y;
    y = x < T(0) ? (x - x) / (x - x) : y;                         // NaN for negative x
    y = x != x ? x : y;                                           // NaN in, NaN out
    return y;
}

// log(1 + y) for y in [0, 1] (what softplus and the Bernoulli terms need), given inv = 1 / (1 + y)
// computed by the caller as T(1) / (T(1) + y) (the sigmoid needs it too, so the division is shared).
// u = 1 + y is rounded; c = y - (u - 1) is that rounding error exactly, and log(1 + y) = log(u) + c / u.
// u lies in [1, 2], so the reduction needs no exponent extraction: u = 2^k m, k in {0, 1}.
template <class T>
VK_HD T log1p_unit(T y, T inv) {
    using Tr = FloatTraits<T>;
    const T u = T(1) + y;
    const T c = y - (u - T(1));
    const bool big = u > Tr::kSqrt2;
    const T f = (big ? u * T(0.5) : u) - T(1);                   // exact (Sterbenz)
    const T s = f / (T(2) + f);
    const T hfsq = T(0.5) * f * f;
    const T log_m = f - (hfsq - s * (hfsq + log_poly(s * s)));
    const T k = big ? T(1) : T(0);
    return k * Tr::kLn2Hi + (log_m + (k * Tr::kLn2Lo + c * inv));
}
template <class T>
VK_HD T log1p_unit(T y) {
    return log1p_unit(y, T(1) / (T(1) + y));
}

// e^x - 1 - x and e^x - 1 without cancellation near 0. One polynomial serves both regimes: with
// q(t) = e^t - 1 - t = t^2 S(t), S the series above, the result is q(x) itself on |x| < 1 (where the direct
// formula would lose up to ~10 ulp), and 2^n (1 + r + q(r)) - 1 [- x] from the reduction elsewhere.
// Returns q(t) with t = x when `small` (|x| < 1: q is then e^x - 1 - x), t = r otherwise, and sets
// em1_big = e^x - 1 from the reduction (+inf above the overflow threshold, -1 below underflow).
// (Plain scalars and an out-parameter rather than a struct with a bool: GCC 12 will not vectorise the
// latter.)
template <class T>
VK_HD T exp_m1_split(T x, bool small, T& em1_big) {
    using Tr = FloatTraits<T>;
    const ExpReduced<T> e = exp_reduce(x);
    const T t = small ? x : e.r;
    const T q = t * t * exp_m1_mx_series(t);
    T ex = exp_scale(T(1) + (e.r + q), e.n);
    ex = x > Tr::kExpHi ? Tr::kInf : ex;
    ex = x < Tr::kExpLo ? T(0) : ex;
    em1_big = ex - T(1);
    return q;
}
// Both e^x - 1 - x (returned) and e^x - 1 (in em1) from one reduction and one polynomial.
template <class T>
VK_HD T exp_m1_mx_and_expm1(T x, T& em1) {
    const bool small = x > T(-1) && x < T(1);
    T em1_big;
    const T q = exp_m1_split(x, small, em1_big);
    em1 = small ? x + q : em1_big;
    const T big = x == FloatTraits<T>::kInf ? x : em1_big - x;   // inf - inf would be NaN; the limit is +inf
    return small ? q : big;
}
template <class T>
VK_HD T exp_m1_mx(T x) {
    T em1;
    return exp_m1_mx_and_expm1(x, em1);
}
template <class T>
VK_HD T vexpm1(T x) {
    T em1;
    exp_m1_mx_and_expm1(x, em1);
    return em1;
}

// softplus(l) = log(1 + e^l) = max(l, 0) + log1p(e^-|l|): finite and exact to rounding for any finite l.
template <class T>
VK_HD T softplus(T l) {
    const T a = l < T(0) ? -l : l;
    return (l > T(0) ? l : T(0)) + log1p_unit(vexp(-a));
}

VK_END_NAMESPACE
