"""The work buffers of one VAE: every array a forward/backward pass needs for up to ``rows`` rows, allocated
once and reused, so a training step allocates nothing."""
from __future__ import annotations

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
            shapes = {
                "x": (rows, D), "grey": (rows, D), "u": (rows, D), "mu": (rows, L), "logvar": (rows, L),
                "z": (rows, L), "kl": (rows,), "loglik": (rows,), "dz": (rows, L), "dmu": (rows, L),
                "dlogvar": (rows, L), "dhead": (rows, 2 * L), "dout": (rows, D),
                "enc.out": (rows, e.sizes[-1]), "dec.out": (rows, d.sizes[-1]),
            }
            if model.likelihood == "gaussian":
                shapes["x_logvar"] = shapes["dx_logvar"] = (rows, D)
            for prefix, mlp in (("enc", e), ("dec", d)):
                for i, n in enumerate(mlp.sizes[1:-1]):
                    shapes[f"{prefix}.h{i}"] = shapes[f"{prefix}.dh{i}"] = (rows, n)
            # every buffer at its own offset within a page: kernels stream several at once (x, logits and
            # their gradient in the likelihood), and same-offset streams alias (nn.staggered_zeros)
            arrays = {k: nn.staggered_zeros(shape, dt, 4 + i) for i, (k, shape) in enumerate(shapes.items())}
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
