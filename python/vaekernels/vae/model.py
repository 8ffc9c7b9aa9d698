"""A variational autoencoder trained with hand-written gradients on the fused kernels.

One training step (docs/architecture.md, "One training step"), all on preallocated buffers:

    x (B, D) --encoder MLP (GEMMs)--> head (B, 2L) = [mu | logvar]
      --latent_forward(mu, logvar, seed, offset)--> z (B, L), kl (B,)
      --decoder MLP (GEMMs)--> logits (B, D)            (Gaussian: mean (B, D), per-dimension logvar (D,))
      --bernoulli_log_prob_and_grad(x, logits)--> loglik (B,), dlogits (B, D)
      <--decoder backward (GEMMs)-- dz
      --latent_backward(dz, mu, logvar, seed, offset, kl_weight)--> dmu, dlogvar   (eps recomputed)
      <--encoder backward (GEMMs)-- gradients in one flat vector --adam_step (one call)--> parameters

The loss is the mean negative ELBO over the batch, -(1/B) sum_i (log p(x_i | z_i) - kl_weight KL_i), so
the 1/B scale is applied once to dlogits (B x D values) and folded into latent_backward's kl_weight.

The package: ``model.py`` (this class: construction, parameters, the training step), ``workspace.py``
(the buffers), ``training.py`` (``fit``, schedules, streams), ``evaluation.py`` (ELBO, IWAE, encode/decode,
the decoder's log-likelihood and its gradient in z), ``checkpoint.py`` (save/load).

Randomness: every draw is a (seed, offset) pair of ``vaekernels.randn`` / ``rand`` streams, keyed with
``vaekernels.random.derive_seed`` (training.py). The kernels give the same bits on any thread count, and
so do the MLP passes: their GEMMs run in blocks fixed by the shapes (nn.MLP, cpp/src/dense.cpp), each on
one BLAS thread (``fit`` and the evaluation methods pin NumPy's BLAS to one thread while they run, see
``_blas``): parameters are bit-identical whatever OMP_NUM_THREADS / OPENBLAS_NUM_THREADS say (tested with
1 and 2). A training step checks its arguments once: the kernels run as calls prepared per workspace.
"""
from __future__ import annotations

import contextlib
import math
import threading

import numpy as np

from .. import _blas, nn
from ..kernels import validate as V
from ..random import derive_seed
from .checkpoint import FORMAT_VERSION, Checkpoints
from .evaluation import Evaluation
from .training import Training, linear_warmup
from .workspace import Workspace

__all__ = ["VAE", "linear_warmup", "FORMAT_VERSION", "MAX_PARAMETERS"]

MAX_PARAMETERS = 1 << 31     # parameters of one VAE at most (16 GiB of float32 with gradients and Adam state)

