"""A variational autoencoder trained with hand-written gradients on the fused kernels.

One training step (DESIGN.md, "The flow of one VAE training step"), all on preallocated buffers:

    x (B, D) --encoder MLP (GEMMs)--> head (B, 2L) = [mu | logvar]
      --latent_forward(mu, logvar, seed, offset)--> z (B, L), kl (B,)
      --decoder MLP (GEMMs)--> logits (B, D)            (Gaussian: mean (B, D), per-dimension logvar (D,))
      --bernoulli_log_prob_and_grad(x, logits)--> loglik (B,), dlogits (B, D)
      <--decoder backward (GEMMs)-- dz
      --latent_backward(dz, mu, logvar, seed, offset, kl_weight)--> dmu, dlogvar   (eps recomputed)
      <--encoder backward (GEMMs)-- gradients in one flat vector --adam_step (one call)--> parameters

The loss is the mean negative ELBO over the batch, -(1/B) sum_i (log p(x_i | z_i) - kl_weight KL_i), so
the 1/B scale is applied once to dlogits (B x D values) and folded into latent_backward's kl_weight.

Randomness: every draw is a (seed, offset) pair of ``vaekernels.randn`` / ``rand`` streams. ``fit`` derives
one seed per purpose (latent noise, binarisation, shuffling) from its ``seed`` (or the model's) and uses
stream position ``counter * 2**32`` for global step / epoch ``counter``, so runs replay bit for bit, and a
second ``fit`` call continues the streams instead of repeating them. The kernels give the same bits on any
thread count; OpenBLAS GEMMs do not (their partition changes the last bits), so ``fit`` pins NumPy's BLAS
to ``blas_threads=1`` thread while it runs (see ``_blas``): parameters are then bit-identical whatever
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS say (tested with 1 and 2).
"""
from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
import uuid
import warnings
import zipfile

import numpy as np

from .. import _blas, nn
from .. import kernels as ops
from ..kernels import validate as V

