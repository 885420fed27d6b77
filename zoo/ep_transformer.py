r"""EP-Transformer (hybrid, not from a paper): EP whose tilted posterior comes from a graph transformer.

GEPNet (:mod:`zoo.epgnn`) refines the EP cavity with a GNN on the
real-component MRF; here the refinement is RE-MIMO's graph-transformer
encoder layer over the complex users instead. Each of the ``T`` iterations is

``EPCavity → TransformerEncoderLayer([s_i, t_i, h_i²]) → PointwiseMLP → PAMPosterior → EPUpdate``:

user ``i``'s token is its state ``s_i`` (``d_s`` wide, zero at the start)
with its cavity mean and variance ``t_i, h_i² ∈ R²`` (Re, Im); self-attention
over the users of the instance updates ``s_i``, a pointwise MLP reads out
PAM logits for Re and Im, and their mean and variance drive the EP site
update. The transformer and readout are shared across iterations.

Unlike RE-MIMO it never sees ``H`` or ``y`` directly (the cavity summarises
them), so it is independent of ``Nr`` and runs on batches mixing ``Nt``
and ``Nr``; unlike GEPNet its interactions are learned attention weights,
not messages along the channel Gram.

**Correction** (``skip=True``, with ``refine`` and ``report`` as in EP-GNN): the readout
corrects the cavity's Gaussian instead of replacing it
(:class:`~gnnmimo.blocks.denoiser.ObservationCorrection`), from a zero last layer, so the
untrained model is EP; ``refine`` lets it shift and rescale the cavity, ``report`` gives the
reported posterior its own head. Without ``skip`` (the first shipped model) the readout's logits
are used alone and training starts from a random posterior.
"""
from __future__ import annotations

import torch

from gnnmimo.blocks import Block, Chain, State
from gnnmimo.blocks.denoiser import ObservationCorrection, PAMPosterior, ReportedPosterior
from gnnmimo.blocks.ep import EPCavity, EPUpdate
from gnnmimo.blocks.mlp import PointwiseMLP
from gnnmimo.blocks.transformer import TransformerEncoderLayer
from gnnmimo.constellation import QAM
from gnnmimo.detector import UnrolledDetector
from gnnmimo.graph import MIMOGraph
from gnnmimo.registry import register

#: the cavity keys appended to each user's token
CAVITY = ("obs_mean", "obs_var")


class CavityAsHidden(Block):
    """The cavity moments in the dtype of ``hidden``: the cavity may run in float64, the transformer
    in its parameters' dtype.

    :reads: ``hidden [N_u, d_s]``, ``obs_mean [N_u, 2]``, ``obs_var [N_u, 2]``.
    :writes: ``obs_mean``, ``obs_var``.
    """

    default_reads = ("hidden", *CAVITY)
    default_writes = CAVITY

    def update(self, graph: MIMOGraph, state: State) -> State:
        return {key: state[key].to(state["hidden"].dtype) for key in CAVITY}


@register("ep-transformer")
class EPTransformer(UnrolledDetector):
    """EP cavity + graph-transformer refinement (see module doc).

    Args:
        qam: the constellation.
        iterations: EP iterations ``T`` (default 10).
        d_model: token state width ``d_s`` (default 32).
        heads: attention heads (default 4).
        damping: EP damping ``β`` on the old sites (default 0.7, GEPNet's).
        double: run the EP cavity in float64 (default false; changes no weight, so it can be
            given with a checkpoint, as for :class:`zoo.epgnn.EPGNN`).
        skip: the readout corrects the cavity's Gaussian (module doc) instead of replacing it.
        refine: the correction also shifts and rescales the cavity (needs ``skip``).
        report: report the posterior of a second head (needs ``skip``).
    """

    training_recipe = "correction"

    def __init__(self, qam: QAM | int, iterations: int = 10, d_model: int = 32, heads: int = 4,
                 damping: float = 0.7, double: bool = False, skip: bool = False, refine: bool = False,
                 report: bool = False):
        super().__init__(qam, iterations)
        if (refine or report) and not skip:
            raise ValueError("refine and report need skip=True (they correct the cavity's Gaussian)")
        self.d_model = d_model
        self.cavity = EPCavity(double=double)
        self.encoder = TransformerEncoderLayer(d_model + 2 * len(CAVITY), d_model, heads,
                                               inputs=("hidden", *CAVITY))
        self.correction = ObservationCorrection(self.qam, refine, report) if skip else None
        if skip:
            self.readout = PointwiseMLP(d_model, self.correction.channels, inputs=("hidden",), output="correction")
            torch.nn.init.zeros_(self.readout.net[-1].weight)  # start as EP (module doc)
            torch.nn.init.zeros_(self.readout.net[-1].bias)
        else:
            self.readout = PointwiseMLP(d_model, 2 * len(self.qam.pam), inputs=("hidden",), output="pam_logits")
        self.posterior = PAMPosterior(self.qam)
        self.report = ReportedPosterior(self.qam) if report else None
        self.site_update = EPUpdate(damping)
        self.to_hidden_dtype = CavityAsHidden()
        blocks = (self.cavity, self.to_hidden_dtype, self.encoder, self.readout, self.correction, self.posterior,
                  self.report, self.site_update)
        self.chain = Chain(*(block for block in blocks if block is not None), given=("hidden",), register=False)

    def initial_state(self, graph: MIMOGraph) -> State:
        dtype = next(self.parameters()).dtype
        return {"hidden": torch.zeros(graph.user_batch.numel(), self.d_model, dtype=dtype,
                                      device=graph.user_batch.device)}

    def step(self, graph: MIMOGraph, state: State) -> State:
        return self.chain(graph, state)
