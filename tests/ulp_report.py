"""Print the worst ulp errors of randn and of the exp/log-based kernels against higher-precision references
(the same probes as tests/test_math.py and tests/test_random.py, on larger samples).

    python tests/ulp_report.py [n]        # n samples per probe (default 2_000_000)
"""
import sys

import numpy as np

import vaekernels as vk
from vaekernels.testing import reference as R

LD = np.longdouble


def ulp(actual, exact, dtype):
    exact = np.asarray(exact, dtype=LD)
    return np.abs(np.asarray(actual).astype(LD) - exact) / np.spacing(np.abs(exact).astype(dtype)).astype(LD)


def exp_m1_mx_exact(x):
    small = np.abs(x) < 0.5
    xs = np.where(small, x, 0)
    term, series = xs * xs / 2, np.zeros_like(xs)
    for k in range(3, 40):
        series += term
        term = term * xs / k
    return np.where(small, series, np.expm1(x) - x)


def main(n):
    rng = np.random.default_rng(1)
    print(f"long double: {np.finfo(LD).nmant + 1}-bit significand; {n} samples per probe; SIMD level "
          f"{vk.simd_level()}")
    for dt in (np.float32, np.float64):
        name = np.dtype(dt).name
        rows = []
        z = vk.randn(n, 12345, 7, dt)
        rows.append(("randn vs Box-Muller in " + ("float64" if dt == np.float32 else "long double"),
                     ulp(z, R.randn_unrounded(n, 12345, 7, dt), dt)))
        lo, hi = (-88.7, 103.9) if dt == np.float32 else (-709.7, 745.1)
        lv = rng.uniform(lo, hi, n).astype(dt)[:, None]
        _, dm, _ = vk.normal_log_prob_and_grad(np.ones_like(lv), np.zeros_like(lv), lv)
        rows.append(("exp (normal_log_prob_and_grad dmean)", ulp(dm, np.exp(-lv.astype(LD)), dt)))
        lo, hi = (-80.0, 88.0) if dt == np.float32 else (-700.0, 709.0)
        x = np.concatenate([rng.uniform(lo, hi, n // 2), rng.uniform(-1, 1, n // 2)]).astype(dt)[:, None]
        _, dl = vk.kl_standard_normal_backward(np.ones(x.shape[0], dt), np.zeros_like(x), x)
        rows.append(("expm1 (kl_standard_normal_backward)", ulp(dl, np.expm1(x.astype(LD)) / 2, dt)))
        kl = vk.kl_standard_normal(np.zeros_like(x), x)
        ex = exp_m1_mx_exact(x[:, 0].astype(LD)) / 2
        ok = np.abs(ex) >= np.finfo(dt).tiny
        rows.append(("e^x-1-x (kl_standard_normal)", ulp(kl[ok], ex[ok], dt)))
        l = -rng.uniform(0, 104 if dt == np.float32 else 745, n).astype(dt)[:, None]
        b = vk.bernoulli_log_prob(np.zeros_like(l), l)
        ex = -np.log1p(np.exp(l[:, 0].astype(LD)))
        ok = ex != 0
        rows.append(("softplus (bernoulli_log_prob)", ulp(b[ok], ex[ok], dt)))
        lvr = rng.uniform(-60, 60, n).astype(dt)
        zr = vk.reparameterize(np.zeros_like(lvr), lvr, 77)
        rows.append(("exp(lv/2)*eps (reparameterize)",
                     ulp(zr, np.exp(lvr.astype(LD) / 2) * vk.randn(n, 77, 0, dt).astype(LD), dt)))
        for label, e in rows:
            print(f"  {name:8s} {label:42s} max {float(e.max()):6.3f} ulp   mean {float(e.mean()):.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000)
