"""The interface every detector implements.

A detector is a :class:`torch.nn.Module` that maps a
:class:`~gnnmimo.graph.MIMOGraph` to a :class:`Detection`. Subclasses
implement :meth:`Detector.iterate`, which returns the logits over the
constellation after each of its ``T`` iterations (``T = 1`` for one-shot
detectors); everything else — probabilities, hard decisions, bit LLRs —
follows from the last logits, in one place.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

import torch
from torch import Tensor, nn

from gnnmimo.blocks.base import State
from gnnmimo.constellation import QAM
from gnnmimo.graph import MIMOGraph


@dataclass
class Detection:
    """What a detector returns for a batch with ``N_u`` users in all.

    Attributes:
        logits: ``[T, N_u, M]`` unnormalised log-probabilities of each symbol
            after each iteration (RE-MIMO's loss, eq. 13, uses all of them).
        qam: the constellation.
    """

    logits: Tensor
    qam: QAM

    @property
    def final_logits(self) -> Tensor:
        """``[N_u, M]`` logits of the last iteration."""
        return self.logits[-1]

    @cached_property
    def probs(self) -> Tensor:
        """``[N_u, M]`` posterior symbol probabilities."""
        return self.final_logits.softmax(-1)

    @cached_property
    def hard(self) -> Tensor:
        """``[N_u]`` hard decisions (symbol indices)."""
        return self.final_logits.argmax(-1)

    def llr(self, method: str = "app") -> Tensor:
        """``[N_u, k]`` bit LLRs ``ln P(b=1)/P(b=0)``; see :meth:`QAM.bit_llrs`."""
        return self.qam.bit_llrs(self.final_logits, method)

    @property
    def hard_bits(self) -> Tensor:
        """``[N_u, k]`` bits of the hard decisions."""
        return self.qam.bits_of(self.hard)


class Detector(nn.Module):
    """Base class of all detectors.

    Args:
        qam: the constellation the detector decides on (order or :class:`QAM`).

    Calling a detector validates the batch (finite ``y``, ``H``, σ² > 0, the
    same constellation when the batch names one) and runs :meth:`iterate`.
    """

    #: whether the detector accepts batches with different Nr per instance
    supports_mixed_antennas: bool = True

    def __init__(self, qam: QAM | int):
        super().__init__()
        self.qam = qam if isinstance(qam, QAM) else QAM(qam)

    def forward(self, graph: MIMOGraph) -> Detection:
        self.check_input(graph)
        return Detection(self.iterate(graph), self.qam)

    def check_input(self, graph: MIMOGraph) -> None:
        """Raise ``ValueError`` if this detector cannot run on ``graph``."""
        if not isinstance(graph, MIMOGraph):
            raise TypeError(f"{type(self).__name__} takes a MIMOGraph, got {type(graph).__name__}")
        graph.validate()
        order = getattr(graph, "qam", None)
        if order is not None and order != self.qam.order:
            raise ValueError(f"{type(self).__name__} was built for {self.qam.order}-QAM but the "
                             f"batch carries {order}-QAM symbols")
        if not self.supports_mixed_antennas and (graph.num_antennas != graph.num_antennas[0]).any():
            raise ValueError(f"{type(self).__name__} needs the same Nr in every instance")

    def iterate(self, graph: MIMOGraph) -> Tensor:
        """Return ``[T, N_u, M]`` logits after each iteration."""
        raise NotImplementedError

    def require_users_at_most_antennas(self, graph: MIMOGraph, hint: str = "", name: str | None = None) -> None:
        """Raise ``ValueError`` naming the first instance with ``Nt > Nr`` (for detectors
        that need a full-column-rank channel); ``hint`` is appended to the message,
        ``name`` (default: the class name) starts it."""
        wide = (graph.num_users > graph.num_antennas).nonzero()[:, 0]
        if wide.numel():
            b = int(wide[0])
            raise ValueError(f"{name or type(self).__name__} needs Nt <= Nr, but instance {b} has "
                             f"Nt={int(graph.num_users[b])} > Nr={int(graph.num_antennas[b])} "
                             f"({wide.numel()} such instances){hint}")

    @torch.no_grad()
    def detect(self, graph: MIMOGraph) -> Detection:
        """Inference helper: ``forward`` without gradients."""
        return self(graph)


class UnrolledDetector(Detector):
    """An iterative detector: ``state = self.layer(graph, state, t)`` for ``t = 0 … T−1``.

    Subclasses compose :meth:`step` from blocks (parameters shared by all
    iterations) or, for per-iteration parameters (deep unfolding), override
    :meth:`layer`; each iteration must leave its symbol logits in
    ``state["logits"]``. :meth:`initial_state` gives the starting state
    (default: empty).

    Args:
        qam: the constellation.
        iterations: ``T``, at least 1.
    """

    def __init__(self, qam: QAM | int, iterations: int):
        super().__init__(qam)
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.iterations = iterations

    def initial_state(self, graph: MIMOGraph) -> State:
        return {}

    def step(self, graph: MIMOGraph, state: State) -> State:
        raise NotImplementedError

    def layer(self, graph: MIMOGraph, state: State, t: int) -> State:
        """Iteration ``t`` (``0 … T−1``); default: the shared :meth:`step`."""
        return self.step(graph, state)

    def states(self, graph: MIMOGraph) -> Iterator[State]:
        """The state after each iteration (the batch is not validated; :meth:`forward` does)."""
        state = self.initial_state(graph)
        for t in range(self.iterations):
            state = self.layer(graph, state, t)
            yield state

    def iterate(self, graph: MIMOGraph) -> Tensor:
        return torch.stack([state["logits"] for state in self.states(graph)]).to(graph.noise_var.dtype)
