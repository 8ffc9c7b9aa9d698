"""Training: ``fit`` (Adam on minibatches, schedules, dynamic binarisation, validation, progress) and the
KL warm-up schedule. A mixin of ``VAE``.

Randomness: every draw is a (seed, offset) pair of ``vaekernels.randn`` / ``rand`` streams. ``fit`` derives
one key per purpose (latent noise, binarisation, shuffling, validation) from its ``seed`` (or the model's)
with ``vaekernels.random.derive_seed(seed, "vae", purpose)`` and uses stream position ``counter * 2**32``
for global step / epoch ``counter``, so runs replay bit for bit and a second ``fit`` call continues the
streams (and the schedules, which take the model's global epoch) instead of repeating them.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .. import _blas
from .._progress import progress_bar
from .._signals import SigintGuard
from .. import kernels as ops
from ..kernels import validate as V
from ..kernels.dispatch import Prepared
from ..random import derive_seed

__all__ = ["linear_warmup", "STEP_STRIDE"]

STEP_STRIDE = 1 << 32  # stream positions reserved per training step / epoch


def linear_warmup(epochs, start=0.0):
    """A KL-weight schedule for ``fit(kl_weight=...)``: rises linearly from ``start`` to 1 over ``epochs``
    epochs (fractional epochs count, so the weight changes every batch), then stays at 1."""
    epochs = float(epochs)
    if not epochs > 0:
        raise ValueError(f"epochs must be > 0, got {epochs}")

    def schedule(t):
        return min(1.0, start + (1.0 - start) * t / epochs)

    return schedule




class Training:
    """``fit`` for ``VAE`` (see the module docstring for the streams and the schedules)."""

    def fit(self, X, epochs=10, batch_size=128, lr=1e-3, validation_data=None, kl_weight=1.0,
            binarize=None, seed=None, progress=True, callback=None, shuffle=True, betas=(0.9, 0.999),
            eps=1e-8, weight_decay=0.0, blas_threads=1):
        """Train with Adam on minibatches of X (n, n_inputs); returns this call's history.

        epochs, batch_size: the schedule (the last batch of an epoch may be smaller). lr: a float, or a
        callable ``lr(epoch)`` -> float of the model's global 0-based epoch (``model.epoch``: epochs trained
        by earlier ``fit`` calls count, so ``fit(1); fit(1)`` equals ``fit(2)`` and a reloaded checkpoint
        continues its schedule). validation_data: an (m, n_inputs)
        array evaluated after every epoch (ELBO with a fixed noise stream; binarised once if
        ``binarize="dynamic"``). kl_weight: a float or a callable ``w(t)`` of the global fractional epoch t
        (``model.epoch`` + the fraction of the current epoch done; see ``linear_warmup``); the reported ELBO always uses weight 1. binarize: None, or "dynamic"
        for a fresh Bernoulli draw of every pixel in every minibatch (Burda et al.). seed: the streams'
        base seed; None uses the model's seed. progress: a tqdm bar on stderr when it is a terminal (False:
        never). callback: ``callback(model, record)`` after each epoch with that epoch's record (a dict);
        returning True stops training. betas, eps, weight_decay: AdamW's (PyTorch's defaults).
        blas_threads: NumPy's BLAS thread count during training (default 1: each GEMM block of the MLPs runs on
        one BLAS thread while the kernels' thread team runs the blocks side by side, so results do not
        depend on any thread setting; None leaves the BLAS as configured: its threads then run inside every
        block, oversubscribing the cores, and the last bits depend on its thread count).

        History (also appended to ``model.history``): dict of lists with one entry per epoch: ``epoch``,
        ``elbo``, ``recon`` (mean log p(x|z)), ``kl``, ``kl_weight``, ``lr``, ``seconds``, and with
        validation data ``val_elbo``, ``val_recon``, ``val_kl``. ELBO values are per-sample means, in nats.

        Raises ValueError for NaN/inf or out-of-range data or a ``model.history`` it cannot extend (before
        any step), and FloatingPointError when a loss or gradient becomes non-finite (naming epoch and
        batch). After any failure the model is at its last committed step, consistently: parameters, Adam
        state and ``step`` are those after the last finite step; ``epoch`` and ``history`` count the epochs
        completed (an epoch's counter and history entries are committed together).
        """
        if binarize not in (None, "dynamic"):
            raise ValueError(f"binarize must be None or 'dynamic', got {binarize!r}")
        if binarize == "dynamic" and self.likelihood != "bernoulli":
            raise ValueError("binarize='dynamic' needs likelihood='bernoulli'")
        X = self._check_data(X, "X", binarize)
        from .checkpoint import history_problem
        problem = history_problem(self.history)
        if problem:        # checked before any step: an epoch never fails half-committed on it
            raise ValueError(f"model.history cannot be extended: {problem}")
        epochs = V.integer("epochs", epochs, 0, 1 << 40)
        batch_size = V.integer("batch_size", batch_size, 1, 1 << 31)
        batch_size = min(batch_size, X.shape[0])
        if batch_size * self.n_inputs >= STEP_STRIDE or X.shape[0] >= STEP_STRIDE:
            raise ValueError(f"batch_size * n_inputs and the number of rows must be < 2**32, got "
                             f"{batch_size} * {self.n_inputs} and {X.shape[0]}")
        base = self.seed if seed is None else V.integer("seed", seed)
        seeds = {p: derive_seed(base, "vae", p) for p in ("noise", "binarize", "shuffle", "validation")}
        lr_fn = lr if callable(lr) else (lambda e, _lr=float(lr): _lr)
        kl_fn = kl_weight if callable(kl_weight) else (lambda t, _w=float(kl_weight): _w)
        b1, b2 = (float(b) for b in betas)
        eps, weight_decay = float(eps), float(weight_decay)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        Xval = None
        if validation_data is not None:
            Xval = self._check_data(validation_data, "validation_data", binarize)
            if binarize == "dynamic":
                from ..datasets import binarize as _binarize
                Xval = _binarize(Xval, seeds["validation"])

        n = X.shape[0]
        n_batches = -(-n // batch_size)
        if self.step + epochs * n_batches >= STEP_STRIDE - 1:   # step * STEP_STRIDE + draws < 2**64
            raise ValueError(f"a model trains for fewer than 2**32 - 1 steps in all: it has taken {self.step}, "
                             f"and this fit would add {epochs * n_batches}")
        history = {k: [] for k in ("epoch", "elbo", "recon", "kl", "kl_weight", "lr", "seconds")}
        if Xval is not None:
            history.update(val_elbo=[], val_recon=[], val_kl=[])
        bar = progress_bar(epochs * n_batches, progress, "batch")
        from ..datasets import permutation
        if blas_threads is not None:
            blas_threads = V.integer("blas_threads", blas_threads, 1, 1 << 16)
        try:
            with self._exclusive("fit"), _blas.blas_threads(blas_threads), SigintGuard() as guard:
                self._fit_epochs(X, Xval, epochs, batch_size, n_batches, lr_fn, kl_fn, binarize, seeds, shuffle,
                                 (b1, b2, eps, weight_decay), history, bar, callback, permutation, guard)
        finally:
            if bar is not None:
                bar.close()
        return history

    def _fit_epochs(self, X, Xval, epochs, batch_size, n_batches, lr_fn, kl_fn, binarize, seeds, shuffle, adam,
                    history, bar, callback, permutation, guard):
        b1, b2, eps, weight_decay = adam
        n = X.shape[0]
        p = self._params
        adam = Prepared("adam_step", (p.flat, p.grad_flat, self._adam_m, self._adam_v, 1, 0.0, b1, b2, eps,
                                      weight_decay), None)
        for e in range(epochs):
            t0 = time.perf_counter()
            lr_e = float(lr_fn(self.epoch))
            if not lr_e >= 0 or not math.isfinite(lr_e):
                raise ValueError(f"lr must be a finite number >= 0, got {lr_e} at epoch {self.epoch}")
            order = (permutation(n, seeds["shuffle"], self.epoch * STEP_STRIDE) if shuffle
                     else np.arange(n))
            sum_ll = sum_kl = 0.0
            w = 1.0
            for b in range(n_batches):
                idx = order[b * batch_size:(b + 1) * batch_size]
                ws = self._workspace(idx.shape[0])
                offset = self.step * STEP_STRIDE
                if binarize == "dynamic":
                    np.take(X, idx, axis=0, out=ws.grey, mode="clip")
                    ops.rand(ws.u.shape, seeds["binarize"], offset, self.dtype, out=ws.u)
                    np.less(ws.u, ws.grey, out=ws.x)  # P(x = 1) = grey level
                else:
                    np.take(X, idx, axis=0, out=ws.x, mode="clip")
                w = float(kl_fn(self.epoch + b / n_batches))
                ll, kl = self._forward(ws, ws.x, seeds["noise"], offset)
                finite = self._backward(ws, seeds["noise"], offset, w)
                if not (finite and math.isfinite(ll) and math.isfinite(kl)):
                    raise FloatingPointError(
                        f"non-finite loss or gradient at epoch {self.epoch} (0-based; epoch {e} of this "
                        f"fit), batch {b} of {n_batches}: sum log p(x|z) = {ll}, sum KL = {kl}; "
                        f"the parameters are those after the last finite step (step {self.step}). "
                        f"Try a lower learning rate.")
                with guard.critical:        # parameters, optimiser state and counter move together
                    adam(self.step + 1, lr_e, b1, b2, eps, weight_decay)
                    self.step += 1
                sum_ll += ll
                sum_kl += kl
                if bar is not None:
                    bar.update(1)
            record = {"epoch": self.epoch, "elbo": (sum_ll - sum_kl) / n, "recon": sum_ll / n,
                      "kl": sum_kl / n, "kl_weight": w, "lr": lr_e}
            if Xval is not None:
                ll_v, kl_v = self._elbo_terms(Xval, seeds["validation"])
                record.update(val_elbo=float(np.mean(ll_v - kl_v)), val_recon=float(np.mean(ll_v)),
                              val_kl=float(np.mean(kl_v)))
            record["seconds"] = time.perf_counter() - t0
            with guard.critical:            # the epoch counter and its history entries move together
                self.epoch += 1
                for k, v in record.items():
                    history[k].append(v)
                    self.history.setdefault(k, []).append(v)
            if bar is not None:
                post = {"elbo": f"{record['elbo']:.2f}"}
                if Xval is not None:
                    post["val"] = f"{record['val_elbo']:.2f}"
                bar.set_postfix(post, refresh=False)
            if callback is not None and callback(self, dict(record)) is True:
                break
