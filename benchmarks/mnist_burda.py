"""Burda, Grosse & Salakhutdinov (ICLR 2016), Table 1, one-stochastic-layer VAE (k = 1), with vaekernels.

Protocol (the authors' code, github.com/yburda/iwae, and the paper's section 5):
  * MNIST, dynamically binarised (a fresh Bernoulli draw of every pixel in every minibatch);
  * train on the first 59,600 training images, validate on the last 400;
  * 784-200-200-50 tanh encoder, 50-200-200-784 tanh decoder, Bernoulli likelihood;
  * Adam (beta1 0.9, beta2 0.999, eps 1e-4), batch 20, 3,280 epochs in stages: stage i = 0..7 lasts 3^i
    epochs at learning rate 1e-3 * 10^(-i/7);
  * test NLL = -mean IWAE(k = 5000) log p(x) estimate over the 10,000 test images (binarised once, with a
    fixed seed). Published: 86.76 nats.

A shorter run (--epochs N) follows the first N epochs of that same schedule; --time-budget stops training
at the first epoch boundary after the budget. --test-subset evaluates on the first M test images (the NLL
is then an estimate of the full-test figure with a standard error, printed). --eval-at evaluates along
the way (default: at the end of every stage and at the end), giving test NLL against epochs.

Usage:
  python benchmarks/mnist_burda.py --epochs 3280                        # the full protocol (days here)
  python benchmarks/mnist_burda.py --time-budget 3600 --test-subset 1000 --out burda.json
  python benchmarks/mnist_burda.py --resume ckpt.npz --epochs 40 ...    # continue a checkpoint
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

import vaekernels as vk

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "mnist")
PUBLISHED = os.path.join(HERE, "..", "..", "shared", "data", "published", "iwae_burda2016_table1_mnist.json")
STAGES = [(3 ** i, 1e-3 * 10 ** (-i / 7)) for i in range(8)]  # (epochs, learning rate)
TEST_BINARIZE_SEED = 20160101


def burda_lr(epoch):
    """Learning rate of 0-based epoch ``epoch`` in Burda et al.'s schedule (the last stage's after 3280)."""
    start = 0
    for n, lr in STAGES:
        if epoch < start + n:
            return lr
        start += n
    return STAGES[-1][1]


def stage_ends():
    ends, s = [], 0
    for n, _ in STAGES:
        s += n
        ends.append(s)
    return ends


def test_nll(model, X_test, k, seed=0, batch_size=5000):
    """(mean NLL, standard error over images) from the IWAE(k) estimate."""
    lp = model.iwae(X_test, k=k, seed=seed, batch_size=batch_size)
    return float(-lp.mean()), float(lp.std(ddof=1) / math.sqrt(len(lp))) if len(lp) > 1 else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder with the MNIST IDX files (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=3280, help="epochs of the schedule to run (default 3280)")
    ap.add_argument("--time-budget", type=float, default=None,
                    help="stop training at the first epoch boundary after this many seconds")
    ap.add_argument("--test-subset", type=int, default=None, help="evaluate on the first N test images")
    ap.add_argument("--k", type=int, default=5000, help="IWAE samples for the test NLL (default 5000)")
    ap.add_argument("--eval-at", default="stages",
                    help="comma-separated epochs at which to evaluate the test NLL, or 'stages' (default: the "
                         "end of each of Burda's stages), or 'none'; the final epoch is always evaluated")
    ap.add_argument("--eval-subset", type=int, default=None,
                    help="test images for the intermediate evaluations (default: --test-subset)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", default=None, help="save the model here after every epoch")
    ap.add_argument("--resume", default=None, help="continue from this checkpoint")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.k < 1:
        ap.error("--epochs and --k must be >= 1")

    X_all, _ = vk.datasets.load_mnist(args.data, "train")
    X_test, _ = vk.datasets.load_mnist(args.data, "test")
    X_train, X_val = X_all[:59600], X_all[59600:]
    X_test = vk.datasets.binarize(X_test, TEST_BINARIZE_SEED)
    if args.test_subset:
        X_test = X_test[:args.test_subset]
    X_eval = X_test[:args.eval_subset] if args.eval_subset else X_test

    model = (vk.VAE.load(args.resume) if args.resume else
             vk.VAE(784, 50, hidden=(200, 200), activation="tanh", likelihood="bernoulli", seed=args.seed))
    print(f"{model}\nthreads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"train {len(X_train)}, validation {len(X_val)}, test {len(X_test)} images, k={args.k}", flush=True)
    if args.eval_at == "stages":
        eval_at = set(stage_ends())
    elif args.eval_at == "none":
        eval_at = set()
    else:
        eval_at = {int(e) for e in args.eval_at.split(",") if e}

    results = {"protocol": "Burda et al. 2016 VAE k=1, 784-200-200-50 tanh, dynamic binarisation, batch 20",
               "published_nll": None, "epochs": [], "train_elbo": [], "val_elbo": [], "seconds": [],
               "evals": [], "test_images": len(X_test), "k": args.k}
    if os.path.exists(PUBLISHED):
        results["published_nll"] = 86.76
    t_start = time.perf_counter()
    train_seconds = 0.0
    while model.epoch < args.epochs:
        e = model.epoch
        lr = burda_lr(e)
        h = model.fit(X_train, epochs=1, batch_size=20, lr=lr, binarize="dynamic", validation_data=X_val,
                      eps=1e-4, progress=False)
        train_seconds += h["seconds"][0]
        results["epochs"].append(model.epoch)
        results["train_elbo"].append(h["elbo"][0])
        results["val_elbo"].append(h["val_elbo"][0])
        results["seconds"].append(h["seconds"][0])
        print(f"epoch {model.epoch:5d}  lr {lr:.2e}  train ELBO {h['elbo'][0]:8.3f}  val ELBO "
              f"{h['val_elbo'][0]:8.3f}  {h['seconds'][0]:6.1f} s", flush=True)
        if args.checkpoint:
            model.save(args.checkpoint)
        out_of_time = args.time_budget is not None and time.perf_counter() - t_start > args.time_budget
        last = model.epoch >= args.epochs or out_of_time
        if model.epoch in eval_at and not last:
            t0 = time.perf_counter()
            nll, se = test_nll(model, X_eval, args.k)
            results["evals"].append({"epoch": model.epoch, "test_nll": nll, "se": se, "images": len(X_eval),
                                     "seconds": time.perf_counter() - t0})
            print(f"  test NLL (IWAE k={args.k}, {len(X_eval)} images) after {model.epoch} epochs: {nll:.2f} "
                  f"+- {se:.2f}", flush=True)
        if args.out:
            _write(args.out, results)
        if out_of_time:
            print(f"time budget of {args.time_budget:.0f} s reached after {model.epoch} epochs", flush=True)
            break
    t0 = time.perf_counter()
    nll, se = test_nll(model, X_test, args.k)
    results["evals"].append({"epoch": model.epoch, "test_nll": nll, "se": se, "images": len(X_test),
                             "seconds": time.perf_counter() - t0})
    results["train_seconds"] = train_seconds
    print(f"final: {model.epoch} epochs ({train_seconds:.0f} s of training), test NLL (IWAE k={args.k}, "
          f"{len(X_test)} images) = {nll:.2f} +- {se:.2f} nats; published after 3280 epochs: 86.76", flush=True)
    if args.out:
        _write(args.out, results)
    return results


def _write(path, results):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
