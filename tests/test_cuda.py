"""The CUDA backend (cuda/, vaekernels._cuda, the device side of vaekernels.kernels).

Always run (no GPU needed): cuda_built() reflects the build; without a device every GPU path raises
RuntimeError("no CUDA device ...") instead of crashing; mixing host and device arrays is a TypeError
naming both arguments; importing or using vaekernels on NumPy arrays never imports CuPy; the GPU's row
summation order, emulated in NumPy, reproduces the CPU's row sums bit for bit; the scalar stream
transform (normal_at, what latent_forward calls per element on the GPU) equals the vectorised CPU path.

With a device (and CuPy): every kernel against the CPU kernel. The contract is bitwise equality, not a
tolerance: both sides run the same VK_HD functions with contraction off (nvcc --fmad=false, IEEE
division and square root, no intrinsics) and the GPU sums each row in the CPU's lane order
(cuda/common.cuh), so any difference is a bug, not rounding.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import shutil

import numpy as np
import pytest

from conftest import FLOATS, assert_bitwise, run_python, vk

from vaekernels.kernels import cuda as G


def _gpu_skip_reason():
    if not vk.cuda_built():
        return "vaekernels was built without its CUDA extension (no nvcc at build time)"
    if not vk.cuda_available():
        return f"no usable CUDA device here: {G.module().device_error()}"
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (pip install vaekernels[cuda])"
    return None


GPU_SKIP = _gpu_skip_reason()
gpu = pytest.mark.skipif(GPU_SKIP is not None, reason=f"GPU test: {GPU_SKIP}")
no_device = pytest.mark.skipif(vk.cuda_available(), reason="a CUDA device is usable: the no-device path cannot run")


class FakeDeviceArray:
    """Claims to be a device array (__cuda_array_interface__) at a pointer no kernel may touch.

    Only used where no device exists: every path must refuse before a launch could dereference it.
    """

    def __init__(self, shape, dtype=np.float32):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.__cuda_array_interface__ = {"shape": self.shape, "typestr": self.dtype.str, "data": (0x10000, False),
                                         "strides": None, "version": 3}


# (name, call with the arrays it takes) for every public kernel; `a(shape)` makes one array argument.
def _calls(a):
    B, D = 3, 5
    return {
        "philox4x32_10": lambda: vk.philox4x32_10(a((B, 4), np.uint32), a((B, 2), np.uint32)),
        "reparameterize": lambda: vk.reparameterize(a((B, D)), a((B, D)), 0),
        "kl_standard_normal": lambda: vk.kl_standard_normal(a((B, D)), a((B, D))),
        "kl_standard_normal_backward": lambda: vk.kl_standard_normal_backward(a((B,)), a((B, D)), a((B, D))),
        "kl_normal": lambda: vk.kl_normal(a((B, D)), a((B, D)), a((B, D)), a((B, D))),
        "kl_normal_backward": lambda: vk.kl_normal_backward(a((B,)), a((B, D)), a((B, D)), a((B, D)), a((B, D))),
        "bernoulli_log_prob": lambda: vk.bernoulli_log_prob(a((B, D)), a((B, D))),
        "bernoulli_log_prob_and_grad": lambda: vk.bernoulli_log_prob_and_grad(a((B, D)), a((B, D))),
        "bernoulli_log_prob_backward": lambda: vk.bernoulli_log_prob_backward(a((B,)), a((B, D)), a((B, D))),
        "normal_log_prob": lambda: vk.normal_log_prob(a((B, D)), a((B, D)), a((B, D))),
        "normal_log_prob_and_grad": lambda: vk.normal_log_prob_and_grad(a((B, D)), a((B, D)), a((B, D))),
        "normal_log_prob_backward": lambda: vk.normal_log_prob_backward(a((B,)), a((B, D)), a((B, D)), a((B, D))),
        "standard_normal_log_prob": lambda: vk.standard_normal_log_prob(a((B, D))),
        "standard_normal_log_prob_and_grad": lambda: vk.standard_normal_log_prob_and_grad(a((B, D))),
        "latent_forward": lambda: vk.latent_forward(a((B, D)), a((B, D)), 0),
        "latent_backward": lambda: vk.latent_backward(a((B, D)), a((B, D)), a((B, D)), 0),
        "latent_vjp": lambda: vk.latent_vjp(a((B, D)), a((B,)), a((B, D)), a((B, D)), 0),
        "adam_step": lambda: vk.adam_step(a((B, D)), a((B, D)), a((B, D)), a((B, D)), 1),
    }


KERNELS = sorted(_calls(None))


def test_calls_cover_every_kernel_with_array_inputs():
    from vaekernels.kernels import KERNELS as TABLE
    from vaekernels.kernels.spec import CREATION
    assert set(KERNELS) == {k.name for k in TABLE if k.layout != CREATION}


# -------------------------------------------------------------------------------------------------
# The build
# -------------------------------------------------------------------------------------------------
def test_cuda_built_reflects_the_extension():
    spec = importlib.util.find_spec("vaekernels._cuda")
    importable = False
    if spec is not None:
        importlib.import_module("vaekernels._cuda")  # must not fail if it was built
        importable = True
    assert vk.cuda_built() is importable
    assert vk.cuda_available() in (True, False)
    if not importable:
        assert vk.cuda_available() is False


def test_cuda_is_built_when_nvcc_is_present():
    """CI builds with nvcc on PATH (AUTO mode): the extension must then exist, or a CUDA build silently
    fell back to CPU-only. VAEKERNELS_EXPECT_CUDA=0/1 states the expectation explicitly."""
    expect = os.environ.get("VAEKERNELS_EXPECT_CUDA")
    if expect is None:
        if shutil.which("nvcc") is None:
            pytest.skip("nvcc is not on PATH and VAEKERNELS_EXPECT_CUDA is unset: no expectation to check")
        expect = "1"
    assert vk.cuda_built() is (expect == "1"), (
        f"vaekernels._cuda should{'' if expect == '1' else ' not'} be built (nvcc on PATH: "
        f"{shutil.which('nvcc')}, VAEKERNELS_EXPECT_CUDA={os.environ.get('VAEKERNELS_EXPECT_CUDA')}); "
        f"set VAEKERNELS_EXPECT_CUDA=0 for a deliberate VAEKERNELS_CUDA=OFF build")


# -------------------------------------------------------------------------------------------------
# No device: clear RuntimeError, never a crash
# -------------------------------------------------------------------------------------------------
@no_device
def test_cuda_available_is_false_without_a_device():
    assert vk.cuda_available() is False
    if vk.cuda_built():
        assert G.module().device_count() == 0
        assert G.module().device_error().startswith("no CUDA device")


@no_device
@pytest.mark.parametrize("name", KERNELS)
def test_public_kernels_raise_no_cuda_device(name):
    with pytest.raises(RuntimeError, match="no CUDA device"):
        _calls(lambda shape, dtype=np.float32: FakeDeviceArray(shape, dtype))[name]()


@no_device
@pytest.mark.parametrize("call", [
    lambda: vk.randn(10, 0, device="cuda"),
    lambda: vk.rand((2, 3), 7, 5, np.float64, device="cuda:0"),
    lambda: vk.randn(4, 0, out=FakeDeviceArray((4,))),
], ids=["randn-device", "rand-device-index", "randn-out"])
def test_random_on_device_raises_no_cuda_device(call):
    with pytest.raises(RuntimeError, match="no CUDA device"):
        call()


@no_device
def _raw_call(kernel, n, pointer):
    """(pointers, extent, scalars) of a raw extension call for ``kernel`` with n rows / elements."""
    from vaekernels.kernels.spec import ROWS
    scalars = {"seed": 1, "offset": 0, "n_samples": 1, "real": 0.5, "step": 1}
    pointers = tuple(pointer + i * (1 << 30) for i in range(len(kernel.all_arrays)))   # disjoint, aligned
    return (pointers, (n, 4) if kernel.layout == ROWS else (n,), tuple(scalars[s.kind] for s in kernel.cpp_scalars))


@no_device
@pytest.mark.skipif(not vk.cuda_built(), reason="the CUDA extension is not built")
@pytest.mark.parametrize("mod", ["f32", "f64", "u32"])
def test_extension_launchers_raise_runtime_error_without_device(mod):
    """The raw module refuses too: the launch fails in the runtime (no device) before any pointer is used.
    Zero-size calls return before launching, so they succeed even here. Every kernel of the table."""
    from vaekernels.kernels import KERNELS
    sub = getattr(G.module(), mod)
    dtype = {"f32": "float32", "f64": "float64", "u32": "uint32"}[mod]
    kernels = [k for k in KERNELS if dtype in k.dtypes]
    assert sorted(n for n in dir(sub) if not n.startswith("_")) == sorted(k.name for k in kernels)
    for k in kernels:
        fn = getattr(sub, k.name)
        assert fn(*_raw_call(k, 0, 0x10000), 0) is None
        with pytest.raises(RuntimeError, match="no CUDA device"):
            fn(*_raw_call(k, 8, 0x10000), 0)


@pytest.mark.skipif(not vk.cuda_built(), reason="the CUDA extension is not built")
def test_extension_refuses_sizes_that_overflow():
    from vaekernels.kernels import BY_NAME
    sub = G.module().f32
    ptrs, _, scalars = _raw_call(BY_NAME["reparameterize"], 8, 0x10000)
    with pytest.raises(ValueError, match="overflow"):
        sub.reparameterize(ptrs, (2**40,), scalars[:2] + (2**40,), 0)
    with pytest.raises(ValueError, match="overflow"):
        sub.kl_standard_normal((0x10000,) * 3, (2**40, 2**40), (), 0)
    with pytest.raises(ValueError, match="expected"):
        sub.kl_standard_normal((0x10000,) * 2, (4, 4), (), 0)


@pytest.mark.skipif(not vk.cuda_built(), reason="the CUDA extension is not built")
def test_extension_refuses_outputs_overlapping_inputs():
    """The same aliasing rule as the CPU binding, checked on device pointers before any launch (so it holds
    without a device too): z may not overlap mu, not even partly; disjoint arrays pass to the launch."""
    sub = G.module().f32
    mu, lv, z, kl = 0x100000, 0x200000, 0x300000, 0x400000
    with pytest.raises(ValueError, match="output z .* shares memory with argument mu"):
        sub.latent_forward((mu, lv, mu + 4 * 15, kl), (4, 4), (1, 0), 0)       # z starts inside mu's 64 bytes
    try:
        sub.latent_forward((mu, lv, mu + 4 * 16, kl), (4, 4), (1, 0), 0)       # z right after mu: disjoint
    except RuntimeError as e:                                                  # no device here: the launch fails
        assert "no CUDA device" in str(e)


# -------------------------------------------------------------------------------------------------
# Dispatch rules that hold on any machine
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [k for k in KERNELS if not k.startswith("standard_normal")])  # >= 2 arrays
@pytest.mark.parametrize("device_first", [True, False], ids=["device-first", "host-first"])
def test_mixing_host_and_device_arrays_is_a_type_error(name, device_first):
    """One argument on the device, the others NumPy (or the reverse): TypeError naming the two kinds."""
    count = {"i": 0}

    def a(shape, dtype=np.float32):
        count["i"] += 1
        on_device = (count["i"] == 1) == device_first
        return FakeDeviceArray(shape, dtype) if on_device else np.zeros(shape, dtype)

    with pytest.raises(TypeError, match=r"(?i)GPU array") as err:
        _calls(a)[name]()
    assert "host" in str(err.value)


def test_random_device_argument():
    np.testing.assert_array_equal(vk.randn(6, 3, device="cpu"), vk.randn(6, 3))
    assert type(vk.rand(4, 1, device="cpu")) is np.ndarray
    with pytest.raises(ValueError, match="device must be"):
        vk.randn(3, 0, device="gpu")
    if not vk.cuda_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            vk.randn(3, 0, device="cuda:1")


def test_numpy_path_never_imports_cupy():
    out = run_python("""
        import sys
        import numpy as np
        import vaekernels as vk
        x = np.ones((4, 8), np.float32)
        vk.kl_standard_normal(x, x); vk.randn(5, 0); vk.latent_forward(x, x, 1)
        vk.cuda_built(); vk.cuda_available()
        print("cupy" in sys.modules)
    """, {})
    assert out.strip() == "False"


# -------------------------------------------------------------------------------------------------
# What the GPU relies on, proved on the CPU
# -------------------------------------------------------------------------------------------------
def _gpu_row_sum(terms):
    """NumPy emulation of cuda/common.cuh row_reduce: 16 lanes, lane l adds columns l, l+16, ... in order,
    then acc += shfl_down(acc, w) for w = 8, 4, 2, 1 (a lane whose source is past the 16-lane segment
    reads its own value, as __shfl_down_sync does); lane 0 holds the sum. Same dtype arithmetic throughout."""
    rows, cols = terms.shape
    acc = np.zeros((rows, 16), terms.dtype)
    for j in range(cols):
        acc[:, j % 16] += terms[:, j]
    for w in (8, 4, 2, 1):
        src = np.array([l + w if l + w < 16 else l for l in range(16)])
        acc = acc + acc[:, src]
    return acc[:, 0]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("cols", [1, 5, 16, 33, 784, 2500])
def test_gpu_row_sum_order_reproduces_cpu_row_sums(dtype, cols, rng):
    rows = 7
    mu = rng.standard_normal((rows, cols)).astype(dtype) * 3
    lv = rng.standard_normal((rows, cols)).astype(dtype)
    # Per-element terms from the kernel itself: a one-column row sum is 0 + t = t exactly.
    terms = vk.kl_standard_normal(mu.reshape(-1, 1), lv.reshape(-1, 1)).reshape(rows, cols)
    assert_bitwise(_gpu_row_sum(terms), vk.kl_standard_normal(mu, lv), f"row sums, cols={cols}")


@pytest.mark.parametrize("dtype", FLOATS)
def test_scalar_stream_transform_matches_vectorised_path(dtype):
    """randn of one number runs the scalar normal_at / uniform_at (the CPU's head and tail path, and what the
    GPU's latent_forward calls per element); long draws run the vectorised block loop (the transform the
    GPU's randn uses per Philox block). Every alignment of the position within a block must agree."""
    seed, n = 0x9E3779B97F4A7C15, 64
    for draw in (vk.randn, vk.rand):
        long = draw(n + 3, seed, 2**33, dtype)
        single = np.concatenate([draw(1, seed, 2**33 + j, dtype) for j in range(n + 3)])
        assert_bitwise(single, long, f"{draw.__name__} scalar vs vectorised")


# -------------------------------------------------------------------------------------------------
# On a GPU: every kernel against the CPU, bit for bit
# -------------------------------------------------------------------------------------------------
@pytest.fixture
def cp():
    import cupy
    return cupy


def _host(x):
    import cupy
    return tuple(cupy.asnumpy(a) for a in x) if isinstance(x, tuple) else cupy.asnumpy(x)


def _inputs(rng, shape, dtype, n):
    arrs = [(rng.standard_normal(shape) * 2).astype(dtype) for _ in range(n)]
    return arrs


SHAPES = [(0, 5), (3, 0), (1, 1), (7, 33), (4, 3, 16), (64, 784), (2, 5000)]


def _gpu_vs_cpu(cp, fn, host_args, *extra, **kw):
    cpu = fn(*host_args, *extra, **kw)
    dev = fn(*[cp.asarray(a) for a in host_args], *extra, **kw)
    cpu_t = cpu if isinstance(cpu, tuple) else (cpu,)
    dev_t = dev if isinstance(dev, tuple) else (dev,)
    for i, (c, d) in enumerate(zip(cpu_t, dev_t)):
        assert isinstance(d, cp.ndarray), f"{fn.__name__} output {i} is {type(d).__name__}, not a CuPy array"
        assert_bitwise(cp.asnumpy(d), c, f"{fn.__name__} output {i}")


@gpu
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_row_kernels_match_cpu(cp, rng, dtype, shape):
    a, b, c, d = _inputs(rng, shape, dtype, 4)
    x01 = (rng.random(shape) < 0.5).astype(dtype)
    g = rng.standard_normal(shape[:-1]).astype(dtype)
    _gpu_vs_cpu(cp, vk.kl_standard_normal, (a, b))
    _gpu_vs_cpu(cp, vk.kl_standard_normal_backward, (g, a, b))
    _gpu_vs_cpu(cp, vk.kl_normal, (a, b, c, d))
    _gpu_vs_cpu(cp, vk.kl_normal_backward, (g, a, b, c, d))
    _gpu_vs_cpu(cp, vk.bernoulli_log_prob, (x01, a * 10))
    _gpu_vs_cpu(cp, vk.bernoulli_log_prob_and_grad, (x01, a * 10))
    _gpu_vs_cpu(cp, vk.bernoulli_log_prob_backward, (g, x01, a * 10))
    _gpu_vs_cpu(cp, vk.normal_log_prob, (a, b, c))
    _gpu_vs_cpu(cp, vk.normal_log_prob_and_grad, (a, b, c))
    _gpu_vs_cpu(cp, vk.normal_log_prob_backward, (g, a, b, c))
    _gpu_vs_cpu(cp, vk.standard_normal_log_prob, (a,))
    _gpu_vs_cpu(cp, vk.standard_normal_log_prob_and_grad, (a,))


@gpu
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 2**40 + 5])
def test_noise_kernels_match_cpu(cp, rng, dtype, shape, offset):
    mu, lv, dz = _inputs(rng, shape, dtype, 3)
    seed = 0xDEADBEEF12345678
    _gpu_vs_cpu(cp, vk.reparameterize, (mu, lv), seed, offset)
    _gpu_vs_cpu(cp, vk.reparameterize, (mu, lv), seed, offset, 3)
    _gpu_vs_cpu(cp, vk.latent_forward, (mu, lv), seed, offset)
    _gpu_vs_cpu(cp, vk.latent_backward, (dz, mu, lv), seed, offset, 0.25)
    dkl = rng.standard_normal(shape[:-1]).astype(dtype)
    _gpu_vs_cpu(cp, vk.latent_vjp, (dz, dkl, mu, lv), seed, offset)


