"""The block contract.

A detector iteration is a short sequence of blocks. Every block has the same
call::

    state = block(graph, state)

* ``graph``: the :class:`~gnnmimo.graph.MIMOGraph` batch (read-only);
* ``state``: a :class:`State`, a dict of per-user tensors whose first
  dimension is ``N_u`` (all users of the batch, PyG node order), plus
  optional per-iteration extras.

A block returns a *new* state holding every key it was given plus the keys it
writes (it never mutates its input), so blocks compose freely and any block
can be swapped for another that reads and writes the same keys. Each block
names them in :attr:`Block.reads` and :attr:`Block.writes`; a missing key
raises a clear error naming the block.

Conventional keys (shapes for ``N_u`` users, ``M`` points, ``P = √M``):

=================  ==================  ==========================================
key                shape               meaning
=================  ==================  ==========================================
``mean``           ``[N_u, 2]``        posterior mean of (Re x_i, Im x_i)
``var``            ``[N_u, 2]``        posterior variance per real dimension
``obs_mean``       ``[N_u, 2]``        a Gaussian observation ``r = x + w`` (AMP's
                                       ``r_i``, EP's cavity mean ``t_i``)
``obs_var``        ``[N_u, 2]``        its variance (AMP's ``Σ_i``, EP's ``h_i²``)
``logits``         ``[N_u, M]``        unnormalised log-probabilities over symbols
``pam_logits``     ``[N_u, 2, P]``     per-dimension logits over the PAM alphabet
``hidden``         ``[N_u, d]``        a learned per-user embedding
=================  ==================  ==========================================
"""
from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from gnnmimo.graph import MIMOGraph

State = dict[str, Tensor]


class Block(nn.Module):
    """Base class of blocks: ``forward(graph, state) -> state``.

    Subclasses set :attr:`reads` / :attr:`writes` and implement :meth:`update`,
    which returns only the keys it writes.
    """

    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()

    def forward(self, graph: MIMOGraph, state: State) -> State:
        missing = [key for key in self.reads if key not in state]
        if missing:
            raise KeyError(f"{type(self).__name__} reads {missing} but the state only has "
                           f"{sorted(state)}; put a block that writes them before it")
        return {**state, **self.update(graph, state)}

    def update(self, graph: MIMOGraph, state: State) -> State:
        raise NotImplementedError
