r"""Tree-search detectors: K-best and exact ML (Schnorr–Euchner sphere decoder).

Both triangularise the real-valued model with :func:`gnnmimo.tree_search.triangularize`
(sorted QR by default) and search the tree of ``n = 2 Nt_max`` levels, one
PAM component per level, batched over instances with different ``Nt``
(padded users are trivial single-branch levels at the root, see
:mod:`gnnmimo.tree_search`). Both need ``Nt ≤ Nr`` in every instance.

Soft output is max-log over a list of full candidates ``x`` with squared
distances ``d(x) = ‖y − H x‖²``:

.. math::
    \mathrm{logit}_i(s) = -\frac{\min_{x \in \mathcal{L}:\, x_i = s} d(x) - \min_{x \in \mathcal{L}} d(x)}{\sigma^2},

clipped at ``−clip`` (also the value of symbols with no candidate in the
list, Sionna's ``List2LLRSimple`` convention for missing
counter-hypotheses). The hard decision is the best candidate.
"""
from __future__ import annotations

from torch import Tensor

from gnnmimo import tree_search
from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector
from gnnmimo.graph import MIMOGraph
from gnnmimo.registry import register


class TreeSearchDetector(Detector):
    """Common input check, triangularisation and list-to-logits step. A batch's channel-estimation
    error variance is folded into the noise first (per-antenna noise inflation:
    :meth:`~gnnmimo.graph.MIMOGraph.error_in_noise`), so the metric is the error-aware one.

    Args:
        qam: the constellation.
        ordering: ``"sorted"`` (SQRD: reliable components near the root) or
            ``"natural"``.
        clip: logit floor (nats below the best) for unlikely or missing symbols.
    """

    needs_users_at_most_antennas = True
    users_at_most_antennas_hint = " (a full-rank triangular model)"
    uses_error_variance = True

    def __init__(self, qam: QAM | int, ordering: str = "sorted", clip: float = 20.0):
        super().__init__(qam)
        if ordering not in tree_search.ORDERINGS:
            raise ValueError(f"unknown ordering {ordering!r}; use one of {tree_search.ORDERINGS}")
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        self.ordering = ordering
        self.clip = float(clip)

    @property
    def soft_output(self) -> str:
        return f"max-log over the candidate list, clipped at -{self.clip:g}"

    def logits(self, graph: MIMOGraph, metrics: Tensor) -> Tensor:
        """Per-user-and-symbol distances ``[B, Nt_max, M]`` → logits ``[1, N_u, M]``."""
        logits = tree_search.metrics_to_logits(metrics, graph.noise_var, self.clip)
        return graph.users_from_dense(logits)[None]


@register("kbest")
class KBest(TreeSearchDetector):
    r"""Real-valued K-best detector.

    Breadth-first search keeping the ``k`` best partial paths per instance
    (:func:`gnnmimo.tree_search.kbest_search`) on the sorted-QR tree; soft
    output is max-log over the final list of ``k`` leaves (module doc).

    ``k = 32`` by default: real-valued K-best detectors for 16-QAM in the
    literature keep K of the order of 10–64 paths (the more, the more
    streams); the measurements behind the default are in docs/baselines.md
    (``benchmarks/search_ser.py``). With
    ``k ≥ (√M)^{2Nt}`` (every leaf kept) the result is exact ML and the soft
    output exact max-log.

    Cost per instance: ``2 Nt`` levels, each ``k · √M`` candidates and a top-k.

    Args:
        qam: the constellation.
        k: paths kept per level (≥ 1).
        ordering, clip: see :class:`TreeSearchDetector`.
    """

    def __init__(self, qam: QAM | int, k: int = 32, ordering: str = "sorted", clip: float = 20.0):
        super().__init__(qam, ordering, clip)
        if int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k}")
        self.k = int(k)

    def iterate(self, graph: MIMOGraph) -> Tensor:
        model = tree_search.triangularize(graph.dense(), self.ordering)
        paths, dist = tree_search.kbest_search(model, self.qam, self.k)
        symbols = model.symbol_indices(paths, self.qam)                     # [B, L, Nt_max]
        return self.logits(graph, tree_search.list_metrics(symbols, dist, self.qam.order))


@register("ml")
class SphereDecoder(TreeSearchDetector):
    r"""Exact maximum-likelihood detection by a Schnorr–Euchner sphere decoder.

    Depth-first search with a shrinking radius, started at ``r² = ∞`` (so the
    first leaf is the Babai / ZF-SIC point), vectorised over the batch with
    one search state per instance (:func:`gnnmimo.tree_search.sphere_decode`).
    The decision is exactly ``argmin_x ‖y − Hx‖²``.

    Soft output: the ML point has logit 0 for its symbols; the other logits
    are max-log over the *leaves the search visited* (each visited leaf
    improved the radius), clipped at ``−clip``. This costs nothing extra but
    is not exact max-log: most counter-hypotheses are pruned and sit at
    ``−clip``. Use ``kbest`` with a large ``k`` for exact max-log LLRs.

    Run time depends on the SNR (the number of visited nodes grows at low
    SNR and with ``Nt``): meant for small systems (e.g. 8×4 16-QAM).
    :meth:`excessive_work` flags searches of more than
    ``2^MAX_SEARCH_BITS = 2^36 ≈ 6.9e10`` candidates ``M^Nt`` (16-QAM beyond
    Nt = 9, 4-QAM beyond 18, 64-QAM beyond 6, 256-QAM beyond 4): measured on one
    CPU core, 16-QAM took 0.15 s per instance at 8×8 and 10 dB (``2^32``), and more
    than 4 s per instance at 10×10 and 15 dB (``2^40``).
    """

    #: the largest search, in bits ``Nt · log2 M``, run without a warning (class doc)
    MAX_SEARCH_BITS = 36

    def excessive_work(self, nr: int, nt: int) -> str | None:
        if nt * self.qam.num_bits <= self.MAX_SEARCH_BITS:
            return None
        m = self.qam.order
        return (f"ml at Nt={nt}, {m}-QAM searches {m}^{nt} = {float(m) ** nt:.2g} candidates per instance (the "
                f"sphere decoder visits ever more of them as the SNR falls); beyond "
                f"2^{self.MAX_SEARCH_BITS} = {2.0 ** self.MAX_SEARCH_BITS:.2g} a run takes hours")

    def iterate(self, graph: MIMOGraph) -> Tensor:
        model = tree_search.triangularize(graph.dense(), self.ordering)
        return self.logits(graph, tree_search.sphere_decode(model, self.qam).leaf_metrics)
