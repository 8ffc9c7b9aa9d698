"""Shared helpers for the vaekernels test suite: tolerance checks that report the first mismatches,
ulp measurement, precision ladders (float32 -> float64 -> long double) and subprocess runners.

Tolerance policy (see tests/README.md):
* Bit-for-bit (`np.testing.assert_array_equal` on the raw bytes) wherever the contract promises it:
  offsets, thread counts, SIMD levels, fused vs unfused kernels.
* Against an independent reference: |actual - ref| <= atol + rtol * |ref| element by element, with atol
  (an array) from a forward-error bound of the kernel's formula (its rounding budget times the sum of the
  magnitudes of the terms it adds, per element), or from a stated ulp budget for elementary functions;
  assert_tolerance_strength / assert_mutation_detected show that such a tolerance sees a 0.1% error.
  (naive_error, the older flash-attention rule, is kept for comparison.)
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vaekernels as vk
from vaekernels.testing import reference as R

FLOATS = (np.float32, np.float64)
LD = np.longdouble
# True where long double carries more precision than double (x86-64 80-bit, aarch64 Linux quad).
EXTENDED_LD = np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_data(name):
    """The folder ../shared/data/<name> beside the checkout, or None when it is absent (its tests then skip).
    With VAEKERNELS_EXPECT_DATA=1 (as .ci/run sets) an absent data set is an error instead: the tests that
    rest on it cannot skip silently."""
    path = os.path.join(REPO, "..", "shared", "data", name)
    if os.path.isdir(path):
        return path
    if os.environ.get("VAEKERNELS_EXPECT_DATA") == "1":
        raise FileNotFoundError(f"VAEKERNELS_EXPECT_DATA=1 but the shared data set {path!r} is missing")
    return None


@pytest.fixture(params=FLOATS, ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def higher(dtype):
    """The precision a dtype's reference is evaluated in: float64 for float32, long double for float64."""
    return np.float64 if np.dtype(dtype) == np.float32 else LD


def eps(dtype):
    return float(np.finfo(dtype).eps)


# -------------------------------------------------------------------------------------------------
# Comparisons
# -------------------------------------------------------------------------------------------------
def assert_close(actual, ref, atol, rtol, name="", show=8):
    """|actual - ref| <= atol + rtol * |ref| elementwise, NaN where ref is NaN, equal infinities.

    On failure, reports how many elements mismatch and the first `show` of them (index, actual, ref,
    difference, allowed), like llm.c's validate_result.
    """
    actual = np.asarray(actual)
    ref = np.asarray(ref)
    assert actual.shape == ref.shape, f"{name}: shape {actual.shape} != reference shape {ref.shape}"
    a = actual.astype(LD)
    r = ref.astype(LD)
    nan_a, nan_r = np.isnan(a), np.isnan(r)
    inf_r = np.isinf(r)
    finite = ~nan_r & ~inf_r
    diff = np.abs(a - r)
    allowed = np.asarray(atol, dtype=LD) + np.asarray(rtol, dtype=LD) * np.abs(r)
    bad = (nan_a != nan_r) | (inf_r & (a != r)) | (finite & ~(diff <= allowed))
    if bad.any():
        idx = np.argwhere(bad)
        lines = [f"{name}: {len(idx)} of {bad.size} elements mismatch (atol<={float(np.max(atol)):.3g}, "
                 f"rtol<={float(np.max(rtol)):.3g})"]
        for i in idx[:show]:
            i = tuple(i)
            lines.append(f"  at {i}: actual {actual[i]!r} ref {ref[i]!r} diff {float(diff[i]):.4g} "
                         f"allowed {float(allowed[i]):.4g}")
        pytest.fail("\n".join(lines))


