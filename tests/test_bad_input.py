"""Bad input gets a clear error, never a crash or a silent wrong answer: shapes (ValueError naming both
shapes), dtypes (TypeError), zero-size arrays (empty results), strided views (correct results), seeds and
offsets, ``out=`` arrays."""
import re

import numpy as np
import pytest

from conftest import assert_bitwise, vk

# kernel name -> (call with a list of arrays, number of array arguments). Random kernels get a seed.
ARRAY_KERNELS = {
    "kl_standard_normal": (lambda a: vk.kl_standard_normal(*a), 2),
    "kl_normal": (lambda a: vk.kl_normal(*a), 4),
    "bernoulli_log_prob": (lambda a: vk.bernoulli_log_prob(*a), 2),
    "bernoulli_log_prob_and_grad": (lambda a: vk.bernoulli_log_prob_and_grad(*a), 2),
    "normal_log_prob": (lambda a: vk.normal_log_prob(*a), 3),
    "normal_log_prob_and_grad": (lambda a: vk.normal_log_prob_and_grad(*a), 3),
    "standard_normal_log_prob": (lambda a: vk.standard_normal_log_prob(*a), 1),
    "standard_normal_log_prob_and_grad": (lambda a: vk.standard_normal_log_prob_and_grad(*a), 1),
    "reparameterize": (lambda a: vk.reparameterize(*a, seed=3), 2),
    "latent_forward": (lambda a: vk.latent_forward(*a, seed=3), 2),
    "latent_backward": (lambda a: vk.latent_backward(*a, seed=3), 3),
}
# Backward kernels take an upstream gradient of the batch shape first.
BACKWARD = {
    "kl_standard_normal_backward": (lambda g, a: vk.kl_standard_normal_backward(g, *a), 2),
    "kl_normal_backward": (lambda g, a: vk.kl_normal_backward(g, *a), 4),
    "bernoulli_log_prob_backward": (lambda g, a: vk.bernoulli_log_prob_backward(g, *a), 2),
    "normal_log_prob_backward": (lambda g, a: vk.normal_log_prob_backward(g, *a), 3),
    "latent_vjp": (lambda g, a: vk.latent_vjp(a[0], g, *a[1:], seed=3), 3),
}


def _arrays(n, shape=(3, 4), dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.1, 0.9, shape).astype(dtype) for _ in range(n)]


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


# -------------------------------------------------------------------------------------------------
# Shapes
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [k for k, (_, n) in ARRAY_KERNELS.items() if n > 1])
def test_shape_mismatch_names_both_shapes(name):
    fn, n = ARRAY_KERNELS[name]
    args = _arrays(n)
    args[-1] = np.zeros((3, 5))
    with pytest.raises(ValueError) as e:
        fn(args)
    assert "(3, 4)" in str(e.value) and "(3, 5)" in str(e.value), str(e.value)


@pytest.mark.parametrize("name", sorted(BACKWARD))
def test_backward_array_shape_mismatch(name):
    fn, n = BACKWARD[name]
    args = _arrays(n)
    args[-1] = np.zeros((2, 4))
    with pytest.raises(ValueError) as e:
        fn(np.ones(3), args)
    assert "(3, 4)" in str(e.value) and "(2, 4)" in str(e.value), str(e.value)


@pytest.mark.parametrize("name", sorted(BACKWARD))
def test_backward_grad_shape_mismatch(name):
    fn, n = BACKWARD[name]
    with pytest.raises(ValueError) as e:
        fn(np.ones(4), _arrays(n))
    msg = str(e.value)
    upstream = "dkl" if name == "latent_vjp" else "grad"
    assert upstream in msg and "(3,)" in msg and "(4,)" in msg, msg


@pytest.mark.parametrize("name", [k for k in ARRAY_KERNELS if k not in ("reparameterize",)])
def test_scalar_input_to_reduction_is_value_error(name):
    fn, n = ARRAY_KERNELS[name]
    with pytest.raises(ValueError, match="at least one dimension"):
        fn([np.float64(0.5)] * n if name != "latent_backward" else [np.array(0.5)] * n)


