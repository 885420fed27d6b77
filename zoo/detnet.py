r"""DetNet (Samuel, Diskin, Wiesel, "Deep MIMO detection", SPAWC 2017), one-hot version.

A projected gradient descent unfolded into ``T`` fully connected layers, on
the real-valued equivalent (``n = 2Nt`` unknowns, real unknown ``k < Nt``
is ``Re x_k``, ``Nt + k`` is ``Im x_k``; :mod:`gnnmimo.blocks.real`). From
``x̂_0 = 0``, ``v_0 = 0``, ``o_0 = 0``, layer ``k = 1 … T`` computes

.. math::
    q_k &= \hat x_{k-1} - \delta_{1k} H^{\mathsf T}y + \delta_{2k} H^{\mathsf T}H\hat x_{k-1}
        &&[B, n]\\
    z_k &= \operatorname{ReLU}(W_{1k} [q_k; v_{k-1}] + b_{1k}) &&[B, d_z]\\
    o_k &= \beta\, o_{k-1} + (1-\beta)(W_{2k} z_k + b_{2k}) &&[B, n, P]\\
    v_k &= \beta\, v_{k-1} + (1-\beta)(W_{3k} z_k + b_{3k}) &&[B, d_v]\\
    \hat x_k &= \textstyle\sum_p o_{k,\cdot p}\, A_p &&[B, n]

with ``A`` the √M-PAM alphabet (``P = √M`` points): ``o_k`` is the one-hot
estimate of every real unknown, ``x̂_k`` its soft symbol, and ``o_k`` is
also the layer's per-dimension PAM logits, whose sums give the symbol
logits (:meth:`QAM.symbol_logits_from_pam`). Sizes (the paper's):
``T = 3Nt`` layers (RE-MIMO's comparison), ``d_z = 8Nt``, ``d_v = 2Nt``.

**Residual damping** ``β = 0.9``: "0.9 on the previous value", as in the
authors' code (``res_alpha = 0.9``: ``x_k = 0.1·new + 0.9·x_{k-1}``, same for
``v``). We damp the one-hot ``o_k``; ``x̂_k`` is linear in it, so ``x̂_k`` is
damped the same way and stays the soft symbol of ``o_k``.

**Loss** (the paper's, as in the authors' code):
``Σ_k log(k) ‖x − x̂_k‖² / ‖x − x̃‖²`` per instance, averaged, with ``x̃``
the ZF estimate ``(HᵀH)⁻¹Hᵀy`` (:func:`gnnmimo.losses.symbol_mse_loss`);
``log 1 = 0``, so the first layer is trained only through the later ones.

**Initialisation.** ``δ1 = δ2 = −1``, so ``q_1 = Hᵀy`` and ``q_k`` is a unit
gradient step ``x̂ + Hᵀ(y − Hx̂)`` (``HᵀH`` has unit mean diagonal under the
library's channel normalisation); the affine maps have PyTorch's default
initialisation. The authors fold ``δ`` into ``W_1`` (their layer input is
``[Hᵀy; x̂; HᵀHx̂; v]``). As in the paper, two parameters never get a
gradient: ``δ2`` of layer 1 (it multiplies ``HᵀH x̂_0 = 0``) and the last
layer's ``W_3, b_3`` (``v_T`` feeds nothing).

**Fixed sizes, no symmetry.** The layers are fully connected across the
``2Nt`` real unknowns, so a model serves one ``(Nr, Nt)`` (the same in every
instance of a batch, never mixed), and it is *not* permutation equivariant:
relabelling the users changes its outputs. That is DetNet; it is the
negative control of :func:`gnnmimo.testing.assert_permutation_equivariant`.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gnnmimo.blocks.base import State
from gnnmimo.blocks.real import real_system, users_from_real, users_to_real
from gnnmimo.linalg import solve_spd
from gnnmimo.constellation import QAM
from gnnmimo.graph import MIMOGraph
from gnnmimo.losses import symbol_mse_loss
from gnnmimo.registry import register
from zoo.unfolded import UnfoldedDetector

#: weight ``β`` of the previous layer's ``o`` and ``v`` (the paper's residual damping)
DAMPING = 0.9


class DetNetLayer(nn.Module):
    """One DetNet layer before damping: ``(Hᵀy, HᵀH, x̂, v) → (W2 z + b2, W3 z + b3)`` (see module doc).

    Args:
        unknowns: ``n = 2Nt``.
        pam_size: ``P``, the one-hot width per unknown.
        hidden: ``d_z``.
        v_size: ``d_v``.
    """

    def __init__(self, unknowns: int, pam_size: int, hidden: int, v_size: int):
        super().__init__()
        self.delta1 = nn.Parameter(torch.tensor(-1.0))
        self.delta2 = nn.Parameter(torch.tensor(-1.0))
        self.hidden = nn.Linear(unknowns + v_size, hidden)
        self.onehot = nn.Linear(hidden, unknowns * pam_size)
        self.v = nn.Linear(hidden, v_size)
        self.pam_size = pam_size

    def forward(self, matched_filter: Tensor, gram: Tensor, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """``Hᵀy [B, n]``, ``HᵀH [B, n, n]``, ``x̂ [B, n]``, ``v [B, d_v]`` → ``([B, n, P], [B, d_v])``."""
        q = x - self.delta1 * matched_filter + self.delta2 * (gram @ x[..., None])[..., 0]
        z = torch.relu(self.hidden(torch.cat([q, v], -1)))
        return self.onehot(z).unflatten(-1, (-1, self.pam_size)), self.v(z)


@register("detnet")
class DetNet(UnfoldedDetector):
    """DetNet for one ``(Nr, Nt)`` (see module doc); returns the one-hot logits after each layer.

    Args:
        qam: the constellation.
        nr, nt: the receive antennas and users of every instance (required; ``Nt ≤ Nr``,
            for the ZF-normalised loss).
        iterations: layers ``T`` (default ``3·nt``).
        hidden: width ``d_z`` of ``z_k`` (default ``8·nt``).
        v_size: width ``d_v`` of ``v_k`` (default ``2·nt``).

    Attributes:
        hparams (dict): the resolved options; ``DetNet(qam, **hparams)`` rebuilds it.

    State keys: ``mean [N_u, 2]`` (``x̂_k``), ``pam_logits [N_u, 2, P]`` (``o_k``),
    ``logits [N_u, M]`` and the per-instance ``v [B, d_v]``.
    """

    supports_mixed_antennas = False

    def __init__(self, qam: QAM | int, nr: int | None = None, nt: int | None = None,
                 iterations: int | None = None, hidden: int | None = None, v_size: int | None = None):
        if nr is None or nt is None:
            raise ValueError("DetNet needs nr and nt (its layers are fully connected over the 2·Nt real "
                             "unknowns), e.g. zoo.create('detnet', 4, nr=8, nt=4)")
        iterations = 3 * nt if iterations is None else iterations
        super().__init__(qam, iterations)
        self.hparams = {"nr": nr, "nt": nt, "iterations": iterations,
                        "hidden": 8 * nt if hidden is None else hidden,
                        "v_size": 2 * nt if v_size is None else v_size}
        if min(nt, self.hparams["hidden"], self.hparams["v_size"]) < 1 or not nt <= nr:
            raise ValueError(f"DetNet needs 1 <= nt <= nr (its loss is normalised by the ZF error) and "
                             f"hidden, v_size >= 1, got {self.hparams}")
        self.nr, self.nt = nr, nt
        self.layers = nn.ModuleList(
            DetNetLayer(2 * nt, self.qam.pam_size, self.hparams["hidden"], self.hparams["v_size"])
            for _ in range(iterations))

    @property
    def dtype(self) -> torch.dtype:
        """The parameters' dtype, which DetNet computes in."""
        return self.layers[0].delta1.dtype

    def check_input(self, graph: MIMOGraph) -> None:
        super().check_input(graph)
        wrong = ((graph.num_users != self.nt) | (graph.num_antennas != self.nr)).nonzero()[:, 0]
        if wrong.numel():
            b = int(wrong[0])
            raise ValueError(f"DetNet was built for Nt={self.nt}, Nr={self.nr} (fully connected across users: "
                             f"one size, never mixed) but instance {b} has Nt={int(graph.num_users[b])}, "
                             f"Nr={int(graph.num_antennas[b])} ({wrong.numel()} such instances)")

    def initial_state(self, graph: MIMOGraph) -> State:
        num_users, device = graph.user_batch.numel(), graph.user_batch.device
        zeros = lambda *shape: torch.zeros(*shape, dtype=self.dtype, device=device)
        return {"mean": zeros(num_users, 2), "pam_logits": zeros(num_users, 2, self.qam.pam_size),
                "v": zeros(graph.num_instances, self.hparams["v_size"])}

    def layer(self, graph: MIMOGraph, state: State, t: int) -> State:
        system = real_system(graph, self.dtype)
        onehot, v = self.layers[t](system.matched_filter, system.gram, users_to_real(graph, state["mean"]),
                                   state["v"])
        # [B, n, P] → [B, Nt, 2, P] (Re and Im of each user) → per user [N_u, 2, P]
        onehot = graph.users_from_dense(onehot.unflatten(1, (2, -1)).transpose(1, 2))
        pam_logits = DAMPING * state["pam_logits"] + (1 - DAMPING) * onehot
        return {"mean": pam_logits @ self.qam.pam_as(pam_logits), "pam_logits": pam_logits,
                "logits": self.qam.symbol_logits_from_pam(pam_logits[:, 0], pam_logits[:, 1]),
                "v": DAMPING * state["v"] + (1 - DAMPING) * v}

    def loss(self, graph: MIMOGraph) -> Tensor:
        """``Σ_k log(k) ‖x − x̂_k‖² / ‖x − x̃_ZF‖²``, averaged over instances (see module doc)."""
        means = self.estimates(graph)
        system = real_system(graph, self.dtype)
        zero_forcing = users_from_real(graph, solve_spd(system.gram, system.matched_filter[..., None])[..., 0])
        weights = torch.arange(1, self.iterations + 1, dtype=means.dtype, device=means.device).log()
        return symbol_mse_loss(means, graph, self.qam, weights, reference=zero_forcing)
