"""Evaluation: per-row ELBO, the importance-weighted bound on log p(x) (IWAE), encoding, decoding and the
decoder's log-likelihood with its gradient in z (the public decoder API that MCMC and AIS build on). A
mixin of ``VAE``; every method runs NumPy's BLAS on one thread (bit-identical results on any thread count).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from .. import _blas, nn
from .. import kernels as ops
from ..kernels import validate as V

__all__ = []


def _one_blas_thread(method):
    """Run an evaluation method with NumPy's BLAS on one thread (see ``fit``'s blas_threads): the same
    bits on any thread count, and no oversubscription of the cores by BLAS threads inside the GEMM blocks."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _blas.blas_threads(1):
            return method(*args, **kwargs)
    return wrapper


class Evaluation:
    """Evaluation methods of ``VAE``."""

    def _batches(self, n, batch_size):
        for start in range(0, n, batch_size):
            yield start, min(n, start + batch_size)

    def _elbo_terms(self, X, seed, batch_size=1024, row_offset=0):
        """Per-row (log p(x|z), KL) with z from stream positions (row_offset + row) * L .. of ``seed``."""
        ll = np.empty(X.shape[0], self.dtype)
        kl = np.empty(X.shape[0], self.dtype)
        for s, t in self._batches(X.shape[0], batch_size):
            ws = self._workspace(t - s)
            self._forward(ws, X[s:t], seed, (row_offset + s) * self.n_latent)
            ll[s:t] = ws.loglik
            kl[s:t] = ws.kl
        return ll, kl

    @_one_blas_thread
    def elbo(self, X, seed=0, batch_size=1024, row_offset=0):
        """Per-row ELBO log p(x|z) - KL(q(z|x) || p(z)) with one reparameterised sample z per row (row i
        uses stream positions (row_offset + i) L .. (row_offset + i + 1) L - 1 of ``randn`` stream ``seed``,
        whatever the batching). X: (n, n_inputs). row_offset: the index of X's first row in a larger data
        set (shards of it then give the numbers of one call; vaekernels.distributed uses it). Returns (n,) in
        nats, in the model's dtype."""
        X = self._check_data(X, "X", None)
        row_offset = V.integer("row_offset", row_offset, 0, 1 << 62)
        seed, _ = V.seed_offset(seed, row_offset * self.n_latent, X.shape[0] * self.n_latent)
        batch_size = V.integer("batch_size", batch_size, 1, 1 << 31)
        ll, kl = self._elbo_terms(X, seed, batch_size, row_offset)
        return ll - kl

    @_one_blas_thread
    def iwae(self, X, k=5000, seed=0, batch_size=8192, row_offset=0):
        """Per-row importance-weighted estimate of log p(x) with k samples (Burda et al. 2016):
        log (1/k) sum_j p(x, z_j) / q(z_j | x), z_j ~ q(z | x). A lower bound in expectation that rises
        towards log p(x) as k grows (k = 1 is the ELBO in expectation).

        Memory stays bounded: at most ``batch_size`` (row, sample) pairs go through the decoder at once,
        and the log-mean-exp over k is accumulated chunk by chunk (running max and scaled sum, in float64).
        Sample j of row i uses ``randn`` stream ``seed`` at positions (i k + j) L .. (i k + j + 1) L - 1, so
        batch_size changes no sample (float32 results may differ in the last bits: the BLAS can choose
        another kernel for another number of rows). row_offset: the index of X's first row in a larger data
        set (i above counts from it), so shards of a data set give the numbers of one call when they are cut
        at multiples of the rows per pass, max(1, batch_size // k) (vaekernels.distributed.iwae).
        Returns (n,) float64.
        """
        X = self._check_data(X, "X", None)
        k = V.integer("k", k, 1, 1 << 40)
        batch_size = V.integer("batch_size", batch_size, 1, 1 << 31)
        row_offset = V.integer("row_offset", row_offset, 0, 1 << 62)
        seed, _ = V.seed_offset(seed, row_offset * k * self.n_latent, X.shape[0] * k * self.n_latent)
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
                ops.randn((r, kc, L), seed, ((row_offset + s) * k + j0) * L, dt, out=e3)  # contiguous: r == 1 or kc == k
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
        Z = self._as_model_dtype("Z", Z)
        if Z.ndim != 2 or Z.shape[1] != self.n_latent:
            raise ValueError(f"Z must have shape (n, {self.n_latent}), got {Z.shape}")
        Z = np.ascontiguousarray(Z)
        out = np.empty((Z.shape[0], self.n_inputs), self.dtype)
        for s, t in self._batches(Z.shape[0], batch_size):
            out[s:t] = self._decoder.forward(Z[s:t], self._workspace(t - s).dec)
        if self.likelihood == "bernoulli":
            nn.Sigmoid.forward(out)
        return out

    @_one_blas_thread
    def decoder_log_likelihood(self, X, Z, *, grad=False, value=True, batch_size=4096):
        """log p(x_i | z_ik) under the decoder, for data rows X (n, n_inputs) and K latent rows per data row
        Z (n, K, L); Z may also be (n, L) (K = 1, and the K axis is left out of the results).

        Bernoulli: ``bernoulli_log_prob(x, logits(z))``; Gaussian: ``normal_log_prob(x, mean(z), dec.logvar)``.
        Returns ll (n, K) in the model's dtype; with ``grad=True`` returns (ll, dll_dz), dll_dz of Z's
        shape: the gradient of log p(x_i | z) with respect to z at each z_ik, through the decoder's
        hand-written backward pass (no parameter gradients are formed). At most ``batch_size`` latent rows
        go through the decoder at once. This is what MCMC on p(z | x) (``mcmc.vae_posterior``) builds on.
        ``grad=True, value=False`` returns (None, dll_dz) from the gradient-only kernels (no log per element:
        about half the likelihood's cost; the intermediate leapfrog steps of HMC need no value).
        """
        X = self._check_data(X, "X")
        Z = self._as_model_dtype("Z", Z)
        n, L = X.shape[0], self.n_latent
        single = Z.ndim == 2
        if single:
            Z = Z[:, None, :]
        if Z.ndim != 3 or Z.shape[0] != n or Z.shape[2] != L:
            raise ValueError(f"Z must have shape ({n}, K, {L}) or ({n}, {L}) for X of {n} rows, got {Z.shape}")
        batch_size = V.integer("batch_size", batch_size, 1, 1 << 31)
        if not value and not grad:
            raise ValueError("value=False needs grad=True (nothing would be computed)")
        K = Z.shape[1]
        Zf = np.ascontiguousarray(Z.reshape(n * K, L))
        ll = np.empty(n * K, self.dtype) if value else None
        dz = np.empty_like(Zf) if grad else None
        ones = None if value else np.ones(min(batch_size, n * K), self.dtype)   # the upstream gradient
        bernoulli = self.likelihood == "bernoulli"
        for s, t in self._batches(n * K, batch_size):
            ws = self._workspace(t - s)
            if s % K == 0 and t % K == 0:                            # whole data rows: a broadcast copy
                np.copyto(ws.x.reshape((t - s) // K, K, X.shape[1]), X[s // K:t // K, None, :])
            else:                                                    # the data row of each latent row
                np.take(X, np.arange(s, t) // K, axis=0, out=ws.x)
            out = self._decoder.forward(Zf[s:t], ws.dec)            # logits, or the Gaussian mean
            if not bernoulli:
                np.copyto(ws.x_logvar, self._params.values["dec.logvar"])
            if not grad:
                if bernoulli:
                    ops.bernoulli_log_prob(ws.x, out, out=ll[s:t])
                else:
                    ops.normal_log_prob(ws.x, out, ws.x_logvar, out=ll[s:t])
                continue
            if bernoulli and value:
                ops.bernoulli_log_prob_and_grad(ws.x, out, out=(ll[s:t], ws.dout))
            elif bernoulli:
                ops.bernoulli_log_prob_backward(ones[:t - s], ws.x, out, out=ws.dout)
            elif value:
                ops.normal_log_prob_and_grad(ws.x, out, ws.x_logvar, out=(ll[s:t], ws.dout, ws.dx_logvar))
            else:
                ops.normal_log_prob_backward(ones[:t - s], ws.x, out, ws.x_logvar, out=(ws.dout, ws.dx_logvar))
            self._decoder.backward(Zf[s:t], ws.dout, ws.dec, dx=dz[s:t], params=False)
        shape = (n,) if single else (n, K)
        ll = None if ll is None else ll.reshape(shape)
        return (ll, dz.reshape(Z.shape[:1] + Z.shape[2:] if single else Z.shape)) if grad else ll

    def reconstruct(self, X, batch_size=1024):
        """decode(mu(x)): the decoder's mean at the encoder's mean, (n, n_inputs)."""
        return self.decode(self.encode(X, batch_size)[0], batch_size)

    def sample(self, n, seed=0, batch_size=1024):
        """Decoder means for n latents z ~ N(0, I) drawn from ``randn`` stream ``seed`` (positions 0 ..
        n L - 1). Returns (n, n_inputs) (probabilities for the Bernoulli likelihood)."""
        n = V.integer("n", n, 0, 1 << 40)
        return self.decode(ops.randn((n, self.n_latent), seed, 0, self.dtype), batch_size)