# -------------------------------------------------------------------------------------------------
# dtypes
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.int64, np.int32, np.float16, np.complex128, np.bool_, object])
@pytest.mark.parametrize("name", sorted(ARRAY_KERNELS))
def test_non_float_dtype_is_type_error(name, bad):
    fn, n = ARRAY_KERNELS[name]
    args = _arrays(n)
    args[0] = args[0].astype(bad)
    with pytest.raises(TypeError, match="float32 or float64"):
        fn(args)


@pytest.mark.parametrize("name", [k for k, (_, n) in ARRAY_KERNELS.items() if n > 1])
def test_mixed_dtypes_is_type_error(name):
    fn, n = ARRAY_KERNELS[name]
    args = _arrays(n)
    args[-1] = args[-1].astype(np.float32)
    with pytest.raises(TypeError, match="mixed dtypes"):
        fn(args)


@pytest.mark.parametrize("name", sorted(BACKWARD))
def test_backward_mixed_grad_dtype(name):
    fn, n = BACKWARD[name]
    with pytest.raises(TypeError, match="mixed dtypes"):
        fn(np.ones(3, np.float32), _arrays(n))


def test_python_lists_are_accepted_as_float64():
    # Lists convert to float64 arrays (NumPy's rule); ints inside a list give int64, which is refused.
    assert vk.kl_standard_normal([[0.0, 1.0]], [[0.0, 0.0]]).dtype == np.float64
    with pytest.raises(TypeError):
        vk.kl_standard_normal([[0, 1]], [[0, 0]])


@pytest.mark.parametrize("bad", [np.int32, "int64", np.float16, "complex64", None.__class__])
def test_randn_rand_dtype_argument(bad):
    for fn in (vk.randn, vk.rand):
        with pytest.raises(TypeError, match="dtype"):
            fn(4, 1, dtype=bad)


def test_philox_dtypes_and_shapes():
    ok_c, ok_k = np.zeros((2, 4), np.uint32), np.zeros((2, 2), np.uint32)
    with pytest.raises(TypeError, match="counters"):
        vk.philox4x32_10(ok_c.astype(np.int64), ok_k)
    with pytest.raises(TypeError, match="keys"):
        vk.philox4x32_10(ok_c, ok_k.astype(np.uint64))
    with pytest.raises(ValueError, match="counters"):
        vk.philox4x32_10(np.zeros((2, 3), np.uint32), ok_k)
    with pytest.raises(ValueError, match="keys"):
        vk.philox4x32_10(ok_c, np.zeros((3, 2), np.uint32))


# -------------------------------------------------------------------------------------------------
# Zero-size arrays: empty results (or empty sums = 0), no crash
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(0, 5), (0,), (2, 0, 3)], ids=str)
@pytest.mark.parametrize("name", sorted(ARRAY_KERNELS))
def test_zero_rows(name, shape, dtype):
    fn, n = ARRAY_KERNELS[name]
    outs = _as_tuple(fn([np.zeros(shape, dtype) for _ in range(n)]))
    for o in outs:
        assert o.dtype == dtype and o.shape in (shape, shape[:-1])
        if o.shape == shape:
            assert o.size == 0
        else:                  # row sums: empty for (0, 5); for (0,) one empty row, whose sum is 0
            np.testing.assert_array_equal(o, np.zeros(shape[:-1], dtype))


@pytest.mark.parametrize("name", sorted(ARRAY_KERNELS))
def test_zero_columns_give_empty_sums(name, dtype):
    # (4, 0): every row is an empty sum, which is 0; elementwise outputs are (4, 0).
    fn, n = ARRAY_KERNELS[name]
    for o in _as_tuple(fn([np.zeros((4, 0), dtype) for _ in range(n)])):
        assert o.dtype == dtype
        if o.shape == (4,):
            np.testing.assert_array_equal(o, np.zeros(4, dtype))
        else:
            assert o.shape == (4, 0)


