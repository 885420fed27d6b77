r"""Interference-cancellation detectors: ordered MMSE-SIC (V-BLAST) and ZF + one-shot PIC.

Both end, per user, with a scalar Gaussian observation ``z_i = x_i + w_i``,
``w_i ~ CN(0, ν_i)``, scored by :meth:`QAM.gaussian_logits`
(``logit(s) = −|z_i − s|²/ν_i``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from gnnmimo import ops
from gnnmimo.graph import MIMOGraph
from zoo.linear import LinearDetector, ZeroForcing, hermitian_inverse
from zoo.registry import register


@register("vblast")
class VBLAST(LinearDetector):
    r"""Ordered successive interference cancellation with MMSE nulling (MMSE V-BLAST).

    Stage ``t = 1 … Nt`` over the set ``S`` of users not detected yet, with
    ``r`` the received vector after cancelling the users detected so far:

    * MMSE filter of ``S``: ``P = (H_Sᴴ H_S + σ² I)⁻¹``, bias
      ``μ_i = 1 − σ² P_ii`` and unbiased output ``z_i = [P H_Sᴴ r]_i / μ_i``
      with ``ν_i = (1 − μ_i)/μ_i = 1/SINR_i`` (post-detection SINR);
    * detect the user with the largest SINR (smallest ``σ² P_ii``), keep its
      ``(z_i, ν_i)`` as its soft output, decide ``x̂_i`` = nearest point;
    * cancel: ``r ← r − h_i x̂_i``, remove ``i`` from ``S``.

    ``P`` is computed once and *downdated* when a user leaves ``S`` (inverse
    of a Schur complement, Hassibi's square-root-free V-BLAST):
    ``P ← P − P_{:,i} P_{i,:} / P_ii``, which zeroes row and column ``i`` and
    leaves the inverse for the remaining users, at ``O(Nt²)`` per stage.

    The loop runs over ``Nt_max`` stages, vectorised over the batch; padded
    users are never in ``S`` (zero columns of ``H``: they decouple) and
    instances with fewer users stop updating once ``S`` is empty. Works for
    any ``Nt``, ``Nr`` (the MMSE filter is regularised).
    """

    def equalize(self, graph: MIMOGraph) -> tuple[Tensor, Tensor]:
        view = graph.dense()
        H, noise_var = view.H, view.noise_var
        batch, _, nt = H.shape
        rows = torch.arange(batch, device=H.device)
        eye = torch.eye(nt, dtype=H.dtype, device=H.device)
        P = hermitian_inverse(ops.dense_gram(H) + noise_var[:, None, None] * eye)
        tiny = torch.finfo(H.real.dtype).tiny
        remaining = view.user_mask.clone()
        residual = view.y
        z = H.new_zeros(batch, nt)
        nu = torch.ones_like(z.real)
        for _ in range(nt):
            live = remaining.any(1)
            if not live.any():
                break
            shortfall = (noise_var[:, None] * P.diagonal(dim1=-2, dim2=-1).real).clamp(tiny, 1.0)
            pick = shortfall.masked_fill(~remaining, float("inf")).argmin(1)          # [B]
            matched = ops.dense_matched_filter(H, residual) * remaining              # H_Sᴴ r, [B, Nt]
            gain = 1.0 - shortfall[rows, pick]
            z_pick = (P[rows, pick] * matched).sum(-1) / gain
            decided = self.qam.symbols(self.qam.nearest(z_pick), H.dtype)
            z[rows, pick] = torch.where(live, z_pick, z[rows, pick])
            nu[rows, pick] = torch.where(live, shortfall[rows, pick] / gain, nu[rows, pick])
            residual = residual - H[rows, :, pick] * (decided * live)[:, None]
            column = P[rows, :, pick]                                                  # [B, Nt]
            update = column[:, :, None] * P[rows, pick][:, None, :] / P[rows, pick, pick][:, None, None]
            P = torch.where(live[:, None, None], P - update, P)    # finished instances: 0/0 otherwise
            remaining[rows, pick] = False
        return graph.users_from_dense(z), graph.users_from_dense(nu)


@register("zf-pic")
class ZFPIC(ZeroForcing):
    r"""Zero forcing followed by one-shot parallel interference cancellation.

    ``x̂ = nearest((HᴴH)⁻¹Hᴴy)``; then every user cancels all *other* users'
    decisions and applies a matched filter:

    .. math::
        z_i = \frac{h_i^H (y - \sum_{j \ne i} h_j \hat x_j)}{\|h_i\|^2}
            = \hat x_i + \frac{h_i^H (y - H \hat x)}{\|h_i\|^2},
        \qquad \nu_i = \frac{\sigma^2}{\|h_i\|^2}

    (``ν_i`` assumes perfect cancellation). The cancellation step is message
    passing on the bipartite graph (:func:`gnnmimo.ops.residual`,
    :func:`gnnmimo.ops.matched_filter`).

    This is what the RE-MIMO paper's "V-BLAST" baseline really computed (the
    code it took from an earlier repository): ZF, hard decisions and a single
    parallel cancellation — not ordered successive cancellation, which is
    :class:`VBLAST` (``"vblast"``). Needs ``Nt ≤ Nr`` (ZF).
    """

    def equalize(self, graph: MIMOGraph) -> tuple[Tensor, Tensor]:
        z_zf, _ = super().equalize(graph)
        decided = self.qam.symbols(self.qam.nearest(z_zf), z_zf.dtype)
        energy = ops.column_energy(graph)
        correction = ops.matched_filter(graph, ops.residual(graph, decided)) / energy
        return decided + correction, graph.user_noise_var / energy

