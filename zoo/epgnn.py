r"""EP-GNN: GEPNet (Kosasih, Onasis, Miloslavskaya, Hardjawana, Andrean, Vucetic; IEEE JSAC 2022).

Expectation propagation (:mod:`gnnmimo.blocks.ep`) whose tilted posterior
comes from the pairwise-MRF GNN (:mod:`gnnmimo.blocks.gnn`) instead of the
Gaussian-times-prior of the cavity alone. Each of the ``T`` iterations is

``EPCavity → PairwiseMRFGNN (L rounds, extra inputs t_k, h_k²) → PAMPosterior → EPUpdate``:

the GNN sees the channel MRF and the cavity ``(t_k, h_k²)`` of every real
component, its PAM distribution gives the posterior mean and variance that
the EP site update turns into new sites ``(λ, γ)``. The GNN's node and GRU
states carry across EP iterations.

GEPNet's sizes: ``T = 10``, ``L = 2``, ``S_u = 8``, message MLP
``(2S_u+2)→64→32→8``, GRU 64, readout ``8→64→32→P``, λ < 0 reverts,
cross-entropy on the last logits (train with ``--loss-weights last``).

Three deviations, all for training on a CPU budget (see
:mod:`gnnmimo.blocks.gnn`): the cavity variance enters the GRU as
``log h_k²``; by default (``skip=True``) the GNN's readout corrects the
cavity's own Gaussian log-likelihood instead of replacing it, starting
from zero, so the untrained EP-GNN *is* EP and training only has to learn
the improvement (``skip=False`` is GEPNet's readout); and the damping is the
EP baseline's 0.9 on the old value, not GEPNet's 0.7, so that this starting
point is the reference EP, not a weaker EP the GNN first has to catch up
with (docs/training.md §5).
"""
from __future__ import annotations

from gnnmimo.blocks import Chain, State
from gnnmimo.blocks.denoiser import PAMPosterior, ReportedPosterior
from gnnmimo.blocks.ep import EPCavity, EPUpdate
from gnnmimo.blocks.gnn import PairwiseMRFGNN
from gnnmimo.constellation import QAM
from gnnmimo.detector import UnrolledDetector
from gnnmimo.graph import MIMOGraph
from gnnmimo.registry import register


@register("epgnn")
class EPGNN(UnrolledDetector):
    """GEPNet (see module doc).

    Args:
        qam: the constellation.
        iterations: EP iterations ``T`` (default 10).
        rounds: GNN rounds ``L`` per EP iteration (default 2).
        damping: EP damping ``β`` on the old sites (default 0.9, the EP baseline's).
        double: run the EP cavity (the batched solve) in float64 (default false:
            training speed; float32 is exact enough at every SNR, the GNN runs in its
            parameters' dtype either way). It changes no weight, so it can be given
            with a checkpoint: ``zoo.load(name, double=True)``, ``gnnmimo evaluate
            --checkpoint NAME:double=True``.
        skip: the GNN corrects the cavity's Gaussian posterior (default) instead
            of replacing it (GEPNet).
        refine: the GNN also shifts and rescales that Gaussian (:mod:`gnnmimo.blocks.gnn`).
        report: report the posterior of a second GNN head instead of the iterated one
            (:mod:`gnnmimo.blocks.gnn`).
        messages: the GNN's message implementation, ``"dense"`` (default) or ``"graph"``; same
            parameters, same numbers (:mod:`gnnmimo.blocks.gnn`).
    """

    training_recipe = "correction"

    def __init__(self, qam: QAM | int, iterations: int = 10, rounds: int = 2, damping: float = 0.9,
                 double: bool = False, skip: bool = True, refine: bool = False,
                 report: bool = False, messages: str = "dense"):
        super().__init__(qam, iterations)
        self.cavity = EPCavity(double=double)
        self.gnn = PairwiseMRFGNN(self.qam, rounds, observation=True, skip=skip, refine=refine, report=report,
                                  messages=messages)
        self.posterior = PAMPosterior(self.qam)
        self.report = ReportedPosterior(self.qam) if report else None
        self.site_update = EPUpdate(damping)
        blocks = (self.cavity, self.gnn, self.posterior, self.report, self.site_update)
        self.chain = Chain(*(block for block in blocks if block is not None), given=(), register=False)

    def step(self, graph: MIMOGraph, state: State) -> State:
        return self.chain(graph, state)