def test_zero_size_random_and_backward_and_adam(dtype):
    for fn in (vk.randn, vk.rand):
        assert fn(0, 1, dtype=dtype).shape == (0,) and fn((3, 0), 1, dtype=dtype).shape == (3, 0)
    e = np.zeros((0, 3), dtype)
    assert vk.reparameterize(e, e, 1, n_samples=4).shape == (4, 0, 3)
    assert all(o.shape == (0, 3) for o in vk.kl_standard_normal_backward(np.zeros(0, dtype), e, e))
    assert all(o.shape == (0, 3) for o in vk.kl_normal_backward(np.zeros(0, dtype), e, e, e, e))
    assert vk.adam_step(e.copy(), e, e.copy(), e.copy(), 1).shape == (0, 3)
    # A zero-size draw at the very end of the stream is allowed (it consumes nothing).
    assert vk.randn(0, 1, offset=2**64 - 1, dtype=dtype).shape == (0,)


# -------------------------------------------------------------------------------------------------
# Non-contiguous and negative-stride views give the same results as contiguous copies
# -------------------------------------------------------------------------------------------------
def _views(a):
    big = np.repeat(np.repeat(a, 2, axis=0), 3, axis=1)
    yield "every other element", big[::2, ::3]
    yield "reversed rows and columns", np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]
    yield "transposed copy", np.asfortranarray(a)
    yield "negative stride", np.ascontiguousarray(a[:, ::-1])[:, ::-1]


@pytest.mark.parametrize("name", sorted(ARRAY_KERNELS) + sorted(BACKWARD))
def test_strided_views_match_contiguous(name, dtype):
    if name in BACKWARD:
        fn, n = BACKWARD[name]
        call = lambda a: fn(np.arange(5, dtype=dtype)[::-1], a)      # noqa: E731 (negative-stride grad too)
    else:
        call, n = ARRAY_KERNELS[name]
    base = _arrays(n, shape=(5, 7), dtype=dtype, seed=4)
    want = [np.copy(o) for o in _as_tuple(call([np.ascontiguousarray(a) for a in base]))]
    for label, _ in _views(base[0]):
        views = [dict(_views(a))[label] for a in base]
        assert not all(v.flags.c_contiguous for v in views) or label == "transposed copy"
        for w, g in zip(want, _as_tuple(call(views))):
            assert_bitwise(g, w, f"{name} with {label} views")


def test_adam_grad_may_be_strided(dtype):
    rng = np.random.default_rng(1)
    p, g = rng.normal(size=(6, 8)).astype(dtype), rng.normal(size=(6, 16)).astype(dtype)
    a = [p.copy(), np.zeros_like(p), np.zeros_like(p)]
    b = [p.copy(), np.zeros_like(p), np.zeros_like(p)]
    vk.adam_step(a[0], g[:, ::2], a[1], a[2], 1)
    vk.adam_step(b[0], np.ascontiguousarray(g[:, ::2]), b[1], b[2], 1)
    for x, y in zip(a, b):
        assert_bitwise(x, y, "adam with strided grad")


# -------------------------------------------------------------------------------------------------
# Seeds, offsets, counts
# -------------------------------------------------------------------------------------------------
SEEDED = {
    "randn": lambda seed, offset: vk.randn(4, seed, offset),
    "rand": lambda seed, offset: vk.rand(4, seed, offset),
    "reparameterize": lambda seed, offset: vk.reparameterize(np.zeros(4), np.zeros(4), seed, offset),
    "latent_forward": lambda seed, offset: vk.latent_forward(np.zeros((1, 4)), np.zeros((1, 4)), seed, offset),
    "latent_backward": lambda seed, offset: vk.latent_backward(np.zeros((1, 4)), np.zeros((1, 4)), np.zeros((1, 4)),
                                                               seed, offset),
    "latent_vjp": lambda seed, offset: vk.latent_vjp(np.zeros((1, 4)), np.zeros(1), np.zeros((1, 4)), np.zeros((1, 4)),
                                                     seed, offset),
}


@pytest.mark.parametrize("seed", [-1, 2**64, 2**70], ids=["negative", "2**64", "2**70"])
@pytest.mark.parametrize("name", sorted(SEEDED))
def test_seed_out_of_range(name, seed):
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        SEEDED[name](seed, 0)


