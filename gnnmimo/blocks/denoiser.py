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


def corrected_log_likelihood(head: Tensor, mean: Tensor, var: Tensor, alphabet: Tensor,
                             refine: bool) -> tuple[Tensor, Tensor | None]:
    r"""A Gaussian observation's log-likelihood over ``alphabet``, corrected by a learned readout.

    .. math::
        ℓ(s) = -\frac{(s - r - \sqrt{τ}\,δ)^2}{2 τ e^{ν}} + a(s)

    with ``head = [a(s) for s in A]`` and, with ``refine``, ``[…, δ, ν]`` appended (otherwise
    ``δ = ν = 0``). A zero head gives the observation's own log-likelihood, which is why the
    learned correctors start from a zero last layer: untrained, they pass the Gaussian through.

    Args:
        head: ``[N, P]`` or, with ``refine``, ``[N, P + 2]``.
        mean, var: ``r, τ`` ``[N]``.

    Returns:
        ``ℓ`` ``[N, P]`` and, with ``refine``, ``ν`` ``[N]`` (else ``None``).
    """
    if not refine:
        return head + gaussian_log_probs(mean, var, alphabet), None
    logits, shift, log_scale = head.split([len(alphabet), 1, 1], dim=-1)
    mean = mean + var.sqrt() * shift[:, 0]
    var = var * log_scale[:, 0].exp()
    return logits + gaussian_log_probs(mean, var, alphabet), log_scale[:, 0]


class ObservationCorrection(Block):
    """Corrected PAM logits from a per-user readout and the Gaussian observation (:func:`corrected_log_likelihood`).

    The learned part is whatever wrote ``correction`` (e.g. a :class:`~gnnmimo.blocks.mlp.PointwiseMLP`
    over a transformer's state, its last layer zero-initialised); this block turns it into the
    iterated head's ``pam_logits`` and, with ``report``, a second head's ``report_pam_logits``
    (:class:`ReportedPosterior`), as the pairwise-MRF GNN's observation skip does.

    Args:
        qam: the constellation.
        refine: each head also shifts and rescales the observation (``δ, ν``).
        report: a second head for the reported posterior.

    :reads: ``correction [N_u, 2·H·(P + 2·refine)]`` (Re then Im, each ``H = 1 + report`` heads),
        ``obs_mean [N_u, 2]``, ``obs_var [N_u, 2]``.
    :writes: ``pam_logits [N_u, 2, P]``; with ``refine`` ``obs_log_scale [N_u, 2]``; with
        ``report`` ``report_pam_logits [N_u, 2, P]``.
    """

    default_reads = ("correction", "obs_mean", "obs_var")

    def __init__(self, qam: QAM | int, refine: bool = False, report: bool = False):
        super().__init__(writes=("pam_logits", *("obs_log_scale",) * refine, *("report_pam_logits",) * report))
        self.qam = qam if isinstance(qam, QAM) else QAM(qam)
        self.refine, self.report = refine, report

    @property
    def channels(self) -> int:
        """The width of ``correction`` this block expects."""
        return 2 * (1 + self.report) * (len(self.qam.pam) + 2 * self.refine)

    def update(self, graph: MIMOGraph, state: State) -> State:
        correction = state["correction"]
        if correction.shape[-1] != self.channels:
            raise ValueError(f"{type(self).__name__} expects {self.channels} correction channels, "
                             f"got {correction.shape[-1]}")
        num_users = correction.shape[0]
        heads = correction.view(num_users * 2, 1 + self.report, -1)
        mean = state["obs_mean"].to(correction.dtype).reshape(-1)
        var = state["obs_var"].to(correction.dtype).reshape(-1).clamp_min(torch.finfo(correction.dtype).tiny)
        alphabet = self.qam.pam_as(correction)
        corrected = [corrected_log_likelihood(heads[:, k], mean, var, alphabet, self.refine)
                     for k in range(1 + self.report)]
        out = {"pam_logits": corrected[0][0].view(num_users, 2, -1)}
        if self.refine:
            out["obs_log_scale"] = corrected[0][1].view(num_users, 2)
        if self.report:
            out["report_pam_logits"] = corrected[1][0].view(num_users, 2, -1)
        return out

    def extra_repr(self) -> str:
        return f"qam={self.qam.order}, refine={self.refine}, report={self.report}"


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


