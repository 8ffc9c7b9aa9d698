"""vaekernels.torch under the transforms users apply: torch.compile with the default inductor backend
(gradients, not only losses, against eager at the same keys; a compiled VAE trained to eager's ELBO),
activation checkpointing (non-reentrant and reentrant), double backward (a clear error), in-place edits
between forward and backward (refused as for native ops), adam_step's version counters, dtypes (half
precision, integers, mixes) through the eager and fake paths and compiled, autocast, torch.func.grad,
torch.vmap (no fallback warning), torch.manual_seed, state dicts from before the key design, meta tensors,
and the loss names. Each test compares against an independent computation: eager autograd, the NumPy API
at the same stream positions, or native torch formulas."""
import os
import warnings

import numpy as np
import pytest

from conftest import vk

if os.environ.get("VAEKERNELS_EXPECT_TORCH") == "1":
    import torch
else:
    torch = pytest.importorskip("torch")
import vaekernels.torch as vkt  # noqa: E402
from test_torch import digits_vae  # noqa: E402
from torch.utils.checkpoint import checkpoint  # noqa: E402

from vaekernels.kernels import KERNELS  # noqa: E402
from vaekernels.kernels.spec import BATCH, CREATION, PHILOX, Array  # noqa: E402

FUNCTIONAL = [k for k in KERNELS if k.layout != PHILOX and not any(isinstance(p, Array) and p.io == "inout"
                                                                    for p in k.params)]


def _tensor_args(k, dtype=torch.float32, shape=(3, 4), seed=0):
    """Operator arguments for kernel k: tensors by role, stream values as 0-d int64 tensors."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for p in k.params:
        if isinstance(p, Array):
            out.append((torch.rand(shape[:-1] if p.role == BATCH else shape, generator=g, dtype=torch.float64)
                        * 0.8 + 0.1).to(dtype))
        else:
            out.append({"seed": vkt.u64(2**64 - 3), "offset": vkt.u64(11), "n_samples": 2, "real": 0.25,
                        "step": vkt.u64(3), "shape": list(shape), "dtype": dtype}[p.kind])
    return out


def _op(k):
    return getattr(torch.ops.vaekernels, k.name).default


def _grads(loss, params):
    return [g.detach().clone() for g in torch.autograd.grad(loss, params)]


def _assert_grads_close(got, want, what):
    for i, (g, w) in enumerate(zip(got, want)):
        # the same kernels on the same noise: only the compiled decoder's float32 rounding differs
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6, msg=lambda m: f"{what}, gradient {i}: {m}")


# -------------------------------------------------------------------------------------------------
# torch.compile, default backend (inductor)
# -------------------------------------------------------------------------------------------------
@pytest.fixture
def inductor_draws_as_eager():
    """Compiled code draws torch's random numbers as eager does, so eager and compiled see the same keys."""
    import torch._inductor.config as cfg
    torch._dynamo.reset()
    before = cfg.fallback_random
    cfg.fallback_random = True
    yield
    cfg.fallback_random = before


def _small_vae():
    torch.manual_seed(0)
    return torch.nn.Linear(16, 8), torch.nn.Linear(4, 16)


def test_inductor_gradients_of_gaussian_latent_equal_eager(inductor_draws_as_eager):
    """The module draws its key inside the compiled region at every step; loss and every parameter's
    gradient (the latent layer's dlogvar included: it was wrong when the stream lived in a mutated buffer)
    equal eager's at the same torch seed, with one compilation over the steps."""
    from torch._dynamo.testing import CompileCounterWithBackend
    enc, dec = _small_vae()
    latent = vkt.GaussianLatent()
    params = list(enc.parameters()) + list(dec.parameters())

    def loss_fn(x):
        h = enc(x)
        z, kl = latent(h[:, :4], h[:, 4:])
        return (vkt.bernoulli_nll(dec(z), x, reduction="none") + kl).mean()

    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(loss_fn, fullgraph=True, backend=counter)
    x = (torch.rand(32, 16) < 0.5).float()
    for step in range(4):
        torch.manual_seed(100 + step)
        loss = compiled(x)
        got = _grads(loss, params)
        torch.manual_seed(100 + step)
        eager = loss_fn(x)
        want = _grads(eager, params)
        assert float(loss.detach()) == pytest.approx(float(eager.detach()), rel=1e-6), step
        _assert_grads_close(got, want, f"step {step}")
    assert counter.frame_count == 1