@pytest.mark.parametrize("seed", [1.0, 1.5, "1", None, True], ids=["float", "fraction", "str", "None", "bool"])
@pytest.mark.parametrize("name", sorted(SEEDED))
def test_seed_wrong_type(name, seed):
    with pytest.raises(TypeError, match="seed must be an integer"):
        SEEDED[name](seed, 0)


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_numpy_integer_seeds_are_accepted(name):
    a = SEEDED[name](np.uint64(2**64 - 1), np.int64(2))
    b = SEEDED[name](2**64 - 1, 2)
    for x, y in zip(_as_tuple(a), _as_tuple(b)):
        assert_bitwise(x, y, "numpy integer seed")


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_offset_negative_or_float(name):
    with pytest.raises(ValueError, match="offset"):
        SEEDED[name](1, -1)
    with pytest.raises(TypeError, match="offset"):
        SEEDED[name](1, 2.0)


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_offset_overflow(name):
    # 4 positions from 2^64 - 3 would run past the end of the 64-bit stream (and wrap around silently).
    with pytest.raises(ValueError, match="2\\*\\*64"):
        SEEDED[name](1, 2**64 - 3)
    SEEDED[name](1, 2**64 - 4)                       # the last 4 positions exactly: fine


def test_offset_overflow_with_n_samples():
    with pytest.raises(ValueError, match="2\\*\\*64"):
        vk.reparameterize(np.zeros(4), np.zeros(4), 1, offset=2**64 - 12, n_samples=4)
    assert vk.reparameterize(np.zeros(4), np.zeros(4), 1, offset=2**64 - 16, n_samples=4).shape == (4, 4)


def test_n_samples_validation():
    z = np.zeros(3)
    with pytest.raises(ValueError, match="n_samples"):
        vk.reparameterize(z, z, 1, n_samples=0)
    with pytest.raises(TypeError, match="n_samples"):
        vk.reparameterize(z, z, 1, n_samples=2.0)


def test_shape_argument_validation():
    with pytest.raises(ValueError, match="shape"):
        vk.randn(-1, 1)
    with pytest.raises(TypeError, match="shape"):
        vk.randn(2.5, 1)
    with pytest.raises(TypeError, match="shape"):
        vk.rand((2, "3"), 1)


# -------------------------------------------------------------------------------------------------
# out= arrays
# -------------------------------------------------------------------------------------------------
def test_out_is_filled_and_returned(dtype):
    mu, lv = _arrays(2, (6, 5), dtype)
    out = np.empty(6, dtype)
    assert vk.kl_standard_normal(mu, lv, out=out) is out
    assert_bitwise(out, vk.kl_standard_normal(mu, lv), "kl out=")
    o = (np.empty((6, 5), dtype), np.empty(6, dtype))
    z, kl = vk.latent_forward(mu, lv, 1, out=o)
    assert z is o[0] and kl is o[1]
    r = np.empty((6, 5), dtype)
    assert vk.randn((6, 5), 2, dtype=dtype, out=r) is r and np.array_equal(r, vk.randn((6, 5), 2, dtype=dtype))


def test_out_wrong_dtype():
    mu, lv = _arrays(2, (6, 5))
    with pytest.raises(TypeError, match="out.*float64.*float32"):
        vk.kl_standard_normal(mu, lv, out=np.empty(6, np.float32))
    with pytest.raises(TypeError, match="out"):
        vk.randn(6, 1, out=np.empty(6, np.float64))           # dtype defaults to float32


def test_out_wrong_shape():
    mu, lv = _arrays(2, (6, 5))
    with pytest.raises(ValueError, match=r"out.*\(6,\).*\(5,\)"):
        vk.kl_standard_normal(mu, lv, out=np.empty(5))
    with pytest.raises(ValueError, match=r"out\[1\]"):
        vk.latent_forward(mu, lv, 1, out=(np.empty((6, 5)), np.empty((6, 1))))


def test_out_non_contiguous():
    mu, lv = _arrays(2, (6, 5))
    with pytest.raises(ValueError, match="C-contiguous"):
        vk.kl_standard_normal(mu, lv, out=np.empty(12)[::2])


def test_out_read_only():
    mu, lv = _arrays(2, (6, 5))
    out = np.empty(6)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        vk.kl_standard_normal(mu, lv, out=out)


