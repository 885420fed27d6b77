r"""Linear equalisers and interference cancellation: one Gaussian observation per user.

Every function here maps a batch to ``(z, ν)``: per user a complex estimate
``z_i = x_i + w_i`` with ``w_i ~ CN(0, ν_i)`` (interference treated as
Gaussian noise), which :meth:`gnnmimo.constellation.QAM.gaussian_logits`
scores as ``logit(s) = −|z_i − s|² / ν_i``. Shapes: ``z [N_u]`` complex and
``ν [N_u]`` real, positive, in PyG user order.

* MF:    ``z_i = h_iᴴ y / ‖h_i‖²``,
  ``ν_i = (Σ_{j≠i} |h_iᴴ h_j|² + σ² ‖h_i‖²) / ‖h_i‖⁴`` — message passing on
  the bipartite graph (``Hᴴ y``) and the user graph (Gram entries).
* ZF:    ``z = (HᴴH)⁻¹ Hᴴ y``, ``ν_i = σ² [(HᴴH)⁻¹]_ii``; needs ``Nt ≤ Nr``.
* LMMSE: ``W = (HᴴH + σ² I)⁻¹ Hᴴ``, ``μ_i = [WH]_ii``; the unbiased estimate
  ``z_i = [Wy]_i / μ_i`` has ``ν_i = (1 − μ_i)/μ_i = 1/SINR_i`` (unit-energy
  symbols), the post-equalisation SINR.
* MMSE V-BLAST and ZF with parallel interference cancellation: see
  :func:`vblast_equalize` and :func:`zf_pic_equalize`.

These are library functions (not only detectors) because other parts of the
library need them: the training SNR calibration uses the LMMSE SINR.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from gnnmimo import ops
from gnnmimo.constellation import QAM
from gnnmimo.graph import ANTENNA, MIMOGraph
from gnnmimo.linalg import factor_diagonal_and_solve, hermitian_inverse, in_chunks, squared_magnitude


def mf_equalize(graph: MIMOGraph) -> tuple[Tensor, Tensor]:
    """Matched filter ``(z, ν)`` (module doc), in the batch's precision."""
    energy = ops.column_energy(graph)
    z = ops.matched_filter(graph, graph[ANTENNA].received) / energy
    (_, target), gram = graph.user_edges()
    interference = scatter(squared_magnitude(gram), target, dim=0, dim_size=energy.numel(), reduce="sum")
    nu = (interference + graph.user_noise_var * energy) / energy.square()
    return z, nu


def zf_equalize(graph: MIMOGraph, double: bool = True) -> tuple[Tensor, Tensor]:
    """Zero forcing ``(z, ν)`` (module doc); ``ValueError`` for a rank-deficient ``HᴴH``."""
    return _solved(graph, double, regularised=False)


def lmmse_equalize(graph: MIMOGraph, double: bool = True) -> tuple[Tensor, Tensor]:
    """Unbiased LMMSE ``(z, ν)`` with ``ν = 1/SINR`` (module doc)."""
    return _solved(graph, double, regularised=True)


def _solved(graph: MIMOGraph, double: bool, regularised: bool) -> tuple[Tensor, Tensor]:
    """ZF or (``regularised``) LMMSE ``(z, ν)``, in complex128 when ``double``.

    Per instance the Gram matrix, the factorisation and the solve run in cache-sized chunks of the
    batch (:func:`gnnmimo.linalg.in_chunks`), including the cast to complex128, so that no
    batch-sized temporary is built.
    """
    view = graph.dense()
    dtype = torch.complex128 if double else view.H.dtype

    def solve(start: int, H: Tensor, y: Tensor, noise_var: Tensor, users: Tensor) -> tuple[Tensor, Tensor]:
        H, y, noise_var = H.to(dtype), y.to(dtype), noise_var.to(dtype.to_real())
        if regularised:  # (HᴴH + σ²I)⁻¹: 1 − μ_i = σ² [(G + σ²I)⁻¹]_ii, computed directly, accurate at high SNR
            shift, what = noise_var[:, None].expand(users.shape), "HᴴH + σ²I"
        else:  # padded users get an identity row so the system stays invertible; they decouple
            shift, what = (~users).to(noise_var.dtype), "HᴴH (rank-deficient channel)"
        diagonal, z = factor_diagonal_and_solve(ops.dense_gram(H), ops.dense_matched_filter(H, y), shift,
                                                what=what, first=start)
        variance = noise_var[:, None] * diagonal
        return z, (mmse_shortfall(variance) if regularised else variance)

    z, variance = in_chunks(solve, (view.H, view.y, view.noise_var, view.user_mask),
                            view.H[0].numel() * torch.empty((), dtype=dtype).element_size())
    z, variance = graph.users_from_dense(z), graph.users_from_dense(variance)
    if not regularised:
        return z, variance
    gain = 1.0 - variance
    return z / gain, variance / gain