__all__ = ["VAE", "linear_warmup", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_LOG_2PI = math.log(2.0 * math.pi)
_MASK64 = (1 << 64) - 1
_STEP_STRIDE = 1 << 32  # stream positions reserved per training step / epoch
_TAG = {"init": 1, "noise": 2, "binarize": 3, "shuffle": 4, "validation": 5}


def _one_blas_thread(method):
    """Run an evaluation method with NumPy's BLAS on one thread (see ``fit``'s blas_threads): the same
    bits on any thread count, and no oversubscription of the cores by BLAS and OpenMP workers at once."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _blas.blas_threads(1):
            return method(*args, **kwargs)
    return wrapper


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _derive_seed(base, purpose):
    """A 64-bit seed for one purpose, decorrelated from the base seed and from the other purposes."""
    return _splitmix64(_splitmix64(base) ^ _TAG[purpose])


def linear_warmup(epochs, start=0.0):
    """A KL-weight schedule for ``fit(kl_weight=...)``: rises linearly from ``start`` to 1 over ``epochs``
    epochs (fractional epochs count, so the weight changes every batch), then stays at 1."""
    epochs = float(epochs)
    if not epochs > 0:
        raise ValueError(f"epochs must be > 0, got {epochs}")

    def schedule(t):
        return min(1.0, start + (1.0 - start) * t / epochs)

    return schedule


# -------------------------------------------------------------------------------------------------
# Work buffers
# -------------------------------------------------------------------------------------------------
class _Workspace:
    """Every array one forward/backward pass needs, for up to ``rows`` rows; ``view(n)`` gives the first n."""

    def __init__(self, model, rows, arrays=None):
        self.rows = rows
        if arrays is None:
            D, L, dt = model.n_inputs, model.n_latent, model.dtype
            e, d = model._encoder, model._decoder
            arrays = {
                "x": np.empty((rows, D), dt), "grey": np.empty((rows, D), dt), "u": np.empty((rows, D), dt),
                "mu": np.empty((rows, L), dt), "logvar": np.empty((rows, L), dt),
                "z": np.empty((rows, L), dt), "kl": np.empty(rows, dt), "loglik": np.empty(rows, dt),
                "dz": np.empty((rows, L), dt), "dmu": np.empty((rows, L), dt),
                "dlogvar": np.empty((rows, L), dt), "dhead": np.empty((rows, 2 * L), dt),
                "dout": np.empty((rows, D), dt),
            }
            if model.likelihood == "gaussian":
                arrays["x_logvar"] = np.empty((rows, D), dt)
                arrays["dx_logvar"] = np.empty((rows, D), dt)
            for prefix, mlp in (("enc", e), ("dec", d)):
                b = nn.MLPBuffers(mlp, rows, dt)
                arrays[prefix + ".out"] = b.out
                for i in range(len(b.h)):
                    arrays[f"{prefix}.h{i}"] = b.h[i]
                    arrays[f"{prefix}.dh{i}"] = b.dh[i]
                    arrays[f"{prefix}.s{i}"] = b.scratch[i]
        self._arrays = arrays
        self.__dict__.update({k.replace(".", "_"): v for k, v in arrays.items()})
        self.enc = self._mlp_buffers(model._encoder, "enc")
        self.dec = self._mlp_buffers(model._decoder, "dec")
        self._views = {}

    def _mlp_buffers(self, mlp, prefix):
        b = nn.MLPBuffers.__new__(nn.MLPBuffers)
        n = len(mlp.sizes) - 2
        b.h = [self._arrays[f"{prefix}.h{i}"] for i in range(n)]
        b.dh = [self._arrays[f"{prefix}.dh{i}"] for i in range(n)]
        b.scratch = [self._arrays[f"{prefix}.s{i}"] for i in range(n)]
        b.out = self._arrays[prefix + ".out"]
        return b

    def view(self, model, n):
        if n == self.rows:
            return self
        w = self._views.get(n)
        if w is None:  # leading-row slices of C-contiguous arrays stay C-contiguous
            w = _Workspace(model, n, {k: v[:n] for k, v in self._arrays.items()})
            self._views[n] = w
        return w


# -------------------------------------------------------------------------------------------------
# The model
# -------------------------------------------------------------------------------------------------
class VAE:
    """Variational autoencoder with a diagonal-Gaussian encoder q(z|x) = N(mu(x), diag exp(logvar(x))),
    a standard normal prior, and a Bernoulli (logits) or Gaussian (mean, learned per-dimension
    log-variance) decoder p(x|z). Gradients are written by hand; see the module docstring.

    n_inputs: D, the data dimension. n_latent: L. hidden: encoder hidden widths (the decoder mirrors
    them); ``hidden=()`` gives linear encoder and decoder (with ``likelihood="gaussian"`` that is the
    factor-analysis / probabilistic-PCA model, whose log p(x) is known exactly). activation: one of
    ``nn.ACTIVATIONS`` (tanh, relu, sigmoid, softplus, elu, linear). seed: the model's 64-bit seed (weights,
    and the training streams when ``fit(seed=None)``). dtype: float32 or float64.

    ``fit`` and the evaluation methods (elbo, iwae, encode, decode) run NumPy's BLAS on one thread (the
    kernels keep their OpenMP threads): results are then bit-identical whatever the thread settings.

    Parameters (``get_params()`` names): ``enc.{i}.W`` (n_in, n_out) and ``enc.{i}.b``, where the last
    encoder layer outputs [mu | logvar] (columns :L and L:); ``dec.{i}.W`` / ``dec.{i}.b``; with the
    Gaussian likelihood also ``dec.logvar`` (D,).
    """

    def __init__(self, n_inputs, n_latent, hidden=(200, 200), activation="tanh", likelihood="bernoulli",
                 seed=0, dtype=np.float32):
        self.n_inputs = V.integer("n_inputs", n_inputs, 1, 1 << 31)
        self.n_latent = V.integer("n_latent", n_latent, 1, 1 << 31)
        if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
            hidden = (hidden,)
        try:
            self.hidden = tuple(V.integer("hidden width", h, 1, 1 << 31) for h in hidden)
        except TypeError as e:
            raise TypeError(f"hidden must be a sequence of positive ints, got {hidden!r}") from e
        nn.activation(activation)
        self.activation = activation
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
        self.likelihood = likelihood
        self.seed = V.integer("seed", seed)
        self.dtype = V.dtype_arg(dtype)

        D, L = self.n_inputs, self.n_latent
        enc_sizes = (D,) + self.hidden + (2 * L,)
        dec_sizes = (L,) + self.hidden[::-1] + (D,)
        spec = nn.MLP.spec("enc", enc_sizes) + nn.MLP.spec("dec", dec_sizes)
        if likelihood == "gaussian":
            spec.append(("dec.logvar", (D,)))
        self._params = nn.Parameters(spec, self.dtype)
        self._encoder = nn.MLP(self._params, "enc", enc_sizes, activation)
        self._decoder = nn.MLP(self._params, "dec", dec_sizes, activation)
        self._adam_m = np.zeros(self._params.size, self.dtype)
        self._adam_v = np.zeros(self._params.size, self.dtype)
        self.step = 0    # Adam steps taken (the bias-correction counter)
        self.epoch = 0   # epochs completed by fit
        self.history = {}
        self._workspaces = {}

        init_seed = _derive_seed(self.seed, "init")
        offset = self._encoder.init(init_seed, 0)
        self._decoder.init(init_seed, offset)
        # start q(z|x) narrow (logvar bias -2 -> sd 0.37) so early decoder gradients are not pure noise
        self._params.values[f"enc.{len(self._encoder.layers) - 1}.b"][L:] = -2.0

    # ---------------------------------------------------------------------------------------------
    # configuration and parameters
    # ---------------------------------------------------------------------------------------------
    def config(self):
        """The constructor arguments, as a JSON-ready dict (``VAE(**model.config())`` rebuilds it)."""
        return {"n_inputs": self.n_inputs, "n_latent": self.n_latent, "hidden": list(self.hidden),
                "activation": self.activation, "likelihood": self.likelihood, "seed": self.seed,
                "dtype": self.dtype.name}

    def __repr__(self):
        c = self.config()
        return (f"VAE(n_inputs={c['n_inputs']}, n_latent={c['n_latent']}, hidden={tuple(self.hidden)}, "
                f"activation={c['activation']!r}, likelihood={c['likelihood']!r}, seed={c['seed']}, "
                f"dtype={c['dtype']}) [{self._params.size} parameters, {self.step} steps]")

    @property
    def n_params(self):
        return self._params.size

    def get_params(self):
        """dict name -> copy of the parameter array (see the class docstring for the names)."""
        return {k: v.copy() for k, v in self._params.values.items()}

    def set_params(self, params):
        """Replace all parameters from a dict with exactly the names of ``get_params()``, each array of the
        same shape and dtype. Validated completely before anything is written. The optimiser state is kept."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict name -> array, got {type(params).__name__}")
        names = set(self._params.shapes)
        missing, extra = sorted(names - set(params)), sorted(set(params) - names)
        if missing or extra:
            raise ValueError(f"params names do not match the model: missing {missing}, unexpected {extra}")
        checked = {}
        for name, value in params.items():
            a = np.asarray(value)
            if a.dtype != self.dtype:
                raise TypeError(f"params[{name!r}] must have dtype {self.dtype}, got {a.dtype}")
            if a.shape != self._params.shapes[name]:
                raise ValueError(f"params[{name!r}] must have shape {self._params.shapes[name]}, got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"params[{name!r}] contains NaN or inf")
            checked[name] = a
        for name, a in checked.items():
            self._params.values[name][...] = a

    def _workspace(self, rows):
        """Buffers for batches of ``rows`` rows (cached; a smaller batch uses a view of a bigger buffer)."""
        ws = self._workspaces.get(rows)
        if ws is None:
            for cap, w in self._workspaces.items():
                if cap >= rows:
                    return w.view(self, rows)
            if len(self._workspaces) >= 4:
                self._workspaces.clear()
            ws = self._workspaces[rows] = _Workspace(self, rows)
        return ws

    # ---------------------------------------------------------------------------------------------
    # the training step
    # ---------------------------------------------------------------------------------------------
    def _forward(self, ws, x, seed, offset):
        """Encoder, latent sample, decoder, log-likelihood. Leaves everything backward needs in ws.
        Returns (sum of loglik, sum of kl) over the rows as Python floats."""
        L = self.n_latent
        head = self._encoder.forward(x, ws.enc)
        np.copyto(ws.mu, head[:, :L])
        np.copyto(ws.logvar, head[:, L:])
        ops.latent_forward(ws.mu, ws.logvar, seed, offset, out=(ws.z, ws.kl))
        out = self._decoder.forward(ws.z, ws.dec)
        if self.likelihood == "bernoulli":
            ops.bernoulli_log_prob_and_grad(x, out, out=(ws.loglik, ws.dout))
        else:
            np.copyto(ws.x_logvar, self._params.values["dec.logvar"])
            ops.normal_log_prob_and_grad(x, out, ws.x_logvar, out=(ws.loglik, ws.dout, ws.dx_logvar))
        return float(np.add.reduce(ws.loglik)), float(np.add.reduce(ws.kl))

    def _backward(self, ws, x, seed, offset, kl_weight):
        """Gradients of the mean negative (kl-weighted) ELBO into the flat gradient vector."""
        L = self.n_latent
        scale = -1.0 / ws.rows  # d loss / d loglik_i
        ws.dout *= scale
        if self.likelihood == "gaussian":
            g = self._params.grads["dec.logvar"]
            np.sum(ws.dx_logvar, axis=0, out=g)
            g *= scale
        self._decoder.backward(ws.z, ws.dout, ws.dec, dx=ws.dz)
        ops.latent_backward(ws.dz, ws.mu, ws.logvar, seed, offset, kl_weight / ws.rows,
                            out=(ws.dmu, ws.dlogvar))
        np.copyto(ws.dhead[:, :L], ws.dmu)
        np.copyto(ws.dhead[:, L:], ws.dlogvar)
        self._encoder.backward(x, ws.dhead, ws.enc, dx=None)

    def _check_batch(self, x, name="x"):
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.dtype != self.dtype:
            if x.dtype.kind not in "biuf":
                raise TypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")
            x = x.astype(self.dtype)
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"{name} must have shape (n, {self.n_inputs}), got {x.shape}")
        return np.ascontiguousarray(x)

    def loss_and_grad(self, x, seed, offset=0, kl_weight=1.0):
        """(mean negative ELBO over the batch, dict of gradients with the keys of ``get_params()``).

        x: (B, n_inputs). The latent noise is ``randn((B, L), seed, offset)`` (stream positions
        offset .. offset + B L - 1), so the loss is a deterministic, differentiable function of the
        parameters for a fixed (seed, offset). kl_weight scales the KL term (1 gives the ELBO).
        """
        x = self._check_batch(x)
        seed, offset = V.seed_offset(seed, offset, x.shape[0] * self.n_latent)
        if x.shape[0] == 0:
            raise ValueError("x must have at least one row")
        ws = self._workspace(x.shape[0])
        sum_ll, sum_kl = self._forward(ws, x, seed, offset)
        self._backward(ws, x, seed, offset, float(kl_weight))
        loss = -(sum_ll - float(kl_weight) * sum_kl) / x.shape[0]
        return loss, {k: v.copy() for k, v in self._params.grads.items()}

    # ---------------------------------------------------------------------------------------------
    # fit
    # ---------------------------------------------------------------------------------------------
    def _check_data(self, X, name, binarize):
        X = self._check_batch(X, name)
        if X.shape[0] == 0:
            raise ValueError(f"{name} must have at least one row")
        if not np.all(np.isfinite(X)):
            bad = np.argwhere(~np.isfinite(X))[0]
            raise ValueError(f"{name} contains NaN or inf (first at row {bad[0]}, column {bad[1]}); "
                             f"clean the data before training")
        if self.likelihood == "bernoulli" or binarize == "dynamic":
            lo, hi = float(X.min()), float(X.max())
            if lo < 0 or hi > 1:
                raise ValueError(f"{name} must lie in [0, 1] for the Bernoulli likelihood / binarisation, "
                                 f"got values in [{lo}, {hi}] (scale it, e.g. pixels / 255)")
        return X

    def fit(self, X, epochs=10, batch_size=128, lr=1e-3, validation_data=None, kl_weight=1.0,
            binarize=None, seed=None, progress=True, callback=None, shuffle=True, betas=(0.9, 0.999),
            eps=1e-8, weight_decay=0.0, blas_threads=1):
        """Train with Adam on minibatches of X (n, n_inputs); returns this call's history.

        epochs, batch_size: the schedule (the last batch of an epoch may be smaller). lr: a float, or a
        callable ``lr(epoch)`` (0-based epoch of this call) -> float. validation_data: an (m, n_inputs)
        array evaluated after every epoch (ELBO with a fixed noise stream; binarised once if
        ``binarize="dynamic"``). kl_weight: a float or a callable ``w(t)`` of the fractional epoch t of this
        call (see ``linear_warmup``); the reported ELBO always uses weight 1. binarize: None, or "dynamic"
        for a fresh Bernoulli draw of every pixel in every minibatch (Burda et al.). seed: the streams'
        base seed; None uses the model's seed. progress: a tqdm bar on stderr when it is a terminal (False:
        never). callback: ``callback(model, record)`` after each epoch with that epoch's record (a dict);
        returning True stops training. betas, eps, weight_decay: AdamW's (PyTorch's defaults).
        blas_threads: NumPy's BLAS thread count during training (default 1: results independent of the
        environment's thread settings, and no contention with the kernels' OpenMP threads at these sizes;
        None leaves the BLAS as configured, and the last bits then depend on its thread count).

        History (also appended to ``model.history``): dict of lists with one entry per epoch: ``epoch``,
        ``elbo``, ``recon`` (mean log p(x|z)), ``kl``, ``kl_weight``, ``lr``, ``seconds``, and with
        validation data ``val_elbo``, ``val_recon``, ``val_kl``. ELBO values are per-sample means, in nats.

        Raises ValueError for NaN/inf or out-of-range data (before any step), and FloatingPointError when a
        loss or gradient becomes non-finite (naming epoch and batch); the parameters then are those of
        the last finite step.
        """
        if binarize not in (None, "dynamic"):
            raise ValueError(f"binarize must be None or 'dynamic', got {binarize!r}")
        if binarize == "dynamic" and self.likelihood != "bernoulli":
            raise ValueError("binarize='dynamic' needs likelihood='bernoulli'")
        X = self._check_data(X, "X", binarize)
        epochs = V.integer("epochs", epochs, 0, 1 << 40)
        batch_size = V.integer("batch_size", batch_size, 1, 1 << 31)
        batch_size = min(batch_size, X.shape[0])
        if batch_size * self.n_inputs >= _STEP_STRIDE or X.shape[0] >= _STEP_STRIDE:
            raise ValueError(f"batch_size * n_inputs and the number of rows must be < 2**32, got "
                             f"{batch_size} * {self.n_inputs} and {X.shape[0]}")
        base = self.seed if seed is None else V.integer("seed", seed)
        seeds = {p: _derive_seed(base, p) for p in ("noise", "binarize", "shuffle", "validation")}
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
        history = {k: [] for k in ("epoch", "elbo", "recon", "kl", "kl_weight", "lr", "seconds")}
        if Xval is not None:
            history.update(val_elbo=[], val_recon=[], val_kl=[])
        bar = _progress_bar(epochs * n_batches, progress)
        L = self.n_latent
        from ..datasets import permutation
        if blas_threads is not None:
            blas_threads = V.integer("blas_threads", blas_threads, 1, 1 << 16)
        try:
            with _blas.blas_threads(blas_threads):
                self._fit_epochs(X, Xval, epochs, batch_size, n_batches, lr_fn, kl_fn, binarize, seeds, shuffle,
                                 (b1, b2, eps, weight_decay), history, bar, callback, permutation)
        finally:
            if bar is not None:
                bar.close()
        return history

    def _fit_epochs(self, X, Xval, epochs, batch_size, n_batches, lr_fn, kl_fn, binarize, seeds, shuffle, adam,
                    history, bar, callback, permutation):
        b1, b2, eps, weight_decay = adam
        n = X.shape[0]
        for e in range(epochs):
            t0 = time.perf_counter()
            lr_e = float(lr_fn(e))
            if not lr_e >= 0 or not math.isfinite(lr_e):
                raise ValueError(f"lr must be a finite number >= 0, got {lr_e} at epoch {e}")
            order = (permutation(n, seeds["shuffle"], self.epoch * _STEP_STRIDE) if shuffle
                     else np.arange(n))
            sum_ll = sum_kl = 0.0
            w = 1.0
            for b in range(n_batches):
                idx = order[b * batch_size:(b + 1) * batch_size]
                ws = self._workspace(idx.shape[0])
                offset = self.step * _STEP_STRIDE
                if binarize == "dynamic":
                    np.take(X, idx, axis=0, out=ws.grey, mode="clip")
                    ops.rand(ws.u.shape, seeds["binarize"], offset, self.dtype, out=ws.u)
                    np.less(ws.u, ws.grey, out=ws.x)  # P(x = 1) = grey level
                else:
                    np.take(X, idx, axis=0, out=ws.x, mode="clip")
                w = float(kl_fn(e + b / n_batches))
                ll, kl = self._forward(ws, ws.x, seeds["noise"], offset)
                self._backward(ws, ws.x, seeds["noise"], offset, w)
                if not (math.isfinite(ll) and math.isfinite(kl)
                        and math.isfinite(float(np.add.reduce(self._params.grad_flat)))):
                    raise FloatingPointError(
                        f"non-finite loss or gradient at epoch {self.epoch} (0-based; epoch {e} of this "
                        f"fit), batch {b} of {n_batches}: sum log p(x|z) = {ll}, sum KL = {kl}; "
                        f"the parameters are those after the last finite step (step {self.step}). "
                        f"Try a lower learning rate.")
                self.step += 1
                ops.adam_step(self._params.flat, self._params.grad_flat, self._adam_m, self._adam_v,
                              self.step, lr_e, b1, b2, eps, weight_decay)
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
            self.epoch += 1
            record["seconds"] = time.perf_counter() - t0
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

    # ---------------------------------------------------------------------------------------------
    # evaluation
    # ---------------------------------------------------------------------------------------------
    def _batches(self, n, batch_size):
        for start in range(0, n, batch_size):
            yield start, min(n, start + batch_size)

    def _elbo_terms(self, X, seed, batch_size=1024):
        """Per-row (log p(x|z), KL) with z from stream positions row * L .. of ``seed``."""
        ll = np.empty(X.shape[0], self.dtype)
        kl = np.empty(X.shape[0], self.dtype)
        for s, t in self._batches(X.shape[0], batch_size):
            ws = self._workspace(t - s)
            self._forward(ws, X[s:t], seed, s * self.n_latent)
            ll[s:t] = ws.loglik
            kl[s:t] = ws.kl
        return ll, kl

    @_one_blas_thread
    def elbo(self, X, seed=0, batch_size=1024):
        """Per-row ELBO log p(x|z) - KL(q(z|x) || p(z)) with one reparameterised sample z per row (row i
        uses stream positions i L .. (i + 1) L - 1 of ``randn`` stream ``seed``, whatever the batching).
        X: (n, n_inputs). Returns (n,) in nats, in the model's dtype."""
        X = self._check_data(X, "X", None)
        seed, _ = V.seed_offset(seed, 0, X.shape[0] * self.n_latent)
        batch_size = V.integer("batch_size", batch_size, 1, 1 << 31)
        ll, kl = self._elbo_terms(X, seed, batch_size)
        return ll - kl

    @_one_blas_thread
    def iwae(self, X, k=5000, seed=0, batch_size=8192):
        """Per-row importance-weighted estimate of log p(x) with k samples (Burda et al. 2016):
        log (1/k) sum_j p(x, z_j) / q(z_j | x), z_j ~ q(z | x). A lower bound in expectation that rises
        towards log p(x) as k grows (k = 1 is the ELBO in expectation).

        Memory stays bounded: at most ``batch_size`` (row, sample) pairs go through the decoder at once,
        and the log-mean-exp over k is accumulated chunk by chunk (running max and scaled sum, in float64).
        Sample j of row i uses ``randn`` stream ``seed`` at positions (i k + j) L .. (i k + j + 1) L - 1, so
        batch_size changes no sample (float32 results may differ in the last bits: the BLAS can choose
        another kernel for another number of rows). Returns (n,) float64.
        """
        X = self._check_data(X, "X", None)
        k = V.integer("k", k, 1, 1 << 40)
        batch_size = V.integer("batch_size", batch_size, 1, 1 << 31)
        seed, _ = V.seed_offset(seed, 0, X.shape[0] * k * self.n_latent)
        n, D, L = X.shape[0], self.n_inputs, self.n_latent
        rows = max(1, batch_size // k)          # data rows per pass (all k samples each) ...
        chunk = min(k, batch_size)              # ... or, when k > batch_size, one row in chunks of k
        dt = self.dtype
        cap = rows * chunk
        ws = self._workspace(cap)
        eps = np.empty((cap, L), dt)
        sigma = np.empty((rows, L), dt)
        lq = np.empty(cap, dt)
        lpz = np.empty(cap, dt)
        out = np.empty(n, np.float64)
        enc_ws = self._workspace(rows) if rows < cap else ws
        for s, t in self._batches(n, rows):
            r = t - s
            ew = enc_ws.view(self, r) if r < enc_ws.rows else enc_ws
            head = self._encoder.forward(X[s:t], ew.enc)
            mu = head[:, :L].copy()
            logvar = head[:, L:].copy()
            np.multiply(logvar, 0.5, out=sigma[:r])
            np.exp(sigma[:r], out=sigma[:r])
            half_sum_logvar = 0.5 * np.sum(logvar, axis=1, dtype=np.float64)  # (r,)
            run_max = np.full(r, -np.inf)
            run_sum = np.zeros(r)
            for j0 in range(0, k, chunk):
                kc = min(chunk, k - j0)
                m = r * kc
                w = ws.view(self, m)
                e3 = eps[:m].reshape(r, kc, L)
                ops.randn((r, kc, L), seed, (s * k + j0) * L, dt, out=e3)  # contiguous: r == 1 or kc == k
                z3 = w.z.reshape(r, kc, L)
                np.multiply(e3, sigma[:r, None, :], out=z3)
                z3 += mu[:, None, :]
                # log q(z|x) = log N(eps; 0, I) - sum(logvar) / 2;  log p(z) = log N(z; 0, I)
                ops.standard_normal_log_prob(eps[:m], out=lq[:m])
                ops.standard_normal_log_prob(w.z, out=lpz[:m])
                x3 = w.x.reshape(r, kc, D)
                np.copyto(x3, X[s:t, None, :])
                logits = self._decoder.forward(w.z, w.dec)
                if self.likelihood == "bernoulli":
                    ops.bernoulli_log_prob(w.x, logits, out=w.loglik)
                else:
                    np.copyto(w.x_logvar, self._params.values["dec.logvar"])
                    ops.normal_log_prob(w.x, logits, w.x_logvar, out=w.loglik)
                logw = (w.loglik.astype(np.float64) + lpz[:m] - lq[:m]).reshape(r, kc)
                logw += half_sum_logvar[:, None]
                new_max = np.maximum(run_max, logw.max(axis=1))
                run_sum *= np.exp(run_max - new_max)
                run_sum += np.exp(logw - new_max[:, None]).sum(axis=1)
                run_max = new_max
            out[s:t] = run_max + np.log(run_sum) - math.log(k)
        return out

    @_one_blas_thread
    def encode(self, X, batch_size=1024):
        """(mu, logvar) of q(z|x), each (n, L)."""
        X = self._check_data(X, "X", None)
        mu = np.empty((X.shape[0], self.n_latent), self.dtype)
        logvar = np.empty_like(mu)
        L = self.n_latent
        for s, t in self._batches(X.shape[0], batch_size):
            head = self._encoder.forward(X[s:t], self._workspace(t - s).enc)
            mu[s:t] = head[:, :L]
            logvar[s:t] = head[:, L:]
        return mu, logvar

    @_one_blas_thread
    def decode(self, Z, batch_size=1024):
        """The decoder's mean for latents Z (n, L): Bernoulli probabilities sigmoid(logits), or the
        Gaussian mean. Returns (n, n_inputs)."""
        Z = np.asarray(Z)
        if Z.dtype != self.dtype:
            if Z.dtype.kind not in "biuf":
                raise TypeError(f"Z must be a real numeric array, got dtype {Z.dtype}")
            Z = Z.astype(self.dtype)
        if Z.ndim != 2 or Z.shape[1] != self.n_latent:
            raise ValueError(f"Z must have shape (n, {self.n_latent}), got {Z.shape}")
        Z = np.ascontiguousarray(Z)
        out = np.empty((Z.shape[0], self.n_inputs), self.dtype)
        for s, t in self._batches(Z.shape[0], batch_size):
            out[s:t] = self._decoder.forward(Z[s:t], self._workspace(t - s).dec)
        if self.likelihood == "bernoulli":
            nn.Sigmoid.forward(out)
        return out

    def reconstruct(self, X, batch_size=1024):
        """decode(mu(x)): the decoder's mean at the encoder's mean, (n, n_inputs)."""
        return self.decode(self.encode(X, batch_size)[0], batch_size)

    def sample(self, n, seed=0, batch_size=1024):
        """Decoder means for n latents z ~ N(0, I) drawn from ``randn`` stream ``seed`` (positions 0 ..
        n L - 1). Returns (n, n_inputs) (probabilities for the Bernoulli likelihood)."""
        n = V.integer("n", n, 0, 1 << 40)
        return self.decode(ops.randn((n, self.n_latent), seed, 0, self.dtype), batch_size)

    # ---------------------------------------------------------------------------------------------
    # checkpoints
    # ---------------------------------------------------------------------------------------------
    def save(self, path):
        """Write parameters, Adam state, step/epoch counters, configuration and history to one .npz file.

        Atomic: the file is written to a temporary file in the same directory, flushed to disk, then
        renamed over ``path``, so a crash never leaves a half-written checkpoint under that name. The
        path is used as given (no ".npz" is appended). Returns the path.
        """
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        arrays = {"format_version": np.array(FORMAT_VERSION, np.int64),
                  "config": np.array(json.dumps(self.config())),
                  "history": np.array(json.dumps(self.history)),
                  "step": np.array(self.step, np.int64), "epoch": np.array(self.epoch, np.int64),
                  "adam_m": self._adam_m, "adam_v": self._adam_v}
        for name, value in self._params.values.items():
            arrays["param/" + name] = value
        # a unique name beside the target (same file system, so os.replace is atomic); "xb" creates it with
        # the usual umask permissions, unlike mkstemp's 0600
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            with open(tmp, "xb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path):
        """Rebuild a model saved by ``save``: parameters, Adam state, counters and history, so ``fit``
        continues exactly where it stopped. A missing file raises FileNotFoundError; a corrupt, truncated
        or inconsistent file, or one of another format version, raises ValueError."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no checkpoint at {path!r}")
        bad = f"{path!r} is not a valid vaekernels checkpoint"
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, zipfile.LargeZipFile) as e:
            raise ValueError(f"{bad}: cannot read it as .npz ({type(e).__name__}: {e}); the file is "
                             f"corrupt or truncated") from e
        if not isinstance(data, dict):
            raise ValueError(f"{bad}: it is a single .npy array, not an .npz archive")
        for key in ("format_version", "config", "step", "epoch", "adam_m", "adam_v"):
            if key not in data:
                raise ValueError(f"{bad}: entry {key!r} is missing")
        version = int(data["format_version"])
        if version != FORMAT_VERSION:
            raise ValueError(f"{bad}: format version {version}, this vaekernels reads version {FORMAT_VERSION}")
        try:
            config = json.loads(str(data["config"]))
            model = cls(**config)
        except (TypeError, ValueError, json.JSONDecodeError) as e:
            raise ValueError(f"{bad}: its configuration is invalid ({e})") from e
        params = {k[len("param/"):]: v for k, v in data.items() if k.startswith("param/")}
        try:
            model.set_params(params)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{bad}: parameters do not match its configuration ({e})") from e
        for key, dst in (("adam_m", model._adam_m), ("adam_v", model._adam_v)):
            a = data[key]
            if a.shape != dst.shape or a.dtype != dst.dtype:
                raise ValueError(f"{bad}: {key} has shape {a.shape} and dtype {a.dtype}, expected "
                                 f"{dst.shape} and {dst.dtype}")
            dst[...] = a
        model.step, model.epoch = int(data["step"]), int(data["epoch"])
        if model.step < 0 or model.epoch < 0:
            raise ValueError(f"{bad}: negative step or epoch count")
        if "history" in data:
            try:
                model.history = json.loads(str(data["history"]))
            except json.JSONDecodeError as e:
                raise ValueError(f"{bad}: its history is not valid JSON ({e})") from e
        return model


def _progress_bar(total, progress):
    """A tqdm bar on stderr if progress is truthy and stderr is a terminal; None otherwise."""
    if not progress or not total or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        warnings.warn("progress bars need tqdm (pip install tqdm, or vaekernels[demo]); training without one",
                      stacklevel=3)
        return None
    return tqdm(total=total, unit="batch", file=sys.stderr, leave=False, dynamic_ncols=True)
