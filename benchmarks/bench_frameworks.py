"""vaekernels inside PyTorch and JAX: operator overhead, the latent layer and the Bernoulli likelihood
(forward + backward) against native torch eager, torch.compile and jax.jit, whole MNIST VAE epochs, and the
thread policy when torch and vaekernels alternate in one process.

    python benchmarks/bench_frameworks.py [--cases overhead,latent,bernoulli,mnist,threads] [--repeat 21]
                                          [--sizes 4096x256,65536x256] [--mnist-rows 20000] [--markdown]

Every measurement runs in its own interpreter (one framework per process: no thread pool of one peer
spins against another's), float32, with the machine's default thread settings (each peer alike). Times
are medians of --repeat runs after warm-up (compilation excluded). Needs torch, jax and vaekernels built
with its JAX module (VAEKERNELS_JAX=1 pip install .); the MNIST case reads shared/data/mnist (or --mnist).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def median_ms(fn, repeat, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


# -------------------------------------------------------------------------------------------------
# cases (each runs in a fresh process: python bench_frameworks.py --run CASE VARIANT ...)
# -------------------------------------------------------------------------------------------------
def run_overhead(variant, repeat):
    import numpy as np
    mu = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    lv = mu * 0.1
    n = 2000
    if variant == "numpy":
        import vaekernels as vk
        return median_ms(lambda: [vk.latent_forward(mu, lv, 1, 0) for _ in range(n)], repeat) / n * 1e3
    if variant == "torch":
        import torch
        import vaekernels.torch as vkt
        tm, tl = torch.from_numpy(mu), torch.from_numpy(lv)
        s, o = vkt.u64(1), vkt.u64(0)
        op = torch.ops.vaekernels.latent_forward
        return median_ms(lambda: [op(tm, tl, s, o) for _ in range(n)], repeat) / n * 1e3
    import jax
    import jax.numpy as jnp
    jm, jl = jnp.asarray(mu), jnp.asarray(lv)
    if variant == "jax_vk":
        import vaekernels.jax as vkj
        f = jax.jit(lambda m, l, o: vkj.latent_forward(m, l, 1, o))
        o = jnp.asarray(vkj.words(0))
        return median_ms(lambda: [jax.block_until_ready(f(jm, jl, o)) for _ in range(n)], repeat) / n * 1e3
    # jax_native: the same small computation in jnp (a floor for a jitted call with two outputs)
    key = jax.random.key(0)
    f = jax.jit(lambda m, l, k: (m + jnp.exp(0.5 * l) * jax.random.normal(k, m.shape),
                                 0.5 * jnp.sum(m * m + jnp.exp(l) - 1 - l, -1)))
    return median_ms(lambda: [jax.block_until_ready(f(jm, jl, key)) for _ in range(n)], repeat) / n * 1e3


def _latent_torch(variant, shape, repeat):
    import torch
    torch.manual_seed(0)
    mu = torch.randn(shape, requires_grad=True)
    lv = (0.1 * torch.randn(shape)).requires_grad_()
    g = torch.randn(shape)
    if variant == "torch_vk":
        import vaekernels.torch as vkt
        s, o = vkt.u64(1), vkt.u64(0)

        def step():
            z, kl = torch.ops.vaekernels.latent_forward(mu, lv, s, o)
            ((z * g).sum() + kl.sum()).backward()
    else:
        def f(mu, lv):
            z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
            kl = 0.5 * (mu * mu + lv.exp() - 1 - lv).sum(-1)
            return (z * g).sum() + kl.sum()
        if variant == "torch_compile":
            f = torch.compile(f)

        def step():
            f(mu, lv).backward()
    return median_ms(step, repeat)


def _latent_jax(variant, shape, repeat):
    import jax
    import jax.numpy as jnp
    import numpy as np
    rng = np.random.default_rng(0)
    mu = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
    lv = jnp.asarray(0.1 * rng.standard_normal(shape).astype(np.float32))
    g = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
    if variant == "jax_vk":
        import vaekernels.jax as vkj

        def loss(mu, lv, o):
            z, kl = vkj.latent_forward(mu, lv, 1, o)
            return (z * g).sum() + kl.sum()
        f = jax.jit(jax.grad(loss, argnums=(0, 1)))
        o = jnp.asarray(vkj.words(0))
        return median_ms(lambda: jax.block_until_ready(f(mu, lv, o)), repeat)

    def loss(mu, lv, key):
        z = mu + jnp.exp(0.5 * lv) * jax.random.normal(key, mu.shape)
        kl = 0.5 * jnp.sum(mu * mu + jnp.exp(lv) - 1 - lv, -1)
        return (z * g).sum() + kl.sum()
    f = jax.jit(jax.grad(loss, argnums=(0, 1)))
    key = jax.random.key(0)
    return median_ms(lambda: jax.block_until_ready(f(mu, lv, key)), repeat)


def run_latent(variant, shape, repeat):
    return (_latent_jax if variant.startswith("jax") else _latent_torch)(variant, shape, repeat)


def run_bernoulli(variant, shape, repeat):
    import numpy as np
    rng = np.random.default_rng(0)
    x = (rng.random(shape) < 0.3).astype(np.float32)
    logits = (3 * rng.standard_normal(shape)).astype(np.float32)
    if variant.startswith("torch"):
        import torch
        tx, tl = torch.from_numpy(x), torch.from_numpy(logits).requires_grad_()
        if variant == "torch_vk":
            import vaekernels.torch as vkt

            def step():
                vkt.bernoulli_nll(tl, tx, reduction="sum").backward()
        else:
            def f(x, l):
                return torch.nn.functional.binary_cross_entropy_with_logits(l, x, reduction="sum")
            if variant == "torch_compile":
                f = torch.compile(f)

            def step():
                f(tx, tl).backward()
        return median_ms(step, repeat)
    import jax
    import jax.numpy as jnp
    jx, jl = jnp.asarray(x), jnp.asarray(logits)
    if variant == "jax_vk":
        import vaekernels.jax as vkj
        f = jax.jit(jax.value_and_grad(lambda l, x: -vkj.bernoulli_log_prob(x, l).sum()))
    else:
        f = jax.jit(jax.value_and_grad(lambda l, x: -jnp.sum(x * l - jax.nn.softplus(l))))
    return median_ms(lambda: jax.block_until_ready(f(jl, jx)), repeat)


def _mnist(path, rows):
    sys.path.insert(0, REPO)
    import numpy as np
    import vaekernels as vk
    X, _ = vk.datasets.load_mnist(path, "train")
    return (X[:rows] > 0.5).astype(np.float32)


def run_mnist(variant, path, rows, epochs=4):
    """784-200-200-50 tanh, batch 100, Adam 1e-3; returns the median seconds per epoch over the epochs after
    the first (compilation, warm-up) and the ELBO of the last epoch."""
    import numpy as np
    X = _mnist(path, rows)
    D, H, L, B = 784, 200, 50, 100
    if variant.startswith("torch"):
        import torch
        torch.manual_seed(0)
        enc = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.Tanh(), torch.nn.Linear(H, H), torch.nn.Tanh(),
                                  torch.nn.Linear(H, 2 * L))
        dec = torch.nn.Sequential(torch.nn.Linear(L, H), torch.nn.Tanh(), torch.nn.Linear(H, H), torch.nn.Tanh(),
                                  torch.nn.Linear(H, D))
        opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)
        TX = torch.from_numpy(X)
        if variant == "torch_vk":
            import vaekernels.torch as vkt
            latent = vkt.GaussianLatent()

        def loss_fn(x):
            h = enc(x)
            mu, lv = h[:, :L], h[:, L:]
            if variant == "torch_vk":
                z, kl = latent(mu, lv)
                nll = vkt.bernoulli_nll(dec(z), x, reduction="none")
            else:
                z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
                kl = 0.5 * (mu * mu + lv.exp() - 1 - lv).sum(-1)
                nll = torch.nn.functional.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(-1)
            return (nll + kl).mean()
        times, elbo = [], None
        for e in range(epochs):
            t0 = time.perf_counter()
            tot = 0.0
            for s in range(0, len(X), B):
                loss = loss_fn(TX[s:s + B])
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += float(loss.detach()) * min(B, len(X) - s)
            times.append(time.perf_counter() - t0)
            elbo = -tot / len(X)
        return {"s_per_epoch": statistics.median(times[1:]), "elbo": elbo}
    import jax
    import jax.numpy as jnp
    rng = np.random.default_rng(0)

    def dense(n_in, n_out):
        return [jnp.asarray(rng.standard_normal((n_in, n_out)).astype(np.float32) / np.sqrt(n_in)),
                jnp.zeros(n_out, jnp.float32)]
    params = dense(D, H) + dense(H, H) + dense(H, 2 * L) + dense(L, H) + dense(H, H) + dense(H, D)
    if variant == "jax_vk":
        import vaekernels.jax as vkj

    def loss(ps, x, noise):
        h = x
        for i in range(3):
            h = h @ ps[2 * i] + ps[2 * i + 1]
            if i < 2:
                h = jnp.tanh(h)
        mu, lv = h[:, :L], h[:, L:]
        if variant == "jax_vk":
            z, kl = vkj.latent_forward(mu, lv, 0, noise)
            ll = vkj.bernoulli_log_prob(x, _dec(ps, z))
        else:
            z = mu + jnp.exp(0.5 * lv) * jax.random.normal(noise, mu.shape)
            kl = 0.5 * jnp.sum(mu * mu + jnp.exp(lv) - 1 - lv, -1)
            logits = _dec(ps, z)
            ll = jnp.sum(x * logits - jax.nn.softplus(logits), -1)
        return -jnp.mean(ll - kl)

    def _dec(ps, z):
        h = z
        for i in range(3, 6):
            h = h @ ps[2 * i] + ps[2 * i + 1]
            if i < 5:
                h = jnp.tanh(h)
        return h

    @jax.jit
    def step(ps, m, v, t, x, noise):
        val, g = jax.value_and_grad(loss)(ps, x, noise)
        b1, b2, lr = 0.9, 0.999, 1e-3
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        ps = [p - lr * (mi / (1 - b1 ** t)) / (jnp.sqrt(vi / (1 - b2 ** t)) + 1e-8) for p, mi, vi in zip(ps, m, v)]
        return ps, m, v, val
    m = [jnp.zeros_like(p) for p in params]
    v = [jnp.zeros_like(p) for p in params]
    JX = jnp.asarray(X)
    key = jax.random.key(0)
    times, elbo, t = [], None, 0
    for e in range(epochs):
        t0 = time.perf_counter()
        tot = 0.0
        for s in range(0, len(X), B):
            t += 1
            noise = jnp.asarray(vkj.words(t * B * L)) if variant == "jax_vk" else jax.random.fold_in(key, t)
            params, m, v, val = step(params, m, v, float(t), JX[s:s + B], noise)
            tot += float(val) * min(B, len(X) - s)
        times.append(time.perf_counter() - t0)
        elbo = -tot / len(X)
    return {"s_per_epoch": statistics.median(times[1:]), "elbo": elbo}


def run_threads(variant, repeat):
    """vk adam_step (through vaekernels.torch) right after a torch fused AdamW step, in one process; and each
    alone. The environment (OMP_WAIT_POLICY) is the parent's choice for this process, both runtimes alike."""
    import numpy as np
    import torch
    import vaekernels.torch as vkt
    n = 1 << 20
    p = torch.from_numpy(np.random.default_rng(0).standard_normal(n).astype(np.float32))
    g, m, v = p.clone(), torch.zeros(n), torch.zeros(n)
    tp = p.clone().requires_grad_()
    tp.grad = g.clone()
    opt = torch.optim.AdamW([tp], fused=True)
    ours = lambda: vkt.adam_step(p, g, m, v, 1)  # noqa: E731
    theirs = opt.step
    both = median_ms(lambda: (theirs(), ours()), repeat)
    return {"vk_alone_ms": median_ms(ours, repeat), "torch_alone_ms": median_ms(theirs, repeat),
            "vk_after_torch_ms": both - median_ms(theirs, repeat)}