@gpu
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 1000, 100003])
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 7, 2**33 + 1, 2**64 - 100003])
def test_random_streams_bitwise_equal_to_cpu(cp, dtype, n, offset):
    seed = 12345678901234567
    for draw in (vk.randn, vk.rand):
        dev = draw(n, seed, offset, dtype, device="cuda")
        assert isinstance(dev, cp.ndarray) and dev.dtype == dtype and dev.shape == (n,)
        assert_bitwise(cp.asnumpy(dev), draw(n, seed, offset, dtype), f"{draw.__name__} n={n} offset={offset}")
        out = cp.full((n,), -1, dtype)
        assert draw(n, seed, offset, dtype, out=out) is out
        assert_bitwise(cp.asnumpy(out), cp.asnumpy(dev), f"{draw.__name__} out=")


@gpu
def test_philox_matches_cpu(cp, rng):
    ctr = rng.integers(0, 2**32, size=(5000, 4), dtype=np.uint32)
    key = rng.integers(0, 2**32, size=(5000, 2), dtype=np.uint32)
    dev = vk.philox4x32_10(cp.asarray(ctr), cp.asarray(key))
    assert_bitwise(cp.asnumpy(dev), vk.philox4x32_10(ctr, key), "philox4x32_10")


@gpu
@pytest.mark.parametrize("dtype", FLOATS)
def test_adam_step_in_place_matches_cpu(cp, rng, dtype):
    p, g, m = _inputs(rng, (1000,), dtype, 3)
    v = np.abs(_inputs(rng, (1000,), dtype, 1)[0])
    dp, dg, dm, dv = (cp.asarray(a) for a in (p, g, m, v))
    for step in (1, 2, 50):
        vk.adam_step(p, g, m, v, step, lr=1e-2, weight_decay=0.01)
        assert vk.adam_step(dp, dg, dm, dv, step, lr=1e-2, weight_decay=0.01) is dp
    for name, h, d in (("param", p, dp), ("m", m, dm), ("v", v, dv)):
        assert_bitwise(cp.asnumpy(d), h, f"adam_step {name}")
    with pytest.raises(ValueError, match="C-contiguous"):
        vk.adam_step(cp.zeros((4, 4), dtype)[:, ::2], cp.zeros((4, 2), dtype), cp.zeros((4, 2), dtype),
                     cp.zeros((4, 2), dtype), 1)


