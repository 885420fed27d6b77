"""The block contract.

A detector iteration is a short sequence of blocks. Every block has the same
call::

    state = block(graph, state)

* ``graph``: the :class:`~gnnmimo.graph.MIMOGraph` batch (read-only: a block
  never adds to it; derived quantities such as the user graph come from
  :meth:`MIMOGraph.user_edges` and :meth:`MIMOGraph.memoised`);
* ``state``: a :class:`State`, a dict of per-user tensors whose first
  dimension is ``N_u`` (all users of the batch, PyG node order), plus
  optional per-iteration extras.

A block returns a *new* state holding every key it was given plus the keys it
writes (it never mutates its input), so blocks compose freely and any block
can be swapped for another that reads and writes the same keys.

**Declared keys, checked.** Every block has three key sets, checked by
:meth:`Block.forward` on every call (set operations on a handful of keys):

* :attr:`Block.reads`: the keys it needs; one missing from the state raises
  ``KeyError`` naming the block, the missing keys and the keys present;
* :attr:`Block.optional_reads`: keys it uses when present and does without
  otherwise (e.g. EP's site parameters, absent before the first iteration);
* :attr:`Block.writes`: exactly the keys :meth:`Block.update` returns; a key
  returned but not declared, or declared but not returned, raises
  :class:`BlockContractError` naming the block and the keys.

A subclass declares its defaults in the class variables ``default_reads``,
``default_optional_reads`` and ``default_writes``. A block whose keys depend on
its options (an MLP over chosen inputs, a GNN with or without an observation
input) passes ``reads=``, ``optional_reads=`` or ``writes=`` to
``Block.__init__``, which stores them on the instance. The properties
``reads``, ``optional_reads`` and ``writes`` give the instance's effective keys
(tuples, in the declared order); the class defaults stay as declared. These
sets are also what :class:`~gnnmimo.blocks.chain.Chain` checks the order of a
pipeline with, when it is built.

**Precision.** A block declares :attr:`Block.autocast`: learned blocks
(``True``) run under the detector's reduced precision, if any; classical
blocks (``False``, the default) always run in the batch's dtype, with
autocast off and bf16/fp16 inputs cast back up (:mod:`gnnmimo.precision`).

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

from typing import ClassVar, Iterable

from torch import Tensor, nn

from gnnmimo.graph import MIMOGraph
from gnnmimo.precision import active_autocast, full_precision, upcast

State = dict[str, Tensor]

#: the names that are per-instance properties of :class:`Block` (subclasses declare ``default_*``)
_KEY_SETS = ("reads", "optional_reads", "writes")


class BlockContractError(RuntimeError):
    """A block's :meth:`~Block.update` returned other keys than its declared :attr:`~Block.writes`."""


class Block(nn.Module):
    """Base class of blocks: ``forward(graph, state) -> state`` (see module doc).

    Subclasses declare ``default_reads``, ``default_optional_reads`` and
    ``default_writes`` and implement :meth:`update`, which returns exactly
    the keys it writes.

    Args:
        reads, optional_reads, writes: this instance's keys, when they differ
            from the class defaults (keyword-only; ``None`` keeps the default).

    Raises:
        ValueError: if a key set repeats a key, or a key is both read and
            optionally read.
    """

    default_reads: ClassVar[tuple[str, ...]] = ()
    default_optional_reads: ClassVar[tuple[str, ...]] = ()
    default_writes: ClassVar[tuple[str, ...]] = ()
    #: whether the matrix products of :meth:`update` may run in a detector's reduced precision
    #: (learned blocks); ``False`` (classical maths) runs them with autocast off, inputs upcast
    autocast: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        shadowed = [name for name in _KEY_SETS if name in vars(cls)]
        if shadowed:
            raise TypeError(f"{cls.__name__} sets {shadowed} as class attributes; declare "
                            f"{['default_' + name for name in shadowed]} instead (the former are "
                            f"each instance's effective keys)")

    def __init__(self, *, reads: Iterable[str] | None = None, optional_reads: Iterable[str] | None = None,
                 writes: Iterable[str] | None = None):
        super().__init__()
        given = {"reads": reads, "optional_reads": optional_reads, "writes": writes}
        for name, keys in given.items():
            keys = getattr(type(self), "default_" + name) if keys is None else tuple(keys)
            if len(set(keys)) != len(keys):
                raise ValueError(f"{type(self).__name__} declares {name} {keys} with a repeated key")
            given[name] = keys
        both = set(given["reads"]) & set(given["optional_reads"])
        if both:
            raise ValueError(f"{type(self).__name__} declares {sorted(both)} as reads and as optional reads")
        self._reads, self._optional_reads = given["reads"], given["optional_reads"]
        self._writes = given["writes"]
        self._write_set = frozenset(self._writes)

    @property
    def reads(self) -> tuple[str, ...]:
        """The keys this block needs in the state."""
        return self._reads

    @property
    def optional_reads(self) -> tuple[str, ...]:
        """The keys this block uses when the state has them."""
        return self._optional_reads

    @property
    def writes(self) -> tuple[str, ...]:
        """The keys :meth:`update` returns."""
        return self._writes

    def forward(self, graph: MIMOGraph, state: State) -> State:
        missing = [key for key in self._reads if key not in state]
        if missing:
            raise KeyError(f"{type(self).__name__} reads {missing} but the state only has "
                           f"{sorted(state)}; put a block that writes them before it")
        regions = () if self.autocast else active_autocast()
        if regions:
            with full_precision(regions):
                out = self.update(graph, upcast(state, graph.noise_var.dtype))
        else:
            out = self.update(graph, state)
        if out.keys() != self._write_set:
            undeclared, omitted = sorted(out.keys() - self._write_set), sorted(self._write_set - out.keys())
            raise BlockContractError(f"{type(self).__name__}.update must return exactly its writes "
                                     f"{list(self._writes)}; it returned undeclared {undeclared} and "
                                     f"omitted {omitted}")
        return {**state, **out}

    def update(self, graph: MIMOGraph, state: State) -> State:
        """The written keys (exactly :attr:`writes`) from ``graph`` and ``state``."""
        raise NotImplementedError
