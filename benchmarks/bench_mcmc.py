"""Batched random-walk Metropolis: vaekernels.mcmc against NumPy, JAX, BlackJAX and emcee, same run.

    python benchmarks/bench_mcmc.py [--chains 1024] [--steps 2000] [--repeats 3] [--json out.json]

Targets, 1,024 chains x 2,000 steps, chains started at exact draws, no warm-up, fixed step:
  banana    log p = -x1^2/200 - (x2 + 0.1 x1^2 - 10)^2/2           (2-D, step 3.0)
  gaussian  N(0, Sigma), Sigma_ij = 0.5^|i-j|                      (50-D, step 0.25)
Every implementation runs the same algorithm (Gaussian random walk, MH accept, float64, all draws kept;
the peers keep them step-major, their natural layout, and are handed on as (chains, steps, dim) views)
except emcee (its own affine-invariant ensemble moves, a reference point). Times are the best of
--repeats runs after one untimed run (JIT compilation excluded). ESS is the smallest bulk ESS over the
coordinates (vaekernels.mcmc.ess; for the 50-D target over 10 evenly spaced coordinates, to keep the
diagnostic itself quick), ESS/s = ESS / time.

Also measured: the per-step overhead of a Python-callable target, (time of sample(callable) - time of the
same number of bare callable calls) / steps, at 1,024 chains.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

import vaekernels as vk
from vaekernels import mcmc

D_GAUSS = 50
STEP = {"banana": 3.0, "gaussian": 0.25}


# -------------------------------------------------------------------------------------------------
# Targets and exact starting draws
# -------------------------------------------------------------------------------------------------
def gaussian_cov(d=D_GAUSS):
    i = np.arange(d)
    return 0.5 ** np.abs(i[:, None] - i[None, :])


def exact_draws(name, chains, seed=0):
    rng = np.random.default_rng(seed)
    if name == "banana":
        return mcmc.Banana().sample_exact(chains, rng)
    return rng.standard_normal((chains, D_GAUSS)) @ np.linalg.cholesky(gaussian_cov()).T


def numpy_log_prob(name):
    if name == "banana":
        def lp(z):
            x1, x2 = z[:, 0], z[:, 1]
            return -x1 ** 2 / 200.0 - 0.5 * (x2 + 0.1 * x1 ** 2 - 10.0) ** 2
        return lp
    prec = np.linalg.inv(gaussian_cov())

    def lp(z):
        return -0.5 * np.einsum("ij,ij->i", z @ prec, z)
    return lp


# -------------------------------------------------------------------------------------------------
# Implementations: each returns samples (chains, steps, dim)
# -------------------------------------------------------------------------------------------------
def run_vaekernels(name, x0, steps, seed=1):
    target = mcmc.Banana() if name == "banana" else mcmc.Gaussian(np.zeros(D_GAUSS), gaussian_cov())
    return mcmc.sample(target, x0, n_draws=steps, n_warmup=0, step_size=STEP[name], seed=seed).samples


def run_vaekernels_callable(name, x0, steps, seed=1):
    return mcmc.sample(numpy_log_prob(name), x0, n_draws=steps, n_warmup=0, step_size=STEP[name], seed=seed).samples


def run_numpy(name, x0, steps, seed=1):
    lp_fn = numpy_log_prob(name)
    rng = np.random.default_rng(seed)
    chains, d = x0.shape
    out = np.empty((steps, chains, d))      # step-major: each step writes one contiguous block
    x = x0.copy()
    lp = lp_fn(x)
    s = STEP[name]
    for t in range(steps):
        prop = x + s * rng.standard_normal((chains, d))
        lpp = lp_fn(prop)
        acc = np.log(rng.random(chains)) < lpp - lp
        x = np.where(acc[:, None], prop, x)
        lp = np.where(acc, lpp, lp)
        out[t] = x
    return np.swapaxes(out, 0, 1)          # a (chains, steps, dim) view, no copy


def _jax():
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    return jax, jnp


def jax_log_prob(name):
    jax, jnp = _jax()
    if name == "banana":
        def lp(z):
            return -z[0] ** 2 / 200.0 - 0.5 * (z[1] + 0.1 * z[0] ** 2 - 10.0) ** 2
        return lp
    prec = jnp.asarray(np.linalg.inv(gaussian_cov()))

    def lp(z):
        return -0.5 * z @ prec @ z
    return lp


def make_jax_scan(name, chains, steps):
    jax, jnp = _jax()
    lp1 = jax_log_prob(name)
    lp = jax.vmap(lp1)
    s = STEP[name]

    @jax.jit
    def run(x0, key):
        def step(carry, k):
            x, l = carry
            k1, k2 = jax.random.split(k)
            prop = x + s * jax.random.normal(k1, x.shape)
            lpp = lp(prop)
            acc = jnp.log(jax.random.uniform(k2, (x.shape[0],))) < lpp - l
            x = jnp.where(acc[:, None], prop, x)
            l = jnp.where(acc, lpp, l)
            return (x, l), x
        _, xs = jax.lax.scan(step, (x0, lp(x0)), jax.random.split(key, steps))
        return xs                           # (steps, chains, dim), as scan stacks it

    def call(x0, seed=1):
        return np.swapaxes(np.asarray(run(jnp.asarray(x0), jax.random.PRNGKey(seed)).block_until_ready()), 0, 1)
    return call


def make_blackjax(name, chains, steps):
    jax, jnp = _jax()
    import blackjax
    d = 2 if name == "banana" else D_GAUSS
    algo = blackjax.additive_step_random_walk(jax_log_prob(name),
                                              blackjax.mcmc.random_walk.normal(STEP[name] * jnp.ones(d)))

    @jax.jit
    def run(x0, key):
        states = jax.vmap(algo.init)(x0)

        def step(states, k):
            states, _ = jax.vmap(algo.step)(jax.random.split(k, x0.shape[0]), states)
            return states, states.position
        _, xs = jax.lax.scan(step, states, jax.random.split(key, steps))
        return xs

    def call(x0, seed=1):
        return np.swapaxes(np.asarray(run(jnp.asarray(x0), jax.random.PRNGKey(seed)).block_until_ready()), 0, 1)
    return call


def run_emcee(name, x0, steps, seed=1):
    import emcee
    lp = numpy_log_prob(name)
    sampler = emcee.EnsembleSampler(x0.shape[0], x0.shape[1], lp, vectorize=True)
    np.random.seed(seed)
    sampler.run_mcmc(x0, steps, progress=False)
    return np.swapaxes(sampler.get_chain(), 0, 1)


# -------------------------------------------------------------------------------------------------
# Measurement
# -------------------------------------------------------------------------------------------------
def best_time(fn, repeats):
    out = fn()                      # untimed: JIT compilation, first-touch effects
    del out
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def min_ess(samples):
    d = samples.shape[2]
    cols = np.unique(np.linspace(0, d - 1, min(d, 10)).astype(int))
    return float(mcmc.ess(samples[:, :, cols]).min())


def callable_overhead(chains, steps, repeats, dim=2, thin=1):
    f = numpy_log_prob("banana") if dim == 2 else numpy_log_prob("gaussian")
    x0 = exact_draws("banana" if dim == 2 else "gaussian", chains)
    n = steps * thin
    z = x0.copy()

    def bare():
        for _ in range(n):
            f(z)

    def sampled():
        return mcmc.sample(f, x0, n_draws=steps, n_warmup=0, step_size=1.0, seed=3, thin=thin)

    t_bare, _ = best_time(bare, repeats)
    t_samp, _ = best_time(sampled, repeats)
    return {"dim": dim, "thin": thin, "callable_us": 1e6 * t_bare / n, "sample_us": 1e6 * t_samp / n,
            "overhead_us": 1e6 * (t_samp - t_bare) / n}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chains", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--targets", default="banana,gaussian")
    ap.add_argument("--skip", default="", help="comma-separated implementations to skip")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    print(f"vaekernels {vk.__version__}, SIMD {vk.simd_level()}, threads {vk._core.team_size()}, "
          f"threads {os.environ.get('OMP_NUM_THREADS', os.cpu_count())}, load {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    results = {"config": vars(args), "targets": {}}
    for name in args.targets.split(","):
        x0 = exact_draws(name, args.chains)
        impls = {
            "vaekernels (C++ target)": lambda: run_vaekernels(name, x0, args.steps),
            "vaekernels (NumPy callable)": lambda: run_vaekernels_callable(name, x0, args.steps),
            "NumPy (vectorised)": lambda: run_numpy(name, x0, args.steps),
        }
        try:
            jax_scan = make_jax_scan(name, args.chains, args.steps)
            impls["JAX lax.scan"] = lambda: jax_scan(x0)
        except ImportError as e:
            print(f"  JAX not available: {e}")
        try:
            bj = make_blackjax(name, args.chains, args.steps)
            impls["BlackJAX RWM (jit+vmap)"] = lambda: bj(x0)
        except ImportError as e:
            print(f"  BlackJAX not available: {e}")
        try:
            import emcee  # noqa: F401
            impls["emcee (ensemble moves)"] = lambda: run_emcee(name, x0, args.steps)
        except ImportError as e:
            print(f"  emcee not available: {e}")
        rows = []
        print(f"\n{name}: {args.chains} chains x {args.steps} steps, step {STEP[name]}")
        print(f"| implementation | time (s) | draws x chains / s | min bulk ESS | ESS / s | accept |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, fn in impls.items():
            if any(s in label for s in skip):
                continue
            t, samples = best_time(fn, args.repeats)
            e = min_ess(samples)
            acc = float(np.mean(np.any(samples[:, 1:] != samples[:, :-1], axis=2)))
            del samples
            row = {"impl": label, "seconds": t, "draws_per_s": args.chains * args.steps / t, "ess": e,
                   "ess_per_s": e / t, "accept": acc}
            rows.append(row)
            print(f"| {label} | {t:.4f} | {row['draws_per_s']:.3g} | {e:.0f} | {row['ess_per_s']:.3g} | {acc:.3f} |",
                  flush=True)
        ours = next(r for r in rows if r["impl"].startswith("vaekernels (C++"))
        peers = [r for r in rows if not r["impl"].startswith("vaekernels")]
        if peers:
            best = max(peers, key=lambda r: r["ess_per_s"])
            print(f"ESS/s vs the fastest peer ({best['impl']}): {ours['ess_per_s'] / best['ess_per_s']:.2f}x")
        results["targets"][name] = rows

    print("\nPython-callable overhead per step at", args.chains, "chains (sample() time minus bare callable time):")
    results["callable_overhead"] = []
    for dim, thin in ((2, 1), (2, 10), (50, 1)):
        r = callable_overhead(args.chains, args.steps, args.repeats, dim=dim, thin=thin)
        results["callable_overhead"].append(r)
        print(f"  dim {dim:>2}, thin {thin:>2}: callable {r['callable_us']:.1f} us, sample {r['sample_us']:.1f} us "
              f"per step -> overhead {r['overhead_us']:.1f} us")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
