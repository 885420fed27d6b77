r"""Gaussian-to-constellation denoiser (the nonlinear step of AMP, OAMP, EP, MMNet).

Each real component of each user comes with a Gaussian observation
``r = x + w``, ``w ~ N(0, τ)``, of a symbol ``x`` drawn uniformly from the
√M-PAM alphabet ``A``. The posterior over ``A`` is a softmax, computed in
the log domain,

.. math::
    \log p(s \mid r) = -\frac{(s - r)^2}{2\tau}
        - \operatorname{logsumexp}_{s' \in A}\Big(-\frac{(s' - r)^2}{2\tau}\Big),

with posterior mean ``x̂ = Σ_s s p(s|r)`` and variance
``v = max(Σ_s (s − x̂)² p(s|r), ε)``. The two components of a user are
independent a posteriori, so the symbol logits are the sums
``logit(s) = log p(Re s | r_re) + log p(Im s | r_im)``
(:meth:`QAM.symbol_logits_from_pam`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from gnnmimo.blocks.base import Block, State
from gnnmimo.constellation import QAM
from gnnmimo.graph import ANTENNA, USER, MIMOGraph

#: energy per real dimension of a unit-energy QAM symbol
ES = 0.5
#: the keys of :func:`prior_state` (a chain's ``given=`` when it starts from the prior)
PRIOR_KEYS = ("mean", "var")


def default_eps(dtype: torch.dtype) -> float:
    """Default variance floor ε: 1e-13 in float64 (the EP baseline), 1e-7 otherwise."""
    return 1e-13 if dtype == torch.float64 else 1e-7


def gaussian_denoise(obs_mean: Tensor, obs_var: Tensor, alphabet: Tensor,
                     eps: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Posterior of PAM symbols given Gaussian observations (see module doc).

    Args:
        obs_mean: ``[...]`` observations ``r``.
        obs_var: ``[...]`` their variances ``τ`` (broadcastable to ``obs_mean``);
            values below the smallest normal number are raised to it.
        alphabet: ``[P]`` the PAM alphabet ``A``.
        eps: floor of the posterior variance (default :func:`default_eps`).

    Returns:
        ``(log_probs [..., P], mean [...], var [...])``; ``log_probs`` are
        normalised (``logsumexp = 0``).
    """
    log_probs = gaussian_log_probs(obs_mean, obs_var, alphabet)
    return (log_probs, *pam_moments(log_probs, alphabet, eps))


def gaussian_log_probs(obs_mean: Tensor, obs_var: Tensor, alphabet: Tensor) -> Tensor:
    """``[..., P]`` normalised ``log p(s | r)`` of :func:`gaussian_denoise`."""
    alphabet = alphabet.to(obs_mean)
    tau = obs_var.clamp_min(torch.finfo(obs_var.dtype).tiny)
    return (-(obs_mean[..., None] - alphabet).square() / (2 * tau[..., None])).log_softmax(-1)


def pam_moments(log_probs: Tensor, alphabet: Tensor, eps: float | None = None) -> tuple[Tensor, Tensor]:
    """Mean ``Σ_s s p(s)`` and variance ``max(Σ_s (s − mean)² p(s), ε)`` of PAM distributions.

    Args:
        log_probs: ``[..., P]`` normalised log-probabilities over the alphabet.
        alphabet: ``[P]`` the PAM alphabet ``A``.
        eps: the variance floor (default :func:`default_eps` of ``log_probs``' dtype).

    Returns:
        ``(mean [...], var [...])``.
    """
    eps = default_eps(log_probs.dtype) if eps is None else eps
    alphabet = alphabet.to(log_probs)
    probs = log_probs.exp()
    mean = (probs * alphabet).sum(-1)
    var = (probs * (alphabet - mean[..., None]).square()).sum(-1).clamp_min(eps)
    return mean, var


