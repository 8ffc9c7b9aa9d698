"""``vaekernels demo``: train a VAE on scikit-learn's 8x8 digits, evaluate it, and plot what it learned.

``run_demo(out_dir, ...)`` returns ``(summary, model, data)`` so that further sections (an MCMC check of
the posterior, say) can be appended by calling it and adding to the summary and the output folder.
Needs the ``demo`` extra (scikit-learn for the data, matplotlib for the plots).
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from .. import datasets
from ..vae import VAE

__all__ = ["run_demo", "gaps_section"]


def _matplotlib():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("the demo's plots need matplotlib: pip install matplotlib "
                          "(or pip install 'vaekernels[demo]')") from e
    matplotlib.use("Agg", force=True)  # files only, never a window
    import matplotlib.pyplot as plt
    return plt


def run_demo(out_dir="vaekernels-demo", epochs=300, seed=0, n_latent=2, hidden=(256,), batch_size=64,
             lr=3e-3, k=5000, progress=True, print_fn=print):
    """Train on the digits (80/20 split, dynamically binarised), report ELBO and IWAE(k), write plots.

    Writes to ``out_dir``: ``loss.png`` (train/test ELBO per epoch), ``reconstructions.png`` (test inputs
    above their reconstructions), ``samples.png`` (decoder means for z ~ N(0, I)), ``latent.png`` (the
    encoder means of the test digits coloured by label; the first two principal axes if n_latent > 2),
    ``model.npz`` (the checkpoint) and ``summary.json``.

    Returns (summary dict, trained VAE, data dict with X_train, X_test, y_train, y_test, X_test_binary).
    """
    plt = _matplotlib()
    os.makedirs(out_dir, exist_ok=True)
    X, y = datasets.load_digits()
    X_train, X_test, y_train, y_test = datasets.train_test_split(X, y, test_fraction=0.2, seed=seed)
    X_test_bin = datasets.binarize(X_test, seed=seed + 1)  # fixed binarisation for evaluation

    model = VAE(64, n_latent, hidden=hidden, activation="tanh", likelihood="bernoulli", seed=seed)
    t0 = time.perf_counter()
    hist = model.fit(X_train, epochs=epochs, batch_size=batch_size, lr=lr, binarize="dynamic",
                     validation_data=X_test, progress=progress)
    train_seconds = time.perf_counter() - t0

    X_train_bin = datasets.binarize(X_train, seed=seed + 2)
    t0 = time.perf_counter()
    summary = {
        "model": model.config(), "n_params": model.n_params, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "train_rows": len(X_train), "test_rows": len(X_test), "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / max(epochs, 1), "k": k,
        "train_elbo": float(model.elbo(X_train_bin, seed=seed).mean()),
        "test_elbo": float(model.elbo(X_test_bin, seed=seed).mean()),
        # the train IWAE on as many rows as the test set: enough for the gap, at a fifth of the cost
        "train_iwae": float(model.iwae(X_train_bin[:len(X_test)], k=k, seed=seed).mean()),
        "train_iwae_rows": len(X_test),
        "test_iwae": float(model.iwae(X_test_bin, k=k, seed=seed).mean()),
    }
    summary["eval_seconds"] = time.perf_counter() - t0
    print_fn(f"VAE 64-{'-'.join(map(str, hidden))}-{n_latent} on the 8x8 digits ({len(X_train)} train, "
             f"{len(X_test)} test, dynamically binarised), {epochs} epochs in {train_seconds:.1f} s "
             f"({1e3 * summary['seconds_per_epoch']:.1f} ms/epoch)")
    print_fn(f"  ELBO        train {summary['train_elbo']:8.3f}   test {summary['test_elbo']:8.3f}  nats")
    print_fn(f"  IWAE k={k:<4d} train {summary['train_iwae']:8.3f}   test {summary['test_iwae']:8.3f}  nats "
             f"(log p(x) estimates, higher is better; train on its first {len(X_test)} rows)")

    files = {}
    # loss curves
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(hist["epoch"], hist["elbo"], label="train (dynamic binarisation)")
    ax.plot(hist["epoch"], hist["val_elbo"], label="test (fixed binarisation)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO per digit (nats)")
    lo = np.percentile(np.concatenate([hist["elbo"], hist["val_elbo"]]), 2)
    ax.set_ylim(lo, max(max(hist["elbo"]), max(hist["val_elbo"])) + 1)
    ax.set_title("Training curve")
    ax.legend()
    ax.grid(alpha=0.3)
    files["loss"] = _save(fig, out_dir, "loss.png", plt)

    # reconstructions: 2 rows of inputs, each above its reconstruction
    n_show = 12
    rec = model.reconstruct(X_test[:2 * n_show])
    fig, axes = plt.subplots(4, n_show, figsize=(n_show * 0.8, 4 * 0.85))
    for r in range(2):
        for c in range(n_show):
            i = r * n_show + c
            for row, img in ((2 * r, X_test[i]), (2 * r + 1, rec[i])):
                axes[row, c].imshow(img.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
                axes[row, c].axis("off")
        axes[2 * r, 0].set_title("input", fontsize=8, loc="left")
        axes[2 * r + 1, 0].set_title("reconstruction", fontsize=8, loc="left")
    fig.suptitle("Test digits (rows 1, 3) and their reconstructions (rows 2, 4)", fontsize=10)
    files["reconstructions"] = _save(fig, out_dir, "reconstructions.png", plt)

    # samples from the prior
    smp = model.sample(64, seed=seed)
    fig, axes = plt.subplots(8, 8, figsize=(6, 6))
    for i, ax in enumerate(axes.flat):
        ax.imshow(smp[i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
    fig.suptitle("Samples: decoder means for z ~ N(0, I)", fontsize=10)
    files["samples"] = _save(fig, out_dir, "samples.png", plt)

    # latent scatter of the test set
    mu, _ = model.encode(X_test)
    if n_latent > 2:
        centred = mu - mu.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        coords, axis_names = centred @ vt[:2].T, ("principal axis 1 of E[z|x]", "principal axis 2 of E[z|x]")
    else:
        coords = mu if n_latent == 2 else np.column_stack([mu[:, 0], np.zeros(len(mu))])
        axis_names = ("E[z1 | x]", "E[z2 | x]" if n_latent == 2 else "")
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(coords[:, 0], coords[:, 1], c=y_test, cmap="tab10", s=12, vmin=-0.5, vmax=9.5)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title("Encoder means of the test digits")
    files["latent"] = _save(fig, out_dir, "latent.png", plt)

    files["model"] = model.save(os.path.join(out_dir, "model.npz"))
    summary["files"] = {k: os.path.basename(v) for k, v in files.items()}
    summary["history"] = {k: hist[k] for k in ("epoch", "elbo", "val_elbo", "kl", "recon", "seconds")}
    write_summary(out_dir, summary)
    print_fn(f"  wrote {', '.join(summary['files'].values())} and summary.json to {out_dir}")
    data = {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test,
            "X_test_binary": X_test_bin}
    return summary, model, data


def gaps_section(model, X, out_dir, n_points=4, seed=0, ais_steps=1000, ais_chains=16, progress=False,
                 print_fn=print):
    """The inference gaps (vaekernels.vae.gaps) of the first ``n_points`` rows of X, small and fast: AIS with
    ``ais_steps`` steps x ``ais_chains`` chains (HMC), q* with 300 Adam steps. Prints the table, writes
    ``out_dir/inference_gaps.png``; returns a JSON-ready dict."""
    from ..vae.gaps import inference_gaps, plot_gaps
    res = inference_gaps(model, X[:n_points], ais_steps=ais_steps, ais_chains=ais_chains, seed=seed,
                         n_iterations=300, progress=progress)
    for line in res.table().splitlines():
        print_fn(line)
    plot_gaps(res, os.path.join(out_dir, "inference_gaps.png"))
    return res.to_dict()


def write_summary(out_dir, summary):
    """(Re)write ``summary.json`` in out_dir (sections appended to the demo call this again)."""
    path = os.path.join(out_dir, "summary.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(tmp, path)
    return path


def _save(fig, out_dir, name, plt):
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
