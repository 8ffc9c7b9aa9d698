"""Time the vaekernels CUDA kernels against CuPy array expressions and PyTorch CUDA in the same run.

Usage:  python benchmarks/bench_cuda.py [--sizes 4096x784,16384x1024] [--dtype float32] [--repeat 20]
        [--markdown]

Needs a CUDA device, the CUDA build of vaekernels and CuPy (``pip install vaekernels[cuda]``); without
them it prints why and exits with status 0 (nothing to measure). PyTorch is used when it has CUDA.

Each peer computes the same outputs from the same device arrays (torch views the CuPy buffers through
__cuda_array_interface__, no copies), into preallocated outputs where the library allows. Times are CUDA
event times on the current stream: a warm-up call, then `repeat` samples of a loop of calls long enough
to last >= 2 ms; the median per call is reported, so host dispatch overhead counts when it exceeds the
kernel. Reported: ms per call, the peers' ratio to vaekernels (> 1: vaekernels is faster), vaekernels'
achieved bandwidth (the bytes the kernel must move, benchmarks/README.md, over its time), and its
fraction of a device-to-device copy measured in the same run (the practical roofline).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import vaekernels as vk

# Bytes each kernel must move per element of the (B, D) batch, in units of the element size (float32:
# x4, float64: x8); per-row outputs (B values) are left out. See benchmarks/README.md.
WORDS_PER_ELEMENT = {
    "randn": 1, "rand": 1, "reparameterize": 3,
    "kl_standard_normal": 2, "kl_standard_normal_backward": 4, "kl_normal": 4, "kl_normal_backward": 8,
    "bernoulli_log_prob": 2, "bernoulli_log_prob_and_grad": 3, "normal_log_prob": 3,
    "normal_log_prob_and_grad": 5, "standard_normal_log_prob": 1, "standard_normal_log_prob_and_grad": 2,
    "latent_forward": 3, "latent_backward": 5, "adam_step": 7,
}
LOG2PI = 1.8378770664093454


def why_no_gpu():
    if not vk.cuda_built():
        return "vaekernels was built without its CUDA extension (no nvcc at build time)"
    if not vk.cuda_available():
        from vaekernels import _cuda
        return _cuda.device_error() or "no CUDA device"
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed (pip install vaekernels[cuda])"
    return None


def gpu_ms(cp, fn, repeat, min_ms=2.0):
    """Median milliseconds per call of fn(), by CUDA events on the current stream."""
    fn()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    start.record(); fn(); stop.record(); stop.synchronize()
    once = max(cp.cuda.get_elapsed_time(start, stop), 1e-3)
    inner = max(1, int(min_ms / once))
    samples = []
    for _ in range(repeat):
        start.record()
        for _ in range(inner):
            fn()
        stop.record()
        stop.synchronize()
        samples.append(cp.cuda.get_elapsed_time(start, stop) / inner)
    return float(np.median(samples))


def inputs(cp, B, D, dtype):
    rs = cp.random.RandomState(0)
    mu, lv, mp, lp, x, lg, dz = (rs.standard_normal((B, D), dtype=dtype) for _ in range(7))
    x = (x > 0).astype(dtype)
    out = {k: cp.empty((B, D), dtype) for k in ("z", "d1", "d2", "d3", "d4")}
    row = cp.empty(B, dtype)
    g = rs.standard_normal(B, dtype=dtype)
    p, pg, m = (rs.standard_normal(B * D, dtype=dtype) for _ in range(3))
    v = cp.abs(rs.standard_normal(B * D, dtype=dtype))
    return dict(mu=mu, lv=lv, mp=mp, lp=lp, x=x, lg=lg, dz=dz, row=row, g=g, p=p, pg=pg, m=m, v=v, **out)


def vaekernels_impl(a, B, D, dtype):
    z, d1, d2, d3, d4, row = a["z"], a["d1"], a["d2"], a["d3"], a["d4"], a["row"]
    step = {"t": 0}

    def adam():
        step["t"] += 1
        vk.adam_step(a["p"], a["pg"], a["m"], a["v"], step["t"])

    return {
        "randn": lambda: vk.randn((B, D), 1, dtype=dtype, out=z),
        "rand": lambda: vk.rand((B, D), 1, dtype=dtype, out=z),
        "reparameterize": lambda: vk.reparameterize(a["mu"], a["lv"], 1, out=z),
        "kl_standard_normal": lambda: vk.kl_standard_normal(a["mu"], a["lv"], out=row),
        "kl_standard_normal_backward": lambda: vk.kl_standard_normal_backward(a["g"], a["mu"], a["lv"], out=(d1, d2)),
        "kl_normal": lambda: vk.kl_normal(a["mu"], a["lv"], a["mp"], a["lp"], out=row),
        "kl_normal_backward": lambda: vk.kl_normal_backward(a["g"], a["mu"], a["lv"], a["mp"], a["lp"],
                                                            out=(d1, d2, d3, d4)),
        "bernoulli_log_prob": lambda: vk.bernoulli_log_prob(a["x"], a["lg"], out=row),
        "bernoulli_log_prob_and_grad": lambda: vk.bernoulli_log_prob_and_grad(a["x"], a["lg"], out=(row, d1)),
        "normal_log_prob": lambda: vk.normal_log_prob(a["x"], a["mu"], a["lv"], out=row),
        "normal_log_prob_and_grad": lambda: vk.normal_log_prob_and_grad(a["x"], a["mu"], a["lv"], out=(row, d1, d2)),
        "standard_normal_log_prob": lambda: vk.standard_normal_log_prob(a["mu"], out=row),
        "standard_normal_log_prob_and_grad": lambda: vk.standard_normal_log_prob_and_grad(a["mu"], out=(row, d1)),
        "latent_forward": lambda: vk.latent_forward(a["mu"], a["lv"], 1, out=(z, row)),
        "latent_backward": lambda: vk.latent_backward(a["dz"], a["mu"], a["lv"], 1, out=(d1, d2)),
        "adam_step": adam,
    }


def cupy_impl(cp, a, B, D, dtype):
    """What a CuPy user writes: array expressions (one kernel per operation, temporaries in between)."""
    mu, lv, mp, lp, x, lg, dz, g = (a[k] for k in ("mu", "lv", "mp", "lp", "x", "lg", "dz", "g"))
    rs = cp.random.RandomState(1)

    def softplus(l):
        return cp.maximum(l, 0) + cp.log1p(cp.exp(-cp.abs(l)))

    def adam(b1=0.9, b2=0.999, lr=1e-3, eps=1e-8):
        p, gr, m, v = a["p"], a["pg"], a["m"], a["v"]
        m *= b1; m += (1 - b1) * gr
        v *= b2; v += (1 - b2) * gr * gr
        p -= lr * m / (cp.sqrt(v) + eps)

    def latent_forward():
        z = mu + cp.exp(0.5 * lv) * rs.standard_normal((B, D), dtype=dtype)
        return z, 0.5 * cp.sum(mu * mu + cp.expm1(lv) - lv, axis=-1)

    def normal_lp_grad():
        d = x - mu
        prec = cp.exp(-lv)
        sq = d * d * prec
        return -0.5 * cp.sum(LOG2PI + lv + sq, axis=-1), d * prec, 0.5 * (sq - 1)

    return {
        "randn": lambda: rs.standard_normal((B, D), dtype=dtype),
        "rand": lambda: rs.random_sample((B, D), dtype=dtype),
        "reparameterize": lambda: mu + cp.exp(0.5 * lv) * rs.standard_normal((B, D), dtype=dtype),
        "kl_standard_normal": lambda: 0.5 * cp.sum(mu * mu + cp.expm1(lv) - lv, axis=-1),
        "kl_standard_normal_backward": lambda: (g[:, None] * mu, g[:, None] * 0.5 * cp.expm1(lv)),
        "kl_normal": lambda: 0.5 * cp.sum(cp.expm1(lv - lp) - (lv - lp) + (mu - mp) ** 2 * cp.exp(-lp), axis=-1),
        "kl_normal_backward": lambda: (g[:, None] * (mu - mp) * cp.exp(-lp), 0.5 * g[:, None] * cp.expm1(lv - lp),
                                       -g[:, None] * (mu - mp) * cp.exp(-lp),
                                       -0.5 * g[:, None] * (cp.expm1(lv - lp) + (mu - mp) ** 2 * cp.exp(-lp))),
        "bernoulli_log_prob": lambda: cp.sum(x * lg - softplus(lg), axis=-1),
        "bernoulli_log_prob_and_grad": lambda: (cp.sum(x * lg - softplus(lg), axis=-1), x - 1 / (1 + cp.exp(-lg))),
        "normal_log_prob": lambda: -0.5 * cp.sum(LOG2PI + lv + (x - mu) ** 2 * cp.exp(-lv), axis=-1),
        "normal_log_prob_and_grad": normal_lp_grad,
        "standard_normal_log_prob": lambda: -0.5 * cp.sum(LOG2PI + mu * mu, axis=-1),
        "standard_normal_log_prob_and_grad": lambda: (-0.5 * cp.sum(LOG2PI + mu * mu, axis=-1), -mu),
        "latent_forward": latent_forward,
        "latent_backward": lambda: (dz + mu, dz * rs.standard_normal((B, D), dtype=dtype) * 0.5 * cp.exp(0.5 * lv)
                                    + 0.5 * cp.expm1(lv)),
        "adam_step": adam,
    }


def torch_impl(a, B, D):
    """PyTorch CUDA eager on the same buffers; its fused AdamW for adam_step. Both libraries run on the legacy
    default stream here (CuPy's and torch's default), so CuPy's events time torch's kernels too."""
    import torch
    t = {k: torch.as_tensor(v, device="cuda") for k, v in a.items()}
    mu, lv, mp, lp, x, lg, dz, g = (t[k] for k in ("mu", "lv", "mp", "lp", "x", "lg", "dz", "g"))
    F = torch.nn.functional
    param = torch.nn.Parameter(t["p"])
    param.grad = t["pg"]
    opt = torch.optim.AdamW([param], lr=1e-3, weight_decay=0.0, fused=True)

    def kl_normal_backward():
        d, prec, em1 = mu - mp, torch.exp(-lp), torch.expm1(lv - lp)
        gg = g[:, None]
        return gg * d * prec, 0.5 * gg * em1, -gg * d * prec, -0.5 * gg * (em1 + d * d * prec)

    def normal_lp_grad():
        d = x - mu
        prec = torch.exp(-lv)
        sq = d * d * prec
        return -0.5 * torch.sum(LOG2PI + lv + sq, dim=-1), d * prec, 0.5 * (sq - 1)

    impl = {
        "randn": lambda: torch.randn(B, D, device="cuda", dtype=mu.dtype, out=t["z"]),
        "rand": lambda: torch.rand(B, D, device="cuda", dtype=mu.dtype, out=t["z"]),
        "reparameterize": lambda: torch.addcmul(mu, torch.exp(0.5 * lv), torch.randn_like(mu)),
        "kl_standard_normal": lambda: 0.5 * torch.sum(mu * mu + torch.expm1(lv) - lv, dim=-1),
        "kl_standard_normal_backward": lambda: (g[:, None] * mu, g[:, None] * 0.5 * torch.expm1(lv)),
        "kl_normal": lambda: 0.5 * torch.sum(torch.expm1(lv - lp) - (lv - lp) + (mu - mp) ** 2 * torch.exp(-lp), -1),
        "kl_normal_backward": kl_normal_backward,
        "bernoulli_log_prob": lambda: torch.sum(x * lg - F.softplus(lg), dim=-1),
        "bernoulli_log_prob_and_grad": lambda: (torch.sum(x * lg - F.softplus(lg), dim=-1), x - torch.sigmoid(lg)),
        "normal_log_prob": lambda: -0.5 * torch.sum(LOG2PI + lv + (x - mu) ** 2 * torch.exp(-lv), dim=-1),
        "normal_log_prob_and_grad": normal_lp_grad,
        "standard_normal_log_prob": lambda: -0.5 * torch.sum(LOG2PI + mu * mu, dim=-1),
        "standard_normal_log_prob_and_grad": lambda: (-0.5 * torch.sum(LOG2PI + mu * mu, dim=-1), -mu),
        "latent_forward": lambda: (torch.addcmul(mu, torch.exp(0.5 * lv), torch.randn_like(mu)),
                                   0.5 * torch.sum(mu * mu + torch.expm1(lv) - lv, dim=-1)),
        "latent_backward": lambda: (dz + mu, dz * torch.randn_like(mu) * 0.5 * torch.exp(0.5 * lv)
                                    + 0.5 * torch.expm1(lv)),
        "adam_step": opt.step,
    }
    return impl


def bench_mcmc(cp, chains=1024, steps=2000):
    """Random-walk MH on the GPU (one mh_step launch per iteration) against the CPU sampler, same chains,
    steps and fixed step size (the targets of bench_mcmc.py: 2-D banana, step 3.0; 50-D Gaussian with
    Sigma_ij = 0.5^|i-j|, step 0.25). Chain-steps per second; both produce the same draws bit for bit."""
    import time
    from vaekernels import mcmc
    from vaekernels.mcmc import gpu as cuda_mcmc
    d = 50
    cov = 0.5 ** np.abs(np.subtract.outer(np.arange(d), np.arange(d)))
    rows = []
    for name, target, step in (("banana 2-D", mcmc.Banana(), 3.0), ("gaussian 50-D", mcmc.Gaussian(np.zeros(d), cov), 0.25)):
        x0 = np.random.default_rng(0).standard_normal((chains, target.dim))
        t0 = time.perf_counter()
        mcmc.sample(target, x0, n_draws=steps, n_warmup=0, seed=1, step_size=step)
        cpu_s = time.perf_counter() - t0
        dt = cuda_mcmc.DeviceTarget(target)
        x = cp.asfortranarray(cp.asarray(x0))
        lp = cuda_mcmc.log_prob(dt, x)
        acc, nan = cuda_mcmc.mh_step(dt, x, lp, step, 1, 0)
        ss = cp.full(chains, step)
        cp.cuda.Device().synchronize()
        t0 = time.perf_counter()
        for k in range(1, steps):
            cuda_mcmc.mh_step(dt, x, lp, ss, 1, k, accepted=acc, n_nan=nan)
        cp.cuda.Device().synchronize()
        gpu_s = (time.perf_counter() - t0) * steps / (steps - 1)
        rows.append((name, cpu_s, gpu_s))
    print(f"\n## MH, {chains} chains x {steps} steps (GPU: one launch per step; CPU: vaekernels.mcmc.sample, "
          f"all threads)")
    for name, cpu_s, gpu_s in rows:
        print(f"{name:14s}  CPU {cpu_s:.3f} s ({chains * steps / cpu_s / 1e6:.1f} M chain-steps/s)   "
              f"GPU {gpu_s:.3f} s ({chains * steps / gpu_s / 1e6:.1f} M chain-steps/s)   ratio {cpu_s / gpu_s:.1f}x")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4096x784,16384x1024")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--no-mcmc", action="store_true", help="skip the MH step timing")
    args = ap.parse_args(argv)

    reason = why_no_gpu()
    if reason is not None:
        print(f"bench_cuda: nothing to measure: {reason}")
        return 0
    import cupy as cp

    torch_ok = False
    try:
        import torch
        torch_ok = torch.cuda.is_available()
    except ImportError:
        pass

    dtype = np.dtype(args.dtype)
    dev = cp.cuda.Device()
    name = cp.cuda.runtime.getDeviceProperties(dev.id)["name"].decode()
    print(f"# {name}, CuPy {cp.__version__}, torch {'yes' if torch_ok else 'no (no CUDA build)'}, {dtype}")
    for size in args.sizes.split(","):
        B, D = (int(s) for s in size.lower().split("x"))
        n = B * D
        a = inputs(cp, B, D, dtype)
        src, dst = cp.empty(n, dtype), cp.empty(n, dtype)
        copy_ms = gpu_ms(cp, lambda: cp.copyto(dst, src), args.repeat)
        copy_bw = 2 * n * dtype.itemsize / copy_ms / 1e6  # GB/s
        peers = {"vaekernels": vaekernels_impl(a, B, D, dtype), "cupy": cupy_impl(cp, a, B, D, dtype)}
        if torch_ok:
            peers["torch"] = torch_impl(a, B, D)
        print(f"\n## {B} x {D} ({n / 1e6:.2f} M elements); device copy {copy_ms:.4f} ms = {copy_bw:.0f} GB/s")
        header = ["kernel", "vaekernels ms", "GB/s", "% of copy"] + [f"{p} ms (ratio)" for p in peers if p != "vaekernels"]
        rows = []
        for kernel, words in WORDS_PER_ELEMENT.items():
            t = {p: gpu_ms(cp, impl[kernel], args.repeat) for p, impl in peers.items()}
            bw = words * n * dtype.itemsize / t["vaekernels"] / 1e6
            row = [kernel, f"{t['vaekernels']:.4f}", f"{bw:.0f}", f"{100 * bw / copy_bw:.0f}%"]
            row += [f"{t[p]:.4f} ({t[p] / t['vaekernels']:.2f}x)" for p in peers if p != "vaekernels"]
            rows.append(row)
        if args.markdown:
            print("| " + " | ".join(header) + " |")
            print("|" + "---|" * len(header))
            for r in rows:
                print("| " + " | ".join(r) + " |")
        else:
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
            print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
            for r in rows:
                print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    if not args.no_mcmc:
        bench_mcmc(cp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
