r"""RE-MIMO: recurrent, permutation-equivariant neural MIMO detection.

Pratik, Rao, Welling, "RE-MIMO: Recurrent and Permutation Equivariant
Neural MIMO Detection" (IEEE TSP 2021), sections III–IV. The detector is an
embedding followed by ``T`` encoder–predictor (EP) blocks with their own
parameters (not shared across blocks); each iteration is, in blocks of
:mod:`gnnmimo.blocks`,

=====================================  =====================================================
block                                  paper
=====================================  =====================================================
:class:`LikelihoodFeatures`            soft symbol ``z^{t-1}`` (eq. 18), ``δy = y − Hz``,
                                       normalised by ``√(2Nt)`` (§IV-B)
:class:`TransformerEncoderLayer`       ``s^t`` from ``φ^t = [s, x̂, δy/√(2Nt), h_i]`` (eq. 11, 22)
:class:`PointwiseMLP`                  ``x̂^t`` from ``ψ^t = [s^t, x̂, δy/√(2Nt), h_i, σ/√(2Nt)]``
                                       (eq. 12, 23), hidden ``d_ψ/2, d_ψ/4``
=====================================  =====================================================

preceded once by ``LikelihoodFeatures`` at ``x̂^0 = 0`` (or the LMMSE estimate, below) and the
:class:`Embedding` network (``s^0 = γ([y/√(2Nt), h_i, σ/√(2Nt), TE(Nt)]) √d_s``,
eq. 24–26). It returns the logits of every block, ``[T, N_u, M]``, for the
loss of eq. 13.

**Tokens.** The paper computes in the real-valued equivalent but its tokens
are the *complex users*: user ``i`` carries the real column
``[Re h_i; Im h_i]`` of ``H_r`` (``2Nr`` reals), the residual and ``y`` enter
as ``[Re; Im]`` (``2Nr`` reals), and the predictor classifies over the ``M``
complex constellation points (the authors' code does the same). So there
are ``Nt`` tokens per instance, one per user node of the graph, and
permuting the users permutes the tokens: the detector is exactly
permutation equivariant over complex users and handles any ``Nt`` (mixed
within a batch). The feature widths depend on ``Nr``: one model serves one
``Nr``, the same in every instance of a batch.

**Gradient feature (not in the paper).** With ``gradient=True`` the encoder
and predictor also get the scale-free likelihood-gradient step
``r_i = z_i + h_iᴴ δy / ‖h_i‖²`` (see :mod:`gnnmimo.blocks.likelihood`).
The paper hands the network only the components ``h_i`` and ``δy`` and lets
it learn their product, which costs many training steps (the authors ran
600k on a GPU); the explicit gradient lets small CPU-trained models pass
LMMSE within a few hundred steps. Default off: the published architecture.

**LMMSE starting estimate (not in the paper).** With ``start="lmmse"`` the recursion starts
from the LMMSE estimate instead of ``x̂^0 = 0``: the initial logits are LMMSE's Gaussian scores
``−|z_i − s|²/ν_i`` (:func:`gnnmimo.equalization.lmmse_equalize`), so ``z^0`` is the posterior mean
of the LMMSE output, the first residual is ``y − H z^0`` instead of ``y``, and the first encoder
sees those logits. The network then refines a linear estimate instead of building one (one
``Nt × Nt`` solve per instance, before the first block). Default ``"zero"``: the paper.

Sizes: ``d_φ = d_s + M + 4Nr`` (``+2`` with ``gradient``), ``d_ψ = d_φ + 1``; attention heads have
``d_k = d_v = ⌈d_φ/H⌉``; the feed-forward width is ``4 d_s``. The paper's
configuration (``Nr = 64``, ``d_s = 512``, 8 heads, 12 blocks for 16-QAM;
it used 16 blocks for 64-QAM and correlated channels) is the preset
``config="paper"``::

    zoo.create("remimo", 16, config="paper")            # or REMIMO.paper(16)
    zoo.create("remimo", 4, nr=16, d_model=128, blocks=6)
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor, nn

from gnnmimo.blocks.base import State
from gnnmimo.blocks.embedding import Embedding
from gnnmimo.blocks.likelihood import LikelihoodFeatures
from gnnmimo.blocks.mlp import PointwiseMLP
from gnnmimo.blocks.transformer import TransformerEncoderLayer
from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector
from gnnmimo.equalization import lmmse_equalize
from gnnmimo.graph import MIMOGraph
from gnnmimo.registry import register

#: named configurations; explicit options override them
PRESETS = {
    "paper": dict(nr=64, d_model=512, heads=8, blocks=12),
}
#: values of the options neither given nor set by a preset
DEFAULTS = dict(d_model=128, heads=4, blocks=6, te_dim=None, attention="dense", gradient=False, start="zero")
#: the starting estimates x̂^0 (module doc)
STARTS = ("zero", "lmmse")
#: state keys forming the encoder input φ (eq. 22) and the predictor input ψ (eq. 23)
ENCODER_INPUTS = ("hidden", "logits", "residual", "channel")
PREDICTOR_INPUTS = ENCODER_INPUTS + ("noise",)


@register("remimo")
class REMIMO(Detector):
    """RE-MIMO (see module doc).

    Args:
        qam: the constellation.
        nr: receive antennas ``Nr`` (required unless a preset sets it).
        d_model: state width ``d_s``.
        heads: attention heads.
        blocks: number of EP blocks ``T``.
        te_dim: width of the transmitter-count encoding (default ``Nr``).
        attention: ``"dense"`` (padded fast path) or ``"graph"`` (``MessagePassing``);
            same parameters, same numbers.
        gradient: also feed the likelihood-gradient step ``r_i`` (not in the paper).
        start: ``"zero"`` (``x̂^0 = 0``, the paper) or ``"lmmse"`` (the LMMSE estimate; not in
            the paper, module doc).
        config: a preset name from :data:`PRESETS` (``"paper"``).

    Attributes:
        hparams (dict): the resolved options; ``REMIMO(qam, **hparams)`` rebuilds
            the same architecture (checkpoints store it).
    """

    supports_mixed_antennas = False

    def __init__(self, qam: QAM | int, nr: int | None = None, d_model: int | None = None,
                 heads: int | None = None, blocks: int | None = None, te_dim: int | None = None,
                 attention: str | None = None, gradient: bool | None = None, start: str | None = None,
                 config: str | None = None):
        super().__init__(qam)
        if config is not None and config not in PRESETS:
            raise ValueError(f"unknown RE-MIMO config {config!r}; presets: {sorted(PRESETS)}")
        given = dict(nr=nr, d_model=d_model, heads=heads, blocks=blocks, te_dim=te_dim, attention=attention,
                     gradient=gradient, start=start)
        base = {"nr": None, **DEFAULTS, **PRESETS.get(config, {})}
        self.hparams = {key: base[key] if value is None else value for key, value in given.items()}
        nr, d_model, heads, blocks = (self.hparams[k] for k in ("nr", "d_model", "heads", "blocks"))
        if nr is None:
            raise ValueError("RE-MIMO needs nr (its inputs are 2·Nr wide), e.g. "
                             "zoo.create('remimo', 16, nr=16) or config='paper'")
        if min(nr, d_model, heads, blocks) < 1:
            raise ValueError(f"nr, d_model, heads and blocks must be >= 1, got {self.hparams}")
        if self.hparams["start"] not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {self.hparams['start']!r}")
        self.nr = nr
        order = self.qam.order
        extra = ("obs_mean",) if self.hparams["gradient"] else ()
        encoder_width = d_model + order + 4 * nr + 2 * len(extra)      # d_φ, eq. 22
        predictor_width = encoder_width + 1                             # d_ψ, eq. 23
        self.likelihood = LikelihoodFeatures(self.qam)
        self.embedding = Embedding(nr, d_model, self.hparams["te_dim"])
        self.encoders = nn.ModuleList(
            TransformerEncoderLayer(encoder_width, d_model, heads, attention=self.hparams["attention"],
                                    inputs=ENCODER_INPUTS + extra)
            for _ in range(blocks))
        self.predictors = nn.ModuleList(PointwiseMLP(predictor_width, order, inputs=PREDICTOR_INPUTS + extra)
                                        for _ in range(blocks))

    @classmethod
    def paper(cls, qam: QAM | int = 16, **overrides) -> "REMIMO":
        """The paper's configuration (``Nr = 64``, ``d_s = 512``, 8 heads, 12 blocks)."""
        return cls(qam, config="paper", **overrides)

    def check_input(self, graph: MIMOGraph) -> None:
        super().check_input(graph)
        wrong = graph.num_antennas != self.nr
        if wrong.any():
            raise ValueError(f"RE-MIMO was built for Nr={self.nr} (its inputs are 2·Nr wide) but the "
                             f"batch has Nr in {sorted(graph.num_antennas[wrong].unique().tolist())}")

    def states(self, graph: MIMOGraph) -> Iterator[State]:
        """The state after each EP block: ``logits``, ``hidden``, ``attention``, features.

        ``[s["attention"] for s in detector.states(graph)]`` gives the attention
        weights ``[N_u, heads, Nt_max]`` of every block; :meth:`attention_maps` arranges them
        per instance.
        """
        self.check_input(graph)
        dtype = next(self.parameters()).dtype
        if self.hparams["start"] == "lmmse":
            logits = self.qam.gaussian_logits(*lmmse_equalize(graph)).to(dtype)
        else:
            logits = torch.zeros(graph.user_batch.numel(), self.qam.order, dtype=dtype,
                                 device=graph.user_batch.device)
        state = self.embedding(graph, self.likelihood(graph, {"logits": logits}))
        for t, (encoder, predictor) in enumerate(zip(self.encoders, self.predictors)):
            if t:
                state = self.likelihood(graph, state)
            state = predictor(graph, encoder(graph, state))
            yield state

    def attention_maps(self, graph: MIMOGraph) -> Tensor:
        """The attention weights of every block as one matrix per instance (RE-MIMO's Fig. 12).

        Returns:
            ``[T, B, heads, Nt_max, Nt_max]``: entry ``[t, b, h, i, j]`` is ``α_ij``, the weight
            user ``i`` of instance ``b`` puts on user ``j`` in head ``h`` of block ``t + 1``
            (eq. 20); each real row sums to 1 over the instance's users, padded rows and columns
            are 0. Computed without gradients.
        """
        with torch.no_grad():
            weights = torch.stack([state["attention"] for state in self.states(graph)])   # [T, N_u, H, Nt_max]
        blocks, _, heads, nt_max = weights.shape
        maps = weights.new_zeros(blocks, graph.num_graphs, nt_max, heads, nt_max)
        maps[:, graph.user_batch, graph.user_index] = weights
        return maps.transpose(2, 3)

    def iterate(self, graph: MIMOGraph) -> Tensor:
        return torch.stack([state["logits"] for state in self.states(graph)])
