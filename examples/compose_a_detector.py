"""Compose a new detector from blocks, prove its symmetries, compare it.

A damped AMP: the AMP linear step on the bipartite graph and the constellation
denoiser of the zoo, with the denoiser's posterior mean and variance averaged
with the previous ones (damping helps AMP on small, non-asymptotic systems).

Run: ``python examples/compose_a_detector.py``.
"""
from gnnmimo.blocks.amp import AMPLinear
from gnnmimo.blocks.base import State
from gnnmimo.blocks.denoiser import Denoiser, prior_state
from gnnmimo.detector import UnrolledDetector
from gnnmimo.evaluation import evaluate
from gnnmimo.graph import MIMOGraph
from gnnmimo.report import markdown_table
from gnnmimo.sampling import MIMOSampler
from gnnmimo.testing import assert_batch_independent, assert_permutation_equivariant

import zoo


class DampedAMP(UnrolledDetector):
    """``T × [AMP linear step, denoiser, damping β on (mean, var)]``."""

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


def main() -> None:
    sampler = MIMOSampler(nr=8, nt=(2, 8), qam=16, snr_db=(10.0, 25.0))
    graph = sampler.sample(64, sampler.generator(0))
    detector = DampedAMP(16)
    assert_permutation_equivariant(detector, graph)   # raises with a diagnosis if not
    assert_batch_independent(detector, graph)
    print("DampedAMP is permutation equivariant and batch independent on a mixed 8×(2..8) batch\n")

    detectors = {"mmse": zoo.create("mmse", 16), "amp": zoo.create("amp", 16),
                 "damped-amp": detector, "ep": zoo.create("ep", 16)}
    results = evaluate(detectors, sampler, nts=[4, 8], snrs_db=[14.0, 20.0],
                       target_errors=200, max_symbols=100_000, batch_size=1000)
    print(markdown_table(results))


if __name__ == "__main__":
    main()