# -------------------------------------------------------------------------------------------------
# driver
# -------------------------------------------------------------------------------------------------
def child(args):
    case, variant = args.run
    if case == "overhead":
        return run_overhead(variant, args.repeat)
    if case in ("latent", "bernoulli"):
        shape = tuple(int(s) for s in args.size.split("x"))
        return (run_latent if case == "latent" else run_bernoulli)(variant, shape, args.repeat)
    if case == "mnist":
        return run_mnist(variant, args.mnist, args.mnist_rows)
    if case == "threads":
        return run_threads(variant, args.repeat)
    raise SystemExit(f"unknown case {case}")


def spawn(case, variant, args, size=None, env=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--run", case, variant, "--repeat", str(args.repeat),
           "--mnist", args.mnist, "--mnist-rows", str(args.mnist_rows)]
    if size:
        cmd += ["--size", size]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **(env or {})), timeout=3600)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="overhead,latent,bernoulli,mnist,threads")
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--sizes", default="4096x256,65536x256")
    ap.add_argument("--mnist", default=os.path.join(os.path.dirname(REPO), "shared", "data", "mnist"))
    ap.add_argument("--mnist-rows", type=int, default=20000)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--run", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        print(json.dumps(child(args)))
        return 0
    import numpy as np
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# bench_frameworks on {cpu}, {os.cpu_count()} cores, float32, median of {args.repeat}")
    cases = args.cases.split(",")
    results = {}
    if "overhead" in cases:
        res = {v: spawn("overhead", v, args) for v in ("numpy", "torch", "jax_vk", "jax_native")}
        results["overhead_us"] = res
        print("\n## Per-call overhead, latent_forward on (8, 4) (microseconds per call)\n")
        print("| NumPy API | torch operator (eager) | jax.jit, vaekernels op | jax.jit, native jnp |")
        print("|---:|---:|---:|---:|")
        print("| " + " | ".join(f"{res[v]:.1f}" if isinstance(res[v], float) else str(res[v])
                                 for v in ("numpy", "torch", "jax_vk", "jax_native")) + " |")
    for case, title in (("latent", "latent layer forward + backward"), ("bernoulli", "Bernoulli value + gradient")):
        if case not in cases:
            continue
        print(f"\n## {title} (ms, lower is better; ratio = native / vaekernels)\n")
        print("| size | torch eager | torch.compile | torch + vk ops | jax.jit | jax.jit + vk ops | eager/vk | "
              "compile/vk | jax/vk |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size in args.sizes.split(","):
            r = {v: spawn(case, v, args, size) for v in ("torch_eager", "torch_compile", "torch_vk", "jax_native",
                                                           "jax_vk")}
            results[f"{case}_{size}"] = r
            f = lambda v: r[v] if isinstance(r[v], float) else float("nan")  # noqa: E731
            print(f"| {size} | {f('torch_eager'):.3f} | {f('torch_compile'):.3f} | {f('torch_vk'):.3f} | "
                  f"{f('jax_native'):.3f} | {f('jax_vk'):.3f} | {f('torch_eager') / f('torch_vk'):.2f}x | "
                  f"{f('torch_compile') / f('torch_vk'):.2f}x | {f('jax_native') / f('jax_vk'):.2f}x |")
    if "mnist" in cases:
        r = {v: spawn("mnist", v, args) for v in ("torch_native", "torch_vk", "jax_native", "jax_vk")}
        results["mnist"] = r
        print(f"\n## MNIST VAE 784-200-200-50 tanh, batch 100, {args.mnist_rows} rows (median of epochs 2-4)\n")
        print("| variant | s / epoch | ELBO in epoch 4 |")
        print("|---|---:|---:|")
        for v, d in r.items():
            print(f"| {v} | {d.get('s_per_epoch', float('nan')):.2f} | {d.get('elbo', float('nan')):.2f} |"
                  if "error" not in d else f"| {v} | error: {d['error']} | |")
    if "threads" in cases:
        r = {"default": spawn("threads", "x", args), "OMP_WAIT_POLICY=passive":
             spawn("threads", "x", args, env={"OMP_WAIT_POLICY": "passive"})}
        results["threads"] = r
        print("\n## adam_step (2^20 params) through vaekernels.torch, alone and right after torch's fused AdamW (ms)\n")
        print("| environment | vk alone | torch alone | vk after torch |")
        print("|---|---:|---:|---:|")
        for env, d in r.items():
            print(f"| {env} | {d['vk_alone_ms']:.3f} | {d['torch_alone_ms']:.3f} | {d['vk_after_torch_ms']:.3f} |"
                  if "error" not in d else f"| {env} | error: {d['error']} | | |")
    if not args.markdown:
        print("\n" + json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