class VAE(Training, Evaluation, Checkpoints):
    """Variational autoencoder with a diagonal-Gaussian encoder q(z|x) = N(mu(x), diag exp(logvar(x))),
    a standard normal prior, and a Bernoulli (logits) or Gaussian (mean, learned per-dimension
    log-variance) decoder p(x|z). Gradients are written by hand; see the module docstring.

    n_inputs: D, the data dimension. n_latent: L. hidden: encoder hidden widths (the decoder mirrors
    them); ``hidden=()`` gives linear encoder and decoder (with ``likelihood="gaussian"`` that is the
    factor-analysis / probabilistic-PCA model, whose log p(x) is known exactly). activation: one of
    ``nn.ACTIVATIONS`` (tanh, relu, sigmoid, softplus, elu, linear). seed: the model's 64-bit seed (weights,
    and the training streams when ``fit(seed=None)``). dtype: float32 or float64.

    ``fit``, ``loss_and_grad`` and the evaluation methods run NumPy's BLAS on one thread per GEMM block (the
    blocks and the kernels run on the kernels' thread team): results are bit-identical whatever the thread
    settings.

    Threads: the evaluation methods (``encode``, ``decode``, ``reconstruct``, ``sample``, ``elbo``, ``iwae``,
    ``decoder_log_likelihood``, and MCMC targets built on them) may run from many threads at once on one
    model (each thread has its own buffers). ``fit`` and ``loss_and_grad`` are exclusive: a second one on
    the same model while one runs raises RuntimeError. An evaluation that runs while ``fit`` updates the
    parameters sees them mid-training. A model pickles (and ``copy.deepcopy``-s) with its parameters,
    optimiser state, counters and history.

    Parameters (``get_params()`` names): ``enc.{i}.W`` (n_in, n_out) and ``enc.{i}.b``, where the last
    encoder layer outputs [mu | logvar] (columns :L and L:); ``dec.{i}.W`` / ``dec.{i}.b``; with the
    Gaussian likelihood also ``dec.logvar`` (D,).
    """

    def __init__(self, n_inputs, n_latent, hidden=(200, 200), activation="tanh", likelihood="bernoulli",
                 seed=0, dtype=np.float32):
        layout = self._layout(n_inputs, n_latent, hidden, activation, likelihood, seed, dtype)
        self.n_inputs, self.n_latent, self.hidden = layout["n_inputs"], layout["n_latent"], layout["hidden"]
        self.activation, self.likelihood = layout["activation"], layout["likelihood"]
        self.seed, self.dtype = layout["seed"], layout["dtype"]
        L = self.n_latent
        enc_sizes, dec_sizes, spec = layout["enc_sizes"], layout["dec_sizes"], layout["spec"]
        self._params = nn.Parameters(spec, self.dtype)
        self._encoder = nn.MLP(self._params, "enc", enc_sizes, activation)
        self._decoder = nn.MLP(self._params, "dec", dec_sizes, activation)
        self._adam_m = nn.staggered_zeros(self._params.size, self.dtype, 2)   # apart from the parameters and
        self._adam_v = nn.staggered_zeros(self._params.size, self.dtype, 3)   # gradients (see its docstring)
        self.step = 0    # Adam steps taken (the bias-correction counter)
        self.epoch = 0   # epochs completed by fit
        self.history = {}
        self._local = threading.local()     # per-thread work buffers: evaluation is safe from many threads
        self._training = threading.Lock()   # fit / loss_and_grad: one at a time per model

        init_seed = derive_seed(self.seed, "vae", "init")
        offset = self._encoder.init(init_seed, 0)
        self._decoder.init(init_seed, offset)
        # start q(z|x) narrow (logvar bias -2 -> sd 0.37) so early decoder gradients are not pure noise
        self._params.values[f"enc.{len(self._encoder.layers) - 1}.b"][L:] = -2.0

    @staticmethod
    def _layout(n_inputs, n_latent, hidden=(200, 200), activation="tanh", likelihood="bernoulli", seed=0,
               dtype=np.float32):
        """The constructor's arguments, checked and normalised, with the parameter layout they give
        (``spec``: [(name, shape)]), computed without allocating anything (``load`` checks a file against it)."""
        out = {"n_inputs": V.integer("n_inputs", n_inputs, 1, 1 << 31),
               "n_latent": V.integer("n_latent", n_latent, 1, 1 << 31)}
        if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
            hidden = (hidden,)
        try:
            out["hidden"] = tuple(V.integer("hidden width", h, 1, 1 << 31) for h in hidden)
        except TypeError as e:
            raise TypeError(f"hidden must be a sequence of positive ints, got {hidden!r}") from e
        nn.activation(activation)
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
        out.update(activation=activation, likelihood=likelihood, seed=V.integer("seed", seed),
                   dtype=V.dtype_arg(dtype))
        D, L = out["n_inputs"], out["n_latent"]
        out["enc_sizes"] = enc = (D,) + out["hidden"] + (2 * L,)
        out["dec_sizes"] = dec = (L,) + out["hidden"][::-1] + (D,)
        out["spec"] = nn.MLP.spec("enc", enc) + nn.MLP.spec("dec", dec) + (
            [("dec.logvar", (D,))] if likelihood == "gaussian" else [])
        n_params = sum(math.prod(shape) for _, shape in out["spec"])
        if n_params > MAX_PARAMETERS:
            raise ValueError(f"n_inputs={D}, n_latent={L}, hidden={out['hidden']} make {n_params} parameters, more "
                             f"than the {MAX_PARAMETERS} a VAE may have (with gradients and Adam state: 4 arrays "
                             f"of that size)")
        return out

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
        """This thread's buffers for batches of ``rows`` rows (cached per thread; a smaller batch uses a view
        of a bigger buffer), so concurrent evaluations never share a buffer."""
        cache = getattr(self._local, "workspaces", None)
        if cache is None:
            cache = self._local.workspaces = {}
        ws = cache.get(rows)
        if ws is None:
            for cap, w in cache.items():
                if cap >= rows:
                    return w.view(self, rows)
            if len(cache) >= 4:
                cache.clear()
            ws = cache[rows] = Workspace(self, rows)
        return ws

    @contextlib.contextmanager
    def _exclusive(self, what):
        """Training methods update the model's parameters, optimiser state and gradient buffer: a second one
        running at the same time on this model is refused, never interleaved."""
        if not self._training.acquire(blocking=False):
            raise RuntimeError(f"{what}: this model is already training in another thread (fit and loss_and_grad "
                               f"update one model's parameters and gradients, one call at a time); train a copy "
                               f"(copy.deepcopy or pickle) or wait for the other call to return")
        try:
            yield
        finally:
            self._training.release()

    # ---------------------------------------------------------------------------------------------
    # pickling (copy.deepcopy, multiprocessing, Dask): the state a checkpoint holds, rebuilt by __init__
    # ---------------------------------------------------------------------------------------------
    def __getstate__(self):
        return {"config": self.config(), "params": self._params.flat.copy(), "adam_m": self._adam_m.copy(),
                "adam_v": self._adam_v.copy(), "step": self.step, "epoch": self.epoch,
                "history": {k: list(v) for k, v in self.history.items()}}

    def __setstate__(self, state):
        self.__init__(**state["config"])
        self._params.flat[...] = state["params"]
        self._adam_m[...] = state["adam_m"]
        self._adam_v[...] = state["adam_v"]
        self.step, self.epoch, self.history = state["step"], state["epoch"], state["history"]

    # ---------------------------------------------------------------------------------------------
    # the training step
    # ---------------------------------------------------------------------------------------------
    def _forward(self, ws, x, seed, offset):
        """Encoder, latent sample, decoder, log-likelihood. Leaves everything backward needs in ws.
        Returns (sum of loglik, sum of kl) over the rows as Python floats. The kernels run as the workspace's
        prepared calls (validated once when the workspace was built, no checks per step)."""
        L = self.n_latent
        if x is not ws.x:
            np.copyto(ws.x, x)
        k = ws.calls(self)
        head = self._encoder.forward(ws.x, ws.enc)
        np.copyto(ws.mu, head[:, :L])
        np.copyto(ws.logvar, head[:, L:])
        k.latent_forward(seed, offset)
        self._decoder.forward(ws.z, ws.dec)
        if self.likelihood == "gaussian":
            np.copyto(ws.x_logvar, self._params.values["dec.logvar"])
        k.log_prob_and_grad()
        return float(np.add.reduce(ws.loglik)), float(np.add.reduce(ws.kl))

    def _backward(self, ws, seed, offset, kl_weight):
        """Gradients of the mean negative (kl-weighted) ELBO into the flat gradient vector, for the batch of
        the last ``_forward`` on ws. Returns whether every gradient is finite."""
        L = self.n_latent
        scale = -1.0 / ws.rows  # d loss / d loglik_i, applied once inside the decoder's backward pass
        finite = True
        if self.likelihood == "gaussian":
            g = self._params.grads["dec.logvar"]
            np.sum(ws.dx_logvar, axis=0, out=g)
            g *= scale
            finite = bool(np.isfinite(np.add.reduce(g)))
        finite &= self._decoder.backward(ws.z, ws.dout, ws.dec, dx=ws.dz, scale=scale)
        ws.calls(self).latent_backward(seed, offset, kl_weight / ws.rows)
        np.copyto(ws.dhead[:, :L], ws.dmu)
        np.copyto(ws.dhead[:, L:], ws.dlogvar)
        finite &= self._encoder.backward(ws.x, ws.dhead, ws.enc, dx=None)
        return finite

    def _as_model_dtype(self, name, a):
        """``a`` as an array of the model's dtype (real numbers are converted, anything else is refused)."""
        a = np.asarray(a)
        if a.dtype != self.dtype:
            if a.dtype.kind not in "biuf":
                raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")
            with np.errstate(over="ignore"):
                converted = a.astype(self.dtype)
            if a.dtype.itemsize > converted.dtype.itemsize and np.isfinite(a).all() and not np.isfinite(converted).all():
                raise ValueError(f"{name} has values beyond the range of the model's dtype {self.dtype} "
                                 f"(largest magnitude {float(np.abs(a).max()):g})")
            a = converted
        if not a.flags.aligned:   # e.g. unpickled from a byte buffer: the kernels need aligned rows
            a = a.copy()
        return a

    def _check_batch(self, x, name="x"):
        x = self._as_model_dtype(name, x)
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"{name} must have shape (n, {self.n_inputs}), got {x.shape}")
        return np.ascontiguousarray(x)

    def _check_data(self, X, name, binarize=None):
        """A (n >= 1, n_inputs) data array in the model's dtype: finite, and in [0, 1] where the Bernoulli
        likelihood or binarisation needs it."""
        X = self._check_batch(X, name)
        if X.shape[0] == 0:
            raise ValueError(f"{name} must have at least one row")
        from ..datasets import check_data
        return check_data(X, name, unit_interval=self.likelihood == "bernoulli" or binarize == "dynamic")

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
        kl_weight = V.real("kl_weight", kl_weight)
        with self._exclusive("loss_and_grad"), _blas.blas_threads(1):
            ws = self._workspace(x.shape[0])
            sum_ll, sum_kl = self._forward(ws, x, seed, offset)
            self._backward(ws, seed, offset, kl_weight)
            loss = -(sum_ll - kl_weight * sum_kl) / x.shape[0]
            return loss, {k: v.copy() for k, v in self._params.grads.items()}

