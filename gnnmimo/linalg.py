"""Batched solves and inverses of positive-definite matrices.

The detectors' linear algebra: Hermitian (complex) or symmetric (real)
positive-definite systems ``[..., n, n]``, solved by Cholesky. The complex
inverse raises on a numerically singular matrix (a rank-deficient channel
is an input error for ZF); the real solves fall back to LU instead, because
they sit inside iterative detectors whose single-precision iterates can be
ill-conditioned without the input being wrong.
"""
from __future__ import annotations

import torch
from torch import Tensor


def hermitian_inverse(matrix: Tensor, what: str = "the system matrix") -> Tensor:
    """Inverse of Hermitian positive-definite ``[B, n, n]`` matrices (Cholesky).

    Raises ``ValueError`` naming the instances whose ``what`` is numerically
    singular.
    """
    factor, info = torch.linalg.cholesky_ex(matrix)
    if (info != 0).any():
        bad = (info != 0).nonzero()[:, 0]
        raise ValueError(f"{what} is numerically singular in instances {bad[:5].tolist()} "
                         f"({bad.numel()} in all)")
    return torch.cholesky_inverse(factor)


def solve_spd(A: Tensor, B: Tensor) -> Tensor:
    """``A⁻¹ B`` for symmetric positive-definite ``A [..., n, n]``, ``B [..., n, k]``.

    Cholesky; if it fails numerically on any matrix (ill-conditioned in
    single precision), the batch is solved by LU instead.
    """
    L, info = torch.linalg.cholesky_ex(A)
    if bool((info != 0).any()):
        return torch.linalg.solve_ex(A, B)[0]
    return torch.cholesky_solve(B, L)


def spd_inverse_diagonal_and_solve(A: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``diag(A⁻¹) [..., n]`` and ``A⁻¹ b [..., n]`` for symmetric positive-definite ``A [..., n, n]``.

    With ``A = L Lᵀ``: ``diag(A⁻¹)_i = Σ_k (L⁻¹)_{ki}²`` and ``A⁻¹b = L⁻ᵀ(L⁻¹ b)``
    (one triangular inversion, cheaper than forming ``A⁻¹``). If Cholesky
    fails numerically on any matrix, the batch falls back to an LU inverse.
    """
    L, info = torch.linalg.cholesky_ex(A)
    if bool((info != 0).any()):
        inverse = torch.linalg.inv_ex(A)[0]
        return inverse.diagonal(dim1=-2, dim2=-1), (inverse @ b[..., None])[..., 0]
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).expand_as(A)
    L_inv = torch.linalg.solve_triangular(L, eye, upper=False)
    return L_inv.square().sum(-2), (L_inv.mT @ (L_inv @ b[..., None]))[..., 0]
