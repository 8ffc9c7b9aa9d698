"""Gradient-based proposals against the random walk: ESS per second and per target evaluation, same run.

    python benchmarks/bench_mcmc_gradient.py [--chains 256] [--draws 1000] [--warmup 1000] [--repeats 3]
                                             [--vae-points 8] [--markdown] [--json out.json]

Targets:
  gaussian50  N(0, Sigma), Sigma_ij = 0.5^|i-j|, 50-D (built-in target: C++ density and gradient)
  vae         p(z | x) of a VAE (784-200-200-50 tanh, Bernoulli, trained briefly on MNIST when
              ../shared/data/mnist exists, else 64-32-8 on the digits), --vae-points test images x
              (chains / points) chains each; the gradient through the decoder's backward pass
Proposals: random walk (target 0.234), MALA (0.574), HMC with 10 leapfrog steps and jitter 0.2 (0.65), the
same HMC with each chain's diagonal metric adapted (adapt_metric=True), each
adapting its per-chain step size over --warmup iterations, then --draws kept. Time: the whole call (warm-up
included), best of --repeats. ESS: the smallest bulk ESS over the coordinates (vaekernels.mcmc.ess), for the
VAE summed over the data points (each point's chains sample its own posterior).
Evaluations: (warm-up + draws) x chains x evaluations per iteration (1, 1, 10; each MALA/HMC evaluation
includes the gradient, about 2-3x a density evaluation for the VAE and ~2x for the Gaussian).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from _machine import cpu_name

import vaekernels as vk
from vaekernels import mcmc

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.path.join(HERE, "..", "..", "shared", "data", "mnist")
PROPOSALS = (("random_walk", {}), ("mala", {}), ("hmc", {"n_leapfrog": 10, "jitter": 0.2}),
             ("hmc+metric", {"n_leapfrog": 10, "jitter": 0.2, "adapt_metric": True}))


def vae_target(points, chains_per_x, seed=0):
    if os.path.exists(os.path.join(MNIST, "t10k-images-idx3-ubyte")) or os.path.exists(
            os.path.join(MNIST, "t10k-images-idx3-ubyte.gz")):
        X, _ = vk.datasets.load_mnist(MNIST, "train")
        Xt, _ = vk.datasets.load_mnist(MNIST, "test")
        X, Xt = vk.datasets.binarize(X[:20000], 1), vk.datasets.binarize(Xt[:points], 2)
        model = vk.VAE(784, 50, hidden=(200, 200), seed=seed)
        epochs, what = 3, "784-200-200-50 on 20,000 MNIST images, 3 epochs"
    else:
        X = vk.datasets.binarize(vk.datasets.load_digits()[0], 1)
        Xt = X[-points:]
        model = vk.VAE(64, 8, hidden=(32,), seed=seed)
        epochs, what = 50, "64-32-8 on the digits, 50 epochs"
    model.fit(X, epochs=epochs, batch_size=100, progress=False)
    return mcmc.vae_posterior(model, Xt, chains_per_x=chains_per_x), what


def run(target, x0, proposal, kw, args):
    best, res = np.inf, None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = mcmc.sample(target, x0, n_draws=args.draws, n_warmup=args.warmup, seed=1,
                          proposal=proposal.split("+")[0], progress=False, **kw)
        best = min(best, time.perf_counter() - t0)
    # ESS per posterior: chains of different data points sample different distributions, so the VAE's
    # ESS is the sum over points of each point's smallest ESS (pooled chains would report the spread
    # between posteriors as poor mixing)
    k = getattr(target, "chains_per_x", x0.shape[0])
    ess = float(sum(mcmc.ess(res.samples[i:i + k]).min() for i in range(0, x0.shape[0], k)))
    per_iter = kw.get("n_leapfrog", 1)
    evals = (args.warmup + args.draws) * x0.shape[0] * per_iter
    return {"seconds": best, "ess": ess, "ess_per_s": ess / best, "ess_per_1k_evals": 1000 * ess / evals,
            "accept": float(res.accept_rate.mean()), "step": float(np.median(res.step_size)),
            "divergent": int(res.n_divergent.sum())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chains", type=int, default=256)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vae-points", type=int, default=8)
    ap.add_argument("--targets", default="gaussian50,vae")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    for name in args.targets.split(","):
        if name == "gaussian50":
            i = np.arange(50)
            target = mcmc.Gaussian(np.zeros(50), 0.5 ** np.abs(i[:, None] - i[None, :]))
            x0 = np.random.default_rng(0).standard_normal((args.chains, 50))
            what = "50-D Gaussian, Sigma_ij = 0.5^|i-j| (built-in)"
        elif name == "vae":
            target, what = vae_target(args.vae_points, max(1, args.chains // args.vae_points))
            x0 = target.initial_points(seed=3)
        else:
            ap.error(f"unknown target {name!r}")
        for proposal, kw in PROPOSALS:
            r = run(target, x0, proposal, kw, args)
            r.update(target=name, what=what, proposal=proposal, chains=int(x0.shape[0]))
            rows.append(r)
            print(json.dumps(r), flush=True)
    header = (f"CPU: {cpu_name()}, {vk._core.team_size()} kernel threads; {args.warmup} warm-up + {args.draws} draws; "
              f"best of {args.repeats}")
    if args.markdown:
        print("\n" + header + "\n")
        print("| target | proposal | chains | s | min ESS | ESS/s | ESS / 1k evals | accept | step | divergent |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['target']} | {r['proposal']} | {r['chains']} | {r['seconds']:.2f} | {r['ess']:.0f} | "
                  f"{r['ess_per_s']:.0f} | {r['ess_per_1k_evals']:.2f} | {r['accept']:.2f} | {r['step']:.3f} | "
                  f"{r['divergent']} |")
        for name in dict.fromkeys(r["target"] for r in rows):
            by = {r["proposal"]: r for r in rows if r["target"] == name}
            rw = by["random_walk"]
            print(f"\n{name} ({by['random_walk']['what']}): ESS/s vs random walk: MALA "
                  f"{by['mala']['ess_per_s'] / rw['ess_per_s']:.2f}x, HMC {by['hmc']['ess_per_s'] / rw['ess_per_s']:.2f}x; "
                  f"ESS per evaluation: MALA {by['mala']['ess_per_1k_evals'] / rw['ess_per_1k_evals']:.2f}x, "
                  f"HMC {by['hmc']['ess_per_1k_evals'] / rw['ess_per_1k_evals']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