def test_inductor_gradients_of_the_functional_form_with_the_offset_advancing_in_the_graph(inductor_draws_as_eager):
    """Explicit streams: the compiled step takes (seed, offset) tensors and returns the advanced offset
    (out of place); each step's gradients equal eager's at the same positions, and eager's equal the
    NumPy API's backward there."""
    enc, dec = _small_vae()
    params = list(enc.parameters()) + list(dec.parameters())

    def step(x, seed, offset):
        h = enc(x)
        mu, lv = h[:, :4], h[:, 4:]
        z, kl = vkt.latent_forward(mu, lv, seed, offset)
        return (vkt.bernoulli_nll(dec(z), x, reduction="none") + kl).mean(), offset + mu.numel(), (mu, lv, z)

    compiled = torch.compile(step, fullgraph=True)
    x = (torch.rand(32, 16) < 0.5).float()
    seed, offset = vkt.u64(2**64 - 5), vkt.u64(2**63 - 64)         # positions cross 2**63 (int64 sign)
    eager_offset = offset
    for i in range(3):
        loss, offset, _ = compiled(x, seed, offset)
        got = _grads(loss, params)
        eager, eager_offset, (mu, lv, z) = step(x, seed, eager_offset)
        *want, dz, dlv = _grads(eager, params + [z, lv])
        _assert_grads_close(got, want, f"step {i}")
        assert int(offset) == int(eager_offset)
        # eager's latent gradients are the NumPy API's at the position of this step
        pos = (int(eager_offset) - 128) % 2**64
        ref = vk.latent_vjp(dz.numpy(), np.full(32, 1 / 32, np.float32), mu.detach().numpy(), lv.detach().numpy(),
                            2**64 - 5, pos)
        np.testing.assert_allclose(dlv.numpy(), ref[1], rtol=1e-5, atol=1e-7)
    assert int(offset) % 2**64 == 2**63 - 64 + 3 * 128


def test_inplace_offset_advance_after_the_forward_is_refused():
    """An offset advanced in place before the backward would change the regenerated noise: refused by
    autograd's version check in eager, and at compile time inside a compiled region."""
    mu = torch.randn(4, 3, requires_grad=True)
    lv = torch.randn(4, 3, requires_grad=True)
    offset = vkt.u64(0)
    z, _ = vkt.latent_forward(mu, lv, 1, offset)
    offset.add_(12)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()

    def f(mu, lv, offset):
        z, _ = vkt.latent_forward(mu, lv, vkt.u64(1), offset)
        offset.add_(12)
        return z.sum()
    torch._dynamo.reset()
    with pytest.raises(Exception, match="modified by an inplace operation"):
        torch.compile(f, fullgraph=True)(mu, lv, vkt.u64(0)).backward()


def test_inplace_edit_of_an_input_after_the_forward_is_refused():
    for fn in (lambda a, b: vkt.kl_standard_normal(a, b), lambda a, b: vkt.latent_forward(a, b, 3, 0)[0],
               lambda a, b: vkt.bernoulli_log_prob(b, a)):
        a = torch.randn(4, 3, requires_grad=True)
        b = torch.rand(4, 3)
        a2, b2 = a * 1, b.clone()
        out = fn(a2, b2)
        b2.mul_(2)                         # native ops refuse this when they saved b2
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.sum().backward()


