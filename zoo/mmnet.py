r"""MMNet, i.i.d. variant (Khani, Alizadeh, Hoydis, Fleming 2019).

``T`` layers from ``x̂ = 0``, each a matched-filter step with its own
learned ``θ1_t`` and noise scale ``θ2_t`` (:class:`~gnnmimo.blocks.mmnet.MMNetLinear`,
both initialised to 1) followed by the shared constellation denoiser:

``layer t = [MMNetLinear(θ1_t, θ2_t), Denoiser]``:
``z_t = x̂_t + θ1_t c Hᵀ(y − H x̂_t)``, ``x̂_{t+1} = E[x | z_t, τ_t²/θ2_t]``,

with ``c = n / tr(HᵀH)`` per instance (a reparametrisation of the paper's
``θ1_t Hᵀ`` so that ``θ1 = 1`` is a normalised step for any ``Nr``; see
:mod:`gnnmimo.blocks.mmnet`) and ``τ_t²`` the OAMP error prediction for
``W_t = θ1_t c Hᵀ``.

**Loss** (the paper): the squared error of the estimate summed over the
layers, ``Σ_t ‖x̂_t − x‖²`` per user, averaged per instance
(:func:`gnnmimo.losses.symbol_mse_loss`).

Permutation equivariant over users and antennas and independent of the
batch: the learned scalars do not depend on ``Nt`` or ``Nr``, so one model
runs on any mix of sizes.
"""
from __future__ import annotations

from torch import Tensor

from gnnmimo.blocks.base import Block
from gnnmimo.blocks.mmnet import MMNetLinear
from gnnmimo.graph import MIMOGraph
from gnnmimo.losses import symbol_mse_loss
from gnnmimo.registry import register
from zoo.unfolded import LinearDenoiserNet


@register("mmnet")
class MMNet(LinearDenoiserNet):
    """MMNet-iid (see module doc); returns the denoiser's logits after each layer.

    Args:
        qam: the constellation.
        iterations: layers ``T`` (default 10, as in the paper).
        double: compute the linear steps in float64.
    """

    def make_linear(self, double: bool) -> Block:
        return MMNetLinear(double=double)

    def loss(self, graph: MIMOGraph) -> Tensor:
        """Squared error summed over the layers (see module doc)."""
        return symbol_mse_loss(self.estimates(graph), graph, self.qam)
