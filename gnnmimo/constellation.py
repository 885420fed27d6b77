"""Square QAM constellations with 3GPP TS 38.211 Gray labelling.

A symbol index ``s ∈ {0, …, M−1}`` carries the bits ``b_0 … b_{k−1}``
(``k = log2 M``) of its binary representation, most significant first.
Following TS 38.211 §5.1, the even-indexed bits ``b_0, b_2, …`` label the
in-phase PAM component and the odd-indexed bits ``b_1, b_3, …`` the
quadrature component; for 16-QAM

.. math::
    x = \\tfrac{1}{\\sqrt{10}}\\big[(1-2b_0)(2-(1-2b_2))
        + j(1-2b_1)(2-(1-2b_3))\\big],

and every order follows the same nested rule, which is Gray per dimension.
Points are scaled to unit average energy, so each real dimension carries
``Es = 1/2``.

The real-valued equivalent splits a symbol into two √M-PAM components. The
*PAM alphabet* ``A`` is kept sorted ascending; :meth:`QAM.pam_index` maps a
symbol index to the positions of its two components in ``A``.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from gnnmimo.linalg import squared_magnitude

SUPPORTED_ORDERS = (4, 16, 64, 256)
LLR_METHODS = ("app", "maxlog")


class QAM:
    r"""Unit-energy square M-QAM with 3GPP Gray labelling.

    Args:
        order: the number of points ``M`` (4, 16, 64 or 256).

    Attributes:
        points (Tensor): ``[M]`` complex128 points, indexed by symbol index.
        bits (Tensor): ``[M, k]`` uint8 labels, ``bits[s, j] = b_j`` of ``s``.
        pam (Tensor): ``[√M]`` float64 PAM alphabet ``A``, ascending.
        pam_index (Tensor): ``[M, 2]`` long, positions in ``A`` of the real
            and imaginary part of each point.

    Tensors are created in float64 on the CPU; use :meth:`points_as` and
    friends to get them on a given device and dtype.
    """

    def __init__(self, order: int):
        supported = ", ".join(map(str, SUPPORTED_ORDERS))
        if not isinstance(order, numbers.Integral) or isinstance(order, bool):  # '16' or 16.0 would fail later
            raise TypeError(f"qam (the constellation order) must be an int, one of {supported}; "
                            f"got {order!r} ({type(order).__name__})")
        if order not in SUPPORTED_ORDERS:
            raise ValueError(f"unknown constellation: {order}-QAM; supported orders (qam) are {supported}")
        self.order = int(order)
        self.num_bits = int(math.log2(order))
        self.pam_size = math.isqrt(order)
        k = self.num_bits
        index = torch.arange(order)
        self.bits = ((index[:, None] >> torch.arange(k - 1, -1, -1)) & 1).to(torch.uint8)
        in_phase = self._pam_level(self.bits[:, 0::2])
        quadrature = self._pam_level(self.bits[:, 1::2])
        scale = math.sqrt(2 * (order - 1) / 3)  # average energy of odd-integer QAM
        self.points = torch.complex(in_phase, quadrature) / scale
        self.pam = torch.arange(-(self.pam_size - 1), self.pam_size, 2,
                                dtype=torch.float64) / scale
        self.pam_index = torch.stack(
            [((in_phase + self.pam_size - 1) / 2).round().long(),
             ((quadrature + self.pam_size - 1) / 2).round().long()], dim=-1)

    @staticmethod
    def _pam_level(bits: Tensor) -> Tensor:
        """Odd-integer PAM level of the TS 38.211 nested Gray rule.

        ``bits``: ``[M, k/2]`` labels of one dimension, most significant first.
        The level is ``(1−2c_0)(2^{n−1} − (1−2c_1)(2^{n−2} − …))``.
        """
        signs = 1.0 - 2.0 * bits.double()
        n = bits.shape[1]
        level = signs[:, n - 1]
        for j in range(n - 2, -1, -1):  # loops over bit planes, not data
            level = signs[:, j] * (2.0 ** (n - 1 - j) - level)
        return level

    def __repr__(self) -> str:
        return f"QAM({self.order})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QAM) and other.order == self.order

    def __hash__(self) -> int:
        return hash(("QAM", self.order))

    # ------------------------------------------------------------------ tensors
    def points_as(self, like: Tensor) -> Tensor:
        """``[M]`` complex points on ``like``'s device, matching its precision."""
        return self.points.to(device=like.device, dtype=complex_dtype(like.dtype))

    def pam_as(self, like: Tensor) -> Tensor:
        """``[√M]`` PAM alphabet on ``like``'s device, matching its precision."""
        return self.pam.to(device=like.device, dtype=real_dtype(like.dtype))

    # ------------------------------------------------------------------ mapping
    def symbols(self, index: Tensor, dtype: torch.dtype = torch.complex64) -> Tensor:
        """Symbol indices (any shape) → complex points (same shape)."""
        return self.points.to(device=index.device, dtype=dtype)[index]

    def bits_of(self, index: Tensor) -> Tensor:
        """Symbol indices ``[...]`` → bits ``[..., k]`` (uint8)."""
        return self.bits.to(index.device)[index]

    def index_of_bits(self, bits: Tensor) -> Tensor:
        """Bits ``[..., k]`` (most significant first) → symbol indices ``[...]``."""
        if bits.shape[-1] != self.num_bits:
            raise ValueError(f"{self} takes {self.num_bits} bits per symbol, "
                             f"got a last dimension of {bits.shape[-1]}")
        weights = 2 ** torch.arange(self.num_bits - 1, -1, -1, device=bits.device)
        return (bits.long() * weights).sum(-1)

    def nearest(self, z: Tensor) -> Tensor:
        """Complex values ``[...]`` → index of the nearest point ``[...]``.

        Slices each dimension to the PAM grid, so it costs O(1) per value.
        """
        pam = self.pam_as(z.real)
        step = pam[1] - pam[0]
        lo = lambda v: ((v - pam[0]) / step).round().clamp(0, self.pam_size - 1).long()
        return self.index_of_pam(lo(z.real), lo(z.imag))

    def index_of_pam(self, re_index: Tensor, im_index: Tensor) -> Tensor:
        """Positions in ``A`` of the two components → symbol indices."""
        table = torch.empty(self.pam_size, self.pam_size, dtype=torch.long)
        table[self.pam_index[:, 0], self.pam_index[:, 1]] = torch.arange(self.order)
        return table.to(re_index.device)[re_index, im_index]

    # ------------------------------------------------------------ soft outputs
    def symbol_logits_from_pam(self, logits_re: Tensor, logits_im: Tensor) -> Tensor:
        """Per-dimension PAM logits ``[..., √M]`` (two of them) → symbol logits ``[..., M]``.

        Valid when the two components are independent a posteriori, as in the
        real-valued detectors: ``logit(s) = ℓ_re[A-index of Re s] + ℓ_im[A-index of Im s]``.
        """
        idx = self.pam_index.to(logits_re.device)
        return logits_re[..., idx[:, 0]] + logits_im[..., idx[:, 1]]

    def gaussian_logits(self, z: Tensor, noise_var: Tensor) -> Tensor:
        r"""Symbol logits of an observation ``z = x + w``, ``w ~ CN(0, ν)``.

        ``logit(s) = −|z − s|² / ν``. Shapes: ``z`` and ``noise_var`` ``[...]``
        (broadcastable) → ``[..., M]``.
        """
        points = self.points_as(z)
        return -squared_magnitude(z[..., None] - points) / noise_var[..., None]

    def bit_llrs(self, logits: Tensor, method: str = "app") -> Tensor:
        r"""Bit LLRs from symbol logits.

        ``LLR_j = ln P(b_j = 1) / P(b_j = 0)`` (Sionna's sign convention),
        with ``P(s) ∝ exp(logit(s))``. ``"app"`` is exact (log-sum-exp over the
        points of each label); ``"maxlog"`` replaces log-sum-exp by max.

        Shapes: ``logits [..., M]`` → ``[..., k]``.
        """
        if method not in LLR_METHODS:
            raise ValueError(f"unknown LLR method {method!r}; use one of {LLR_METHODS}")
        if logits.shape[-1] != self.order:
            raise ValueError(f"{self} needs logits over {self.order} points, "
                             f"got a last dimension of {logits.shape[-1]}")
        one = self.bits.to(logits.device).T.bool()  # [k, M]
        masked = logits[..., None, :].expand(*logits.shape[:-1], self.num_bits, self.order)
        neg_inf = torch.finfo(logits.dtype).min
        with_one = masked.masked_fill(~one, neg_inf)
        with_zero = masked.masked_fill(one, neg_inf)
        reduce = (lambda t: t.logsumexp(-1)) if method == "app" else (lambda t: t.amax(-1))
        return reduce(with_one) - reduce(with_zero)


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for complex64/float32, float64 for complex128/float64."""
    return torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """complex64 for complex64/float32, complex128 for complex128/float64."""
    return torch.complex128 if dtype in (torch.float64, torch.complex128) else torch.complex64