@gpu
def test_non_contiguous_and_foreign_device_arrays(cp, rng):
    """Strided views are copied once; any __cuda_array_interface__ object works and gives CuPy arrays."""
    a, b = _inputs(rng, (8, 64), np.float32, 2)
    ref = vk.kl_standard_normal(a[:, ::2], b[:, ::2])
    out = vk.kl_standard_normal(cp.asarray(a)[:, ::2], cp.asarray(b)[:, ::2])
    assert_bitwise(cp.asnumpy(out), ref, "strided views")

    class Foreign:  # what Numba / PyTorch device arrays look like to us
        def __init__(self, arr):
            self.arr = arr
            self.__cuda_array_interface__ = arr.__cuda_array_interface__

    out = vk.kl_standard_normal(Foreign(cp.asarray(a)), Foreign(cp.asarray(b)))
    assert isinstance(out, cp.ndarray)
    assert_bitwise(cp.asnumpy(out), vk.kl_standard_normal(a, b), "foreign arrays")


@gpu
def test_dtype_shape_and_out_errors_on_device(cp):
    x32, x64 = cp.zeros((3, 4), cp.float32), cp.zeros((3, 4), cp.float64)
    with pytest.raises(TypeError, match="mixed dtypes"):
        vk.kl_standard_normal(x32, x64)
    with pytest.raises(TypeError, match="float32 or float64"):
        vk.kl_standard_normal(x32.astype(cp.float16), x32.astype(cp.float16))
    with pytest.raises(ValueError, match="shape"):
        vk.kl_standard_normal(x32, cp.zeros((3, 5), cp.float32))
    with pytest.raises(ValueError, match="must have shape"):
        vk.kl_standard_normal(x32, x32, out=cp.zeros(4, cp.float32))
    with pytest.raises(TypeError, match="CuPy array"):
        vk.kl_standard_normal(x32, x32, out=np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="host array"):
        vk.randn(3, 0, out=np.zeros(3, np.float32), device="cuda")
    out = cp.zeros(3, cp.float32)
    assert vk.kl_standard_normal(x32, x32, out=out) is out