def _train_digits(seed, compiled, epochs=25):
    X, enc, dec, opt, L = digits_vae(seed)
    latent = vkt.GaussianLatent()

    def loss_fn(x):
        h = enc(x)
        z, kl = latent(h[:, :L], h[:, L:])
        return (vkt.bernoulli_nll(dec(z), x, reduction="none") + kl).mean()

    f = torch.compile(loss_fn) if compiled else loss_fn
    for _ in range(epochs):
        for idx in torch.randperm(X.shape[0]).split(128)[:-1]:       # full batches: one compiled shape
            loss = f(X[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        h = enc(X)
        mu, lv = h[:, :L], h[:, L:]
        torch.manual_seed(12345)
        z, kl = latent(mu, lv)
        elbo = float(-(vkt.bernoulli_nll(dec(z), X, reduction="none") + kl).mean())
        return elbo, float(torch.exp(0.5 * lv).mean())


def test_compiled_vae_reaches_the_eager_elbo_and_posterior_spread():
    """The README's example under torch.compile (default inductor, its own random numbers): over 3 seeds the
    compiled runs' mean ELBO lies within 2 standard deviations (of eager's spread over the seeds) of eager's
    mean, and every run's mean posterior standard deviation matches eager's within 10% (with the latent
    gradients wrong, logvar got no reconstruction signal and these ended near 1, about twice eager's)."""
    torch._dynamo.reset()
    eager = np.array([_train_digits(s, False) for s in range(3)])
    compiled = np.array([_train_digits(s, True) for s in range(3)])
    sd = max(eager[:, 0].std(ddof=1), 0.05)
    assert abs(compiled[:, 0].mean() - eager[:, 0].mean()) <= 2 * sd, (eager, compiled)
    np.testing.assert_allclose(compiled[:, 1], eager[:, 1], rtol=0.1)
    assert eager[:, 1].max() < 0.8                 # the criterion can see a posterior spread near 1


# -------------------------------------------------------------------------------------------------
# checkpointing, double backward, torch.func, vmap
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reentrant", [False, True])
def test_activation_checkpointing_replays_the_same_noise(reentrant):
    """Checkpointing restores torch's generator before recomputing the block, so the recomputed key, noise
    and gradients equal the plain block's bit for bit."""
    lin = torch.nn.Linear(6, 6).double()
    latent = vkt.GaussianLatent()
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)

    def block(x):
        h = lin(x)
        z, kl = latent(h[:, :3], h[:, 3:])
        return (z.sin() * 2).sum() + kl.sum()

    params = [x, lin.weight, lin.bias]
    torch.manual_seed(3)
    plain = block(x)
    want = torch.autograd.grad(plain, params)
    torch.manual_seed(3)
    out = checkpoint(block, x, use_reentrant=reentrant)
    if reentrant:                           # the reentrant variant supports .backward() only
        for p in params:
            p.grad = None
        out.backward()
        got = [p.grad for p in params]
    else:
        got = torch.autograd.grad(out, params)
    assert float(out) == float(plain)
    for g, w in zip(got, want):
        assert torch.equal(g, w)


@pytest.mark.parametrize("k", [k for k in KERNELS if k.backward is not None], ids=lambda k: k.name)
def test_double_backward_is_a_clear_error(k):
    args = _tensor_args(k, torch.float64)
    diff = [i for i, p in enumerate(k.params) if isinstance(p, Array) and p.name in k.backward.differentiable]
    for i in diff:
        args[i].requires_grad_()
    out = getattr(vkt, k.name)(*args)
    out = out if isinstance(out, tuple) else (out,)
    loss = sum((o ** 2).sum() for o in out)
    first = torch.autograd.grad(loss, [args[i] for i in diff], create_graph=True)
    with pytest.raises(RuntimeError, match=f"vaekernels.{k.name}: second derivatives are not implemented"):
        torch.autograd.grad(sum(g.sum() for g in first), [args[i] for i in diff])
    with pytest.raises(RuntimeError, match="second derivatives are not implemented"):
        torch.autograd.gradgradcheck(lambda *xs: getattr(vkt, k.name)(*[xs[diff.index(j)] if j in diff else a
                                                                          for j, a in enumerate(args)]),
                                     tuple(args[i].detach().requires_grad_() for i in diff))


def test_torch_func_grad_equals_autograd_and_nested_grad_is_refused():
    lv = torch.randn(4, 3, dtype=torch.float64)

    def f(mu):
        z, kl = vkt.latent_forward(mu, lv, 5, 7)
        return (z ** 2).sum() + kl.sum() - vkt.bernoulli_log_prob(torch.sigmoid(mu), z).sum()

    mu = torch.randn(4, 3, dtype=torch.float64)
    got = torch.func.grad(f)(mu)
    m = mu.clone().requires_grad_()
    want, = torch.autograd.grad(f(m), m)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="second derivatives are not implemented"):
        torch.func.grad(lambda m: torch.func.grad(f)(m).sum())(mu)


