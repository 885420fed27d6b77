r"""OAMP-GNN (hybrid, not from a paper): AMP-GNN with OAMP's de-correlated linear step.

AMP-GNN (:mod:`zoo.ampgnn`) refines AMP's Gaussian observations with the
pairwise-MRF GNN; AMP's matched-filter step, though, is made for large
i.i.d. channels. OAMP's LMMSE-type, de-correlated step
(:mod:`gnnmimo.blocks.oamp`) stays Gaussian-like on small and correlated
channels, so here it feeds the GNN instead. Each of the ``T`` iterations is

``OAMPLinear (learned γ_t, θ_t, as OAMPNet) → PairwiseMRFGNN (L rounds, extra inputs r_k, τ_k²) → PAMPosterior``,

and the GNN's posterior mean is the ``x̂`` of the next linear step. The GNN
(GEPNet's sizes) and its states are shared across iterations; each linear
step has its own ``(γ_t, θ_t)``, initialised at OAMP's ``1``. With the
observation skip (default, :mod:`gnnmimo.blocks.gnn`) the untrained OAMP-GNN
is OAMP; ``refine`` and ``report`` are the GNN's Gaussian refinement and report
head, as in EP-GNN and AMP-GNN.
"""
from __future__ import annotations

from torch import nn

from gnnmimo.blocks import Chain, State
from gnnmimo.blocks.denoiser import PRIOR_KEYS, PAMPosterior, ReportedPosterior, prior_state
from gnnmimo.blocks.gnn import PairwiseMRFGNN
from gnnmimo.blocks.oamp import OAMPLinear
from gnnmimo.constellation import QAM
from gnnmimo.graph import MIMOGraph
from gnnmimo.registry import register
from zoo.unfolded import UnfoldedDetector


@register("oamp-gnn")
class OAMPGNN(UnfoldedDetector):
    """OAMP linear step + MRF GNN refinement (see module doc).

    Args:
        qam: the constellation.
        iterations: ``T`` (default 10).
        rounds: GNN rounds ``L`` per iteration (default 2).
        double: compute the linear step in float64.
        skip: the GNN corrects OAMP's Gaussian posterior (default) instead of replacing it.
        refine: the GNN also shifts and rescales that Gaussian (:mod:`gnnmimo.blocks.gnn`).
        report: report the posterior of a second GNN head instead of the iterated one
            (:mod:`gnnmimo.blocks.gnn`).
        messages: the GNN's message implementation, ``"dense"`` (default) or ``"graph"``; same
            parameters, same numbers (:mod:`gnnmimo.blocks.gnn`).
    """

    training_recipe = "correction"

    def __init__(self, qam: QAM | int, iterations: int = 10, rounds: int = 2, double: bool = False,
                 skip: bool = True, refine: bool = False, report: bool = False, messages: str = "dense"):
        super().__init__(qam, iterations)
        self.linear = nn.ModuleList(OAMPLinear(learnable=True, double=double) for _ in range(iterations))
        self.gnn = PairwiseMRFGNN(self.qam, rounds, observation=True, skip=skip, refine=refine, report=report,
                                  messages=messages)
        self.posterior = PAMPosterior(self.qam)
        self.report = ReportedPosterior(self.qam) if report else None
        after = tuple(block for block in (self.gnn, self.posterior, self.report) if block is not None)
        self.chains = nn.ModuleList(Chain(linear, *after, given=PRIOR_KEYS, register=False)
                                    for linear in self.linear)

    def initial_state(self, graph: MIMOGraph) -> State:
        return prior_state(graph)

    def layer(self, graph: MIMOGraph, state: State, t: int) -> State:
        return self.chains[t](graph, state)
