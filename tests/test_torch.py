"""vaekernels.torch: every kernel of the table as a PyTorch operator. opcheck (schema, fake tensors,
autograd registration, AOT dispatch) on every operator; gradcheck in float64 on every differentiable one;
results bitwise the NumPy API's; errors the NumPy API's; GaussianLatent's keys from torch's generator; a VAE
on the digits trained with the operators reaches the ELBO of the same VAE written with native torch ops.
GPU cases skip without a device. The transforms (compile, checkpointing, vmap, ...): test_torch_transforms.py."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, assert_bitwise, vk

if os.environ.get("VAEKERNELS_EXPECT_TORCH") == "1":   # .ci/run installs torch: its absence is a failure there
    import torch
else:
    torch = pytest.importorskip("torch")
import vaekernels.torch as vkt  # noqa: E402

from vaekernels.kernels import KERNELS  # noqa: E402
from vaekernels.kernels.spec import BATCH, Array  # noqa: E402

CUDA = torch.cuda.is_available() and vk.cuda_available()


def _args(k, dtype=np.float64, shape=(5, 7), seed=0):
    """NumPy arguments for kernel k (the table's roles), and the same as torch tensors / ints."""
    rng = np.random.default_rng(seed)
    np_args, t_args = [], []
    for p in k.params:
        if isinstance(p, Array):
            if k.dtypes == ("uint32",):
                a = rng.integers(0, 2**32, (shape[0], 4 if p.name == "counters" else 2), dtype=np.uint32)
            else:
                a = rng.uniform(0.1, 0.9, shape[:-1] if p.role == BATCH else shape).astype(dtype)
            np_args.append(a)
            t_args.append(torch.from_numpy(a.copy()))
        else:
            v = {"seed": 2**64 - 3, "offset": 11, "n_samples": 2, "real": 0.25, "step": 3, "shape": shape,
                 "dtype": dtype}[p.kind]
            np_args.append(v)
            t_args.append(v)
    return np_args, t_args


def test_import_vaekernels_does_not_import_torch():
    r = subprocess.run([sys.executable, "-c", "import sys, vaekernels; print('torch' in sys.modules)"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.stdout.strip() == "False", r.stderr


@pytest.mark.parametrize("name", [k.name for k in KERNELS])
def test_operator_equals_numpy_api_bitwise(name):
    k = next(k for k in KERNELS if k.name == name)
    for dtype in (np.float32, np.float64):
        np_args, t_args = _args(k, dtype)
        want = getattr(vk, name)(*np_args)
        got = getattr(vkt, name)(*t_args)
        if k.returns != "outputs":                       # adam_step: compare the updated arrays
            want = tuple(a for a, p in zip(np_args, k.params) if isinstance(p, Array) and p.io == "inout")
            got = tuple(a for a, p in zip(t_args, k.params) if isinstance(p, Array) and p.io == "inout")
        want = want if isinstance(want, tuple) else (want,)
        got = got if isinstance(got, tuple) else (got,)
        for w, g in zip(want, got):
            assert isinstance(g, torch.Tensor)
            assert_bitwise(g.numpy(), w, f"vaekernels.torch.{name} ({np.dtype(dtype).name})")


@pytest.mark.parametrize("name", [k.name for k in KERNELS])
def test_opcheck(name):
    k = next(k for k in KERNELS if k.name == name)
    _, t_args = _args(k, np.float64, shape=(3, 4))
    op_args = []
    for p, a in zip(k.params, t_args):
        if isinstance(p, Array):
            if k.backward is not None and p.name in k.backward.differentiable:
                a = a.requires_grad_()
        elif p.kind in ("seed", "offset", "step"):
            a = vkt.u64(a)
        elif p.kind == "dtype":
            a = torch.float64
        elif p.kind == "shape":
            a = list(a)
        op_args.append(a)
    op = getattr(torch.ops.vaekernels, name).default
    torch.library.opcheck(op, tuple(op_args))


@pytest.mark.parametrize("name,n_samples", [(k.name, None) for k in KERNELS if k.backward is not None]
                         + [("reparameterize", 3)])
def test_gradcheck(name, n_samples):
    k = next(k for k in KERNELS if k.name == name)
    _, t_args = _args(k, np.float64, shape=(3, 4), seed=1)
    diff = [i for i, p in enumerate(k.params) if isinstance(p, Array) and p.name in k.backward.differentiable]
    if n_samples is not None:
        t_args[[p.name for p in k.params].index("n_samples")] = n_samples

    def f(*xs):
        args = list(t_args)
        for i, x in zip(diff, xs):
            args[i] = x
        return getattr(vkt, name)(*args)

    inputs = tuple(t_args[i].clone().requires_grad_() for i in diff)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_requires_grad_inputs_and_errors_match_the_numpy_api():
    mu = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    z, kl = vkt.latent_forward(mu, torch.zeros(4, 3, dtype=torch.float64), 1, 0)
    assert z.requires_grad and kl.requires_grad
    with pytest.raises(TypeError, match="mixed dtypes"):
        vkt.kl_standard_normal(mu, torch.zeros(4, 3))
    with pytest.raises(TypeError, match=r"mu must be a floating-point tensor .*got torch.int64"):
        vkt.kl_standard_normal(mu.long(), mu.long())
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 2\)|\(4, 2\).*\(4, 3\)"):
        vkt.kl_standard_normal(mu, torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="seed"):
        vkt.randn(3, -1)
    with pytest.raises(ValueError, match="2\\*\\*64"):
        vkt.randn(8, 1, 2**64 - 4)
    if not CUDA:   # randn on a GPU, CUDA tensors: the reason no GPU call can run, not a dispatcher error
        with pytest.raises(RuntimeError, match="CUDA"):
            vkt.randn(3, 1, device="cuda")
        op = torch.ops.vaekernels.kl_standard_normal.default
        with pytest.raises(RuntimeError, match="CUDA"):
            op.redispatch(torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA), mu.detach(), mu.detach())


def test_views_and_inputs_that_require_grad_equal_the_numpy_api():
    # What a model hands over: column halves of an encoder output (non-contiguous views) that require grad.
    h = torch.randn(6, 10, dtype=torch.float32, requires_grad=True)
    mu, lv = h.chunk(2, dim=-1)
    assert not mu.is_contiguous()
    z, kl = vkt.latent_forward(mu, lv, 4, 9)
    want = vk.latent_forward(mu.detach().numpy(), lv.detach().numpy(), 4, 9)
    assert_bitwise(z.detach().numpy(), want[0], "latent_forward z of views")
    assert_bitwise(kl.detach().numpy(), want[1], "latent_forward kl of views")
    x = (torch.rand(6, 5) < 0.5).float()
    lp = vkt.bernoulli_log_prob(x, mu)
    assert_bitwise(lp.detach().numpy(), vk.bernoulli_log_prob(x.numpy(), mu.detach().numpy()), "bernoulli of a view")
    (z.sum() + kl.sum() + lp.sum()).backward()
    dmu, dlv = vk.latent_vjp(np.ones((6, 5), np.float32), np.ones(6, np.float32), mu.detach().numpy(),
                             lv.detach().numpy(), 4, 9)
    dlogits = vk.bernoulli_log_prob_backward(np.ones(6, np.float32), x.numpy(), mu.detach().numpy())
    assert_bitwise(h.grad[:, :5].numpy(), dmu + dlogits, "gradient into the first half")
    assert_bitwise(h.grad[:, 5:].numpy(), dlv, "gradient into the second half")


def test_stream_values_travel_as_int64_tensors():
    assert int(vkt.u64(2**64 - 1)) == -1 and int(vkt.u64(5)) == 5
    a = vkt.randn(6, 2**64 - 1, 2**63 + 1)
    np.testing.assert_array_equal(a.numpy(), vk.randn(6, 2**64 - 1, 2**63 + 1))
    np.testing.assert_array_equal(vkt.randn(6, vkt.u64(2**64 - 1), vkt.u64(2**63 + 1)).numpy(), a.numpy())


def test_gaussian_latent_draws_a_key_per_call_and_regenerates_eps():
    """Each call draws its key with torch's generator (torch.randint at that point of the stream); the
    backward regenerates eps from the key the forward used."""
    layer = vkt.GaussianLatent()
    mu = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
    lv = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(7)
    z1, kl1 = layer(mu, lv)
    z2, _ = layer(mu, lv)
    torch.manual_seed(7)
    k1, k2 = int(vkt.noise_key()), int(vkt.noise_key())
    assert k1 != k2 and 0 <= min(k1, k2) and max(k1, k2) < 2**63
    np.testing.assert_array_equal(z1.detach().numpy(), vk.latent_forward(mu.detach().numpy(), lv.detach().numpy(),
                                                                        k1, 0)[0])
    np.testing.assert_array_equal(z2.detach().numpy(), vk.latent_forward(mu.detach().numpy(), lv.detach().numpy(),
                                                                        k2, 0)[0])
    (z1.sum() + 0.5 * kl1.sum()).backward()
    dmu, dlv = vk.latent_backward(np.ones((8, 4)), mu.detach().numpy(), lv.detach().numpy(), k1, 0, 0.5)
    np.testing.assert_allclose(mu.grad.numpy(), dmu, rtol=1e-15)
    np.testing.assert_allclose(lv.grad.numpy(), dlv, rtol=1e-14)
    assert dict(layer.state_dict()) == {}


# -------------------------------------------------------------------------------------------------
# a VAE trained with the operators reaches the ELBO of the native torch one
# -------------------------------------------------------------------------------------------------
def digits_vae(seed):
    """The binarised digits and a 64-128-8 tanh VAE (encoder, decoder, Adam 3e-3) initialised from seed."""
    X, _ = vk.datasets.load_digits()
    X = torch.from_numpy((X > 0.5).astype(np.float32))
    torch.manual_seed(seed)
    D, H, L = 64, 128, 8
    enc = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.Tanh(), torch.nn.Linear(H, 2 * L))
    dec = torch.nn.Sequential(torch.nn.Linear(L, H), torch.nn.Tanh(), torch.nn.Linear(H, D))
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=3e-3)
    return X, enc, dec, opt, L


