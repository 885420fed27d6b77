r"""Annealed Langevin detector (Zilberstein, Dick, Doost-Mohammady, Sabharwal, Segarra, "Annealed
Langevin Dynamics for Massive MIMO Detection", IEEE TWC 2023).

The detector samples the posterior of the transmitted symbols by unadjusted Langevin dynamics on
a continuous relaxation ``z`` of ``x``, annealed over the noise levels ``σ_1 > … > σ_L`` (geometric)
of a *smoothed* discrete prior, so that the samples of the last level sit on the constellation.

**Model.** The real-valued equivalent ``y = H x + w`` (``H ∈ R^{2Nr × 2Nt}``, docs/conventions.md)
with the eigen-decomposition of its Gram matrix ``HᵀH = V diag(s²) Vᵀ`` (``s`` the singular values
of ``H``, ``s_j = 0`` beyond its rank, so ``Nt > Nr`` is allowed). In the rotated coordinates
``z̄ = Vᵀ z`` the likelihood is diagonal: with ``b = Vᵀ Hᵀ y`` (``= s ⊙ Uᵀy``, the SVD form the
paper uses, without forming ``U``), ``ȳ_j = b_j / s_j = s_j x̄_j + w̄_j``.

**Annealed prior.** At level ``ℓ``, ``z = x + σ_ℓ n`` with ``x`` uniform on the PAM alphabet ``A``
per real component, so ``p_ℓ(z)`` is a Gaussian mixture and its score is Tweedie's formula

.. math::
    \nabla_z \log p_\ell(z) = \frac{\mathbb{E}[x \mid z] - z}{\sigma_\ell^2},

with ``E[x|z]`` the posterior mean of the Gaussian denoiser
(:func:`gnnmimo.blocks.denoiser.gaussian_log_probs`, variance ``σ_ℓ²``).

**Annealed likelihood.** Given ``z``, ``ȳ_j = s_j z̄_j − s_j σ_ℓ n̄_j + w̄_j``, so the likelihood
score per rotated coordinate is

.. math::
    [\nabla_{\bar z} \log p(y \mid z)]_j = \frac{s_j (\bar y_j - s_j \bar z_j)}{|\sigma_w^2 - s_j^2 \sigma_\ell^2|}
    = \frac{b_j - s_j^2 \bar z_j}{|\sigma_w^2 - s_j^2 \sigma_\ell^2|}.

Where ``s_j σ_ℓ > σ_w`` the observation is sharper than the annealing noise and the prior term is
dropped (the paper, after SNIPS).

**Step.** With the position-dependent step ``A_j = σ_ℓ² − σ_w²/s_j²`` where ``s_j σ_ℓ > σ_w``, else
``A_j = σ_ℓ² (1 − s_j² σ_ℓ²/σ_w²)``, each of the ``S`` steps of level ``ℓ`` is

.. math::
    \bar z \leftarrow \bar z + \frac{\varepsilon}{\sigma_L^2} A \odot g
        + \sqrt{\frac{2 T \varepsilon}{\sigma_L^2}}\, \sqrt{A} \odot \eta, \qquad \eta \sim N(0, I),

``g`` the likelihood score plus (where kept) the rotated prior score ``Vᵀ ∇_z log p_ℓ(z)``; a level
starts where the previous one ended, the first from ``z`` uniform on ``[−1, 1]`` per component.

**Noise variance and temperature.** ``σ_w² = σ²``, the *complex* noise variance per antenna, as
the public code passes it, while the real model's noise has variance ``σ²/2`` per component; with
the default temperature ``T = 1/2`` the likelihood factor of the sampled density,
``exp(−‖y − Hx‖² / (2 T σ_w²))``, is then exactly ``p(y | x)`` (the prior is sharpened).

**Trajectories and soft output.** ``R`` independent trajectories run side by side. Each final
sample is rounded to the nearest constellation point per user, ``x̂^{(r)}``, with distance
``d_r = ‖y − H x̂^{(r)}‖²`` (complex). The hard decision is the best trajectory by residual, as
in the paper; the logits are max-log over that list of ``R`` candidates, exactly as K-best's
over its list (:func:`gnnmimo.tree_search.metrics_to_logits`): ``logit_i(s) = −(min_{r: x̂_i = s} d_r
− min_r d_r)/σ²``, clipped at ``−clip`` (also the value of symbols no trajectory ended on).
So the LLRs are max-log and clipped.

**Batching.** Instances (mixed ``Nt`` and ``Nr``, on the padded dense view) and trajectories are
one tensor ``[B, R, 2Nt_max]``; only the ``L × S`` steps loop. Padded users have zero channel
columns, so their rotated directions carry only prior and noise, which never reach real users; they
are masked out of ``z``. Cost per instance: ``O(L S R (2Nt)²)`` plus one ``2Nt × 2Nt``
eigen-decomposition.

**Reproducibility.** ``seed`` draws every call from a fresh generator seeded so (the same batch
gives the same output; batches of one shape reuse the same starts and noise, which leaves
Monte-Carlo estimates over independent instances unbiased); without it the global torch stream is
used. ``temperature=0`` with
``start="zero"`` makes the detector deterministic (annealed gradient ascent on the smoothed
posterior), which is how the property checks (batch independence, permutation equivariance) test
the dynamics exactly.

Defaults are the public code's (its ``config.yml``): ``L = 20``, ``σ_1 = 1``, ``σ_L = 0.01``,
``S = 70``, ``ε = 3·10⁻⁵``, ``R = 20``, ``T = 0.5``; what they give here: docs/baselines.md.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from gnnmimo import tree_search
from gnnmimo.blocks.denoiser import gaussian_log_probs, pam_moments
from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector
from gnnmimo.graph import MIMOGraph
from gnnmimo.ops import dense_residual
from gnnmimo.registry import register

#: where the trajectories start: ``"uniform"`` on ``[−1, 1]`` per component (the paper), or ``"zero"``
STARTS = ("uniform", "zero")


@register("langevin")
class AnnealedLangevin(Detector):
    """Annealed Langevin dynamics detector (module doc).

    Args:
        qam: the constellation.
        levels: ``L``, the number of annealing noise levels (≥ 1).
        sigma_first, sigma_last: ``σ_1 ≥ σ_L > 0``, the first and last annealing noise standard
            deviations; the levels are geometric between them.
        steps: ``S``, Langevin steps per level (≥ 1).
        step_size: ``ε > 0``.
        trajectories: ``R``, independent chains per instance (≥ 1).
        temperature: ``T ≥ 0``, the scale of the injected noise (0: no noise).
        start: ``"uniform"`` or ``"zero"`` (:data:`STARTS`).
        seed: seeds a fresh generator at every call (reproducible outputs); ``None`` (default) uses
            the global torch stream.
        clip: logit floor (nats below the best) of the max-log soft output.
    """

    def __init__(self, qam: QAM | int, levels: int = 20, sigma_first: float = 1.0, sigma_last: float = 0.01,
                 steps: int = 70, step_size: float = 3e-5, trajectories: int = 20, temperature: float = 0.5,
                 start: str = "uniform", seed: int | None = None, clip: float = 20.0):
        super().__init__(qam)
        for name, value in (("levels", levels), ("steps", steps), ("trajectories", trajectories)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if not 0 < sigma_last <= sigma_first:
            raise ValueError(f"need 0 < sigma_last <= sigma_first, got sigma_first={sigma_first}, "
                             f"sigma_last={sigma_last}")
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if start not in STARTS:
            raise ValueError(f"unknown start {start!r}; use one of {STARTS}")
        if seed is not None and (isinstance(seed, bool) or int(seed) != seed):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        self.levels, self.steps, self.trajectories = int(levels), int(steps), int(trajectories)
        self.sigma_first, self.sigma_last = float(sigma_first), float(sigma_last)
        self.step_size, self.temperature, self.start = float(step_size), float(temperature), start
        self.seed, self.clip = seed, float(clip)

    @property
    def soft_output(self) -> str:
        return f"max-log over the {self.trajectories} trajectories, clipped at -{self.clip:g}"

    def noise_levels(self) -> Tensor:
        """``[L]`` float64 annealing standard deviations ``σ_1 … σ_L``, geometric."""
        return torch.logspace(math.log10(self.sigma_first), math.log10(self.sigma_last), self.levels,
                              dtype=torch.float64)

    def iterate(self, graph: MIMOGraph) -> Tensor:
        view = graph.dense()
        samples = self.sample(graph)                                          # [B, R, 2Nt_max]
        nt = view.H.shape[2]
        symbols = self.qam.nearest(torch.complex(samples[..., :nt], samples[..., nt:]))   # [B, R, Nt_max]
        points = self.qam.points_as(view.H)[symbols] * view.user_mask[:, None, :]
        residual = dense_residual(view.H[:, None], view.y[:, None], points)   # [B, R, Nr_max]
        distance = residual.abs().square().sum(-1)                            # [B, R]
        metrics = tree_search.list_metrics(symbols, distance, self.qam.order)
        logits = tree_search.metrics_to_logits(metrics, graph.noise_var, self.clip)
        return graph.users_from_dense(logits)[None]

    def sample(self, graph: MIMOGraph) -> Tensor:
        """The final samples ``[B, R, 2Nt_max]`` of the ``R`` trajectories (real layout
        ``[Re x; Im x]``, zero on padded users)."""
        view = graph.dense()
        H, y = view.real()                                                    # [B, 2Nr, 2Nt], [B, 2Nr]
        batch, _, n = H.shape
        mask = view.user_mask.repeat(1, 2)[:, None, :].to(H.dtype)            # [B, 1, 2Nt]
        eigenvalues, V = torch.linalg.eigh(H.mT @ H)                          # s², V: [B, 2Nt], [B, 2Nt, 2Nt]
        s2 = eigenvalues.clamp_min(0)[:, None, :]                             # [B, 1, 2Nt]
        b = ((H.mT @ y[..., None])[..., 0][:, None, :] @ V)                   # Vᵀ Hᵀ y: [B, 1, 2Nt]
        noise_var = graph.noise_var.to(H.dtype)[:, None, None]                # σ_w² = σ² (module doc)
        alphabet = self.qam.pam_as(H)
        generator = None if self.seed is None else torch.Generator(H.device).manual_seed(self.seed)
        shape = (batch, self.trajectories, n)
        if self.start == "uniform":
            z = 2 * torch.rand(shape, generator=generator, device=H.device, dtype=H.dtype) - 1
        else:
            z = H.new_zeros(shape)
        z_bar = (z * mask) @ V
        rate = self.step_size / self.sigma_last ** 2
        for sigma in self.noise_levels().tolist():
            likelihood_dominates = s2 * sigma ** 2 > noise_var                # [B, 1, 2Nt]
            gap = (noise_var - s2 * sigma ** 2).abs().clamp_min(torch.finfo(H.dtype).tiny)
            step = torch.where(likelihood_dominates, sigma ** 2 - noise_var / s2.clamp_min(torch.finfo(H.dtype).tiny),
                               sigma ** 2 * (1 - s2 * sigma ** 2 / noise_var))
            diffusion = math.sqrt(2 * self.temperature * rate) * step.sqrt()
            for _ in range(self.steps):
                z = (z_bar @ V.mT) * mask
                posterior_mean, _ = pam_moments(gaussian_log_probs(z, z.new_tensor(sigma ** 2), alphabet), alphabet)
                prior_score = ((posterior_mean - z) / sigma ** 2) @ V
                score = (b - s2 * z_bar) / gap + torch.where(likelihood_dominates, 0.0, prior_score)
                z_bar = z_bar + rate * step * score
                if self.temperature:
                    z_bar = z_bar + diffusion * torch.randn(shape, generator=generator, device=H.device,
                                                            dtype=H.dtype)
        return (z_bar @ V.mT) * mask
