"""vaekernels.distributed on this machine: 1 worker process x 1 thread against 2 worker processes x 1 thread.

    python benchmarks/bench_distributed.py [--model model.vae] [--ais-steps 200] [--rounds 3] [--json out.json]

Cases (each on a dask.distributed.LocalCluster with worker processes, results checked bitwise equal
between the two clusters):
  ais       AIS log p(x) on 64 MNIST test images (binarised once), 16 chains each, HMC with 10 leapfrog steps,
            --ais-steps distributions, shards of 32 images (block_points=32); the model: --model (a VAE checkpoint, e.g.
            from benchmarks/mnist_burda.py) or 784-200-200-50 with its initial weights
  gaussian  65,536 random-walk chains of the 50-D Gaussian Sigma_ij = 0.5^|i-j| (built-in target), 100
            warm-up + 10 draws thinned by 10 (200 iterations), shards of 4,096 chains
  overhead  64 shards of a one-chain, one-draw sample: (wall time - one process's compute) / shards
Scaling efficiency = T(1 worker) / (2 T(2 workers)). The estimate for 100 machines extrapolates the
one-worker AIS time per image-step to all 10,000 test images at 1,000 steps.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
from _machine import cpu_name

import vaekernels as vk
import vaekernels.distributed as vkd

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.path.join(HERE, "..", "..", "shared", "data", "mnist")


def timed(fn, rounds):
    times, res = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), res


def main(argv=None):
    from dask.distributed import Client, LocalCluster
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--ais-steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    model = vk.VAE.load(args.model) if args.model else vk.VAE(784, 50, hidden=(200, 200), seed=0)
    X_test, _ = vk.datasets.load_mnist(MNIST, "test")
    X = vk.datasets.binarize(X_test, 20160101)[:64]
    i = np.arange(50)
    gauss = vk.mcmc.Gaussian(np.zeros(50), 0.5 ** np.abs(i[:, None] - i[None, :]))
    x0 = np.random.default_rng(0).standard_normal((65536, 50))
    tiny = vk.mcmc.Gaussian(np.zeros(2), np.eye(2))

    cases = {
        "ais": lambda c: vkd.ais(c, model, X, n_steps=args.ais_steps, chains=16, seed=1, n_leapfrog=10,
                                 shard_points=32, block_points=32, progress=False).log_z,
        "gaussian": lambda c: vkd.sample(c, gauss, x0, n_draws=10, thin=10, n_warmup=100, seed=2, shard_chains=4096,
                                         progress=False).samples,
        "overhead": lambda c: vkd.sample(c, tiny, np.zeros((64, 2)), n_draws=1, n_warmup=0, seed=3, shard_chains=1,
                                         progress=False).samples,
    }
    t0 = time.perf_counter()
    for _ in range(args.rounds):
        vk.mcmc.sample(tiny, np.zeros((64, 2)), n_draws=1, n_warmup=0, seed=3, progress=False)
    overhead_local = (time.perf_counter() - t0) / args.rounds

    rows, results = {}, {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
                Client(cl) as client:
            for name, fn in cases.items():
                fn(client)                                       # warm: workers import, models arrive
                sec, res = timed(lambda: fn(client), args.rounds)
                rows[(name, workers)] = sec
                prev = results.setdefault(name, res)
                same = np.array_equal(prev, res)
                print(json.dumps({"case": name, "workers": workers, "seconds": sec, "bitwise_equal_to_1_worker": same}),
                      flush=True)
                assert same, f"{name}: 2 workers gave other bits than 1"

    per_task = (rows[("overhead", 2)] - overhead_local) / 64
    eff = {name: rows[(name, 1)] / (2 * rows[(name, 2)]) for name in ("ais", "gaussian")}
    ais_core_s_per_image_step = rows[("ais", 1)] / (64 * args.ais_steps)
    core_s_full = ais_core_s_per_image_step * 10000 * 1000
    machines, cores = 100, os.cpu_count() or 2
    shards_full = -(-10000 // 32)                              # shards of 32 images (one decoder block each)
    waves = -(-shards_full // (machines * cores))              # rounds of one shard per worker core
    shard_s = 32 * 1000 * ais_core_s_per_image_step / eff["ais"] + per_task
    est = waves * shard_s

    print(f"\nCPU: {cpu_name()}, {os.cpu_count()} cores; dask {__import__('dask').__version__}; median of {args.rounds}; "
          f"model: {'%d epochs' % model.epoch if args.model else 'initial weights'}\n")
    print("| case | 1 worker x 1 thread (s) | 2 workers x 1 thread (s) | speed-up | scaling efficiency |")
    print("|---|---:|---:|---:|---:|")
    print(f"| AIS, 64 MNIST images x 16 chains, {args.ais_steps} steps, HMC 10 | {rows[('ais', 1)]:.2f} | "
          f"{rows[('ais', 2)]:.2f} | {rows[('ais', 1)] / rows[('ais', 2)]:.2f}x | {eff['ais']:.0%} |")
    print(f"| 65,536 chains, 50-D Gaussian, 200 iterations | {rows[('gaussian', 1)]:.2f} | {rows[('gaussian', 2)]:.2f} | "
          f"{rows[('gaussian', 1)] / rows[('gaussian', 2)]:.2f}x | {eff['gaussian']:.0%} |")
    print(f"\nPer-task overhead (64 one-chain shards on 2 workers, minus one process's compute): {1e3 * per_task:.1f} ms")
    print(f"AIS cost: {1e3 * ais_core_s_per_image_step:.2f} core-ms per image and step (16 chains, HMC 10). All 10,000 "
          f"test images at 1,000 steps: {core_s_full / 3600:.1f} core-hours; on {machines} machines x {cores} cores "
          f"(1-thread workers) at {eff['ais']:.0%} efficiency: {shards_full} shards of 32 images in {waves} waves of "
          f"{shard_s / 60:.1f} min: about {est / 60:.1f} minutes.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seconds": {f"{k[0]} {k[1]}": v for k, v in rows.items()}, "per_task_overhead_s": per_task,
                       "efficiency": eff, "estimate_100_machines_s": est}, f, indent=1)


if __name__ == "__main__":
    main()
