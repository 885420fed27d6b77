r"""Blocks composed in order, with the order checked when the pipeline is built.

A :class:`Chain` of blocks ``b_1 … b_n`` is the block
``state ↦ b_n(graph, … b_1(graph, state))``. Its keys follow from its
blocks' (:mod:`gnnmimo.blocks.base`): it writes what any of them writes, and
reads what a block reads before an earlier block has written it,

.. math::
    R = \bigcup_k \Big(R_k \setminus \bigcup_{j<k} W_j\Big),\qquad
    O = \bigcup_k \Big(O_k \setminus \bigcup_{j<k} W_j\Big) \setminus R,\qquad
    W = \bigcup_k W_k,

(``R_k``, ``O_k``, ``W_k`` the reads, optional reads and writes of ``b_k``).
Given the keys available at the start (``given=``, e.g. those of a
detector's initial state), the chain checks at construction that every
read is available, so a mis-ordered pipeline fails when it is built, not in
the middle of a forward pass. Keys carried across iterations (EP's sites,
the GNN's states) are optional reads of the block that starts them, so an
iterated chain needs them in no ``given``.

Example, a hybrid in a few lines: the OAMP linear step feeding the
pairwise-MRF GNN, iterated from the prior::

    from gnnmimo.blocks import Chain
    from gnnmimo.blocks.denoiser import PAMPosterior, prior_state
    from gnnmimo.blocks.gnn import PairwiseMRFGNN
    from gnnmimo.blocks.oamp import OAMPLinear

    chain = Chain(OAMPLinear(), PairwiseMRFGNN(16, observation=True, skip=True), PAMPosterior(16),
                  given=("mean", "var"))
    state = prior_state(graph)
    for _ in range(10):
        state = chain(graph, state)          # state["logits"]: [N_u, 16]

``Chain(PAMPosterior(16), PairwiseMRFGNN(16, observation=True), given=())``
raises ``ValueError: PAMPosterior (block 0 of the chain) reads 'pam_logits', which
neither an earlier block writes nor given= lists ()``.

**Ownership.** By default a chain registers its blocks as its submodules
``0 … n−1`` (as :class:`torch.nn.Sequential` does), so their parameters are
the chain's. With ``register=False`` it only refers to them: blocks that
already are submodules of another module, e.g. a detector's ``linear`` and
``denoiser``, keep their place (and their state-dict names) there, and are not
counted twice in its state dict.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from gnnmimo.blocks.base import Block, State
from gnnmimo.graph import MIMOGraph


class Chain(Block):
    """Blocks applied in order; itself a block (see module doc).

    Args:
        *blocks: the blocks, first applied first (at least one).
        given: the keys available at the start; when given, every read of a
            block must be written by an earlier block or be listed here.
            ``None`` (default): no check, :attr:`reads` says what the chain needs.
        register: register the blocks as submodules ``0 … n−1`` (default), or
            only refer to them (they are registered elsewhere).

    Raises:
        TypeError: if an element is not a :class:`Block`.
        ValueError: if there is no block, or (with ``given``) naming the first
            block that reads a key not available before it, and the key.
    """

    autocast = True  # each block of the chain decides for itself

    def __init__(self, *blocks: Block, given: Iterable[str] | None = None, register: bool = True):
        if not blocks:
            raise ValueError("a Chain needs at least one block")
        for k, block in enumerate(blocks):
            if not isinstance(block, Block):
                raise TypeError(f"Chain element {k} is a {type(block).__name__}, not a Block")
        given = None if given is None else tuple(given)
        written: set[str] = set()
        reads: dict[str, None] = {}          # ordered sets: keys in order of first use
        optional: dict[str, None] = {}
        writes: dict[str, None] = {}
        for k, block in enumerate(blocks):
            for key in block.reads:
                if key in written:
                    continue
                if given is not None and key not in given:
                    raise ValueError(f"{type(block).__name__} (block {k} of the chain) reads {key!r}, which "
                                     f"neither an earlier block writes nor given= lists {given}")
                reads[key] = None
            optional.update((key, None) for key in block.optional_reads if key not in written)
            written.update(block.writes)
            writes.update((key, None) for key in block.writes)
        super().__init__(reads=reads, optional_reads=(key for key in optional if key not in reads),
                         writes=writes)
        self._blocks = tuple(blocks)
        self.owns_blocks = register
        if register:
            for k, block in enumerate(blocks):
                self.add_module(str(k), block)

    def __len__(self) -> int:
        return len(self._blocks)

    def __iter__(self) -> Iterator[Block]:
        return iter(self._blocks)

    def __getitem__(self, k: int) -> Block:
        return self._blocks[k]

    def update(self, graph: MIMOGraph, state: State) -> State:
        for block in self._blocks:
            state = block(graph, state)
        return {key: state[key] for key in self.writes}

    def extra_repr(self) -> str:
        if self.owns_blocks:
            return ""
        return "refers to: " + " → ".join(type(block).__name__ for block in self._blocks)
