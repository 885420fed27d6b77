r"""OAMPNet and OAMPNet2 (He, Wen, Jin, Li 2018; 2020): OAMP with learned step sizes.

OAMPNet unfolds ``T`` iterations of OAMP (:mod:`zoo.oamp`) from ``x̂ = 0``
and gives each layer ``t`` its own ``γ_t``, ``θ_t`` (:class:`OAMPLinear`
with ``learnable=True``, initialised to 1), followed by the shared
constellation denoiser:

``layer t = [OAMPLinear(γ_t, θ_t), Denoiser]``: ``r_t = x̂_t + γ_t W_t (y − H x̂_t)``,
``x̂_{t+1} = E[x | r_t, τ_t²(θ_t)]``.

With every ``γ_t = θ_t = 1`` (as built) it *is* OAMP, to the last bit.
OAMPNet2 adds ``φ_t``, ``ξ_t`` (initialised to 1 and 0, i.e. OAMP again):
the estimate handed to layer ``t + 1`` is

.. math::
    \hat x_{t+1} = \varphi_t \big(\mathrm E[x \mid r_t, \tau_t^2] - \xi_t r_t\big),

while the logits of layer ``t`` stay the denoiser's.

**Loss** (the papers): the squared error of the final estimate,
``‖x̂ − x‖²`` per user, averaged per instance
(:func:`gnnmimo.losses.symbol_mse_loss`).

Deviations: the papers train layer by layer (incrementally); the zoo trains
all layers at once on the final error, with the generic trainer. The
output here is the last denoiser's posterior (its logits decide), so
OAMPNet2 has ``T − 1`` pairs ``(φ_t, ξ_t)``, between layers: the papers'
last pair only rescales their output estimate, which does not change
posterior-based decisions. The learned scalars do not depend on ``Nt``,
``Nr`` or the constellation, so one model runs on any mix of sizes (the
papers train one network per ``(Nr, Nt, QAM)``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gnnmimo.blocks.base import Block, State
from gnnmimo.blocks.oamp import OAMPLinear
from gnnmimo.constellation import QAM
from gnnmimo.graph import MIMOGraph
from gnnmimo.losses import symbol_mse_loss
from gnnmimo.registry import register
from zoo.unfolded import LinearDenoiserNet


@register("oampnet")
class OAMPNet(LinearDenoiserNet):
    """OAMPNet (see module doc); returns the denoiser's logits after each layer.

    Args:
        qam: the constellation.
        iterations: layers ``T`` (default 10, as in the paper).
        double: compute the linear steps in float64.
    """

    training_recipe = "few-parameters"

    def make_linear(self, double: bool) -> Block:
        return OAMPLinear(learnable=True, double=double)

    def loss(self, graph: MIMOGraph) -> Tensor:
        """Squared error of the final estimate ``x̂_T`` (see module doc)."""
        return symbol_mse_loss(self.estimates(graph)[-1], graph, self.qam)


class MeanCorrection(Block):
    r"""OAMPNet2's learned correction ``x̂ ← φ (x̂ − ξ r)`` of a posterior mean.

    Args:
        phi, xi: initial ``φ`` and ``ξ`` (1 and 0: no change).

    :reads: ``mean [N_u, 2]`` (``E[x | r, τ]``), ``obs_mean [N_u, 2]`` (``r``).
    :writes: ``mean [N_u, 2]``.
    """

    default_reads = ("mean", "obs_mean")
    default_writes = ("mean",)

    def __init__(self, phi: float = 1.0, xi: float = 0.0):
        super().__init__()
        self.phi = nn.Parameter(torch.tensor(float(phi)))
        self.xi = nn.Parameter(torch.tensor(float(xi)))

    def update(self, graph: MIMOGraph, state: State) -> State:
        mean = state["mean"]
        phi, xi = self.phi.to(mean.dtype), self.xi.to(mean.dtype)
        return {"mean": phi * (mean - xi * state["obs_mean"])}


@register("oampnet2")
class OAMPNet2(OAMPNet):
    """OAMPNet2: OAMPNet with a learned :class:`MeanCorrection` between layers (see module doc).

    Args: as :class:`OAMPNet`.
    """

    def __init__(self, qam: QAM | int, iterations: int = 10, double: bool = False):
        super().__init__(qam, iterations, double)
        self.corrections = nn.ModuleList(MeanCorrection() for _ in range(iterations - 1))

    def layer(self, graph: MIMOGraph, state: State, t: int) -> State:
        state = super().layer(graph, state, t)
        return self.corrections[t](graph, state) if t < len(self.corrections) else state