def prior_state(graph: MIMOGraph, dtype: torch.dtype | None = None) -> State:
    """The prior moments ``mean = 0``, ``var = Es = 1/2`` per real component, ``[N_u, 2]``.

    The starting point of AMP and OAMP. ``dtype`` defaults to the batch's real precision.
    """
    dtype = dtype or graph[ANTENNA].received.real.dtype
    mean = torch.zeros(graph[USER].num_nodes, 2, dtype=dtype, device=graph.noise_var.device)
    return {"mean": mean, "var": torch.full_like(mean, ES)}


def normalised_pam(pam_logits: Tensor) -> Tensor:
    """``[N_u, 2, P]`` normalised log-probabilities from unnormalised ``[N_u, 2, P]`` or ``[N_u, 2P]`` logits."""
    return pam_logits.view(pam_logits.shape[0], 2, -1).log_softmax(-1)


class PAMPosterior(Block):
    """Moments and symbol logits of per-component PAM distributions (e.g. a learned readout).

    The two real components of a user are taken independent, as in
    :class:`Denoiser`: ``logit(s) = log p(Re s) + log p(Im s)``.

    Args:
        qam: the constellation.
        eps: the posterior variance floor (default :func:`default_eps` of the logits' dtype).

    :reads: ``pam_logits [N_u, 2, P]`` (unnormalised log-probabilities for Re and Im;
        ``[N_u, 2P]`` is read as Re's ``P`` then Im's).
    :writes: ``pam_logits`` (normalised), ``mean [N_u, 2]``, ``var [N_u, 2]``,
        ``logits [N_u, M]``.
    """

    default_reads = ("pam_logits",)
    default_writes = ("pam_logits", "mean", "var", "logits")

    def __init__(self, qam: QAM | int, eps: float | None = None):
        super().__init__()
        self.qam = qam if isinstance(qam, QAM) else QAM(qam)
        self.eps = eps

    def update(self, graph: MIMOGraph, state: State) -> State:
        return self.posterior(normalised_pam(state["pam_logits"]))

    def posterior(self, log_probs: Tensor) -> State:
        """The written keys from normalised log-probabilities ``[N_u, 2, P]``."""
        mean, var = pam_moments(log_probs, self.qam.pam_as(log_probs), self.eps)
        logits = self.qam.symbol_logits_from_pam(log_probs[:, 0], log_probs[:, 1])
        return {"pam_logits": log_probs, "mean": mean, "var": var, "logits": logits}

    def extra_repr(self) -> str:
        return f"qam={self.qam.order}, eps={self.eps}"


class ReportedPosterior(Block):
    """The reported symbol logits from a second PAM distribution (the report head of
    :class:`~gnnmimo.blocks.gnn.PairwiseMRFGNN`); the iterated ``mean, var`` stay as they are.

    :reads: ``report_pam_logits [N_u, 2, P]`` (unnormalised; ``[N_u, 2P]`` as for :class:`PAMPosterior`).
    :writes: ``logits [N_u, M]``.
    """

    default_reads = ("report_pam_logits",)
    default_writes = ("logits",)

    def __init__(self, qam: QAM | int):
        super().__init__()
        self.qam = qam if isinstance(qam, QAM) else QAM(qam)

    def update(self, graph: MIMOGraph, state: State) -> State:
        log_probs = normalised_pam(state["report_pam_logits"])
        return {"logits": self.qam.symbol_logits_from_pam(log_probs[:, 0], log_probs[:, 1])}


class Denoiser(PAMPosterior):
    """Gaussian-to-constellation denoiser block (see module doc).

    Args:
        qam: the constellation.
        eps: the posterior variance floor (default :func:`default_eps` of the state's dtype).

    :reads: ``obs_mean [N_u, 2]``, ``obs_var [N_u, 2]``.
    :writes: ``pam_logits [N_u, 2, P]`` (normalised log-probabilities over
        the alphabet for Re and Im), ``mean [N_u, 2]``, ``var [N_u, 2]``,
        ``logits [N_u, M]``.
    """

    default_reads = ("obs_mean", "obs_var")

    def update(self, graph: MIMOGraph, state: State) -> State:
        obs_mean = state["obs_mean"]
        return self.posterior(gaussian_log_probs(obs_mean, state["obs_var"], self.qam.pam_as(obs_mean)))


