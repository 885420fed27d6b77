"""Channel models and the SNR convention.

All channels are drawn as dense, zero-padded tensors ``[B, Nr_max, Nt_max]``
so that one batch can mix instances with different ``Nr`` and ``Nt``; entries
outside an instance's ``Nr_b × Nt_b`` block are zero.

* ``iid``: entries ``CN(0, 1/Nr)``.
* ``kronecker``: ``H = R_r^{1/2} H_w R_t^{1/2}`` with the exponential model
  ``R[i, j] = ρ^{|i−j|}`` on both sides; ``kronecker-rx`` correlates the
  receive side only. We use the Cholesky factor ``L`` (``L Lᵀ = R``) in place
  of the symmetric square root: ``vec(L H_w Lᵀ)`` has the same Gaussian law,
  and the leading ``n×n`` block of ``L`` is the Cholesky factor of the leading
  block of ``R``, so padding to ``Nt_max`` leaves every instance exact.
* ``orthogonal-sets`` (RE-MIMO §V-C.2, its attention experiment): the users
  form consecutive sets of :data:`SET_SIZE` (4, the paper's); every channel column starts
  orthonormal (``Q``, the Haar-distributed ``Nr × Nt`` frame from the QR of a
  Gaussian matrix) and each set is mixed by the Cholesky factor of the
  exponential correlation, ``H = Q Lᵀ`` with ``L = blockdiag(chol(R_ρ))``: ``Hᴴ H = blockdiag(R_ρ)`` exactly, so users of
  one set interfere (``h_iᴴ h_j = ρ^{|i−j|}``) and users of different sets are
  orthogonal. Needs ``Nt_b ≤ Nr_b``. Unit column energy, as ``iid`` on average.
* imperfect CSI: the detector sees ``Ĥ = H + E``, ``E`` i.i.d. ``CN(0, ε²/Nr)``; the batch
  carries that known error variance ``ε²/Nr`` per entry (``err_var``, docs/conventions.md §2.4).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

CHANNEL_KINDS = ("iid", "kronecker", "kronecker-rx", "orthogonal-sets")
#: the kinds that draw any ``Nt`` for any ``Nr`` (``orthogonal-sets`` needs ``Nt <= Nr``)
UNRESTRICTED_KINDS = ("iid", "kronecker", "kronecker-rx")
#: users per set of ``orthogonal-sets``
SET_SIZE = 4


def noise_variance(snr_db: Tensor, num_antennas: Tensor, num_users: Tensor) -> Tensor:
    r"""Complex noise variance per receive antenna for a given SNR.

    With ``SNR = E‖Hx‖² / E‖n‖²`` (RE-MIMO eq. 27), ``E|H_ai|² = 1/Nr`` and
    unit-energy symbols, ``σ² = Nt / (Nr · 10^{SNR_dB/10})``. Shapes broadcast.
    """
    return num_users / (num_antennas * 10.0 ** (snr_db / 10.0))


def exponential_correlation(rho: Tensor, size: int) -> Tensor:
    """``[B]`` coefficients → ``[B, size, size]`` matrices ``ρ^{|i−j|}``."""
    if not torch.all((rho >= 0) & (rho < 1)):
        raise ValueError(f"correlation coefficients must lie in [0, 1), got {rho.unique().tolist()}")
    distance = torch.arange(size, device=rho.device)
    distance = (distance[:, None] - distance[None, :]).abs()
    return rho[:, None, None] ** distance


def sample_upper_triangular(low: float, high: float, shape, generator=None, device=None) -> Tensor:
    """Continuous triangular law on ``[low, high]`` with its mode at ``high``.

    Inverse CDF: ``F(x) = ((x − low)/(high − low))²``, so ``x = low + (high − low)√u``.
    """
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    return low + (high - low) * u.sqrt()


@dataclass(frozen=True)
class ChannelModel:
    """A random channel law.

    Args:
        kind: ``"iid"``, ``"kronecker"`` (both sides), ``"kronecker-rx"`` or ``"orthogonal-sets"``.
        rho: the exponential correlation coefficient, fixed (a float) or a
            range ``(low, high)`` drawn per instance from the triangular law
            with its mode at ``high``. Ignored for ``"iid"``.
        csi_error: ``ε²``, the relative power of the channel estimation error.
    """

    kind: str = "iid"
    rho: float | tuple[float, float] = 0.0
    csi_error: float = 0.0

    def __post_init__(self):
        if self.kind not in CHANNEL_KINDS:
            raise ValueError(f"unknown channel {self.kind!r}; use one of {CHANNEL_KINDS}")
        low, high = self.rho_range
        if not 0.0 <= low <= high < 1.0:
            raise ValueError(f"rho must satisfy 0 <= low <= high < 1, got {self.rho}")
        if self.kind != "iid" and high == 0.0:
            raise ValueError(f"channel {self.kind!r} needs a correlation rho > 0")
        if not 0.0 <= self.csi_error < float("inf"):  # NaN fails too
            raise ValueError(f"csi_error (ε²) must be a finite number >= 0, got {self.csi_error}")

    @property
    def rho_range(self) -> tuple[float, float]:
        return (self.rho, self.rho) if isinstance(self.rho, (int, float)) else tuple(self.rho)

    def describe(self) -> str:
        """A short label such as ``kronecker(ρ=0.55:0.75)+csi(0.1)``."""
        label = self.kind
        if self.kind != "iid":
            low, high = self.rho_range
            label += f"(rho={low:g})" if low == high else f"(rho={low:g}:{high:g})"
        if self.csi_error:
            label += f"+csi({self.csi_error:g})"
        return label

    def sample(self, num_antennas: Tensor, num_users: Tensor, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.complex64,
               noise_var: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """Draw true and estimated channels, and the estimate's error variance.

        Args:
            num_antennas: ``[B]`` receive antennas ``Nr_b`` per instance.
            num_users: ``[B]`` transmitters ``Nt_b`` per instance.
            generator: the random stream (on the device of the outputs).
            dtype: ``torch.complex64`` or ``torch.complex128``.
            noise_var: ``[B]`` σ² of the instances: not used here (the additive error has a fixed
                ``ε²``), but by channels whose estimates come from noisy pilots
                (:class:`gnnmimo.tr38901.TR38901Channel`).

        Returns:
            ``(H, H_hat, err_var)``: ``H`` and ``H_hat`` ``[B, Nr_max, Nt_max]``, zero outside each
            instance's block, ``H_hat is H`` when ``csi_error == 0``; ``err_var`` the variance
            ``E|H_ai − Ĥ_ai|²``, ``[B, 1, 1]`` here (``ε²/Nr_b``), ``None`` when ``H_hat is H``.
        """
        device = num_users.device
        batch, nr_max, nt_max = len(num_users), int(num_antennas.max()), int(num_users.max())
        shape = (batch, nr_max, nt_max)
        h = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        if self.kind != "iid":
            rho = sample_upper_triangular(*self.rho_range, (batch,), generator, device)
        if self.kind == "orthogonal-sets":
            h = orthogonal_sets(h, num_antennas, num_users, rho)
        elif self.kind != "iid":
            rx = torch.linalg.cholesky(exponential_correlation(rho, nr_max)).to(dtype)
            h = rx @ h
            if self.kind == "kronecker":
                tx = torch.linalg.cholesky(exponential_correlation(rho, nt_max)).to(dtype)
                h = h @ tx.transpose(-1, -2)
        scale = num_antennas.to(h.real.dtype).rsqrt()[:, None, None]
        mask = block_mask(num_antennas, num_users, nr_max, nt_max)
        h = h * scale * mask
        return (h, *with_estimation_error(h, scale, mask, self.csi_error, generator))


def orthogonal_sets(gaussian: Tensor, num_antennas: Tensor, num_users: Tensor, rho: Tensor,
                    set_size: int = SET_SIZE) -> Tensor:
    r"""``√Nr_b · Q Lᵀ`` of the ``orthogonal-sets`` channel (module doc), before the common ``1/√Nr_b``.

    ``gaussian`` ``[B, Nr_max, Nt_max]`` is masked to each instance's block first, so the
    Householder QR keeps every instance's orthonormal columns inside its own ``Nr_b`` rows;
    multiplying ``Q``'s columns by the phases of ``diag R`` makes the frame Haar distributed.
    ``L`` is the Cholesky factor of ``R[i, j] = ρ^{|i−j|}`` within a set and 0 across sets
    (block diagonal, so its leading ``Nt_b`` block serves the padded instances exactly).
    """
    if torch.any(num_users > num_antennas):
        raise ValueError("the orthogonal-sets channel needs Nt <= Nr (orthogonal columns), got "
                         f"Nt > Nr in {int((num_users > num_antennas).sum())} instances")
    nr_max, nt_max = gaussian.shape[1:]
    q, r = torch.linalg.qr(gaussian * block_mask(num_antennas, num_users, nr_max, nt_max))
    phase = torch.sgn(torch.diagonal(r, dim1=-2, dim2=-1))
    users = torch.arange(nt_max, device=gaussian.device)
    same_set = users[:, None] // set_size == users[None, :] // set_size
    mixing = torch.linalg.cholesky(exponential_correlation(rho, nt_max) * same_set).to(gaussian.dtype)
    return (q * phase[:, None, :]) @ mixing.transpose(-1, -2) * num_antennas.to(q.real.dtype).sqrt()[:, None, None]


def with_estimation_error(h: Tensor, scale: Tensor, mask: Tensor, csi_error: float,
                          generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
    """``(Ĥ, v)``: ``Ĥ = H + E``, ``E`` i.i.d. ``CN(0, v)`` inside each instance's block (``mask``),
    ``v = ε² scale²`` ``[B, 1, 1]`` with ``scale = 1/√Nr_b`` ``[B, 1, 1]``; ``(h, None)`` when
    ``csi_error`` (``ε²``) is 0."""
    if not csi_error:
        return h, None
    error = torch.randn(h.shape, generator=generator, device=h.device, dtype=h.dtype)
    return h + error * (scale * csi_error ** 0.5) * mask, csi_error * scale.square()


def block_mask(num_antennas: Tensor, num_users: Tensor, nr_max: int, nt_max: int) -> Tensor:
    """``[B, Nr_max, Nt_max]`` bool mask of each instance's ``Nr_b × Nt_b`` block."""
    device = num_users.device
    rows = torch.arange(nr_max, device=device)[None, :] < num_antennas[:, None]
    cols = torch.arange(nt_max, device=device)[None, :] < num_users[:, None]
    return rows[:, :, None] & cols[:, None, :]
