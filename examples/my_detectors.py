"""A plugin module: two detectors composed from gnnmimo blocks, registered by name.

Importing this module registers them, so that ``gnnmimo --plugin my_detectors …`` (or
``GNNMIMO_PLUGINS=my_detectors``) finds them on the command line and ``zoo.load`` rebuilds them
from a checkpoint (which names this module). ``examples/compose_a_detector.py`` uses both.

Run ``python examples/my_detectors.py`` to list what it registers.
"""
from gnnmimo.blocks import Chain
from gnnmimo.blocks.amp import AMPLinear
from gnnmimo.blocks.base import State
from gnnmimo.blocks.denoiser import Denoiser, PAMPosterior, prior_state
from gnnmimo.blocks.ep import EPCavity, EPUpdate
from gnnmimo.blocks.gnn import PairwiseMRFGNN
from gnnmimo.detector import UnrolledDetector
from gnnmimo.graph import MIMOGraph
from gnnmimo.registry import register


@register("damped-amp")
class DampedAMP(UnrolledDetector):
    """``T × [AMP linear step, denoiser, damping β on (mean, var)]``: classical, nothing to train.

    Damping (averaging the denoiser's posterior mean and variance with the previous ones) helps
    AMP on small, non-asymptotic systems."""

    def __init__(self, qam, iterations: int = 20, damping: float = 0.5):
        super().__init__(qam, iterations)
        self.linear, self.denoiser, self.damping = AMPLinear(), Denoiser(self.qam), damping

    def initial_state(self, graph: MIMOGraph) -> State:
        return prior_state(graph)

    def step(self, graph: MIMOGraph, state: State) -> State:
        new = self.denoiser(graph, self.linear(graph, state))
        beta = self.damping
        return {**new, "mean": beta * state["mean"] + (1 - beta) * new["mean"],
                "var": beta * state["var"] + (1 - beta) * new["var"]}


@register("my-hybrid")
class MyHybrid(UnrolledDetector):
    """``T × [EP cavity, MRF GNN on the cavity, PAM posterior, EP site update]``: a learned hybrid.

    The GNN's correction heads start at zero, so the untrained detector *is* EP; training moves it.
    ``width`` sets every hidden size of the GNN (small here, so that it trains in seconds)."""

    def __init__(self, qam, iterations: int = 5, rounds: int = 1, width: int = 16):
        super().__init__(qam, iterations)
        gnn = PairwiseMRFGNN(self.qam, rounds, observation=True, skip=True, message_channels=(width,),
                             gru_channels=width, readout_channels=(width,))
        # the Chain checks here, when it is built, that each block reads what an earlier one wrote
        self.chain = Chain(EPCavity(), gnn, PAMPosterior(self.qam), EPUpdate(0.9), given=())

    def step(self, graph: MIMOGraph, state: State) -> State:
        return self.chain(graph, state)


if __name__ == "__main__":
    print("my_detectors registers: damped-amp, my-hybrid (import it, or gnnmimo --plugin my_detectors …)")
