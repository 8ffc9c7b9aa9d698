"""The kernel descriptions: one entry per kernel, the single source of its signature, validation, C++
argument record, stream use and gradient recipe (see spec.py for the vocabulary and docs/architecture.md
for what is derived from here). After editing, regenerate the derived files::

    python python/vaekernels/kernels/codegen.py

(tests/test_kernel_table.py fails while a generated file is out of date).
"""
from __future__ import annotations

from .spec import (BATCH, BLOCKS, CREATION, ELEMENTWISE, FULL, KEYS, PHILOX, ROWS, SAMPLES, Array, Call,
                   Const, In, Kernel, Neg, Repeat, Result, RowScale, Scalar, Stream, SumSamples, Upstream, Vjp)

SEED = Scalar("seed", "seed", doc="stream key, an integer in [0, 2**64)")
OFFSET = Scalar("offset", "offset", default=0, doc="first stream position read, an integer >= 0")


def _out(name, role=FULL, doc=""):
    return Array(name, role, io="out", doc=doc)


KERNELS = (
    # ---------------------------------------------------------------------------------------------
    # Random numbers
    # ---------------------------------------------------------------------------------------------
    Kernel(
        "philox4x32_10", PHILOX,
        params=(Array("counters", BLOCKS), Array("keys", KEYS)),
        outputs=(_out("out", BLOCKS),),
        dtypes=("uint32",),
        doc="""The raw Philox4x32-10 block function (Salmon et al. 2011), as published in Random123.

        counters: uint32 (N, 4); keys: uint32 (N, 2). Returns uint32 (N, 4): row i is
        Philox4x32-10(counter=counters[i], key=keys[i]).
        """),
    Kernel(
        "randn", CREATION,
        params=(Scalar("shape", "shape"), SEED, OFFSET, Scalar("dtype", "dtype", default="float32")),
        outputs=(_out("out"),),
        stream=Stream("normal"),
        doc="""Standard normal numbers at stream positions ``offset .. offset + prod(shape) - 1`` of ``seed``.

        ``randn(10, s, offset=5)`` equals ``randn(15, s)[5:]`` bit for bit. Box-Muller on Philox4x32-10
        (tag 0): float32 uses one 32-bit word per uniform (|z| <= 5.77), float64 two (|z| <= 8.49).
        seed: int in [0, 2**64). offset: int >= 0. Returns an array of ``shape`` and ``dtype`` (or fills ``out``).
        device: None (a NumPy array, or the device of ``out``), "cpu", "cuda" (CuPy's current GPU) or "cuda:N";
        on a GPU the result is a CuPy array with the same bits as on the CPU.
        """),
    Kernel(
        "rand", CREATION,
        params=(Scalar("shape", "shape"), SEED, OFFSET, Scalar("dtype", "dtype", default="float32")),
        outputs=(_out("out"),),
        stream=Stream("uniform"),
        doc="""Uniform numbers on the open interval (0, 1) at stream positions ``offset ..`` of ``seed``.

        A separate stream from ``randn`` (Philox tag 1). float32 values are (2k+1) 2^-24 (k < 2^23); float64
        values are (2k+1) 2^-53 (k < 2^52). Same offset contract and ``device=`` argument as ``randn``.
        """),
    Kernel(
        "reparameterize", ELEMENTWISE,
        params=(Array("mu"), Array("logvar"), SEED, OFFSET, Scalar("n_samples", "n_samples", default=None)),
        outputs=(_out("z", SAMPLES),),
        stream=Stream("normal", "samples"),
        backward=Vjp(
            calls=(Call("latent_backward", (Upstream("z"), Repeat(In("mu")), Repeat(In("logvar")), In("seed"),
                                            In("offset"), Const(0.0))),),
            grads={"mu": SumSamples(Result(0, 0)), "logvar": SumSamples(Result(0, 1))}),
        doc="""z = mu + exp(logvar / 2) * eps, eps = ``randn(mu.shape, seed, offset, mu.dtype)``.

        mu, logvar: the same shape (any). With ``n_samples=k`` returns shape ``(k, *mu.shape)``; sample s uses
        stream positions ``offset + s * mu.size ..``. Consumes positions ``offset .. offset + k * mu.size - 1``.
        """),
    # ---------------------------------------------------------------------------------------------
    # KL divergences
    # ---------------------------------------------------------------------------------------------
    Kernel(
        "kl_standard_normal", ROWS,
        params=(Array("mu"), Array("logvar")),
        outputs=(_out("kl", BATCH),),
        backward=Vjp(calls=(Call("kl_standard_normal_backward", (Upstream("kl"), In("mu"), In("logvar"))),),
                     grads={"mu": Result(0, 0), "logvar": Result(0, 1)}),
        doc="""KL(N(mu, diag exp(logvar)) || N(0, I)) summed over the last axis.

        Per coordinate 0.5 * (mu^2 + exp(logvar) - 1 - logvar), with exp(lv) - 1 - lv evaluated without
        cancellation near 0. mu, logvar: (..., D). Returns (...).
        """),
    Kernel(
        "kl_standard_normal_backward", ROWS,
        params=(Array("grad", BATCH), Array("mu"), Array("logvar")),
        outputs=(_out("dmu"), _out("dlogvar")),
        doc="""Gradients of sum(grad * kl_standard_normal(mu, logvar)).

        grad: (...), the upstream gradient; mu, logvar: (..., D). Returns (dmu, dlogvar):
        dmu = grad * mu, dlogvar = grad * (exp(logvar) - 1) / 2.
        """),
    Kernel(
        "kl_normal", ROWS,
        params=(Array("mu_q"), Array("logvar_q"), Array("mu_p"), Array("logvar_p")),
        outputs=(_out("kl", BATCH),),
        backward=Vjp(calls=(Call("kl_normal_backward", (Upstream("kl"), In("mu_q"), In("logvar_q"), In("mu_p"),
                                                        In("logvar_p"))),),
                     grads={"mu_q": Result(0, 0), "logvar_q": Result(0, 1), "mu_p": Result(0, 2),
                            "logvar_p": Result(0, 3)}),
        doc="""KL(N(mu_q, diag exp(logvar_q)) || N(mu_p, diag exp(logvar_p))) summed over the last axis.

        Per coordinate 0.5 * ((e^d - 1 - d) + (mu_q - mu_p)^2 exp(-logvar_p)) with d = logvar_q - logvar_p.
        All four arguments (..., D), the same shape. Returns (...).
        """),
    Kernel(
        "kl_normal_backward", ROWS,
        params=(Array("grad", BATCH), Array("mu_q"), Array("logvar_q"), Array("mu_p"), Array("logvar_p")),
        outputs=(_out("dmu_q"), _out("dlogvar_q"), _out("dmu_p"), _out("dlogvar_p")),
        doc="""Gradients of sum(grad * kl_normal(...)) with respect to all four arguments.

        Returns (dmu_q, dlogvar_q, dmu_p, dlogvar_p), each (..., D):
        dmu_q = g (mu_q - mu_p) e^-lp, dmu_p = -dmu_q, dlogvar_q = g (e^(lq - lp) - 1) / 2,
        dlogvar_p = -g ((e^(lq - lp) - 1) + (mu_q - mu_p)^2 e^-lp) / 2.
        """),
    # ---------------------------------------------------------------------------------------------
    # Log-likelihoods
    # ---------------------------------------------------------------------------------------------
    Kernel(
        "bernoulli_log_prob", ROWS,
        params=(Array("x"), Array("logits")),
        outputs=(_out("log_prob", BATCH),),
        backward=Vjp(calls=(Call("bernoulli_log_prob_backward", (Upstream("log_prob"), In("x"), In("logits"))),),
                     grads={"logits": Result(0, 0), "x": RowScale(Upstream("log_prob"), In("logits"))}),
        doc="""log Bernoulli(x | sigmoid(logits)) summed over the last axis: sum(x * l - softplus(l)).

        Computed as (x - [l >= 0]) l - log1p(exp(-|l|)): exact to rounding and finite for any finite logits
        (|l| = 1e4 included). x is meant to lie in [0, 1] (grey levels allowed); other values give the same
        formula's value. x, logits: (..., D). Returns (...).
        """),
    Kernel(
        "bernoulli_log_prob_and_grad", ROWS,
        params=(Array("x"), Array("logits")),
        outputs=(_out("log_prob", BATCH), _out("dlogits")),
        doc="""(log_prob (...), d sum(log_prob) / d logits (..., D)) in one pass; the gradient is x - sigmoid(l).
        """),
    Kernel(
        "bernoulli_log_prob_backward", ROWS,
        params=(Array("grad", BATCH), Array("x"), Array("logits")),
        outputs=(_out("dlogits"),),
        doc="""Gradient in logits of sum(grad * bernoulli_log_prob(x, logits)), in one pass.

        grad[..., None] * (x - sigmoid(logits)), without computing the value (autograd's backward of
        ``bernoulli_log_prob``). grad: (...), the upstream gradient; x, logits: (..., D). Returns (..., D).
        """),
    Kernel(
        "normal_log_prob", ROWS,
        params=(Array("x"), Array("mean"), Array("logvar")),
        outputs=(_out("log_prob", BATCH),),
        backward=Vjp(calls=(Call("normal_log_prob_backward",
                                 (Upstream("log_prob"), In("x"), In("mean"), In("logvar"))),),
                     grads={"mean": Result(0, 0), "logvar": Result(0, 1), "x": Neg(Result(0, 0))}),
        doc="""log N(x | mean, diag exp(logvar)) summed over the last axis:
        -0.5 * sum(log(2 pi) + logvar + (x - mean)^2 exp(-logvar)). All (..., D). Returns (...).
        """),
    Kernel(
        "normal_log_prob_and_grad", ROWS,
        params=(Array("x"), Array("mean"), Array("logvar")),
        outputs=(_out("log_prob", BATCH), _out("dmean"), _out("dlogvar")),
        doc="""(log_prob (...), dmean, dlogvar) of the summed log-density in one pass:
        dmean = (x - mean) exp(-logvar), dlogvar = ((x - mean)^2 exp(-logvar) - 1) / 2.
        """),
    Kernel(
        "normal_log_prob_backward", ROWS,
        params=(Array("grad", BATCH), Array("x"), Array("mean"), Array("logvar")),
        outputs=(_out("dmean"), _out("dlogvar")),
        doc="""Gradients in mean and logvar of sum(grad * normal_log_prob(x, mean, logvar)), in one pass.

        The per-row grad times those of ``normal_log_prob_and_grad``, without computing the value (autograd's
        backward of ``normal_log_prob``; d/dx = -dmean). grad: (...); x, mean, logvar: (..., D).
        Returns (dmean, dlogvar).
        """),
    Kernel(
        "standard_normal_log_prob", ROWS,
        params=(Array("z"),),
        outputs=(_out("log_prob", BATCH),),
        backward=Vjp(calls=(Call("standard_normal_log_prob_and_grad", (In("z"),)),),
                     grads={"z": RowScale(Upstream("log_prob"), Result(0, 1))}),
        doc="""log N(z | 0, I) summed over the last axis: -0.5 * sum(log(2 pi) + z^2). z: (..., D). Returns (...).
        """),
    Kernel(
        "standard_normal_log_prob_and_grad", ROWS,
        params=(Array("z"),),
        outputs=(_out("log_prob", BATCH), _out("dz")),
        doc="""(log_prob (...), dz = -z (..., D)) in one pass.
        """),
    # ---------------------------------------------------------------------------------------------
    # The fused VAE latent pair
    # ---------------------------------------------------------------------------------------------
    Kernel(
        "latent_forward", ROWS,
        params=(Array("mu"), Array("logvar"), SEED, OFFSET),
        outputs=(_out("z"), _out("kl", BATCH)),
        stream=Stream("normal"),
        backward=Vjp(
            calls=(Call("latent_vjp", (Upstream("z"), Upstream("kl"), In("mu"), In("logvar"), In("seed"),
                                       In("offset"))),),
            grads={"mu": Result(0, 0), "logvar": Result(0, 1)}),
        doc="""(z, kl) in one pass: z equals ``reparameterize(mu, logvar, seed, offset)`` bit for bit and kl equals
        ``kl_standard_normal(mu, logvar)``. mu, logvar: (..., L). Returns z (..., L) and kl (...).
        Consumes stream positions ``offset .. offset + mu.size - 1``; eps is never stored.
        """),
    Kernel(
        "latent_backward", ROWS,
        params=(Array("dz"), Array("mu"), Array("logvar"), SEED, OFFSET, Scalar("kl_weight", "real", default=1.0)),
        outputs=(_out("dmu"), _out("dlogvar")),
        stream=Stream("normal"),
        doc="""Gradient of ``sum(dz * z) + kl_weight * sum(kl)`` where (z, kl) = latent_forward(mu, logvar, seed, offset).

        eps is regenerated from (seed, offset), never stored: dmu = dz + w mu,
        dlogvar = dz * eps * exp(logvar / 2) / 2 + w (exp(logvar) - 1) / 2. Returns (dmu, dlogvar).
        """),
    Kernel(
        "latent_vjp", ROWS,
        params=(Array("dz"), Array("dkl", BATCH), Array("mu"), Array("logvar"), SEED, OFFSET),
        outputs=(_out("dmu"), _out("dlogvar")),
        stream=Stream("normal"),
        doc="""The vector-Jacobian product of latent_forward: gradients of sum(dz * z) + sum(dkl * kl).

        ``latent_backward`` with a KL weight per row (dkl, shape (...)), in one pass with eps regenerated from
        (seed, offset): autograd's backward of ``latent_forward``, whose KL cotangent may differ between rows.
        dz, mu, logvar: (..., L). Returns (dmu, dlogvar).
        """),
    # ---------------------------------------------------------------------------------------------
    # Optimiser
    # ---------------------------------------------------------------------------------------------
    Kernel(
        "adam_step", ELEMENTWISE,
        params=(Array("param", io="inout"), Array("grad"), Array("m", io="inout"), Array("v", io="inout"),
                Scalar("step", "step"), Scalar("lr", "real", default=1e-3, lo=0.0),
                Scalar("beta1", "real", default=0.9, lo=0.0, hi=1.0, hi_open=True),
                Scalar("beta2", "real", default=0.999, lo=0.0, hi=1.0, hi_open=True),
                Scalar("eps", "real", default=1e-8, lo=0.0), Scalar("weight_decay", "real", default=0.0, lo=0.0)),
        returns="param",
        doc="""One AdamW step, in place on ``param``, ``m`` and ``v`` (PyTorch's AdamW, one fused pass):

        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  param *= 1 - lr * weight_decay;
        param -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps).

        param, m, v must be C-contiguous writable arrays of one dtype (they are updated in place); grad any
        layout. step is the 1-based step count used for bias correction. Returns param.
        """),
)

BY_NAME = {k.name: k for k in KERNELS}