@gpu
def test_launches_on_cupys_current_stream(cp):
    """Inside stream capture, a kernel on the capturing stream is recorded, not run: the output stays
    untouched until the graph is launched. A launch on any other stream would run (or fail) at once."""
    n, seed = 4096, 99
    expected = vk.randn(n, seed)
    out = cp.zeros(n, cp.float32)
    vk.randn(n, seed, out=out)  # load the kernel (lazy module loading) before capturing
    out.fill(0)
    cp.cuda.Device().synchronize()
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        s.begin_capture()
        vk.randn(n, seed, out=out)
        graph = s.end_capture()
    s.synchronize()
    assert not cp.asnumpy(out).any(), "randn ran outside the capturing (current) stream"
    graph.launch(s)
    s.synchronize()
    assert_bitwise(cp.asnumpy(out), expected, "randn captured in a graph")


@gpu
def test_second_device(cp, rng):
    if cp.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two CUDA devices")
    a, b = _inputs(rng, (5, 40), np.float64, 2)
    with cp.cuda.Device(1):
        da, db = cp.asarray(a), cp.asarray(b)
    out = vk.kl_standard_normal(da, db)  # current device is 0; the arrays decide
    assert out.device.id == 1
    assert_bitwise(cp.asnumpy(out), vk.kl_standard_normal(a, b), "device 1")
    assert vk.randn(5, 0, device="cuda:1").device.id == 1
    with pytest.raises(ValueError, match="GPU 0"):
        vk.kl_standard_normal(da, cp.asarray(b))


