"""AIS speed: vaekernels.mcmc.ais against a PyTorch eager implementation of the same algorithm, same decoder.

    python benchmarks/bench_ais.py [--rows 16,64,256,1024,4096] [--steps 20] [--rounds 3] [--markdown]

Both run annealed importance sampling on p(z) p(x|z)^b of one VAE decoder (784-200-200-50 tanh, Bernoulli;
trained for 3 epochs on 20,000 MNIST images when ../shared/data/mnist exists, else random weights of that
shape), with HMC transitions (10 leapfrog steps, momentum N(0, I)), per-data-point step sizes adapted by the
x1.02 / x0.98 rule toward acceptance 0.65, a sigmoid schedule, 16 chains per image; rows = images x 16.
The PyTorch peer is written as public AIS/BDMC code for VAEs is (Wu et al. 2017's and its ports): float32
tensors, the gradient of log p(x, z) by autograd, eager mode, torch's default threads. vaekernels: the
decoder's hand-written backward pass through VAE.decoder_log_likelihood (the likelihood's value only where a
trajectory ends: gradient-only kernels at the other 9 leapfrog steps, where autograd computes the value
anyway), its default thread team. Each peer
runs in its own process (no thread pool of one disturbs the other), rounds interleaved; the figure is the
median over rounds of the time per AIS step (one transition of every row: 10 decoder forward+backward
passes), and decoder evaluations per second = rows x 10 / that time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from _machine import cpu_name

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.path.join(HERE, "..", "..", "shared", "data", "mnist")
CHAINS, LEAPFROG = 16, 10


def make_model(path):
    import vaekernels as vk
    model = vk.VAE(784, 50, hidden=(200, 200), seed=0)
    have = os.path.exists(os.path.join(MNIST, "train-images-idx3-ubyte.gz"))
    if have:
        X, _ = vk.datasets.load_mnist(MNIST, "train")
        model.fit(vk.datasets.binarize(X[:20000], 1), epochs=3, batch_size=100, progress=False)
        Xt, _ = vk.datasets.load_mnist(MNIST, "test")
        Xt = vk.datasets.binarize(Xt[:4096 // CHAINS], 2)
    else:
        Xt = (np.random.default_rng(0).random((4096 // CHAINS, 784)) < 0.2).astype(np.float32)
    model.save(path + ".vae")
    np.save(path + ".x.npy", Xt)
    return "3 MNIST epochs" if have else "random weights"


def run_vk(path, images, steps):
    import vaekernels as vk
    from vaekernels.mcmc import ais
    model = vk.VAE.load(path + ".vae")
    X = np.load(path + ".x.npy")[:images]
    ais(model, X, n_steps=2, chains=CHAINS, seed=0, transition="hmc", n_leapfrog=LEAPFROG, progress=False)
    t0 = time.perf_counter()
    res = ais(model, X, n_steps=steps, chains=CHAINS, seed=0, transition="hmc", n_leapfrog=LEAPFROG, progress=False)
    return (time.perf_counter() - t0) / steps, float(np.mean(res.log_z))


def sigmoid_schedule(n, delta=4.0):
    s = 1.0 / (1.0 + np.exp(-np.linspace(-delta, delta, n + 1)))
    return (s - s[0]) / (s[-1] - s[0])


def run_torch(path, images, steps):
    import torch
    import vaekernels as vk
    model = vk.VAE.load(path + ".vae")
    p = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in model._params.values.items() if k.startswith("dec")}
    X = torch.from_numpy(np.load(path + ".x.npy")[:images]).repeat_interleave(CHAINS, 0)
    B, L = images, 50
    gen = torch.Generator().manual_seed(0)

    def log_lik(z):
        h = torch.tanh(z @ p["dec.0.W"] + p["dec.0.b"])
        h = torch.tanh(h @ p["dec.1.W"] + p["dec.1.b"])
        logits = h @ p["dec.2.W"] + p["dec.2.b"]
        return (X * logits - torch.nn.functional.softplus(logits)).sum(1)

    def log_lik_and_grad(z):   # log p(x|z) and its gradient in z, by autograd
        z = z.detach().requires_grad_(True)
        ll = log_lik(z)
        g, = torch.autograd.grad(ll.sum(), z)
        return ll.detach(), g

    def ais(T):
        betas = sigmoid_schedule(T)
        z = torch.randn(B * CHAINS, L, generator=gen)
        step = torch.full((B, 1), L ** -0.25)
        log_w = torch.zeros(B * CHAINS)
        ll, gll = log_lik_and_grad(z)       # cached for the current state: one decoder pass per leapfrog step
        for t in range(1, T + 1):
            b = float(betas[t])
            log_w += (b - float(betas[t - 1])) * ll
            lf, g = -0.5 * (z * z).sum(1) + b * ll, -z + b * gll       # log f_b and its gradient at z
            s = step.repeat_interleave(CHAINS, 0)
            p0 = torch.randn(z.shape, generator=gen)
            pm = p0 + 0.5 * s * g
            zn = z
            for k in range(LEAPFROG):
                zn = zn + s * pm
                lln, glln = log_lik_and_grad(zn)
                pm = pm + (s if k < LEAPFROG - 1 else 0.5 * s) * (-zn + b * glln)
            lfn = -0.5 * (zn * zn).sum(1) + b * lln
            log_r = lfn - lf - 0.5 * ((pm * pm).sum(1) - (p0 * p0).sum(1))
            acc = torch.rand(B * CHAINS, generator=gen).log() < log_r
            z = torch.where(acc[:, None], zn, z)
            ll = torch.where(acc, lln, ll)
            gll = torch.where(acc[:, None], glln, gll)
            rate = torch.exp(torch.clamp(log_r, max=0.0)).view(B, CHAINS).mean(1, keepdim=True)
            step = torch.where(rate > 0.65, step * 1.02, step * 0.98)
        lw = log_w.view(B, CHAINS)
        return torch.logsumexp(lw, 1) - np.log(CHAINS)

    ais(2)
    t0 = time.perf_counter()
    lz = ais(steps)
    return (time.perf_counter() - t0) / steps, float(lz.mean())


def worker(argv):
    peer, path, images, steps = argv[0], argv[1], int(argv[2]), int(argv[3])
    sec, lz = (run_vk if peer == "vk" else run_torch)(path, images, steps)
    print(json.dumps({"seconds_per_step": sec, "mean_log_z": lz}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="16,64,256,1024,4096")
    ap.add_argument("--steps", type=int, default=20, help="AIS steps timed per run (per-step time is reported)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = [int(r) for r in args.rows.split(",")]
    if any(r % CHAINS or r < CHAINS or r > 4096 for r in rows):
        ap.error(f"--rows must be multiples of {CHAINS} between {CHAINS} and 4096")
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "model")
    what = make_model(path)
    times = {(r, peer): [] for r in rows for peer in ("vk", "torch")}
    for rnd in range(args.rounds):
        for r in rows:
            for peer in (("vk", "torch") if rnd % 2 == 0 else ("torch", "vk")):
                out = subprocess.run([sys.executable, __file__, "--worker", peer, path, str(r // CHAINS), str(args.steps)],
                                     capture_output=True, text=True, check=True)
                rec = json.loads(out.stdout.strip().splitlines()[-1])
                times[(r, peer)].append(rec["seconds_per_step"])
                print(json.dumps({"round": rnd, "rows": r, "peer": peer, **rec}), flush=True)
    header = (f"CPU: {cpu_name()}, {os.cpu_count()} cores; decoder 784-200-200-50 ({what}); HMC {LEAPFROG} leapfrog "
              f"steps, {CHAINS} chains per image; median of {args.rounds} rounds of {args.steps} AIS steps")
    table = []
    for r in rows:
        vk_s, th_s = statistics.median(times[(r, "vk")]), statistics.median(times[(r, "torch")])
        table.append({"rows": r, "vk_ms_per_step": 1e3 * vk_s, "torch_ms_per_step": 1e3 * th_s,
                      "vk_evals_per_s": r * LEAPFROG / vk_s, "torch_evals_per_s": r * LEAPFROG / th_s,
                      "speedup": th_s / vk_s})
    if args.markdown:
        print("\n" + header + "\n")
        print("| rows (images x chains) | vaekernels ms/step | PyTorch eager ms/step | vaekernels evals/s | "
              "PyTorch evals/s | speed-up |")
        print("|---:|---:|---:|---:|---:|---:|")
        for t in table:
            print(f"| {t['rows']} | {t['vk_ms_per_step']:.2f} | {t['torch_ms_per_step']:.2f} | "
                  f"{t['vk_evals_per_s']:.3g} | {t['torch_evals_per_s']:.3g} | {t['speedup']:.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "table": table, "times": {f"{k[0]} {k[1]}": v for k, v in times.items()}}, f,
                      indent=1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
    else:
        main()
