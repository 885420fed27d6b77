"""Hypothesis strategies for MIMO configurations and batches.

Two strategies cover most uses:

* :func:`mimo_configs` draws a :class:`~gnnmimo.sampling.MIMOSampler` — the
  antenna and user counts, the constellation, the channel law and the SNR;
* :func:`mimo_batches` draws a configuration, a batch size and a seed, and
  returns the :class:`~gnnmimo.graph.MIMOGraph` the sampler builds from them
  (vectorised, on the requested device).

Every argument narrows what is drawn and takes, as it fits:

* a **fixed value** (``nr=8``, ``qam=16``, ``snr_db=10.0``), used as is;
* a **range** ``(low, high)`` for the numeric arguments ``nr``, ``nt``,
  ``snr_db`` and ``batch_size``. For ``nr``, ``nt`` and ``snr_db`` the
  matching ``mixed_*`` flag decides how: when mixed, Hypothesis draws a
  sub-range ``low ≤ a ≤ b ≤ high`` and every instance of the batch draws its
  own value in ``[a, b]`` (so one batch mixes sizes or SNRs); otherwise one
  value in ``[low, high]`` is drawn for the whole batch;
* a **sequence of choices** for ``qam``, ``channels`` and ``precision``
  (``qam=[4, 16]``);
* a **strategy**, whose draws are passed to the sampler unchanged (for
  ``nr``/``nt``/``snr_db`` a draw may be a number or a ``(low, high)``
  per-instance range).

Example::

    from hypothesis import given
    from gnnmimo.testing import mimo_batches, assert_permutation_equivariant

    @given(mimo_batches(nr=8, nt=(1, 8), qam=16, channels="iid"))
    def test_my_detector(graph):
        assert_permutation_equivariant(MyDetector(16), graph)

Shrinking works on the drawn configuration (smaller counts, narrower
ranges, the first choice in a sequence) and on the seed.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from gnnmimo.channels import UNRESTRICTED_KINDS, ChannelModel
from gnnmimo.graph import MIMOGraph
from gnnmimo.sampling import MIMOSampler

DEFAULT_QAM = (4, 16, 64)
MAX_SEED = 2**31 - 1


# ------------------------------------------------------------ argument forms
def _is_range(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def ranged(value: Any, mixed: bool, integer: bool, name: str) -> SearchStrategy:
    """Normalise a numeric argument into a strategy of sampler arguments.

    ``value`` is a number (drawn as is), a range ``(low, high)`` (a sub-range
    when ``mixed``, else a single number inside it) or a strategy (unchanged).
    The strategy's draws are numbers or ``(low, high)`` per-instance ranges,
    the two forms :class:`~gnnmimo.sampling.MIMOSampler` accepts.
    """
    if isinstance(value, SearchStrategy):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return st.just(value)
    if not _is_range(value):
        raise TypeError(f"{name} must be a number, a (low, high) range or a strategy, got {value!r}")
    low, high = value
    if low > high:
        raise ValueError(f"{name}: empty range {low}..{high}")
    numbers = (st.integers(int(low), int(high)) if integer
               else st.floats(float(low), float(high), allow_nan=False, allow_infinity=False))
    if not mixed:
        return numbers
    return st.tuples(numbers, numbers).map(lambda pair: (min(pair), max(pair)))


def choice(value: Any, name: str) -> SearchStrategy:
    """A fixed value (``just``), a sequence of choices (``sampled_from``) or a strategy."""
    if isinstance(value, SearchStrategy):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            raise ValueError(f"{name}: no choices given")
        return st.sampled_from(list(value))
    return st.just(value)


def _low(count: int | tuple[int, int]) -> int:
    return count if isinstance(count, int) else count[0]


# --------------------------------------------------------------- strategies
# Arguments are checked when a strategy is built (a bad argument raises at once, not
# inside a Hypothesis run); the drawing happens in the inner composites.
def channel_models(kinds: str | Sequence[str] | SearchStrategy = UNRESTRICTED_KINDS,
                   rho: float | tuple[float, float] | SearchStrategy = (0.1, 0.9),
                   csi_error: float | tuple[float, float] | SearchStrategy = (0.0, 0.3),
                   mixed_rho: bool = False) -> SearchStrategy[ChannelModel]:
    """Strategy of :class:`~gnnmimo.channels.ChannelModel`.

    Args:
        kinds: the channel kinds to choose from (default ``"iid"``, ``"kronecker"``,
            ``"kronecker-rx"``: those that allow any ``Nt`` for any ``Nr``), one kind, or a strategy.
        rho: the exponential correlation coefficient of the correlated kinds,
            in ``(0, 1)``; a range draws one value, or with ``mixed_rho`` a
            sub-range ``(low, high)`` from which every instance draws its own
            ``ρ`` (triangular law, mode at ``high``). Unused for ``"iid"``.
        csi_error: ``ε²``, the relative channel-estimation error power.
        mixed_rho: draw a per-instance range of ``ρ`` instead of one value.
    """
    kind_strategy = choice(kinds, "kinds")
    rho_strategy = ranged(rho, mixed_rho, integer=False, name="rho")
    error_strategy = ranged(csi_error, False, integer=False, name="csi_error")

    @st.composite
    def draw_channel(draw) -> ChannelModel:
        kind = draw(kind_strategy)
        correlation = 0.0 if kind == "iid" else draw(rho_strategy)
        return ChannelModel(kind=kind, rho=correlation, csi_error=draw(error_strategy))

    return draw_channel()


def _channels(value: Any) -> SearchStrategy:
    """``channels`` argument → strategy of :class:`ChannelModel`."""
    if value is None:
        return channel_models()
    if isinstance(value, SearchStrategy):
        return value
    if isinstance(value, ChannelModel):
        return st.just(value)
    if isinstance(value, str):
        return channel_models(kinds=value)
    if isinstance(value, Sequence) and value:
        return st.one_of(*(_channels(item) for item in value))
    raise TypeError(f"channels must be a ChannelModel, a kind, a sequence of those or a strategy, "
                    f"got {value!r}")


def mimo_configs(nr: int | tuple[int, int] | SearchStrategy = (2, 16),
                 nt: int | tuple[int, int] | SearchStrategy | None = None,
                 qam: int | Sequence[int] | SearchStrategy = DEFAULT_QAM,
                 channels: str | ChannelModel | Sequence | SearchStrategy | None = None,
                 snr_db: float | tuple[float, float] | SearchStrategy = (0.0, 30.0),
                 mixed_nt: bool = True, mixed_nr: bool = False, mixed_snr: bool = True,
                 precision: str | Sequence[str] | SearchStrategy = "single",
                 device: str | torch.device = "cpu") -> SearchStrategy[MIMOSampler]:
    """Strategy of MIMO configurations, as the :class:`~gnnmimo.sampling.MIMOSampler` realising each.

    Args:
        nr: receive antennas ``Nr`` (per instance when ``mixed_nr``).
        nt: users ``Nt`` (per instance when ``mixed_nt``). Default
            ``(1, Nr_low)``, with ``Nr_low`` the smallest drawn ``Nr``, so
            that no instance is overloaded (``Nt ≤ Nr``, as ZF needs); pass a
            range explicitly to draw overloaded systems.
        qam: constellation order(s), from 4, 16, 64, 256.
        channels: the channel law: a :class:`~gnnmimo.channels.ChannelModel`,
            a kind (``"iid"``, ``"kronecker"``, ``"kronecker-rx"``) drawn
            with :func:`channel_models`, a sequence of those, or a strategy.
            Default: :func:`channel_models` with its defaults (all kinds,
            ``ρ ∈ [0.1, 0.9]``, ``ε² ∈ [0, 0.3]``).
        snr_db: the SNR in dB (docs/conventions.md §3, ``σ² = Nt/(Nr·10^{SNR/10})``).
        mixed_nt, mixed_nr, mixed_snr: draw the quantity per instance from a
            drawn sub-range (see the module doc) rather than once per batch.
        precision: ``"single"`` (complex64) or ``"double"`` (complex128).
        device: where the sampler builds its tensors.

    Raises:
        TypeError, ValueError: at once, for an argument of the wrong form.
    """
    nr_strategy = ranged(nr, mixed_nr, integer=True, name="nr")
    nt_strategy = None if nt is None else ranged(nt, mixed_nt, integer=True, name="nt")
    qam_strategy, channel_strategy = choice(qam, "qam"), _channels(channels)
    snr_strategy = ranged(snr_db, mixed_snr, integer=False, name="snr_db")
    precision_strategy = choice(precision, "precision")

    @st.composite
    def draw_config(draw) -> MIMOSampler:
        antennas = draw(nr_strategy)
        users = draw(nt_strategy if nt_strategy is not None
                     else ranged((1, _low(antennas)), mixed_nt, integer=True, name="nt"))
        return MIMOSampler(nr=antennas, nt=users, qam=draw(qam_strategy), snr_db=draw(snr_strategy),
                           channel=draw(channel_strategy), precision=draw(precision_strategy),
                           device=device)

    return draw_config()


def mimo_batches(nr: int | tuple[int, int] | SearchStrategy = (2, 16),
                 nt: int | tuple[int, int] | SearchStrategy | None = None,
                 qam: int | Sequence[int] | SearchStrategy = DEFAULT_QAM,
                 channels: str | ChannelModel | Sequence | SearchStrategy | None = None,
                 snr_db: float | tuple[float, float] | SearchStrategy = (0.0, 30.0),
                 batch_size: int | tuple[int, int] | SearchStrategy = (1, 8),
                 mixed_nt: bool = True, mixed_nr: bool = False, mixed_snr: bool = True,
                 precision: str | Sequence[str] | SearchStrategy = "single",
                 device: str | torch.device = "cpu") -> SearchStrategy[MIMOGraph]:
    """Strategy of batches of MIMO instances, as :class:`~gnnmimo.graph.MIMOGraph`.

    Draws a configuration with :func:`mimo_configs` (same arguments), a batch
    size ``B`` and a seed, and samples ``B`` instances ``y = Hx + n`` with
    their labels. The configuration, ``B`` and the seed are recorded with
    :func:`hypothesis.note`, so a failing example can be rebuilt with
    ``config.sample(B, config.generator(seed))``.

    Returns:
        a strategy of :class:`~gnnmimo.graph.MIMOGraph` of ``B`` instances:
        user nodes ``[N_u]`` with ``label``, antenna nodes ``[N_a]`` with
        ``y``, bipartite edges with ``h``, graph-level ``noise_var``,
        ``snr_db``, ``num_users`` and ``num_antennas`` ``[B]``.
    """
    configs = mimo_configs(nr=nr, nt=nt, qam=qam, channels=channels, snr_db=snr_db, mixed_nt=mixed_nt,
                           mixed_nr=mixed_nr, mixed_snr=mixed_snr, precision=precision, device=device)
    sizes = ranged(batch_size, False, integer=True, name="batch_size")

    @st.composite
    def draw_batch(draw) -> MIMOGraph:
        config, size, seed = draw(configs), draw(sizes), draw(st.integers(0, MAX_SEED))
        note(f"MIMO batch: {config!r}, batch_size={size}, seed={seed}")
        return config.sample(size, config.generator(seed))

    return draw_batch()