# -------------------------------------------------------------------------------------------------
# The dispatch layer on a simulated device (runs everywhere the extension is built)
# -------------------------------------------------------------------------------------------------
# CuPy is replaced by NumPy arrays posing as device arrays, and each function of vaekernels._cuda by the
# CPU kernel behind the same calling convention. So every line of the device path runs: validation,
# allocation, contiguity, the choice of f32/f64/u32 table, and the pointers, extent and scalars handed to
# the extension. A swapped argument or a wrong row count shows up as an error or a result different from
# the NumPy path.
class _SimDevice:
    def __init__(self, id=None):
        self.id = 0 if id is None else id

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _SimArray:
    registry = {}

    def __init__(self, a, device=0):
        self.a, self.device = a, _SimDevice(device)
        if a.size:
            _SimArray.registry[a.ctypes.data] = a

    shape = property(lambda self: self.a.shape)
    dtype = property(lambda self: self.a.dtype)
    ndim = property(lambda self: self.a.ndim)
    size = property(lambda self: self.a.size)
    flags = property(lambda self: self.a.flags)
    data = property(lambda self: type("Mem", (), {"ptr": self.a.ctypes.data})())
    __cuda_array_interface__ = property(lambda self: {"shape": self.a.shape, "typestr": self.a.dtype.str,
                                                      "data": (self.a.ctypes.data, False), "version": 3})

    def __getitem__(self, idx):
        return _SimArray(self.a[idx], self.device.id)


def _sim_cupy():
    import types
    cp = types.ModuleType("cupy")
    cp.ndarray = _SimArray
    cp.asarray = lambda x: x if isinstance(x, _SimArray) else _SimArray(np.asarray(x))
    cp.ascontiguousarray = lambda x: x if x.a.flags.c_contiguous else _SimArray(np.ascontiguousarray(x.a), x.device.id)
    cp.empty = lambda shape, dtype: _SimArray(np.empty(shape, dtype))
    cp.cuda = types.SimpleNamespace(Device=_SimDevice, get_current_stream=lambda: types.SimpleNamespace(ptr=0))
    return cp


def _sim_extension(real, core):
    """A stand-in for vaekernels._cuda: the real module's kernel names and calling convention
    (pointers, extent, scalars, stream), with the CPU kernels of _core behind them. The pointers are looked
    up in the registry of simulated arrays, and _core's binding checks every size, dtype and direction, so
    a pointer in the wrong place or a wrong extent fails as it would on a GPU."""
    import types
    from vaekernels.kernels import KERNELS

    def host_array(ptr, dtype):
        if ptr in _SimArray.registry:
            base = _SimArray.registry[ptr]
            assert base.dtype == dtype, f"a {base.dtype} array was passed to the {np.dtype(dtype)} kernels"
            return base.reshape(-1)
        return np.empty(0, dtype)        # zero-size arrays are not registered (their pointer is meaningless)

    def impl(sub, name, dtype):
        cpu = getattr(getattr(core, sub), name)

        def run(pointers, extent, scalars, stream):
            assert isinstance(stream, int)
            cpu(tuple(host_array(p, dtype) for p in pointers), extent, scalars)
        return run

    fake = types.SimpleNamespace(device_count=lambda: 1, device_error=lambda: "", real=real)
    for sub, dt in (("f32", np.float32), ("f64", np.float64), ("u32", np.uint32)):
        names = [k.name for k in KERNELS if np.dtype(dt).name in k.dtypes]
        r = getattr(real, sub)
        for n in names:   # the real extension has these functions with this calling convention
            assert "pointers" in getattr(r, n).__doc__ and "stream" in getattr(r, n).__doc__, n
        setattr(fake, sub, types.SimpleNamespace(**{n: impl(sub, n, dt) for n in names}))
    return fake


@pytest.fixture
def sim(monkeypatch):
    if not vk.cuda_built():
        pytest.skip("the CUDA extension is not built: its signatures are what the simulation checks")
    import sys
    from vaekernels import _core
    real = G.module()
    monkeypatch.setattr(G, "module", lambda: _sim_extension(real, _core))
    monkeypatch.setattr(G, "_device_seen", False)
    monkeypatch.setitem(sys.modules, "cupy", _sim_cupy())
    return lambda a: _SimArray(np.array(a, copy=True))


def _same(dev, host, name):
    dev_t = dev if isinstance(dev, tuple) else (dev,)
    host_t = host if isinstance(host, tuple) else (host,)
    assert len(dev_t) == len(host_t)
    for i, (d, h) in enumerate(zip(dev_t, host_t)):
        assert isinstance(d, _SimArray), f"{name} output {i} is {type(d).__name__}"
        assert_bitwise(d.a, h, f"{name} output {i} (simulated device)")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(3, 0), (1, 1), (7, 33), (2, 3, 20)], ids=str)
def test_simulated_device_dispatch_matches_cpu(sim, rng, dtype, shape):
    a, b, c, d, dz = (rng.standard_normal(shape).astype(dtype) for _ in range(5))
    x01 = (rng.random(shape) < 0.5).astype(dtype)
    g = rng.standard_normal(shape[:-1]).astype(dtype)
    cases = [
        ("reparameterize", (a, b), (5, 3)), ("reparameterize", (a, b), (5, 3, 2)),
        ("kl_standard_normal", (a, b), ()), ("kl_standard_normal_backward", (g, a, b), ()),
        ("kl_normal", (a, b, c, d), ()), ("kl_normal_backward", (g, a, b, c, d), ()),
        ("bernoulli_log_prob", (x01, a), ()), ("bernoulli_log_prob_and_grad", (x01, a), ()),
        ("bernoulli_log_prob_backward", (g, x01, a), ()),
        ("normal_log_prob", (a, b, c), ()), ("normal_log_prob_and_grad", (a, b, c), ()),
        ("normal_log_prob_backward", (g, a, b, c), ()),
        ("standard_normal_log_prob", (a,), ()), ("standard_normal_log_prob_and_grad", (a,), ()),
        ("latent_forward", (a, b), (11, 6)), ("latent_backward", (dz, a, b), (11, 6, 0.5)),
        ("latent_vjp", (dz, g, a, b), (11, 6)),
    ]
    for name, arrays, extra in cases:
        fn = getattr(vk, name)
        _same(fn(*[sim(x) for x in arrays], *extra), fn(*arrays, *extra), name)
    # Strided inputs are copied once, on the device.
    _same(vk.kl_normal(*[sim(x)[..., ::2] for x in (a, b, c, d)]), vk.kl_normal(*[x[..., ::2] for x in (a, b, c, d)]),
          "kl_normal strided")