def mmse_shortfall(shortfall: Tensor) -> Tensor:
    r"""The MMSE bias shortfall ``1 − μ_i = σ² P_ii`` clamped to ``[tiny, 1 − eps]`` of its dtype.

    ``1 − μ_i`` lies in ``(0, 1)``; it reaches 1 in rounding for a user whose SINR ``μ_i/(1 − μ_i)``
    is below the dtype's ``eps`` (a channel column 70 dB below the others in float32, 156 dB in
    float64), and ``z_i = [Wy]_i/μ_i``, ``ν_i = (1 − μ_i)/μ_i`` would divide by zero (NaN
    probabilities). Clamped, that user keeps ``ν_i ≈ 1/eps``: a uniform posterior, as its SINR says.
    """
    finfo = torch.finfo(shortfall.dtype)
    return shortfall.clamp(finfo.tiny, 1.0 - finfo.eps)


def vblast_equalize(graph: MIMOGraph, qam: QAM) -> tuple[Tensor, Tensor]:
    r"""Ordered MMSE successive interference cancellation (MMSE V-BLAST), ``(z, ν)``.

    Stage ``t = 1 … Nt`` over the set ``S`` of users not detected yet, with
    ``r`` the received vector after cancelling the users detected so far:

    * MMSE filter of ``S``: ``P = (H_Sᴴ H_S + σ² I)⁻¹``, bias
      ``μ_i = 1 − σ² P_ii`` and unbiased output ``z_i = [P H_Sᴴ r]_i / μ_i``
      with ``ν_i = (1 − μ_i)/μ_i = 1/SINR_i`` (post-detection SINR);
    * detect the user with the largest SINR (smallest ``σ² P_ii``), keep its
      ``(z_i, ν_i)`` as its soft output, decide ``x̂_i`` = nearest point of ``qam``;
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
    view = graph.dense()
    H, noise_var = view.H, view.noise_var
    batch, _, nt = H.shape
    rows = torch.arange(batch, device=H.device)
    eye = torch.eye(nt, dtype=H.dtype, device=H.device)
    P = hermitian_inverse(ops.dense_gram(H) + noise_var[:, None, None] * eye)
    remaining = view.user_mask.clone()
    residual = view.y
    z = H.new_zeros(batch, nt)
    nu = torch.ones_like(z.real)
    for _ in range(nt):  # Nt_max stages, each vectorised over the batch
        live = remaining.any(1)
        if not live.any():
            break
        shortfall = mmse_shortfall(noise_var[:, None] * P.diagonal(dim1=-2, dim2=-1).real)
        pick = shortfall.masked_fill(~remaining, float("inf")).argmin(1)          # [B]
        matched = ops.dense_matched_filter(H, residual) * remaining              # H_Sᴴ r, [B, Nt]
        gain = 1.0 - shortfall[rows, pick]
        z_pick = (P[rows, pick] * matched).sum(-1) / gain
        decided = qam.symbols(qam.nearest(z_pick), H.dtype)
        z[rows, pick] = torch.where(live, z_pick, z[rows, pick])
        nu[rows, pick] = torch.where(live, shortfall[rows, pick] / gain, nu[rows, pick])
        residual = residual - H[rows, :, pick] * (decided * live)[:, None]
        column = P[rows, :, pick]                                                  # [B, Nt]
        update = column[:, :, None] * P[rows, pick][:, None, :] / P[rows, pick, pick][:, None, None]
        P = torch.where(live[:, None, None], P - update, P)    # finished instances: 0/0 otherwise
        remaining[rows, pick] = False
    return graph.users_from_dense(z), graph.users_from_dense(nu)


def zf_pic_equalize(graph: MIMOGraph, qam: QAM, double: bool = True) -> tuple[Tensor, Tensor]:
    r"""Zero forcing followed by one-shot parallel interference cancellation, ``(z, ν)``.

    ``x̂ = nearest((HᴴH)⁻¹Hᴴy)``; then every user cancels all *other* users'
    decisions and applies a matched filter:

    .. math::
        z_i = \frac{h_i^H (y - \sum_{j \ne i} h_j \hat x_j)}{\|h_i\|^2}
            = \hat x_i + \frac{h_i^H (y - H \hat x)}{\|h_i\|^2},
        \qquad \nu_i = \frac{\sigma^2}{\|h_i\|^2}

    (``ν_i`` assumes perfect cancellation). The cancellation step is message
    passing on the bipartite graph (:func:`gnnmimo.ops.residual`,
    :func:`gnnmimo.ops.matched_filter`). Needs ``Nt ≤ Nr`` (ZF).
    """
    z_zf, _ = zf_equalize(graph, double)
    decided = qam.symbols(qam.nearest(z_zf), z_zf.dtype)
    energy = ops.column_energy(graph)
    correction = ops.matched_filter(graph, ops.residual(graph, decided)) / energy
    return decided + correction, graph.user_noise_var / energy
