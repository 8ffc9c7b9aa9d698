"""Time every vaekernels kernel against NumPy, PyTorch (CPU, eager) and jax.jit in the same run.

Usage:  python benchmarks/compare.py [--sizes 256x32,4096x256,65536x256] [--threads 2] [--dtype float32]
        [--repeat 15] [--markdown]

Each peer gets its best configuration: the same thread count (torch.set_num_threads, XLA's CPU pool,
OpenMP for vaekernels; NumPy's elementwise ufuncs are single-threaded by design), preallocated outputs
wherever the library allows it (NumPy ``out=``, torch ``out=``; JAX allocates inside jit), and the glibc
allocator pinned (MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ set by this script before NumPy loads) so
large temporaries are not returned to the OS and page-faulted back on every call.

Every peer runs in a process of its own (this script starts one per peer): torch and JAX bring their own
OpenMP and thread pools, and in one process their idle threads spin against the others' (adam_step measured
0.4x torch's time there and 0.93x alone).

Reported: median milliseconds per call, the ratio to vaekernels (peer time / vaekernels time, so > 1 means
vaekernels is faster), and vaekernels' achieved bandwidth (bytes each kernel must move / time) next to a
plain memory copy measured in the same run.
"""
from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__":  # pin the allocator before numpy/torch allocate anything (re-exec once)
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1073741824", MALLOC_TRIM_THRESHOLD_="1073741824")
        os.execve(sys.executable, [sys.executable] + sys.argv, env)

import time

import numpy as np

import vaekernels as vk