@pytest.mark.parametrize("dtype", FLOATS)
def test_simulated_device_random_adam_philox_and_out(sim, rng, dtype):
    for draw in (vk.randn, vk.rand):
        _same(draw((4, 5), 7, 3, dtype, device="cuda"), draw((4, 5), 7, 3, dtype), draw.__name__)
        out = _SimArray(np.zeros((4, 5), dtype))
        assert draw((4, 5), 7, 3, dtype, out=out) is out
        _same(out, draw((4, 5), 7, 3, dtype), f"{draw.__name__} out=")
    p, gr, m = (rng.standard_normal(50).astype(dtype) for _ in range(3))
    v = np.abs(rng.standard_normal(50)).astype(dtype)
    dp, dg, dm, dv = (sim(x) for x in (p, gr, m, v))
    assert vk.adam_step(dp, dg, dm, dv, 3, lr=0.01, weight_decay=0.1) is dp
    vk.adam_step(p, gr, m, v, 3, lr=0.01, weight_decay=0.1)
    for name, d, h in (("param", dp, p), ("m", dm, m), ("v", dv, v)):
        _same(d, h, f"adam_step {name}")
    ctr = rng.integers(0, 2**32, (9, 4), dtype=np.uint32)
    key = rng.integers(0, 2**32, (9, 2), dtype=np.uint32)
    _same(vk.philox4x32_10(sim(ctr), sim(key)), vk.philox4x32_10(ctr, key), "philox4x32_10")
    # out= on the device: used in place, and checked like NumPy's.
    a = rng.standard_normal((6, 8)).astype(dtype)
    out = (_SimArray(np.empty(6, dtype)), _SimArray(np.empty((6, 8), dtype)))
    res = vk.standard_normal_log_prob_and_grad(sim(a), out=out)
    assert res[0] is out[0] and res[1] is out[1]
    _same(res, vk.standard_normal_log_prob_and_grad(a), "out= tuple")
    with pytest.raises(ValueError, match=r"out must have shape \(6,\)"):
        vk.standard_normal_log_prob(sim(a), out=_SimArray(np.empty(5, dtype)))
    with pytest.raises(TypeError, match="must have dtype"):
        vk.standard_normal_log_prob(sim(a), out=_SimArray(np.empty(6, np.float16)))
    with pytest.raises(TypeError, match="CuPy array"):
        vk.standard_normal_log_prob(sim(a), out=np.empty(6, dtype))
    with pytest.raises(TypeError, match="mixed dtypes"):
        vk.kl_standard_normal(sim(a), sim(a.astype(np.float32 if dtype == np.float64 else np.float64)))
    with pytest.raises(ValueError, match="shape"):
        vk.kl_standard_normal(sim(a), sim(a[:, :4]))
    with pytest.raises(ValueError, match="C-contiguous"):
        vk.adam_step(sim(a)[:, ::2], sim(a[:, ::2]), sim(a[:, ::2]), sim(a[:, ::2]), 1)
    da = sim(a)
    with pytest.raises(ValueError, match="shares memory"):                # aliasing, as on the host
        vk.latent_forward(da, sim(a), 1, out=(da, _SimArray(np.empty(6, dtype))))


# -------------------------------------------------------------------------------------------------
# The batched MH step (cuda/mcmc.cu, vaekernels.mcmc.gpu)
# -------------------------------------------------------------------------------------------------
def _mcmc_targets():
    from vaekernels import mcmc
    rng = np.random.default_rng(5)
    X = np.c_[np.ones(40), rng.standard_normal((40, 2))]
    y = (rng.random(40) < 0.5).astype(float)
    cov = 0.5 ** np.abs(np.subtract.outer(np.arange(5), np.arange(5)))
    # dims 2, 4, 5, 3: every dim % 4, i.e. every place of the acceptance uniform in the stream (mcmc.hpp)
    return {"banana": (mcmc.Banana(), 3.0), "banana4": (mcmc.Banana(dim=4), 1.5),
            "gaussian": (mcmc.Gaussian(np.arange(5.0), cov), 0.6),
            "logistic": (mcmc.LogisticRegression(X, y, 2.0), 0.3)}


@no_device
@pytest.mark.skipif(importlib.util.find_spec("vaekernels.mcmc") is None, reason="vaekernels.mcmc is not present")
def test_mh_step_without_device_raises_no_cuda_device():
    from vaekernels.mcmc import gpu as cuda_mcmc
    target, _ = _mcmc_targets()["banana"]
    with pytest.raises(RuntimeError, match="no CUDA device"):
        cuda_mcmc.DeviceTarget(target)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        cuda_mcmc.mh_step(target, FakeDeviceArray((4, 2), np.float64), FakeDeviceArray((4,), np.float64), 1.0, 0, 0)


@gpu
@pytest.mark.parametrize("name", ["banana", "banana4", "gaussian", "logistic"])
def test_mh_steps_match_the_cpu_sampler(cp, name):
    """K GPU steps with a fixed step size from x0 equal the CPU sampler's first K draws (n_warmup=0), bit for
    bit: same stream positions, proposal arithmetic, target density and accept rule."""
    from vaekernels import mcmc
    from vaekernels.mcmc import gpu as cuda_mcmc
    target, step = _mcmc_targets()[name]
    chains, K, seed, offset = 300, 25, 2024, 7
    x0 = np.random.default_rng(1).standard_normal((chains, target.dim))
    ref = mcmc.sample(target, x0, n_draws=K, n_warmup=0, seed=seed, step_size=step, chain_offset=offset)
    dt = cuda_mcmc.DeviceTarget(target)
    x = cp.asfortranarray(cp.asarray(x0))
    lp = cuda_mcmc.log_prob(dt, x)
    acc = nan = None
    for k in range(K):
        acc, nan = cuda_mcmc.mh_step(dt, x, lp, step, seed, k, chain_offset=offset, accepted=acc, n_nan=nan)
        assert_bitwise(cp.asnumpy(x), ref.samples[:, k, :], f"{name} state after step {k}")
        assert_bitwise(cp.asnumpy(lp), ref.log_prob[:, k], f"{name} log p after step {k}")
    np.testing.assert_array_equal(cp.asnumpy(acc), np.rint(ref.accept_rate * K).astype(np.int64))
    np.testing.assert_array_equal(cp.asnumpy(nan), ref.n_nan)
    with pytest.raises(ValueError, match="F-contiguous"):
        cuda_mcmc.mh_step(dt, cp.ascontiguousarray(x), lp, step, seed, 0)


