r"""AMP-GNN (He, Yu, Zhang, Song, Letaief; IEEE TWC 2023).

Unfolded AMP (:mod:`gnnmimo.blocks.amp`, on the bipartite antenna–user
graph) in which the pairwise-MRF GNN (:mod:`gnnmimo.blocks.gnn`) replaces
the constellation denoiser: each of the ``T`` iterations is

``AMPLinear → PairwiseMRFGNN (L rounds, extra inputs r_k, Σ_k) → PAMPosterior``,

and the mean and variance of the GNN's PAM distribution are the ``x̂, v``
of the next AMP step. The GNN's states carry across iterations. Starts at
the prior ``x̂ = 0, v = Es``.

The paper proves AMP-GNN permutation equivariant (so is this one: every
block is); its layer sizes are not public, so the GNN takes GEPNet's
(``L = 2``, ``S_u = 8``, message ``(2S_u+2)→64→32→8``, GRU 64, readout
``8→64→32→P``) and ``T = 10``. As in :mod:`zoo.epgnn`, ``Σ_k`` enters the
GRU as ``log Σ_k`` and by default (``skip=True``) the GNN corrects the AMP
observation's Gaussian posterior rather than replacing it, so the untrained
AMP-GNN is 10 iterations of AMP.

**Onsager term of a learned denoiser** (``divergence=True``, with ``refine``;
not in the paper). AMP's Onsager correction needs ``Σ_i ∂x̂_i/∂r_i``, the
denoiser's divergence scaled by its input variance; for the constellation
posterior this equals the posterior variance ``v_i``, which is why AMP feeds
``v`` back. A refined observation ``N(r + √Σ δ, Σ e^ν)`` changes that: with
``δ, ν`` and the GNN's logits held fixed, ``Σ ∂x̂/∂r = v e^{−ν}``. With the
option the AMP step gets that instead of ``v``, as learned AMP uses its
denoiser's divergence (Borgerding, Schniter, Rangan, IEEE TSP 2017), so a
learned change of confidence does not break the Onsager term. Without it
no AMP-GNN run here trained past AMP (docs/training.md §4 and
``zoo/pretrained/ampgnn-nr16-nt4-8-qam16.md``).
"""
from __future__ import annotations

import torch

from gnnmimo.blocks import Block, Chain, State
from gnnmimo.blocks.amp import AMPLinear
from gnnmimo.blocks.denoiser import PRIOR_KEYS, PAMPosterior, ReportedPosterior, prior_state
from gnnmimo.blocks.gnn import PairwiseMRFGNN
from gnnmimo.constellation import QAM
from gnnmimo.detector import UnrolledDetector
from gnnmimo.graph import MIMOGraph
from gnnmimo.registry import register


class RefinedDivergence(Block):
    """``var ← v e^{−ν}``, the refined denoiser's divergence ``Σ ∂x̂/∂r``, for AMP's Onsager term
    (see module doc).

    :reads: ``var [N_u, 2]`` (the posterior variance ``v``), ``obs_log_scale [N_u, 2]`` (``ν``).
    :writes: ``var``.
    """

    default_reads = ("var", "obs_log_scale")
    default_writes = ("var",)

    def update(self, graph: MIMOGraph, state: State) -> State:
        var = state["var"]
        return {"var": var * torch.exp(-state["obs_log_scale"].to(var))}


@register("ampgnn")
class AMPGNN(UnrolledDetector):
    """AMP-GNN (see module doc).

    Args:
        qam: the constellation.
        iterations: AMP iterations ``T`` (default 10).
        rounds: GNN rounds ``L`` per iteration (default 2).
        skip: the GNN corrects AMP's Gaussian posterior (default) instead of replacing it.
        refine: the GNN also shifts and rescales that Gaussian (:mod:`gnnmimo.blocks.gnn`).
        report: report the posterior of a second GNN head instead of the iterated one
            (:mod:`gnnmimo.blocks.gnn`).
        divergence: feed AMP the refined denoiser's divergence ``v e^{−ν}`` instead of its
            variance ``v`` (needs ``refine``; see module doc).
        messages: the GNN's message implementation, ``"dense"`` (default) or ``"graph"``; same
            parameters, same numbers (:mod:`gnnmimo.blocks.gnn`).
    """

    training_recipe = "correction"

    def __init__(self, qam: QAM | int, iterations: int = 10, rounds: int = 2, skip: bool = True,
                 refine: bool = False, report: bool = False, divergence: bool = False, messages: str = "dense"):
        if divergence and not refine:
            raise ValueError("divergence=True corrects for the refined observation and needs refine=True")
        super().__init__(qam, iterations)
        self.divergence = divergence
        self.linear = AMPLinear()
        self.gnn = PairwiseMRFGNN(self.qam, rounds, observation=True, skip=skip, refine=refine, report=report,
                                  messages=messages)
        self.posterior = PAMPosterior(self.qam)
        self.report = ReportedPosterior(self.qam) if report else None
        self.onsager = RefinedDivergence() if divergence else None
        blocks = (self.linear, self.gnn, self.posterior, self.onsager, self.report)
        self.chain = Chain(*(block for block in blocks if block is not None), given=PRIOR_KEYS,
                           register=False)

    def initial_state(self, graph: MIMOGraph) -> State:
        return prior_state(graph)

    def step(self, graph: MIMOGraph, state: State) -> State:
        return self.chain(graph, state)
