"""The work buffers of one VAE: every array a forward/backward pass needs for up to ``rows`` rows, allocated
once and reused, so a training step allocates nothing."""
from __future__ import annotations

import numpy as np

from .. import nn
from ..kernels.dispatch import Prepared

__all__ = ["Workspace"]


# -------------------------------------------------------------------------------------------------
# Work buffers
# -------------------------------------------------------------------------------------------------
class Workspace:
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
        self._arrays = arrays
        self.__dict__.update({k.replace(".", "_"): v for k, v in arrays.items()})
        self.enc = self._mlp_buffers(model._encoder, "enc")
        self.dec = self._mlp_buffers(model._decoder, "dec")
        self._views = {}
        self._calls = None

    def calls(self, model):
        """The training step's kernels on these buffers, validated once (``kernels.dispatch.Prepared``)."""
        if self._calls is None:
            self._calls = _StepCalls(self, model)
        return self._calls

    def _mlp_buffers(self, mlp, prefix):
        n = len(mlp.sizes) - 2
        return nn.MLPBuffers(mlp, self.rows, None, {"h": [self._arrays[f"{prefix}.h{i}"] for i in range(n)],
                                                    "dh": [self._arrays[f"{prefix}.dh{i}"] for i in range(n)],
                                                    "out": self._arrays[prefix + ".out"]})

    def view(self, model, n):
        if n == self.rows:
            return self
        w = self._views.get(n)
        if w is None:  # leading-row slices of C-contiguous arrays stay C-contiguous
            w = Workspace(model, n, {k: v[:n] for k, v in self._arrays.items()})
            self._views[n] = w
        return w




class _StepCalls:
    """latent_forward(seed, offset), log_prob_and_grad(), latent_backward(seed, offset, kl_weight) on the
    buffers of one workspace."""

    def __init__(self, ws, model):
        self.latent_forward = Prepared("latent_forward", (ws.mu, ws.logvar, 0, 0), (ws.z, ws.kl))
        self.latent_backward = Prepared("latent_backward", (ws.dz, ws.mu, ws.logvar, 0, 0, 1.0),
                                        (ws.dmu, ws.dlogvar))
        assert self.latent_forward.scalars == ("seed", "offset")
        assert self.latent_backward.scalars == ("seed", "offset", "kl_weight")
        if model.likelihood == "bernoulli":
            self.log_prob_and_grad = Prepared("bernoulli_log_prob_and_grad", (ws.x, ws.dec.out), (ws.loglik, ws.dout))
        else:
            self.log_prob_and_grad = Prepared("normal_log_prob_and_grad", (ws.x, ws.dec.out, ws.x_logvar),
                                              (ws.loglik, ws.dout, ws.dx_logvar))
