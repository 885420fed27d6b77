r"""The GNN detector (Scotti, Tran, Rossi, Lorenzo, Sisson; arXiv 2007.05703).

Message passing on the pairwise Markov random field of the real-valued model
(:mod:`gnnmimo.blocks.gnn`): ``T`` rounds of the same GNN layer (shared
parameters), each followed by the PAM readout, which gives the logits of
that round:

``T × [PairwiseMRFGNN (1 round), PAMPosterior]``.

Sizes follow the paper: ``T = 10`` rounds, ``S_u = 8``, message MLP
``(2S_u+2)→128→64→8``, GRU 128; the readout widths are not given, we use
GEPNet's ``8→64→32→P``. No extra inputs: the GNN sees only ``yᵀh_k``,
``h_kᵀh_k``, ``h_kᵀh_l`` and ``σr²``.
"""
from __future__ import annotations

from gnnmimo.blocks import Chain, State
from gnnmimo.blocks.denoiser import PAMPosterior
from gnnmimo.blocks.gnn import PairwiseMRFGNN
from gnnmimo.constellation import QAM
from gnnmimo.detector import UnrolledDetector
from gnnmimo.graph import MIMOGraph
from gnnmimo.registry import register


@register("gnn")
class GNNDetector(UnrolledDetector):
    """Scotti et al.'s GNN detector (see module doc).

    Args:
        qam: the constellation.
        iterations: message-passing rounds ``T`` (default 10).
        messages: the GNN's message implementation, ``"dense"`` (default) or ``"graph"``; same
            parameters, same numbers (:mod:`gnnmimo.blocks.gnn`).
    """

    def __init__(self, qam: QAM | int, iterations: int = 10, messages: str = "dense"):
        super().__init__(qam, iterations)
        self.gnn = PairwiseMRFGNN(self.qam, rounds=1, message_channels=(128, 64), gru_channels=128,
                                  messages=messages)
        self.posterior = PAMPosterior(self.qam)
        self.chain = Chain(self.gnn, self.posterior, given=(), register=False)

    def step(self, graph: MIMOGraph, state: State) -> State:
        return self.chain(graph, state)