@pytest.mark.skipif(importlib.util.find_spec("vaekernels.mcmc") is None, reason="vaekernels.mcmc is not present")
@pytest.mark.parametrize("name", ["banana", "gaussian", "logistic"])
def test_simulated_device_mh_step_passes_what_the_extension_expects(sim, monkeypatch, name):
    """cuda_mcmc hands the extension its arguments in the order of the real signatures: each recorded call
    is bound by the real parameter names and checked field by field."""
    from vaekernels.mcmc import gpu as cuda_mcmc
    import sys
    ext = G.module()
    calls = []

    def recorder(fn_name):
        real_fn = getattr(ext.real, fn_name)
        names = [p.split(":")[0].strip() for p in real_fn.__doc__.split("(", 1)[1].split(")")[0].split(",")]
        return lambda *args: calls.append((fn_name, dict(zip(names, args))))

    for kind in ("gaussian", "banana", "logistic"):
        setattr(ext, f"mh_step_{kind}", recorder(f"mh_step_{kind}"))
        setattr(ext, f"target_log_prob_{kind}", recorder(f"target_log_prob_{kind}"))
    monkeypatch.setattr(G, "module", lambda: ext)
    cp = sys.modules["cupy"]  # the simulated CuPy of the `sim` fixture
    cp.full = lambda n, v, dtype=np.float64: _SimArray(np.full(n, v, dtype))
    cp.zeros = lambda n, dtype: _SimArray(np.zeros(n, dtype))
    cp.asfortranarray = lambda a: _SimArray(np.asfortranarray(a.a if isinstance(a, _SimArray) else a))

    target, step = _mcmc_targets()[name]
    chains = 6
    x = cp.asfortranarray(np.random.default_rng(0).standard_normal((chains, target.dim)))
    lp = cuda_mcmc.log_prob(target, x)
    acc, nan = cuda_mcmc.mh_step(target, x, lp, step, 77, 5, chain_offset=9)
    (f1, a1), (f2, a2) = calls
    assert f1 == f"target_log_prob_{name}" and f2 == f"mh_step_{name}"
    assert (a1["x"], a1["chains"], a1["lp"], a1["dim"]) == (x.data.ptr, chains, lp.data.ptr, target.dim)
    assert (a2["x"], a2["lp"], a2["chains"], a2["dim"]) == (x.data.ptr, lp.data.ptr, chains, target.dim)
    assert (a2["seed"], a2["step"], a2["chain_offset"], a2["chol"]) == (77, 5, 9, 0)
    assert (a2["accepted"], a2["n_nan"]) == (acc.data.ptr, nan.data.ptr)
    assert _SimArray.registry[a2["step_size"]].tolist() == [step] * chains
    assert _SimArray.registry[a2["xp"]].shape == (target.dim, chains)
    assert _SimArray.registry[a2["scratch"]].shape == (chains, target.dim)
    if name == "banana":
        assert (a2["b"], a2["sigma1"]) == (target.b, target.sigma1)
    elif name == "gaussian":
        assert a2["log_norm"] == target.log_norm
        assert_bitwise(_SimArray.registry[a2["mean"]], target.mean, "mean")
        assert_bitwise(_SimArray.registry[a2["inv_chol"]], target.inv_chol, "inv_chol")
    else:
        assert (a2["n_obs"], a2["prior_scale"]) == (target.X.shape[0], target.prior_scale)
        assert_bitwise(_SimArray.registry[a2["X"]], target.X, "X")
        assert_bitwise(_SimArray.registry[a2["y"]], target.y, "y")
    with pytest.raises(ValueError, match="F-contiguous"):
        cuda_mcmc.mh_step(target, _SimArray(np.ascontiguousarray(x.a)), lp, step, 0, 0)
    with pytest.raises(ValueError, match="2\\*\\*32"):
        cuda_mcmc.mh_step(target, x, lp, step, 0, 0, chain_offset=2**32 - 3)


# -------------------------------------------------------------------------------------------------
# The CUDA kernels themselves, run on the host (tests/cuda_emulation): index logic vs the CPU kernels
# -------------------------------------------------------------------------------------------------
# cuda/*.cu compiled by g++ against fake_cuda.hpp: one std::thread per CUDA thread, warps exchanging
# values for __shfl_down_sync through a barrier, 2 blocks of 256 threads per launch (so every grid-stride
# loop wraps). The arithmetic is the host's, so this checks what the GPU cannot be trusted to get right
# without running: which thread computes which element, the Philox block per thread, the stream
# positions, the row-sum order through the shuffles, the MH step's proposal and accept. Bitwise.
EMU_R, EMU_C, EMU_SAMPLES, EMU_SEED, EMU_OFFSET = 37, 53, 3, 0x0123456789ABCDEF, 7
EMU_CHAINS, EMU_STEPS, EMU_MH_SEED, EMU_CHAIN_OFFSET = 40, 6, 2024, 9