def _train_digits(use_vk, seed, epochs=40):
    pytest.importorskip("sklearn")
    X, enc, dec, opt, L = digits_vae(seed)
    gen = torch.Generator().manual_seed(seed)
    offset = 0
    for _ in range(epochs):
        for idx in torch.randperm(X.shape[0], generator=gen).split(128):
            x = X[idx]
            h = enc(x)
            mu, lv = h[:, :L], h[:, L:]
            if use_vk:    # the functional form at the same stream positions as the native run
                z, kl = vkt.latent_forward(mu, lv, seed, offset)
                nll = vkt.bernoulli_nll(dec(z), x, reduction="none")
            else:   # native torch ops, fed the same normals (so only the arithmetic differs)
                eps = torch.from_numpy(vk.randn(mu.shape, seed, offset))
                z = mu + torch.exp(0.5 * lv) * eps
                kl = 0.5 * (mu ** 2 + lv.exp() - 1 - lv).sum(-1)
                nll = torch.nn.functional.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(-1)
            offset += mu.numel()
            loss = (nll + kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():                                   # the ELBO on the whole set, one sample, fixed noise
        h = enc(X)
        mu, lv = h[:, :L], h[:, L:]
        z = mu + torch.exp(0.5 * lv) * torch.from_numpy(vk.randn(mu.shape, 12345))
        kl = 0.5 * (mu ** 2 + lv.exp() - 1 - lv).sum(-1)
        nll = torch.nn.functional.binary_cross_entropy_with_logits(dec(z), X, reduction="none").sum(-1)
        return float((-(nll + kl)).mean())


def test_vae_with_the_operators_reaches_the_native_elbo():
    """The native VAE over 5 seeds gives the spread; ours (seed 0) must lie within 2 of its standard
    deviations of the native mean. Both runs of seed 0 see the same data order and the same normals, so
    beyond that criterion ours must also stay close to native seed 0 itself (only float32 rounding
    differs, and it grows slowly over 480 steps): within half a native standard deviation."""
    native = np.array([_train_digits(False, s) for s in range(5)])
    ours = _train_digits(True, 0)
    sd = native.std(ddof=1)
    assert abs(ours - native.mean()) <= 2 * sd, (ours, native)
    assert abs(ours - native[0]) <= 0.5 * sd, (ours, native)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device and the CUDA build")
def test_cuda_tensors_on_the_current_stream():
    mu = torch.randn(64, 16, device="cuda")
    lv = torch.randn(64, 16, device="cuda")
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        z, kl = vkt.latent_forward(mu, lv, 5, 7)
    s.synchronize()
    zc, klc = vk.latent_forward(mu.cpu().numpy(), lv.cpu().numpy(), 5, 7)
    assert z.is_cuda and np.array_equal(z.cpu().numpy(), zc) and np.array_equal(kl.cpu().numpy(), klc)
    with pytest.raises(TypeError, match="mixing devices"):
        vkt.kl_standard_normal(mu, lv.cpu())


def test_thread_policy_follows_torch():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        vkt.kl_standard_normal(torch.zeros(2, 2), torch.zeros(2, 2))
        assert vkt.threads() == {"torch": 1, "vaekernels": 1}
        torch.set_num_threads(2)
        vkt.kl_standard_normal(torch.zeros(2, 2), torch.zeros(2, 2))
        assert vkt.threads() == {"torch": 2, "vaekernels": 2}
    finally:
        torch.set_num_threads(before)