def median_ms(fn, repeat, min_time=0.02):
    """Median wall time of fn() in ms; each sample loops enough calls to last >= min_time seconds."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_time / once))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return 1e3 * float(np.median(samples))


# ---------------------------------------------------------------------------------------------------
# Peers
# ---------------------------------------------------------------------------------------------------
def numpy_peer(B, D, dtype, seed=0):
    rng = np.random.default_rng(seed)
    mu, lv, x, lg, dz = (rng.standard_normal((B, D)).astype(dtype) for _ in range(5))
    x = (x > 0).astype(dtype)
    eps, t, z, d1, d2, e = (np.empty((B, D), dtype) for _ in range(6))
    kl = np.empty(B, dtype)
    p, g, m, v = (rng.standard_normal(B * D).astype(dtype) for _ in range(4))
    v = np.abs(v)
    ta = np.empty_like(p)

    def randn():
        rng.standard_normal(out=eps.reshape(-1), dtype=dtype)

    def reparameterize():
        rng.standard_normal(out=eps, dtype=dtype)
        np.multiply(lv, 0.5, out=t); np.exp(t, out=t); np.multiply(t, eps, out=z); np.add(z, mu, out=z)

    def kl_forward():
        np.exp(lv, out=t); np.subtract(t, 1.0, out=t); np.subtract(t, lv, out=t)
        np.multiply(mu, mu, out=d1); np.add(t, d1, out=t); np.sum(t, axis=1, out=kl); np.multiply(kl, 0.5, out=kl)

    def kl_backward():
        np.multiply(mu, 1.0, out=d1); np.expm1(lv, out=d2); np.multiply(d2, 0.5, out=d2)

    def bernoulli_value_grad():
        # log p = x l - softplus(l); grad = x - sigmoid(l)
        np.abs(lg, out=t); np.negative(t, out=t); np.exp(t, out=e); np.log1p(e, out=t)
        np.maximum(lg, 0.0, out=d1); np.add(t, d1, out=t); np.multiply(x, lg, out=d2); np.subtract(d2, t, out=d2)
        np.sum(d2, axis=1, out=kl)
        np.add(e, 1.0, out=t); np.reciprocal(t, out=t)
        np.multiply(e, t, out=d2); np.copyto(d1, t); np.copyto(d1, d2, where=lg < 0); np.subtract(x, d1, out=d1)

    def normal_value_grad():
        np.subtract(x, mu, out=d1); np.exp(np.negative(lv, out=t), out=t); np.multiply(d1, t, out=d2)
        np.multiply(d1, d2, out=e); np.add(e, lv, out=t); np.sum(t, axis=1, out=kl)
        np.add(kl, D * 1.8378770664093453, out=kl); np.multiply(kl, -0.5, out=kl)
        np.subtract(e, 1.0, out=e); np.multiply(e, 0.5, out=e)

    def latent_forward():
        reparameterize()
        kl_forward()

    def latent_backward():
        rng.standard_normal(out=eps, dtype=dtype)
        np.multiply(lv, 0.5, out=t); np.exp(t, out=t); np.multiply(t, 0.5, out=t); np.multiply(dz, eps, out=d2)
        np.multiply(d2, t, out=d2); np.expm1(lv, out=t); np.multiply(t, 0.5, out=t); np.add(d2, t, out=d2)
        np.add(dz, mu, out=d1)

    def adam():
        np.multiply(m, 0.9, out=m); np.multiply(g, 0.1, out=ta); np.add(m, ta, out=m)
        np.multiply(v, 0.999, out=v); np.multiply(g, g, out=ta); np.multiply(ta, 0.001, out=ta); np.add(v, ta, out=v)
        np.sqrt(v, out=ta); np.add(ta, 1e-8, out=ta); np.divide(m, ta, out=ta); np.multiply(ta, 1e-3, out=ta)
        np.subtract(p, ta, out=p)

    return dict(randn=randn, reparameterize=reparameterize, kl_forward=kl_forward, kl_backward=kl_backward,
                bernoulli_value_grad=bernoulli_value_grad, normal_value_grad=normal_value_grad,
                latent_forward=latent_forward, latent_backward=latent_backward, adam_step=adam)


def vaekernels_peer(B, D, dtype, seed=0):
    rng = np.random.default_rng(seed)
    mu, lv, x, lg, dz = (rng.standard_normal((B, D)).astype(dtype) for _ in range(5))
    x = (x > 0).astype(dtype)
    z, d1, d2, d3 = (np.empty((B, D), dtype) for _ in range(4))
    kl = np.empty(B, dtype)
    p, g, m, v = (rng.standard_normal(B * D).astype(dtype) for _ in range(4))
    v = np.abs(v)
    state = {"step": 0}

    def adam():
        state["step"] += 1
        vk.adam_step(p, g, m, v, state["step"])

    return dict(
        randn=lambda: vk.randn((B, D), 1, dtype=dtype, out=z),
        reparameterize=lambda: vk.reparameterize(mu, lv, 1, out=z),
        kl_forward=lambda: vk.kl_standard_normal(mu, lv, out=kl),
        kl_backward=lambda: vk.kl_standard_normal_backward(kl, mu, lv, out=(d1, d2)),
        bernoulli_value_grad=lambda: vk.bernoulli_log_prob_and_grad(x, lg, out=(kl, d1)),
        normal_value_grad=lambda: vk.normal_log_prob_and_grad(x, mu, lv, out=(kl, d1, d2)),
        latent_forward=lambda: vk.latent_forward(mu, lv, 1, out=(z, kl)),
        latent_backward=lambda: vk.latent_backward(dz, mu, lv, 1, out=(d1, d2)),
        adam_step=adam,
    )


def torch_peer(B, D, dtype, threads, seed=0):
    import torch
    torch.set_num_threads(threads)
    tdt = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    gen = torch.Generator().manual_seed(seed)
    mu, lv, x, lg, dz = (torch.randn(B, D, generator=gen, dtype=tdt) for _ in range(5))
    x = (x > 0).to(tdt)
    eps, t, z, d1, d2 = (torch.empty(B, D, dtype=tdt) for _ in range(5))
    kl = torch.empty(B, dtype=tdt)
    p = torch.randn(B * D, dtype=tdt, generator=gen).requires_grad_(False)
    grad = torch.randn(B * D, dtype=tdt, generator=gen)
    opt = torch.optim.AdamW([torch.nn.Parameter(p)], lr=1e-3, weight_decay=0.0, foreach=False, fused=True)
    opt.param_groups[0]["params"][0].grad = grad

    def reparameterize():
        torch.randn(B, D, generator=gen, out=eps, dtype=tdt)
        torch.mul(lv, 0.5, out=t); torch.exp(t, out=t); torch.addcmul(mu, t, eps, out=z)

    def kl_forward():
        torch.exp(lv, out=t); t.sub_(1.0).sub_(lv).addcmul_(mu, mu); torch.sum(t, dim=1, out=kl); kl.mul_(0.5)

    def kl_backward():
        d1.copy_(mu); torch.expm1(lv, out=d2); d2.mul_(0.5)

    def bernoulli_value_grad():
        torch.sub(torch.mul(x, lg, out=t), torch.nn.functional.softplus(lg), out=t)
        torch.sum(t, dim=1, out=kl); torch.sigmoid(lg, out=d1); torch.sub(x, d1, out=d1)

    def normal_value_grad():
        torch.sub(x, mu, out=d1); torch.exp(torch.neg(lv, out=t), out=t); torch.mul(d1, t, out=d2)
        torch.mul(d1, d2, out=t); d1.copy_(t); t.add_(lv); torch.sum(t, dim=1, out=kl)
        kl.add_(D * 1.8378770664093453).mul_(-0.5); d1.sub_(1.0).mul_(0.5)

    def latent_backward():
        torch.randn(B, D, generator=gen, out=eps, dtype=tdt)
        torch.mul(lv, 0.5, out=t); torch.exp(t, out=t); t.mul_(0.5).mul_(eps).mul_(dz)
        torch.expm1(lv, out=d2); d2.mul_(0.5).add_(t); torch.add(dz, mu, out=d1)

    return dict(randn=lambda: torch.randn(B, D, generator=gen, out=eps, dtype=tdt),
                reparameterize=reparameterize, kl_forward=kl_forward, kl_backward=kl_backward,
                bernoulli_value_grad=bernoulli_value_grad, normal_value_grad=normal_value_grad,
                latent_forward=lambda: (reparameterize(), kl_forward()), latent_backward=latent_backward,
                adam_step=opt.step)


def jax_peer(B, D, dtype, seed=0):
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", dtype == np.float64)
    key = jax.random.PRNGKey(seed)
    ks = jax.random.split(key, 6)
    mu, lv, x, lg, dz = (jax.random.normal(k, (B, D), dtype) for k in ks[:5])
    x = (x > 0).astype(dtype)
    p, g, m, v = (jax.random.normal(k, (B * D,), dtype) for k in jax.random.split(ks[5], 4))
    v = jnp.abs(v)

    @jax.jit
    def randn(k):
        return jax.random.normal(k, (B, D), dtype)

    @jax.jit
    def reparameterize(k, mu, lv):
        return mu + jnp.exp(0.5 * lv) * jax.random.normal(k, mu.shape, dtype)

    @jax.jit
    def kl_forward(mu, lv):
        return 0.5 * jnp.sum(mu * mu + jnp.expm1(lv) - lv, axis=-1)

    @jax.jit
    def kl_backward(mu, lv):
        return mu, 0.5 * jnp.expm1(lv)

    @jax.jit
    def bernoulli_value_grad(x, l):
        return jnp.sum(x * l - jax.nn.softplus(l), axis=-1), x - jax.nn.sigmoid(l)

    @jax.jit
    def normal_value_grad(x, m, lv):
        d = x - m
        prec = jnp.exp(-lv)
        sq = d * d * prec
        return -0.5 * jnp.sum(1.8378770664093453 + lv + sq, axis=-1), d * prec, 0.5 * (sq - 1.0)

    @jax.jit
    def latent_forward(k, mu, lv):
        return reparameterize(k, mu, lv), kl_forward(mu, lv)

    @jax.jit
    def latent_backward(k, dz, mu, lv):
        eps = jax.random.normal(k, mu.shape, dtype)
        return dz + mu, 0.5 * dz * eps * jnp.exp(0.5 * lv) + 0.5 * jnp.expm1(lv)

    @jax.jit
    def adam(p, g, m, v):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        return p - 1e-3 * m / (jnp.sqrt(v) + 1e-8), m, v

    def run(f, *a):
        return lambda: jax.block_until_ready(f(*a))

    return dict(randn=run(randn, key), reparameterize=run(reparameterize, key, mu, lv),
                kl_forward=run(kl_forward, mu, lv), kl_backward=run(kl_backward, mu, lv),
                bernoulli_value_grad=run(bernoulli_value_grad, x, lg), normal_value_grad=run(normal_value_grad, x, mu, lv),
                latent_forward=run(latent_forward, key, mu, lv), latent_backward=run(latent_backward, key, dz, mu, lv),
                adam_step=run(adam, p, g, m, v))


# Arrays of B*D elements each kernel must read + write (row outputs of B elements are negligible).
BYTES_PER_ELEMENT_ARRAYS = dict(randn=1, reparameterize=3, kl_forward=2, kl_backward=4, bernoulli_value_grad=3,
                                normal_value_grad=5, latent_forward=3, latent_backward=5, adam_step=7)


def copy_bandwidth_gbs(nbytes, repeat):
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    ms = median_ms(lambda: np.copyto(dst, src), repeat)
    return 2 * src.nbytes / (ms * 1e-3) / 1e9


PEERS = {"numpy": lambda B, D, dtype, threads: numpy_peer(B, D, dtype),
         "torch": lambda B, D, dtype, threads: torch_peer(B, D, dtype, threads),
         "jax": lambda B, D, dtype, threads: jax_peer(B, D, dtype),
         "vaekernels": lambda B, D, dtype, threads: vaekernels_peer(B, D, dtype)}


def worker(args):
    """Measure one peer (args.worker) on every size; print one JSON line {size: {kernel: ms}} (+ copy GB/s)."""
    import json
    dtype = np.dtype(args.dtype).type
    out = {"times": {}}
    if args.worker == "vaekernels":
        out["copy_gbs"] = copy_bandwidth_gbs(64 << 20, args.repeat)
    try:
        for size in args.sizes.split(","):
            B, D = (int(s) for s in size.split("x"))
            fns = PEERS[args.worker](B, D, dtype, args.threads)
            out["times"][size] = {k: median_ms(f, args.repeat) for k, f in fns.items()}
    except ImportError as e:
        out["skipped"] = str(e)
    print(json.dumps(out))


def main(argv=None):
    import json
    import subprocess
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256x32,4096x256,65536x256")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--peers", default="numpy,torch,jax")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table (for the README)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    print(f"vaekernels {vk.__version__}  simd={vk.simd_level()}  threads={args.threads}  dtype={args.dtype}  "
          f"allocator pinned={os.environ.get('MALLOC_MMAP_THRESHOLD_') is not None}  one process per peer")
    results = {}
    for peer in ["vaekernels"] + [p for p in args.peers.split(",") if p and p != "vaekernels"]:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", peer, "--sizes", args.sizes,
               "--threads", str(args.threads), "--dtype", args.dtype, "--repeat", str(args.repeat)]
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit(f"the {peer} worker failed")
        res = json.loads(r.stdout.strip().splitlines()[-1])
        if "skipped" in res:
            print(f"{peer} skipped: {res['skipped']}")
            continue
        results[peer] = res
    copy_gbs = results["vaekernels"]["copy_gbs"]
    print(f"copy bandwidth (np.copyto, 64 MiB): {copy_gbs:.1f} GB/s")
    dtype = np.dtype(args.dtype)
    rows = []
    for size in args.sizes.split(","):
        B, D = (int(s) for s in size.split("x"))
        for kernel, ms in results["vaekernels"]["times"][size].items():
            t = {name: res["times"][size][kernel] for name, res in results.items() if kernel in res["times"][size]}
            nbytes = BYTES_PER_ELEMENT_ARRAYS[kernel] * B * D * dtype.itemsize
            rows.append((size, kernel, t, nbytes / (ms * 1e-3) / 1e9))
    names = list(results)
    if args.markdown:
        print("| size | kernel | " + " | ".join(f"{n} ms" for n in names) + " | " +
              " | ".join(f"{n}/vk" for n in names[1:]) + " | vk GB/s | % of copy |")
        print("|" + "---|" * (3 + 2 * len(names)))
    for size, kernel, t, gbs in rows:
        ratios = [t[n] / t["vaekernels"] if n in t else float("nan") for n in names[1:]]
        if args.markdown:
            print(f"| {size} | {kernel} | " + " | ".join(f"{t.get(n, float('nan')):.3f}" for n in names) + " | " +
                  " | ".join(f"{r:.1f}x" for r in ratios) + f" | {gbs:.1f} | {100 * gbs / copy_gbs:.0f}% |")
        else:
            print(f"{size:>10} {kernel:>22} " + " ".join(f"{n}={t.get(n, float('nan')):8.3f}ms" for n in names) +
                  "  " + " ".join(f"{n}/vk={r:5.1f}x" for n, r in zip(names[1:], ratios)) +
                  f"  vk {gbs:6.1f} GB/s ({100 * gbs / copy_gbs:.0f}% of copy)")


if __name__ == "__main__":
    main()