@pytest.mark.parametrize("k", FUNCTIONAL, ids=lambda k: k.name)
def test_vmap_equals_the_loop_without_fallback_warnings(k):
    """Every functional operator under torch.vmap (batched first array, the rest shared) equals the loop over
    slices, with warnings turned into errors (no per-example fallback)."""
    batch = 3
    args = _tensor_args(k, torch.float64)
    first = next((i for i, p in enumerate(k.params) if isinstance(p, Array)), None)
    if first is None:                                    # randn / rand: batch the seeds
        seeds = torch.tensor([1, 2**62, -7], dtype=torch.int64)
        fn = lambda s: _op(k)(*[s if p.kind == "seed" else a for p, a in zip(k.params, args)])  # noqa: E731
        xs, loop = seeds, [fn(s) for s in seeds]
    else:
        xs = torch.stack([args[first] * (1 + 0.1 * j) for j in range(batch)])
        fn = lambda x: _op(k)(*[x if i == first else a for i, a in enumerate(args)])  # noqa: E731
        loop = [fn(x) for x in xs]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = torch.vmap(fn)(xs)
    got = got if isinstance(got, tuple) else (got,)
    loop = [r if isinstance(r, tuple) else (r,) for r in loop]
    for j, g in enumerate(got):
        assert torch.equal(g, torch.stack([r[j] for r in loop])), (k.name, j)


