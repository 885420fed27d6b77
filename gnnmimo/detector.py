"""The interface every detector implements.

A detector is a :class:`torch.nn.Module` that maps a
:class:`~gnnmimo.graph.MIMOGraph` to a :class:`Detection`. Subclasses
implement :meth:`Detector.iterate`, which returns the logits over the
constellation after each of its ``T`` iterations (``T = 1`` for one-shot
detectors); everything else — probabilities, hard decisions, bit LLRs —
follows from the last logits, in one place.

What every detector declares (the contract the registry, checkpoints,
training and the property checks rely on):

* **its options**: :attr:`Detector.hparams`, the constructor's arguments
  bound against its signature with defaults applied (except ``qam``),
  recorded for every detector however it was built, so that
  ``type(d)(d.qam, **d.hparams)`` rebuilds the architecture. A constructor
  that resolves presets (RE-MIMO's ``config="paper"``) assigns the resolved
  dict to ``self.hparams`` instead;
* **its own loss**, if it has one: :meth:`Detector.loss` (default ``None``:
  train on the logits);
* **its capabilities**: :attr:`supports_mixed_antennas`,
  :attr:`needs_users_at_most_antennas`, checked once in
  :meth:`Detector.check_input` (detectors whose parameters fix ``Nr`` or
  ``Nt`` extend ``check_input``);
* **whether it uses the channel-estimation error variance** a batch may carry
  (:attr:`Detector.uses_error_variance`: the batch is then replaced by
  :meth:`MIMOGraph.error_in_noise <gnnmimo.graph.MIMOGraph.error_in_noise>`, the error
  folded into per-antenna noise, before :meth:`Detector.iterate`; the others see ``Ĥ`` as
  exact; the table per detector: docs/conventions.md §2.4);
* **where its work explodes**, if it does: :meth:`Detector.excessive_work`
  (default ``None``; the exact ML search and SDR say when), asked by the
  command line before any work;
* **one precision policy**: a detector computes in whatever precision its
  blocks need (classical solves may run in float64 by option, learned parts
  in their parameters' dtype, each block casting its own inputs), and
  :meth:`Detector.forward` returns logits in the batch's real dtype, so a
  float64 batch gives float64 outputs from every detector. On top of that,
  :attr:`Detector.precision` (``"fp32"``, ``"bf16"``, ``"fp16"``; set with
  :meth:`Detector.set_precision`) lets the learned blocks' matrix products
  run under autocast while the classical blocks stay in the batch's dtype
  (:mod:`gnnmimo.precision`). It is a run-time choice, like the device, and
  not part of the checkpointed options.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Iterator

import torch
from torch import Tensor, nn

from gnnmimo.blocks.base import State
from gnnmimo.constellation import QAM
from gnnmimo.graph import MIMOGraph
from gnnmimo.precision import autocast, check_precision


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


def _recording_options(init):
    """Wrap a detector's ``__init__`` so that the outermost call records its bound arguments."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if "_hparams" in self.__dict__:  # a parent's __init__ called through super()
            return init(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        object.__setattr__(self, "_hparams", None)
        init(self, *args, **kwargs)
        if self._hparams is None:
            self._hparams = _options_of(bound)

    return __init__


def _options_of(bound: inspect.BoundArguments) -> dict:
    """Bound constructor arguments as keyword options (``**kwargs`` merged; ``self``, ``qam`` left out)."""
    options = {}
    for name, value in list(bound.arguments.items())[1:]:
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            options.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                options[f"*{name}"] = value  # cannot be passed by keyword: refused at save time
        elif name != "qam":
            options[name] = value
    return options


class Detector(nn.Module):
    """Base class of all detectors (the contract: module doc).

    Args:
        qam: the constellation the detector decides on (order or :class:`QAM`).

    Calling a detector validates the batch (finite ``y``, ``H``, σ² > 0, the
    same constellation when the batch names one, the capabilities below) and
    runs :meth:`iterate`.
    """

    #: the :mod:`gnnmimo.train.recipes` recipe ``gnnmimo train`` defaults to for this family
    training_recipe: ClassVar[str] = "paper"
    #: whether the detector accepts batches with different Nr per instance
    supports_mixed_antennas: ClassVar[bool] = True
    #: whether every instance must have Nt <= Nr (a full-column-rank channel)
    needs_users_at_most_antennas: ClassVar[bool] = False
    #: appended to the error for an instance with Nt > Nr (e.g. what to use instead)
    users_at_most_antennas_hint: ClassVar[str] = ""
    #: whether the detector folds a batch's channel-estimation error variance into its noise (module doc)
    uses_error_variance: ClassVar[bool] = False
    #: the detector's name in error messages (default: the class name)
    display_name: ClassVar[str | None] = None
    #: the stem of the checkpoint a loaded detector came from (set by the checkpoint loader)
    checkpoint_label: str | None = None
    #: the stored configuration of that checkpoint (``system``, ``training``, ``library_version``, ``path``,
    #: the file's ``sha256``, and ``source``, the path or pretrained name given to ``zoo.load``)
    checkpoint: dict | None = None
    #: the precision of the learned blocks' matrix products (:meth:`set_precision`)
    precision: str = "fp32"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_options(cls.__dict__["__init__"])

    def __init__(self, qam: QAM | int):
        super().__init__()
        self.qam = qam if isinstance(qam, QAM) else QAM(qam)

    @property
    def hparams(self) -> dict[str, Any]:
        """The resolved constructor options: ``type(self)(self.qam, **self.hparams)`` rebuilds it."""
        return dict(self.__dict__.get("_hparams") or {})

    @hparams.setter
    def hparams(self, options: dict[str, Any]) -> None:
        object.__setattr__(self, "_hparams", dict(options))

    @classmethod
    def option_names(cls) -> list[str]:
        """The keyword options the constructor takes (all but ``qam``)."""
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return [p.name for p in parameters if p.name != "qam"
                and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]

    @classmethod
    def takes_any_option(cls) -> bool:
        """Whether the constructor takes ``**options``."""
        return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())

    def set_precision(self, precision: str) -> "Detector":
        """Run the learned blocks in ``precision`` (``"fp32"``, ``"bf16"``, ``"fp16"``:
        :mod:`gnnmimo.precision`) from now on; returns the detector. Raises ``ValueError`` for
        another name or for a detector without parameters (a reduced precision is for learned
        parts), and warns where it would be slow (:func:`~gnnmimo.precision.check_precision`).

        Blocks declare whether they may run in reduced precision; a detector whose
        :meth:`iterate` computes outside blocks (DetNet) runs all of that under autocast."""
        parameter = next(self.parameters(), None)
        check_precision(precision, parameter.device if parameter is not None else None)
        if precision != "fp32" and parameter is None:
            raise ValueError(f"{type(self).__name__} has no learned parts: precision {precision!r} would only "
                             "lower the precision of its classical maths")
        self.precision = precision
        return self

    def compile(self, dynamic: bool = True, **options) -> "Detector":
        """Compile :meth:`iterate` with ``torch.compile`` (``dynamic=True``: symbolic batch sizes and
        user counts, so mixed-Nt batches do not recompile per batch); returns the detector.

        Only :meth:`iterate` is compiled: the input checks of :meth:`forward` stay eager (they
        branch on the data). ``options`` go to ``torch.compile`` (e.g. ``mode="max-autotune"``). The
        first call compiles (seconds to minutes); what it gains per detector: docs/speed.md.
        """
        self._compiled_iterate = torch.compile(self.iterate, dynamic=dynamic, **options)
        return self

    def precision_context(self, graph: MIMOGraph):
        """The autocast context of :attr:`precision` on ``graph``'s device (for a detector's own loss)."""
        return autocast(self.precision, graph.noise_var.device)

    def loss(self, graph: MIMOGraph) -> Tensor | None:
        """The detector's own training objective on a labelled batch, or ``None`` (the default) to
        train on its per-iteration logits (:func:`gnnmimo.losses.detection_loss`)."""
        return None

    def forward(self, graph: MIMOGraph) -> Detection:
        self.check_input(graph)
        if self.uses_error_variance:
            graph = graph.error_in_noise()
        with self.precision_context(graph):
            logits = self.__dict__.get("_compiled_iterate", self.iterate)(graph)
        return Detection(logits.to(graph.noise_var.dtype), self.qam)

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
        if self.needs_users_at_most_antennas:
            self.require_users_at_most_antennas(graph, self.users_at_most_antennas_hint, self.display_name)

    def iterate(self, graph: MIMOGraph) -> Tensor:
        """Return ``[T, N_u, M]`` logits after each iteration."""
        raise NotImplementedError

    @property
    def soft_output(self) -> str:
        """What its logits (and so its bit LLRs) are, for the records of coded evaluations:
        ``"app"`` (the default: a posterior, LLRs by exact log-sum-exp over it), or how they are
        approximated (max-log over a candidate list, clipped at a floor)."""
        return "app"

    def excessive_work(self, nr: int, nt: int) -> str | None:
        """Why detecting ``Nr × Nt`` instances would take far longer than a user can expect — a
        sentence with a work estimate, e.g. ``"ml at Nt=16, 16-QAM searches 16^16 = 1.8e+19
        candidates per instance"`` — or ``None`` (the default: the cost is polynomial in the size).

        ``gnnmimo evaluate`` asks every detector for every ``Nt`` before any work and refuses
        the run unless ``--allow-slow``. A detector whose cost explodes (exponential search,
        one solver call per instance) overrides this, with its threshold in its docstring.
        """
        return None

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
        return torch.stack([state["logits"] for state in self.states(graph)])
