"""Hostile input, fuzzed from the kernel table: every public kernel gets arbitrary arrays (shapes with zero
and huge dimensions, every dtype, byte orders, strides, read-only and misaligned buffers, non-finite values,
things that are not arrays), scalars (out-of-range, wrong types, NaN), out= arrays (wrong, aliasing) and
devices. Every call either returns or raises one of the documented exceptions: TypeError, ValueError,
RuntimeError only for a GPU request without a usable GPU. A crash or a hang fails the suite.

The private extension ``_core`` is fuzzed too: its argument checks must refuse, never crash.

CI runs a bounded, derandomised number of examples; ``python tests/fuzz/run_fuzz.py`` runs the same
properties for longer (coverage-guided with atheris when it is installed) and reports executions and
findings. HYPOTHESIS_PROFILE=explore searches afresh here too.
"""
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import vaekernels as vk
from vaekernels import _core
from vaekernels.kernels import KERNELS
from vaekernels.kernels.spec import Array

settings.register_profile("fuzz-gate", max_examples=120, derandomize=True, deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("fuzz-explore", max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
FUZZ = settings(settings.get_profile(
    "fuzz-explore" if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else
    os.environ.get("VAEKERNELS_FUZZ_PROFILE", "fuzz-gate")))

MAX_WORK = 1 << 16            # elements a valid call may touch (the fuzzer looks for crashes, not big work)
HUGE = [2**31, 2**32 + 1, 2**40, 2**62, 2**63 - 1]
DTYPES = ["<f4", "<f8", ">f8", ">f4", "<f2", "<i4", "<i8", "<u4", "<c8", "?", "O", "<U3"]
SPECIAL = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e-45, 5e-324, 1e38, 1e308, -1e308, 88.7, 710.0]


# -------------------------------------------------------------------------------------------------
# strategies
# -------------------------------------------------------------------------------------------------
@st.composite
def shapes(draw):
    nd = draw(st.integers(0, 3))
    dims = [draw(st.sampled_from([0, 1, 2, 3, 5, 17])) for _ in range(nd)]
    if nd and draw(st.integers(0, 9)) == 0:          # a huge dimension, made harmless by a zero one
        dims[draw(st.integers(0, nd - 1))] = draw(st.sampled_from(HUGE))
        dims[draw(st.integers(0, nd - 1))] = 0
    return tuple(dims)


def _make(shape, dtype, values):
    if math.prod(shape) * np.dtype(dtype).itemsize > 1 << 24:   # only arrays this test can afford to hold
        return None
    try:
        a = np.empty(shape, dtype=dtype)
    except (ValueError, MemoryError):
        return None
    if a.size:
        with np.errstate(over="ignore", invalid="ignore"):
            _fill(a, shape, values)
    return a


def _fill(a, shape, values):
    if a.dtype.kind in "fc":
        a[...] = np.resize(np.array(values, dtype=np.float64), a.size).reshape(shape).astype(a.dtype)
    elif a.dtype.kind == "O":
        a[...] = None
    elif a.dtype.kind != "U":
        a[...] = 1


@st.composite
def arrays(draw, shape=None):
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return draw(st.sampled_from([None, 1.5, "abc", 3, [[1.0, 2.0]], [[1, "a"]], object(), b"\x00" * 8]))
    shape = draw(shapes()) if shape is None else shape
    dtype = draw(st.sampled_from(DTYPES)) if kind < 6 else draw(st.sampled_from(["<f4", "<f8"]))
    values = draw(st.lists(st.sampled_from(SPECIAL) | st.floats(-50, 50), min_size=1, max_size=8))
    a = _make(shape, dtype, values)
    assume(a is not None)
    layout = draw(st.sampled_from(["c", "f", "reversed", "strided", "readonly", "misaligned", "0d"]))
    if layout == "f":
        a = np.asfortranarray(a)
    elif layout == "reversed" and a.ndim:
        a = a[::-1]
    elif layout == "strided" and a.ndim and a.size:
        a = np.repeat(a, 2, axis=-1)[..., ::2]
    elif layout == "readonly":
        a.flags.writeable = False
    elif layout == "misaligned" and a.dtype.kind in "fiu" and a.size:
        buf = bytearray(a.nbytes + 1)
        b = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        b[...] = a
        a = b
    elif layout == "0d" and a.dtype.kind in "fiucb":
        a = np.asarray(a.reshape(-1)[0] if a.size else 0.5, dtype=a.dtype)
    return a


INTS = st.sampled_from([0, 1, 3, 2**32, 2**63, 2**64 - 1, 2**64, -1, -2**63, 10**30]) | st.integers(0, 2**64 - 1)
BAD = st.sampled_from([None, 1.5, float("nan"), "3", True, np.float32(2), [1], np.int64(5), np.uint64(7)])
REALS = st.sampled_from([0.0, 0.5, 1.0, 1e-8, -1.0, float("nan"), float("inf"), 2, np.float32(0.3)])


def scalar(spec):
    if spec.kind in ("seed", "offset", "step"):
        return INTS | BAD
    if spec.kind == "n_samples":
        return st.sampled_from([None, None, 1, 2, 3, 0, -1, 2**62, 2**63, 1.5, "2", True])
    if spec.kind == "real":
        return REALS | BAD
    if spec.kind == "shape":
        small = st.lists(st.integers(0, 16), min_size=0, max_size=3).map(tuple)
        return small | st.integers(0, 64) | st.sampled_from(
            [-1, (2, -3), (2**31, 2**31, 2**31), (2**62, 4), 2.5, "7", (3, "4"), None, (0, 2**62)])
    if spec.kind == "dtype":
        return st.sampled_from([np.float32, np.float64, "float32", "f8", np.int32, "int64", np.float16,
                                "complex64", None, "nonsense", object])
    raise AssertionError(spec.kind)


@st.composite
def calls(draw, kernel):
    shared = draw(shapes())                            # most arrays share a shape, so calls get past validation
    args = []
    for p in kernel.params:
        if isinstance(p, Array):
            s = shared
            if p.role == "batch":
                s = shared[:-1]
            elif p.role in ("blocks", "keys"):
                s = (shared[0] if shared and shared[0] <= 17 else 2, 4 if p.role == "blocks" else 2)
            own = draw(st.integers(0, 5)) == 0
            a = draw(arrays(None if own else s))
            if kernel.dtypes == ("uint32",) and isinstance(a, np.ndarray) and draw(st.booleans()):
                if a.dtype.kind in "fiub" and 0 < a.size <= MAX_WORK:
                    with np.errstate(invalid="ignore", over="ignore"):
                        a = np.nan_to_num(a).astype(np.uint32)
            args.append(a)
        else:
            args.append(draw(scalar(p)))
    kw = {}
    if kernel.outputs:
        choice = draw(st.integers(0, 9))
        arrs = [a for a in args if isinstance(a, np.ndarray)]
        if choice == 1:
            kw["out"] = draw(arrays())
        elif choice == 2:
            kw["out"] = tuple(draw(arrays()) for _ in range(draw(st.integers(0, 4))))
        elif choice == 3 and arrs:
            first = draw(st.sampled_from(arrs))        # aliasing an input
            kw["out"] = first if len(kernel.outputs) == 1 else tuple([first] * len(kernel.outputs))
    if kernel.layout == "creation" and draw(st.integers(0, 4)) == 0:
        kw["device"] = draw(st.sampled_from(["cpu", "cuda", "cuda:1", "gpu", 3]))
    return args, kw


def _work(kernel, args, kw):
    """Elements a call would touch if it were valid (to skip valid but big calls, which are not the point):
    its arrays' sizes and their row counts (a (2**40, 0) input asks for 2**40 row sums of nothing)."""
    sizes = [a.size for a in args if isinstance(a, np.ndarray)]
    sizes += [math.prod(a.shape[:-1]) for a in args if isinstance(a, np.ndarray) and a.ndim]
    for p, a in zip(kernel.params, args):
        if not isinstance(p, Array) and p.kind == "shape":
            dims = (a,) if isinstance(a, int) else a
            if isinstance(dims, tuple) and all(isinstance(d, int) for d in dims):
                sizes.append(math.prod(dims))
        if not isinstance(p, Array) and p.kind == "n_samples" and isinstance(a, int) and a > 1:
            sizes.append(a * max(sizes or [1]))
    return max(sizes or [0])


EXECUTIONS = [0]               # calls made (run_fuzz.py reports it)


def check_call(kernel, call):
    """One fuzzed call: it returns, or raises a documented exception."""
    args, kw = call
    assume(_work(kernel, args, kw) <= MAX_WORK)
    EXECUTIONS[0] += 1
    fn = getattr(vk, kernel.name)
    gpu = kw.get("device") not in (None, "cpu")
    try:
        fn(*args, **kw)
    except (TypeError, ValueError):
        pass
    except RuntimeError as e:
        # only a GPU request without a usable GPU may raise RuntimeError
        assert gpu and not vk.cuda_available() and "CUDA" in str(e), (kernel.name, e)


@pytest.mark.parametrize("name", [k.name for k in KERNELS])
def test_fuzz_public_kernel(name):
    kernel = next(k for k in KERNELS if k.name == name)

    @FUZZ
    @given(calls(kernel))
    def run(call):
        check_call(kernel, call)

    run()


# Every kernel in one property, for run_fuzz.py (atheris drives it through hypothesis' fuzz_one_input).
ANY_CALL = st.sampled_from(KERNELS).flatmap(lambda k: calls(k).map(lambda c, k=k: (k, c)))


@settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(ANY_CALL)
def fuzz_any_kernel(kernel_call):
    check_call(*kernel_call)


# -------------------------------------------------------------------------------------------------
# the private extension: its checks refuse, never crash
# -------------------------------------------------------------------------------------------------
@st.composite
def raw_calls(draw):
    kernel = draw(st.sampled_from(KERNELS))
    sub = draw(st.sampled_from(["f32", "f64", "u32"]))
    assume(hasattr(getattr(_core, sub), kernel.name))
    n = len(kernel.all_arrays) + draw(st.sampled_from([0, 0, 0, -1, 1]))
    arrays_ = tuple(draw(arrays()) for _ in range(max(n, 0)))
    ext_len = draw(st.sampled_from([1, 2, 2, 0, 3]))
    extent = tuple(draw(st.sampled_from([0, 1, 2, 3, 5, 17, -1, 2**31, 2**62, 2**63 - 1])) for _ in range(ext_len))
    scal = tuple(draw(INTS | BAD | REALS) for _ in range(len(kernel.cpp_scalars) + draw(st.sampled_from([0, 0, 1]))))
    return getattr(getattr(_core, sub), kernel.name), arrays_, extent, scal


@FUZZ
@given(raw_calls())
def test_fuzz_core_extension_checks(call):
    fn, arrays_, extent, scal = call
    assume(all(not isinstance(a, np.ndarray) or a.size <= MAX_WORK for a in arrays_))
    try:
        fn(arrays_, extent, scal)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        pass