def assert_bitwise(actual, expected, name=""):
    """Same shape, dtype and bytes (NaN payloads and signed zeros included)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, \
        f"{name}: {actual.dtype}{actual.shape} vs {expected.dtype}{expected.shape}"
    ua = np.ascontiguousarray(actual).view(np.uint8)
    ue = np.ascontiguousarray(expected).view(np.uint8)
    if not np.array_equal(ua, ue):
        bad = np.argwhere(np.ascontiguousarray(actual).reshape(-1).view(f"u{actual.itemsize}")
                          != np.ascontiguousarray(expected).reshape(-1).view(f"u{actual.itemsize}")).ravel()
        fa, fe = actual.reshape(-1), expected.reshape(-1)
        shown = ", ".join(f"[{i}] {fa[i]!r} != {fe[i]!r}" for i in bad[:6])
        pytest.fail(f"{name}: {len(bad)} of {fa.size} elements differ bitwise: {shown}")


def ulp_error(actual, exact, dtype):
    """|actual - exact| in units of the spacing of ``dtype`` at |exact| (exact given in higher precision)."""
    exact = np.asarray(exact, dtype=LD)
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(LD)
    return np.abs(np.asarray(actual).astype(LD) - exact) / spacing


def naive_error(fn, args, dtype):
    """Max |fn(args in dtype) - fn(args in the higher precision)| per output of ``fn``.

    ``fn`` is a reference formula; the result is what a straightforward implementation in ``dtype`` gets
    wrong, the yardstick for the kernel's tolerance. Returns (exact outputs, list of max errors).
    """
    hi = higher(dtype)
    exact = fn(*[np.asarray(a, dtype=dtype).astype(hi) for a in args])
    naive = fn(*[np.asarray(a, dtype=dtype) for a in args])
    if not isinstance(exact, tuple):
        exact, naive = (exact,), (naive,)
    errs = []
    for e, n in zip(exact, naive):
        d = np.abs(n.astype(LD) - e.astype(LD))
        errs.append(float(np.max(d[np.isfinite(d)], initial=0.0)))
    return exact, errs


# -------------------------------------------------------------------------------------------------
# Strength of a per-element tolerance: what a check can see
# -------------------------------------------------------------------------------------------------
STRICT_REL = 1e-3   # a relative error this large in any (non-cancelling) element must fail a comparison


def assert_tolerance_strength(allowed, exact, mag, name, cancel, max_excepted):
    """Asserts that ``allowed`` (per element) is below STRICT_REL * |exact| wherever exact is nonzero and
    finite and the element's own terms cancel by at most ``cancel`` (mag <= cancel * |exact|, mag being
    the sum of |terms| the tolerance was derived from); the excepted elements (mag > cancel * |exact|)
    must number at most ``max_excepted``. Returns the mask of the covered elements."""
    allowed, exact, mag = (np.asarray(a, dtype=LD) for a in np.broadcast_arrays(allowed, exact, mag))
    nonzero = np.isfinite(exact) & (exact != 0)
    covered = nonzero & (mag <= cancel * np.abs(exact))
    excepted = int(np.count_nonzero(nonzero & ~covered))
    assert excepted <= max_excepted, (
        f"{name}: {excepted} of {exact.size} elements cancel by more than {cancel}x "
        f"(at most {max_excepted} allowed)")
    weak = covered & ~(allowed < STRICT_REL * np.abs(exact))
    if weak.any():
        i = tuple(np.argwhere(weak)[0])
        pytest.fail(f"{name}: tolerance too loose to see a {STRICT_REL:g} relative error at {weak.sum()} elements, "
                    f"e.g. at {i}: allowed {float(allowed[i]):.3g}, exact {float(exact[i]):.3g}, "
                    f"|terms| {float(mag[i]):.3g}")
    return covered


def assert_mutation_detected(actual, exact, allowed, covered, name, rel=STRICT_REL):
    """Multiplies the covered element with the smallest nonzero |exact| by (1 + rel) (in actual's dtype) and
    asserts that assert_close(…, atol=allowed, rtol=0) then fails: the comparison sees such an error."""
    actual = np.array(actual, copy=True)
    exact_ld = np.broadcast_to(np.asarray(exact, dtype=LD), actual.shape)
    cov = np.broadcast_to(covered, actual.shape).reshape(-1)
    assert cov.any(), f"{name}: no covered element to mutate"
    flat = np.where(cov, np.abs(exact_ld).reshape(-1), np.inf)
    i = int(np.argmin(flat))
    mutated = actual.reshape(-1)
    mutated[i] = mutated[i] * actual.dtype.type(1 + rel)
    with pytest.raises(pytest.fail.Exception):
        assert_close(mutated.reshape(actual.shape), exact, atol=allowed, rtol=0, name=f"{name} (mutated)")


# -------------------------------------------------------------------------------------------------
# Subprocesses (thread counts and SIMD levels are fixed at import time of the extension)
# -------------------------------------------------------------------------------------------------
def run_python(code, env_overrides):
    """Run ``code`` in a fresh interpreter with extra environment variables; returns its stdout."""
    env = dict(os.environ)
    env.update(env_overrides)
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"subprocess with {env_overrides} failed:\n{res.stderr[-3000:]}"
    return res.stdout


__all__ = ["vk", "R", "FLOATS", "LD", "EXTENDED_LD", "higher", "eps", "assert_close", "assert_bitwise",
           "ulp_error", "naive_error", "run_python", "STRICT_REL", "assert_tolerance_strength",
           "assert_mutation_detected"]