@pytest.fixture(scope="module")
def emulation(tmp_path_factory):
    import subprocess
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler to build the CUDA emulation")
    from conftest import REPO
    work = tmp_path_factory.mktemp("cuda_emulation")
    exe = work / "emulate"
    build = subprocess.run([cxx, "-std=c++20", "-O1", "-pthread", "-ffp-contract=off",
                            f"-I{REPO}/cpp/include", f"-I{REPO}/cuda",
                            f"{REPO}/tests/cuda_emulation/emulate.cpp", "-o", str(exe)],
                           capture_output=True, text=True, timeout=300)
    if build.returncode != 0:
        if "barrier" in build.stderr and "No such file" in build.stderr:
            pytest.skip("the C++ compiler lacks C++20 <barrier>")
        pytest.fail(f"building the CUDA emulation failed:\n{build.stderr[-3000:]}")
    rng = np.random.default_rng(77)
    inputs = {}
    for dt, dtype in (("f32", np.float32), ("f64", np.float64)):
        arrs = {k: (rng.standard_normal((EMU_R, EMU_C)) * 2).astype(dtype) for k in "abcde"}
        arrs["x01"] = (rng.random((EMU_R, EMU_C)) < 0.5).astype(dtype)
        arrs["g"] = rng.standard_normal(EMU_R).astype(dtype)
        for k, v in arrs.items():
            v.tofile(work / f"{dt}_{k}.bin")
        inputs[dt] = arrs
    targets = _mcmc_targets() if importlib.util.find_spec("vaekernels.mcmc") else {}
    mh = {}
    if targets:
        gauss = targets["gaussian"][0]
        np.ascontiguousarray(gauss.mean).tofile(work / "mh_gaussian_mean.bin")
        np.ascontiguousarray(gauss.inv_chol).tofile(work / "mh_gaussian_inv_chol.bin")
        np.array([gauss.log_norm]).tofile(work / "mh_gaussian_log_norm.bin")
        logistic = targets["logistic"][0]
        np.ascontiguousarray(logistic.X).tofile(work / "mh_logistic_X.bin")
        np.ascontiguousarray(logistic.y).tofile(work / "mh_logistic_y.bin")
        for name in ("banana", "banana4", "gaussian", "logistic"):
            x0 = rng.standard_normal((EMU_CHAINS, targets[name][0].dim))
            x0.tofile(work / f"mh_{name}_x0.bin")
            mh[name] = x0
    else:
        pytest.skip("vaekernels.mcmc is not present (the emulation also runs the MH step)")
    run = subprocess.run([str(exe), str(work)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"the CUDA emulation failed:\n{run.stderr[-3000:]}"

    def output(name, dtype, shape):
        return np.fromfile(work / name, dtype=dtype).reshape(shape)

    return inputs, mh, targets, output


@pytest.mark.parametrize("dt", ["f32", "f64"])
def test_emulated_cuda_kernels_match_cpu(emulation, dt):
    inputs, _, _, output = emulation
    x = inputs[dt]
    a, b, c, d, e, x01, g = (x[k] for k in ("a", "b", "c", "d", "e", "x01", "g"))
    dtype = a.dtype
    R, C = EMU_R, EMU_C
    seed, off = EMU_SEED, EMU_OFFSET
    p, m, v = a.copy(), c.copy(), np.abs(d)
    vk.adam_step(p, b, m, v, 3, lr=0.01, weight_decay=0.1)
    expected = {
        "randn": vk.randn(R * C, seed, off, dtype), "rand": vk.rand(R * C, seed, off, dtype),
        "reparameterize": vk.reparameterize(a.reshape(-1), b.reshape(-1), seed, off, EMU_SAMPLES).reshape(-1),
        "kl_standard_normal": vk.kl_standard_normal(a, b),
        "kl_standard_normal_backward": vk.kl_standard_normal_backward(g, a, b),
        "kl_normal": vk.kl_normal(a, b, c, d), "kl_normal_backward": vk.kl_normal_backward(g, a, b, c, d),
        "bernoulli_log_prob": vk.bernoulli_log_prob(x01, a),
        "bernoulli_log_prob_and_grad": vk.bernoulli_log_prob_and_grad(x01, a),
        "bernoulli_log_prob_backward": vk.bernoulli_log_prob_backward(g, x01, a),
        "normal_log_prob_backward": vk.normal_log_prob_backward(g, a, b, c),
        "normal_log_prob": vk.normal_log_prob(a, b, c), "normal_log_prob_and_grad": vk.normal_log_prob_and_grad(a, b, c),
        "standard_normal_log_prob": vk.standard_normal_log_prob(a),
        "standard_normal_log_prob_and_grad": vk.standard_normal_log_prob_and_grad(a),
        "latent_forward": vk.latent_forward(a, b, seed, off),
        "latent_backward": vk.latent_backward(e, a, b, seed, off, 0.25),
        "latent_vjp": vk.latent_vjp(e, g, a, b, seed, off),
        "adam_step": (p, m, v),
    }
    for name, ref in expected.items():
        refs = ref if isinstance(ref, tuple) else (ref,)
        for i, r in enumerate(refs):
            fname = f"{dt}_{name}.bin" if len(refs) == 1 else f"{dt}_{name}_{i}.bin"
            got = output(fname, dtype, r.shape)
            assert_bitwise(got, r, f"{name} output {i} ({dt}, emulated CUDA kernel)")
    assert_bitwise(output(f"{dt}_latent_forward_empty_rows.bin", dtype, (R,)), np.zeros(R, dtype),
                   "latent_forward kl of rows with 0 columns")


@pytest.mark.parametrize("name", ["banana", "banana4", "gaussian", "logistic"])
def test_emulated_mh_step_matches_cpu_sampler(emulation, name):
    from vaekernels import mcmc
    _, mh, targets, output = emulation
    target, step = targets[name]
    ref = mcmc.sample(target, mh[name], n_draws=EMU_STEPS, n_warmup=0, seed=EMU_MH_SEED, step_size=step,
                      chain_offset=EMU_CHAIN_OFFSET)
    states = output(f"mh_{name}_states.bin", np.float64, (EMU_STEPS, EMU_CHAINS, target.dim))
    lps = output(f"mh_{name}_lp.bin", np.float64, (EMU_STEPS, EMU_CHAINS))
    assert_bitwise(states.transpose(1, 0, 2), ref.samples, f"{name} MH states (emulated)")
    assert_bitwise(lps.T, ref.log_prob, f"{name} MH log p (emulated)")
    accepted = output(f"mh_{name}_accepted.bin", np.int64, (EMU_CHAINS,))
    np.testing.assert_array_equal(accepted, np.rint(ref.accept_rate * EMU_STEPS).astype(np.int64))
    assert 0 < accepted.sum() < EMU_CHAINS * EMU_STEPS  # the test saw both accepts and rejects