def test_vmap_of_grad_and_adam_step_refusal():
    lv = torch.randn(4, 3, dtype=torch.float64)
    f = lambda m: (vkt.latent_forward(m, lv, 2, 0)[0] ** 2).sum()  # noqa: E731
    mus = torch.randn(5, 4, 3, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = torch.vmap(torch.func.grad(f))(mus)
    assert torch.equal(got, torch.stack([torch.func.grad(f)(m) for m in mus]))
    p = torch.zeros(3, 4)
    with pytest.raises(RuntimeError, match="adam_step .*vmap"):
        torch.vmap(lambda a: vkt.adam_step(a, torch.ones(4), torch.zeros(4), torch.zeros(4), 1))(p)


# -------------------------------------------------------------------------------------------------
# adam_step's in-place updates
# -------------------------------------------------------------------------------------------------
def test_adam_step_bumps_version_counters_and_refuses_leaves_that_require_grad():
    p, g, m, v = torch.randn(6), torch.randn(6), torch.zeros(6), torch.zeros(6)
    before = (p._version, m._version, v._version, g._version)
    vkt.adam_step(p, g, m, v, 1)
    assert (p._version, m._version, v._version) == tuple(b + 1 for b in before[:3]) and g._version == before[3]
    # a tensor saved for a backward and then updated by adam_step: the backward refuses, as for native ops
    w = torch.randn(6, requires_grad=True)
    q = torch.randn(6)
    y = (w * q).sum()                     # saves q
    vkt.adam_step(q, g, m, v, 2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    leaf = torch.zeros(6, requires_grad=True)
    with pytest.raises(RuntimeError, match="param .*requires grad.*torch.no_grad"):
        vkt.adam_step(leaf, g, m, v, 1)
    with torch.no_grad():                    # as torch.optim does
        vkt.adam_step(leaf, g, m, v, 1)
    assert leaf._version == 1


# -------------------------------------------------------------------------------------------------
# dtypes: one rule for eager, fake and compiled calls
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("k", [k for k in KERNELS if k.layout != PHILOX], ids=lambda k: k.name)
def test_half_precision_computes_in_float32_and_rounds(k, half):
    """float16/bfloat16 in: the float32 kernel on the (exactly widened) inputs, results rounded to the input
    dtype; the fake implementation promises that dtype and shape."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    args32 = _tensor_args(k, torch.float32)
    args_half = [a.to(half) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args32]
    if k.layout == CREATION:
        args_half = [half if p.kind == "dtype" else a for p, a in zip(k.params, args_half)]
    widened = [a.float() if isinstance(a, torch.Tensor) and a.dtype == half else a for a in args_half]
    want = _op(k)(*widened)
    inplace = [i for i, p in enumerate(k.params) if isinstance(p, Array) and p.io == "inout"]
    got = _op(k)(*args_half)
    if inplace:
        want, got = tuple(widened[i] for i in inplace), tuple(args_half[i] for i in inplace)
    want = want if isinstance(want, tuple) else (want,)
    got = got if isinstance(got, tuple) else (got,)
    for w, g in zip(want, got):
        assert g.dtype == half and torch.equal(g, w.to(half)), k.name
    if not inplace:
        with FakeTensorMode() as mode:
            fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args_half]
            fake = _op(k)(*fake_args)
        fake = fake if isinstance(fake, tuple) else (fake,)
        assert [(f.dtype, f.shape) for f in fake] == [(g.dtype, g.shape) for g in got]


@pytest.mark.parametrize("bad", [torch.int64, torch.int32, torch.bool, torch.complex64], ids=str)
def test_integer_bool_and_complex_are_refused_in_eager_and_fake(bad):
    from torch._subclasses.fake_tensor import FakeTensorMode
    x = torch.ones(3, 4, dtype=bad)
    with pytest.raises(TypeError, match=rf"mu must be a floating-point tensor \(torch.float32, .*\), got {bad}") as e:
        vkt.kl_standard_normal(x, x)
    assert "astype" not in str(e.value)
    with FakeTensorMode() as mode:
        with pytest.raises(TypeError, match=rf"mu must be a floating-point tensor .*got {bad}"):
            _op(BY_NAME_KL)(mode.from_tensor(x), mode.from_tensor(x))
    for api in (lambda: vkt.randn((3,), 1, dtype=bad), lambda: _op(BY_NAME_RANDN)([3], vkt.u64(1), vkt.u64(0), bad)):
        with pytest.raises(TypeError, match=rf"dtype must be torch.float32, .*got {bad}"):
            api()
    with pytest.raises(TypeError, match=r"mixed dtypes.*convert with \.to\(torch.float16\)"):
        vkt.kl_standard_normal(torch.ones(2, 2, dtype=torch.float16), torch.ones(2, 2))


BY_NAME_KL = next(k for k in KERNELS if k.name == "kl_standard_normal")
BY_NAME_RANDN = next(k for k in KERNELS if k.name == "randn")


def test_compiled_half_precision_and_integer_dtypes():
    """Compiled (inductor), randn in float16 is eager's (the float32 stream rounded), not a float32 buffer read
    as halves; an int64 request fails with the dtype message instead of reading past the buffer."""
    torch._dynamo.reset()
    f = torch.compile(lambda s: vkt.randn((1000,), s, vkt.u64(0), torch.float16) * 2, fullgraph=True)
    got = f(vkt.u64(3))
    assert got.dtype == torch.float16
    assert torch.equal(got, (torch.from_numpy(vk.randn(1000, 3)).half() * 2))
    g = torch.compile(lambda s: vkt.randn((4,), s, vkt.u64(0), torch.int64) + 1, fullgraph=True)
    with pytest.raises(Exception, match="dtype must be torch.float32, .*got torch.int64"):
        g(vkt.u64(3))


def test_autocast_follows_the_float32_policy():
    """Inside torch.autocast the operators compute in float32 and return float32 (like torch's
    binary_cross_entropy_with_logits); gradients reach the half-precision inputs in their dtype."""
    for device_dtype in (torch.bfloat16, torch.float16):
        mu = torch.randn(4, 6).to(device_dtype).requires_grad_()
        x = (torch.rand(4, 6) < 0.5).float()
        with torch.autocast("cpu", dtype=device_dtype):
            logits = mu * 1                                # a half-precision activation
            lp = vkt.bernoulli_log_prob(x, logits)
            kl = vkt.kl_standard_normal(logits, logits)
        assert lp.dtype == torch.float32 and kl.dtype == torch.float32
        assert torch.equal(lp, vkt.bernoulli_log_prob(x, mu.detach().float()))
        (lp.sum() + kl.sum()).backward()
        assert mu.grad.dtype == device_dtype


# -------------------------------------------------------------------------------------------------
# GaussianLatent: keys from torch's generator
# -------------------------------------------------------------------------------------------------
def test_manual_seed_governs_the_noise_and_layers_are_independent():
    a, b = vkt.GaussianLatent(), vkt.GaussianLatent()
    mu, lv = torch.zeros(16, 4), torch.zeros(16, 4)
    torch.manual_seed(1)
    za, zb = a(mu, lv)[0], b(mu, lv)[0]
    torch.manual_seed(1)
    za2 = a(mu, lv)[0]
    torch.manual_seed(2)
    za3 = a(mu, lv)[0]
    assert torch.equal(za, za2) and not torch.equal(za, zb) and not torch.equal(za, za3)
    assert abs(float(torch.corrcoef(torch.stack([za.flatten(), zb.flatten()]))[0, 1])) < 0.5
    a.eval()                                         # evaluation draws noise the same way, moves no state
    torch.manual_seed(1)
    assert torch.equal(a(mu, lv)[0], za) and dict(a.state_dict()) == {}
    gen = torch.Generator().manual_seed(9)
    c = vkt.GaussianLatent(generator=gen)
    z1 = c(mu, lv)[0]
    gen.manual_seed(9)
    assert torch.equal(c(mu, lv)[0], z1)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        vkt.GaussianLatent(generator=5)


def test_state_dicts_from_before_the_key_design_load():
    """vaekernels <= 0.2 saved the layer's seed and offset buffers; such a state dict still loads (strict),
    into the layer and into a model holding it, and the legacy constructor arguments warn."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 8))
    model.add_module("latent", vkt.GaussianLatent())
    old = {"0.weight": torch.randn(8, 4), "0.bias": torch.randn(8), "latent.seed": torch.tensor(3),
           "latent.offset": torch.tensor(4096)}
    result = model.load_state_dict(old, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(model[0].weight, old["0.weight"])
    assert set(model.state_dict()) == {"0.weight", "0.bias"}
    with pytest.warns(FutureWarning, match="deprecated and ignored"):
        vkt.GaussianLatent(seed=3, offset=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        vkt.GaussianLatent(sed=3)


def test_meta_device():
    t = vkt.randn((2, 3), 1, device="meta")
    assert t.device.type == "meta" and t.shape == (2, 3) and t.dtype == torch.float32
    mu = torch.empty(5, 4, device="meta")
    z, kl = vkt.latent_forward(mu, mu, 1, 0)
    assert z.device.type == "meta" and z.shape == (5, 4) and kl.shape == (5,)


# -------------------------------------------------------------------------------------------------
# loss names
# -------------------------------------------------------------------------------------------------
def test_bernoulli_nll_reductions_against_torch_and_deprecated_names():
    logits = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    x = (torch.rand(6, 5) < 0.5).double()
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    per_elem = bce(logits, x, reduction="none")
    torch.testing.assert_close(vkt.bernoulli_nll(logits, x, "none"), per_elem.sum(-1))
    torch.testing.assert_close(vkt.bernoulli_nll(logits, x, "batch_mean"), per_elem.sum(-1).mean())
    torch.testing.assert_close(vkt.bernoulli_nll(logits, x, "sum"), bce(logits, x, reduction="sum"))
    torch.testing.assert_close(vkt.bernoulli_nll(logits, x, "mean"), bce(logits, x, reduction="mean"))
    torch.testing.assert_close(vkt.BernoulliNLLLoss("mean")(logits, x), bce(logits, x))
    g, = torch.autograd.grad(vkt.bernoulli_nll(logits, x, "mean"), logits)
    want, = torch.autograd.grad(bce(logits, x), logits)
    torch.testing.assert_close(g, want)
    with pytest.raises(ValueError, match="reduction must be one of"):
        vkt.bernoulli_nll(logits, x, "avg")
    with pytest.warns(FutureWarning, match="bernoulli_nll"):
        old = vkt.bernoulli_logits_loss(x, logits)
    torch.testing.assert_close(old, per_elem.sum(-1))
    with pytest.warns(FutureWarning, match="batch_mean"):
        old_module = vkt.BernoulliLogitsLoss()
    torch.testing.assert_close(old_module(logits, x), per_elem.sum(-1).mean())
