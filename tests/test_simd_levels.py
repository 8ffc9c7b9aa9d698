"""Bit-identical results across SIMD levels (VAEKERNELS_SIMD=scalar|baseline|avx2|avx512, whichever
vaekernels.simd_levels() lists) and thread counts (OMP_NUM_THREADS=1, 2, 3), for every kernel, the dense-layer
epilogues and an MLP's forward and backward passes.

Each configuration runs in a fresh interpreter (the level and the thread pool are fixed at import) and
prints a SHA-256 of every output of every kernel over a fixed set of inputs: sizes below and above the
parallel threshold, ragged tails, odd stream offsets, and special values (inf, NaN, subnormals, -0).
Bits are compared exactly except NaN payloads and signs, which IEEE 754 leaves unspecified (x86 returns
the first operand's NaN, so a compiler commuting a + b changes it): NaN positions must agree, and every
other value, signed zeros and subnormals included, must be the same bits.
The "scalar" level is built without vectorisation, one element at a time like the GPU's threads, so its
agreement with the vector levels also shows that the transform the CUDA kernels share gives the same bits.
"""
import json

import pytest

from conftest import run_python, vk

SCRIPT = r"""
import hashlib, json
import numpy as np
import vaekernels as vk

def h(*arrays):
    d = hashlib.sha256()
    for a in arrays:
        a = np.array(a, order="C")
        if a.dtype.kind == "f":
            a[np.isnan(a)] = np.nan          # one canonical NaN: IEEE 754 leaves NaN sign/payload unspecified
        d.update(np.isnan(a).tobytes() if a.dtype.kind == "f" else b"")
        d.update(str((a.dtype.str, a.shape)).encode()); d.update(a.tobytes())
    return d.hexdigest()[:24]

out = {"level": vk.simd_level()}
rng = np.random.default_rng(0)
special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-310, -5e-324, 1e-40, 88.8, -104.0, 710.0, -746.0])
for dt in (np.float32, np.float64):
    name = np.dtype(dt).name
    for (rows, cols) in [(3, 5), (64, 37), (5, 2500), (1500, 48), (1, 40001)]:
        def arr(scale, shift=0.0):
            a = (rng.normal(size=(rows, cols)) * scale + shift)
            flat = a.reshape(-1)
            flat[: min(flat.size, 4 * special.size): 4] = np.resize(special, min(flat.size, 4 * special.size) // 4 + 1)[: len(flat[: min(flat.size, 4 * special.size): 4])]
            return a.astype(dt)
        mu, lv, mp, lp, x = arr(2), arr(3), arr(2), arr(3), arr(1)
        xb = rng.uniform(size=(rows, cols)).astype(dt)
        logits = arr(8)
        g = rng.normal(size=rows).astype(dt)
        dz = arr(1)
        k = f"{name} {rows}x{cols}"
        for off in (0, 3, 2**34 - 1):
            out[f"randn {k} {off}"] = h(vk.randn((rows, cols), 9, off, dt))
            out[f"rand {k} {off}"] = h(vk.rand((rows, cols), 9, off, dt))
            out[f"reparameterize {k} {off}"] = h(vk.reparameterize(mu, lv, 9, off, n_samples=2))
            out[f"latent_forward {k} {off}"] = h(*vk.latent_forward(mu, lv, 9, off))
            out[f"latent_backward {k} {off}"] = h(*vk.latent_backward(dz, mu, lv, 9, off, kl_weight=0.3))
            out[f"latent_vjp {k} {off}"] = h(*vk.latent_vjp(dz, g, mu, lv, 9, off))
        out[f"kl_standard_normal {k}"] = h(vk.kl_standard_normal(mu, lv))
        out[f"kl_standard_normal_backward {k}"] = h(*vk.kl_standard_normal_backward(g, mu, lv))
        out[f"kl_normal {k}"] = h(vk.kl_normal(mu, lv, mp, lp))
        out[f"kl_normal_backward {k}"] = h(*vk.kl_normal_backward(g, mu, lv, mp, lp))
        out[f"bernoulli_log_prob {k}"] = h(vk.bernoulli_log_prob(xb, logits))
        out[f"bernoulli_log_prob_and_grad {k}"] = h(*vk.bernoulli_log_prob_and_grad(xb, logits))
        out[f"bernoulli_log_prob_backward {k}"] = h(vk.bernoulli_log_prob_backward(g, xb, logits))
        out[f"normal_log_prob {k}"] = h(vk.normal_log_prob(x, mu, lv))
        out[f"normal_log_prob_and_grad {k}"] = h(*vk.normal_log_prob_and_grad(x, mu, lv))
        out[f"normal_log_prob_backward {k}"] = h(*vk.normal_log_prob_backward(g, x, mu, lv))
        out[f"standard_normal_log_prob {k}"] = h(vk.standard_normal_log_prob(x))
        out[f"standard_normal_log_prob_and_grad {k}"] = h(*vk.standard_normal_log_prob_and_grad(x))
        p, m, v = mu.copy(), np.zeros_like(mu), np.zeros_like(mu)
        for t in range(1, 4):
            vk.adam_step(p, dz, m, v, t, lr=0.01, weight_decay=0.1)
        out[f"adam_step {k}"] = h(p, m, v)
        bias = arr(1)[0]
        for act in range(6):   # the dense-layer epilogues (vaekernels.nn), every activation
            y = logits.copy()
            vk._core.bias_activation(y, bias, act)
            d, db = dz.copy(), np.empty(cols, dt)
            vk._core.activation_grad(d, y, db, act, 0.7)
            out[f"epilogues {act} {k}"] = h(y, d, db)
        if rows * cols < 200000:  # an MLP: GEMM blocks on NumPy's BLAS + the epilogues, forward and backward
            from vaekernels import nn
            sizes = (cols, 33, 7)
            prm = nn.Parameters(nn.MLP.spec("m", sizes), dt)
            mlp = nn.MLP(prm, "m", sizes, "tanh")
            mlp.init(3, 0)
            buf = nn.MLPBuffers(mlp, rows, dt)
            xin = np.nan_to_num(x, nan=0.5, posinf=1.0, neginf=-1.0)
            mlp.forward(xin, buf)
            dxin = np.empty_like(xin)
            mlp.backward(xin, np.ones((rows, 7), dt), buf, dx=dxin, scale=0.5)
            out[f"mlp {k}"] = h(buf.out, *buf.h, prm.grad_flat, dxin)
c = rng.integers(0, 2**32, size=(4099, 4), dtype=np.uint32)
kk = rng.integers(0, 2**32, size=(4099, 2), dtype=np.uint32)
out["philox4x32_10"] = h(vk.philox4x32_10(c, kk))
print(json.dumps(out))
"""


