"""The evidence of an MNIST VAE by MCMC: AIS against IWAE, BDMC bounds, and the inference-gap table.

    python benchmarks/mnist_burda.py --time-budget 720 --eval-at none --checkpoint model.vae   # train first
    python benchmarks/mnist_ais.py --model model.vae [--test-images 100] [--bdmc-images 50] [--steps 1000]
                                   [--chains 16] [--k 5000] [--out mnist_ais.json]

On the 784-200-200-50 model of the Burda protocol script (trained as long as its --time-budget allowed:
the checkpoint says how many epochs), following Wu, Burda, Salakhutdinov & Grosse (2017):
  1. log p(x) by AIS (--chains chains, --steps intermediate distributions on the sigmoid schedule, HMC
     with 10 leapfrog steps, per-image step sizes adapted toward acceptance 0.65) on the first
     --test-images test images (binarised once, the Burda script's seed), against IWAE with k = --k on the
     same images: AIS should sit above the IWAE bound on average (Wu et al.: ~1.2 nats above IWAE(10^4));
  2. BDMC on --bdmc-images images simulated from the model (z ~ p(z), x ~ p(x|z)): the mean lower (forward
     AIS) and upper (reverse AIS from the true z) bounds and their gap (Wu et al.: under 1 nat);
  3. the inference gaps (Cremer, Li & Duvenaud 2018) on the test images, log p(x) from step 1.
Times of each part are printed; nothing here runs in CI (tests/test_ais.py has the small exact cases).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
from _machine import cpu_name

import vaekernels as vk
from vaekernels.vae.gaps import inference_gaps

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.path.join(HERE, "..", "..", "shared", "data", "mnist")
TEST_BINARIZE_SEED = 20160101   # as benchmarks/mnist_burda.py


def mean_se(a):
    a = np.asarray(a, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a VAE checkpoint (VAE.save), 784 inputs")
    ap.add_argument("--data", default=MNIST)
    ap.add_argument("--test-images", type=int, default=100)
    ap.add_argument("--bdmc-images", type=int, default=50)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=16)
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    model = vk.VAE.load(args.model)
    X_test, _ = vk.datasets.load_mnist(args.data, "test")
    X = vk.datasets.binarize(X_test, TEST_BINARIZE_SEED)[:args.test_images]
    out = {"cpu": cpu_name(), "kernel_threads": int(vk._core.team_size()), "model": args.model,
           "epochs_trained": int(model.epoch), "test_images": len(X), "steps": args.steps, "chains": args.chains,
           "k": args.k, "transition": "hmc, 10 leapfrog steps, adapted per image to 0.65", "schedule": "sigmoid"}
    print(json.dumps({k: out[k] for k in ("cpu", "epochs_trained", "test_images", "steps", "chains")}), flush=True)

    t0 = time.perf_counter()
    iwae = model.iwae(X, k=args.k, seed=args.seed)
    out["iwae_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ais = vk.mcmc.ais(model, X, n_steps=args.steps, chains=args.chains, seed=args.seed + 1, transition="hmc",
                      n_leapfrog=10, progress=False)
    out["ais_seconds"] = time.perf_counter() - t0
    out["iwae_mean"], out["iwae_se"] = mean_se(iwae)
    out["ais_mean"], out["ais_se"] = mean_se(ais.log_z)
    out["ais_minus_iwae"], out["ais_minus_iwae_se"] = mean_se(ais.log_z - iwae)
    out["ais_stderr_median"] = float(np.median(ais.stderr))
    out["ais_accept_mean"] = float(ais.accept_rate.mean())
    print(json.dumps({k: out[k] for k in ("iwae_mean", "ais_mean", "ais_minus_iwae", "ais_minus_iwae_se",
                                          "ais_seconds", "iwae_seconds")}), flush=True)

    t0 = time.perf_counter()
    bd = vk.mcmc.bdmc(model, n_simulated=args.bdmc_images, n_steps=args.steps, chains=args.chains,
                      seed=args.seed + 2, transition="hmc", n_leapfrog=10, progress=False)
    out["bdmc_seconds"] = time.perf_counter() - t0
    out["bdmc_images"] = args.bdmc_images
    out["bdmc_lower"], out["bdmc_lower_se"] = mean_se(bd.lower)
    out["bdmc_upper"], out["bdmc_upper_se"] = mean_se(bd.upper)
    out["bdmc_gap"], out["bdmc_gap_se"] = mean_se(bd.gap)
    print(json.dumps({k: out[k] for k in ("bdmc_lower", "bdmc_upper", "bdmc_gap", "bdmc_gap_se", "bdmc_seconds")}),
          flush=True)

    t0 = time.perf_counter()
    gaps = inference_gaps(model, X, log_px=ais.log_z, log_px_stderr=ais.stderr,
                          log_px_label=f"AIS, {args.steps} steps x {args.chains} chains", seed=args.seed + 3)
    out["gaps_seconds"] = time.perf_counter() - t0
    out["gaps"] = gaps.average()
    print(gaps.table(max_rows=5), flush=True)

    print(f"\nCPU: {out['cpu']}, {out['kernel_threads']} kernel threads; model: {out['epochs_trained']} epochs of the "
          f"Burda schedule; {len(X)} test images, {args.bdmc_images} simulated\n")
    print("| quantity | nats (mean +- s.e. over images) | seconds |")
    print("|---|---:|---:|")
    print(f"| IWAE, k = {args.k} | {out['iwae_mean']:.2f} +- {out['iwae_se']:.2f} | {out['iwae_seconds']:.0f} |")
    print(f"| AIS, {args.steps} steps x {args.chains} chains | {out['ais_mean']:.2f} +- {out['ais_se']:.2f} | "
          f"{out['ais_seconds']:.0f} |")
    print(f"| AIS - IWAE (paired) | {out['ais_minus_iwae']:+.3f} +- {out['ais_minus_iwae_se']:.3f} | |")
    print(f"| BDMC lower (simulated) | {out['bdmc_lower']:.2f} +- {out['bdmc_lower_se']:.2f} | {out['bdmc_seconds']:.0f} |")
    print(f"| BDMC upper (simulated) | {out['bdmc_upper']:.2f} +- {out['bdmc_upper_se']:.2f} | |")
    print(f"| BDMC gap upper - lower | {out['bdmc_gap']:.3f} +- {out['bdmc_gap_se']:.3f} | |")
    g = out["gaps"]
    for name in ("log_px", "elbo_qstar", "elbo_q", "approximation_gap", "amortisation_gap", "kl_q_posterior"):
        print(f"| gaps: {name} (Monte Carlo s.e.) | {g[name]:.3f} +- {g[name + '_stderr']:.3f} | |")
    print(f"| (q* optimisation, all images) | | {out['gaps_seconds']:.0f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