def test_out_not_an_array_or_wrong_tuple():
    mu, lv = _arrays(2, (6, 5))
    with pytest.raises(TypeError, match="out"):
        vk.kl_standard_normal(mu, lv, out=[0.0] * 6)
    with pytest.raises(TypeError, match="tuple of 2"):
        vk.latent_forward(mu, lv, 1, out=np.empty((6, 5)))
    with pytest.raises(TypeError, match="tuple of 2"):
        vk.latent_forward(mu, lv, 1, out=(np.empty((6, 5)),))


def test_out_failure_leaves_inputs_untouched():
    # A rejected call must not have written anything (no lost data).
    mu, lv = _arrays(2, (6, 5))
    keep = mu.copy(), lv.copy()
    good = np.full((6, 5), 7.0)
    with pytest.raises(ValueError):
        vk.latent_forward(mu, lv, 1, out=(good, np.empty(5)))
    assert (good == 7.0).all() and np.array_equal(mu, keep[0]) and np.array_equal(lv, keep[1])


# -------------------------------------------------------------------------------------------------
# adam_step
# -------------------------------------------------------------------------------------------------
def _adam_arrays(dtype=np.float64):
    return [np.zeros((4, 3), dtype) for _ in range(4)]


def test_adam_param_must_be_contiguous_writable_array():
    p, g, m, v = _adam_arrays()
    with pytest.raises(ValueError, match="param must be C-contiguous"):
        vk.adam_step(np.zeros((4, 6))[:, ::2], g, m, v, 1)
    ro = p.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="param"):
        vk.adam_step(ro, g, m, v, 1)
    with pytest.raises(TypeError, match="param must be a NumPy array"):
        vk.adam_step(p.tolist(), g, m, v, 1)
    with pytest.raises(ValueError, match="m must be C-contiguous"):
        vk.adam_step(p, g, np.zeros((4, 6))[:, ::2], v, 1)


def test_adam_shape_and_dtype_mismatch():
    p, g, m, v = _adam_arrays()
    with pytest.raises(ValueError, match=r"\(4, 3\).*|.*\(4, 3\)"):
        vk.adam_step(p, np.zeros((4, 2)), m, v, 1)
    with pytest.raises(TypeError, match="mixed dtypes"):
        vk.adam_step(p, g.astype(np.float32), m, v, 1)
    with pytest.raises(TypeError, match="float32 or float64"):
        vk.adam_step(p.astype(np.int64), g, m, v, 1)


@pytest.mark.parametrize("kw, exc", [(dict(step=0), ValueError), (dict(step=1.0), TypeError),
                                     (dict(beta1=1.0), ValueError), (dict(beta2=-0.1), ValueError),
                                     (dict(lr=-1e-3), ValueError), (dict(eps=-1.0), ValueError),
                                     (dict(weight_decay=-0.1), ValueError), (dict(lr=float("nan")), ValueError)],
                         ids=lambda x: re.sub(r"[^\w.=-]", "", str(x)))
def test_adam_hyperparameters(kw, exc):
    p, g, m, v = _adam_arrays()
    kw = dict(dict(step=1), **kw)
    with pytest.raises(exc):
        vk.adam_step(p, g, m, v, **kw)
    assert not p.any() and not m.any() and not v.any()   # nothing was written


# -------------------------------------------------------------------------------------------------
# Aliasing: an array the kernel writes may not overlap any other argument (every kernel, from the table)
# -------------------------------------------------------------------------------------------------
def _table_args(k, shape=(3, 4), dtype=np.float64):
    """Arguments for kernel k in signature order (arrays of the kernel's shape or its batch shape)."""
    from vaekernels.kernels.spec import BATCH, Array
    rng = np.random.default_rng(7)
    args = []
    for p in k.params:
        if isinstance(p, Array):
            s = shape[:-1] if p.role == BATCH else shape
            args.append(rng.uniform(0.1, 0.9, s).astype(dtype))
        else:
            args.append({"seed": 1, "offset": 0, "n_samples": None, "real": 0.5, "step": 1, "shape": shape,
                         "dtype": dtype}[p.kind])
    return args


def _alias_cases():
    from vaekernels.kernels import KERNELS
    from vaekernels.kernels.spec import Array
    cases = []
    for k in KERNELS:
        if k.dtypes == ("uint32",):
            continue
        arrays = [(i, p) for i, p in enumerate(k.params) if isinstance(p, Array)]
        for oi, o in enumerate(k.outputs):
            for i, p in arrays:
                if p.role == o.role:
                    cases.append((k.name, oi, i))
        writes = [(i, p) for i, p in arrays if p.io == "inout"]
        for i, p in writes:
            for j, q in arrays:
                if j != i and q.role == p.role:
                    cases.append((k.name, None, (i, j)))
    return cases