def _hashes(level=None, threads="2"):
    env = {"OMP_NUM_THREADS": threads}
    if level is not None:
        env["VAEKERNELS_SIMD"] = level
    return json.loads(run_python(SCRIPT, env).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reference_hashes():
    # The best level with 2 threads: what users get by default on this machine.
    return _hashes()


def _compare(got, want, what):
    assert got.keys() == want.keys()
    diff = [k for k in want if k != "level" and got[k] != want[k]]
    assert not diff, f"{what}: {len(diff)} outputs differ, e.g. {diff[:8]}"


@pytest.mark.parametrize("level", vk.simd_levels())
def test_simd_levels_bit_identical(level, reference_hashes):
    got = _hashes(level)
    assert got["level"] == level, f"VAEKERNELS_SIMD={level} was not honoured (got {got['level']})"
    _compare(got, reference_hashes, f"SIMD level {level} vs {reference_hashes['level']}")


@pytest.mark.parametrize("threads", ["1", "3"])
def test_thread_count_bit_identical(threads, reference_hashes):
    _compare(_hashes(threads=threads), reference_hashes, f"OMP_NUM_THREADS={threads} vs 2")


def test_scalar_level_single_thread(reference_hashes):
    # The closest CPU analogue of the GPU path: no vectorisation, one thread.
    _compare(_hashes("scalar", threads="1"), reference_hashes, "scalar level, 1 thread")


def test_unknown_level_is_a_clear_error():
    with pytest.raises(AssertionError, match="VAEKERNELS_SIMD=sse9"):
        run_python("import vaekernels as vk, numpy as np; vk.randn(3, 1)", {"VAEKERNELS_SIMD": "sse9"})
