// random.hpp: Philox words -> uniforms and standard normals. One definition serves every CPU path and
// the GPU, so stream position j of (seed, dtype) has the same bits on every device.
//
// Stream positions (offset j of seed s):
//   randn float32: block j/4 of tag kTagNormal; a block's words (w0, w1) give normals 4b, 4b+1 and
//                  (w2, w3) give 4b+2, 4b+3 (Box-Muller: r cos, r sin).
//   randn float64: block j/2; (w0, w1) is the 52-bit radius uniform, (w2, w3) the 52-bit angle;
//                  normals 2b (r cos) and 2b+1 (r sin).
//   rand  float32: block j/4 of tag kTagUniform, word j%4;  rand float64: block j/2, words (2(j%2), 2(j%2)+1).
//
// Box-Muller: z0 = r cos(2 pi t), z1 = r sin(2 pi t), r = sqrt(-2 log u), u in (0, 1] so r is finite
// (|z| <= 5.77 in float32 and <= 8.49 in float64: 2^-24 and 2^-52 are the smallest u). The angle is reduced
// exactly in integers to an octant: 2 pi t = n pi/2 + a, |a| <= pi/4, then sin/cos polynomials.
#pragma once

#include "math.hpp"
#include "philox.hpp"

VK_BEGIN_NAMESPACE

constexpr double kTwoPi = 6.283185307179586476925286766559;

// ---------------------------------------------------------------------------------------------
// Uniforms
// ---------------------------------------------------------------------------------------------

// (2k+1) 2^-24 with k the top 23 bits: open interval (0, 1), exact in float32.
VK_HD float uniform_open_f32(uint32_t w) {
    return static_cast<float>(static_cast<int32_t>(((w >> 9) << 1) | 1u)) * 5.9604644775390625e-08f;
}
// (2k+1) 2^-53 with k the top 52 bits of (hi, lo): 1 + k 2^-52 is built from bits, so no int64 -> double.
VK_HD double uniform_open_f64(uint32_t hi, uint32_t lo) {
    const uint64_t k = (static_cast<uint64_t>(hi) << 20) | (lo >> 12);
    return (double_from_bits(0x3FF0000000000000ull | k) - 1.0) + 1.1102230246251565e-16;
}

// ---------------------------------------------------------------------------------------------
// Box-Muller pair
// ---------------------------------------------------------------------------------------------

// sin and cos of 2 pi t, t = k 2^-bits, from the octant split k = n 2^(bits-2) + r (all integer).
template <class T>
VK_HD void sincos_quadrant(T a, uint32_t n, T& s, T& c) {
    T sa, ca;
    sincos_poly(a, sa, ca);
    const uint32_t q = n & 3u;
    const T s1 = (q & 1u) ? ca : sa;
    const T c1 = (q & 1u) ? sa : ca;
    s = (q & 2u) ? -s1 : s1;                                      // q=1: sin = cos a; q=2: -sin a; q=3: -cos a
    c = ((q + 1u) & 2u) ? -c1 : c1;                               // q=1: cos = -sin a; q=2: -cos a; q=3: sin a
}

VK_HD void box_muller_f32(uint32_t wr, uint32_t wt, float& z0, float& z1) {
    const float u = static_cast<float>(static_cast<int32_t>(wr >> 8) + 1) * 5.9604644775390625e-08f;  // (0, 1]
    const float r = vsqrt(-2.0f * vlog(u));
    const int32_t k = static_cast<int32_t>(wt >> 8);              // t = k 2^-24
    const int32_t n = (k + (1 << 21)) >> 22;                      // nearest quarter turn, 0..4
    const int32_t rem = k - (n << 22);                            // |rem| <= 2^21
    const float a = static_cast<float>(rem) * static_cast<float>(kTwoPi / 16777216.0);
    float s, c;
    sincos_quadrant(a, static_cast<uint32_t>(n), s, c);
    z0 = r * c;
    z1 = r * s;
}

VK_HD void box_muller_f64(uint32_t r_hi, uint32_t r_lo, uint32_t t_hi, uint32_t t_lo, double& z0, double& z1) {
    const uint64_t kr = (static_cast<uint64_t>(r_hi) << 20) | (r_lo >> 12);
    const double u = 2.0 - double_from_bits(0x3FF0000000000000ull | kr);   // (0, 1], exact
    const double r = vsqrt(-2.0 * vlog(u));
    const int64_t k = static_cast<int64_t>((static_cast<uint64_t>(t_hi) << 20) | (t_lo >> 12));  // t = k 2^-52
    const int64_t n = (k + (int64_t(1) << 49)) >> 50;
    const int64_t rem = k - (n << 50);                            // |rem| <= 2^49
    // Exact int64 -> double for |rem| < 2^51 through the 1.5*2^52 bias (vectorises without AVX-512DQ).
    const double remd = double_from_bits(0x4338000000000000ull + static_cast<uint64_t>(rem)) - 6755399441055744.0;
    const double a = remd * (kTwoPi / 4503599627370496.0);
    double s, c;
    sincos_quadrant(a, static_cast<uint32_t>(n), s, c);
    z0 = r * c;
    z1 = r * s;
}

// Normal number j of stream `seed` (scalar reference path: the vectorised CPU loops must match it).
VK_HD float normal_at_f32(uint64_t seed, uint64_t j) {
    const PhiloxWords w = philox_stream_block(seed, j >> 2, kTagNormal, 0);
    float z0, z1;
    const bool second = (j & 2u) != 0;
    box_muller_f32(second ? w.w2 : w.w0, second ? w.w3 : w.w1, z0, z1);
    return (j & 1u) ? z1 : z0;
}
VK_HD double normal_at_f64(uint64_t seed, uint64_t j) {
    const PhiloxWords w = philox_stream_block(seed, j >> 1, kTagNormal, 0);
    double z0, z1;
    box_muller_f64(w.w0, w.w1, w.w2, w.w3, z0, z1);
    return (j & 1u) ? z1 : z0;
}
VK_HD float uniform_at_f32(uint64_t seed, uint64_t j) {
    const PhiloxWords w = philox_stream_block(seed, j >> 2, kTagUniform, 0);
    const uint32_t k = j & 3u;
    return uniform_open_f32(k == 0 ? w.w0 : k == 1 ? w.w1 : k == 2 ? w.w2 : w.w3);
}
VK_HD double uniform_at_f64(uint64_t seed, uint64_t j) {
    const PhiloxWords w = philox_stream_block(seed, j >> 1, kTagUniform, 0);
    return (j & 1u) ? uniform_open_f64(w.w2, w.w3) : uniform_open_f64(w.w0, w.w1);
}

template <class T> VK_HD T normal_at(uint64_t seed, uint64_t j);
template <> VK_HD float normal_at<float>(uint64_t seed, uint64_t j) { return normal_at_f32(seed, j); }
template <> VK_HD double normal_at<double>(uint64_t seed, uint64_t j) { return normal_at_f64(seed, j); }
template <class T> VK_HD T uniform_at(uint64_t seed, uint64_t j);
template <> VK_HD float uniform_at<float>(uint64_t seed, uint64_t j) { return uniform_at_f32(seed, j); }
template <> VK_HD double uniform_at<double>(uint64_t seed, uint64_t j) { return uniform_at_f64(seed, j); }

VK_END_NAMESPACE