@pytest.mark.parametrize("name,out_index,arg", _alias_cases(), ids=str)
def test_output_overlapping_an_input_is_refused(name, out_index, arg):
    from vaekernels.kernels import BY_NAME
    k = BY_NAME[name]
    args = _table_args(k)
    if out_index is None:             # in-place kernels: two of their arrays are the same memory
        i, j = arg
        args[j] = args[i]
        victim, names = args[i], (k.params[i].name, k.params[j].name)
        out = None
    else:
        victim = args[arg]
        names = (k.outputs[out_index].name, k.params[arg].name)
        full = args[next(i for i, p in enumerate(k.params) if getattr(p, "role", None) == "full")]
        outs = [np.empty(full.shape[:-1] if o.role == "batch" else full.shape) for o in k.outputs]
        outs[out_index] = victim
        out = outs[0] if len(outs) == 1 else tuple(outs)
    before = victim.copy()
    kwargs = {} if out is None else {"out": out}
    with pytest.raises(ValueError, match="shares memory") as e:
        getattr(vk, name)(*args, **kwargs)
    assert all(n in str(e.value) for n in names), str(e.value)
    np.testing.assert_array_equal(victim, before)             # refused before anything was written


def test_partial_overlap_and_two_outputs_in_one_array_are_refused():
    mu = np.zeros((4, 6))
    lv = np.zeros((4, 6))
    big = np.zeros(30)
    with pytest.raises(ValueError, match="shares memory"):     # z overlaps the last 18 elements of mu
        vk.latent_forward(big[:24].reshape(4, 6), lv, 1, out=(big[6:30].reshape(4, 6), np.zeros(4)))
    g = np.ones(4)
    d = np.zeros((4, 6))
    with pytest.raises(ValueError, match=r"out\[0\].*out\[1\]"):
        vk.kl_standard_normal_backward(g, mu, lv, out=(d, d))
    # disjoint views of one buffer are fine
    buf = np.zeros((2, 4, 6))
    z, _ = vk.latent_forward(buf[1], lv, 1, out=(buf[0], np.zeros(4)))
    assert np.shares_memory(z, buf)


# -------------------------------------------------------------------------------------------------
# Misaligned and byte-swapped buffers (found by the fuzzer under UBSan: the kernels loaded misaligned floats)
# -------------------------------------------------------------------------------------------------
def _misaligned(a):
    buf = bytearray(a.nbytes + 1)
    m = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    m[...] = a
    assert not m.flags.aligned
    return m


@pytest.mark.parametrize("name", sorted(ARRAY_KERNELS))
def test_misaligned_and_byteswapped_inputs_give_the_same_bits(name, dtype):
    fn, n = ARRAY_KERNELS[name]
    base = _arrays(n, shape=(5, 7), dtype=dtype, seed=2)
    want = [np.copy(o) for o in _as_tuple(fn(base))]
    for label, make in (("misaligned", _misaligned), ("byte-swapped", lambda a: a.astype(a.dtype.newbyteorder(">")))):
        for w, g in zip(want, _as_tuple(fn([make(a) for a in base]))):
            assert_bitwise(g, w, f"{name} with {label} inputs")


def test_misaligned_outputs_and_in_place_arrays_are_refused():
    mu, lv = _arrays(2, (6, 5))
    with pytest.raises(ValueError, match="aligned"):
        vk.kl_standard_normal(mu, lv, out=_misaligned(np.zeros(6)))
    p = _misaligned(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="aligned"):
        vk.adam_step(p, np.ones((4, 3)), np.zeros((4, 3)), np.zeros((4, 3)), 1)


def test_core_refuses_misaligned_arrays():
    from vaekernels import _core
    mu = np.zeros((3, 4))
    with pytest.raises(ValueError, match="aligned"):
        _core.f64.kl_standard_normal((_misaligned(mu), mu, np.zeros(3)), (3, 4), ())
