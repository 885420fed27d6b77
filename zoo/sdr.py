r"""Semidefinite relaxation (SDR) of ML detection, solved per instance with cvxpy.

Real-valued model (docs/conventions.md §6), ``n = 2 Nt`` unknowns from the √M-PAM
alphabet ``A``, ``G = H_rᵀ H_r``, ``c = H_rᵀ y_r``. ML minimises
``xᵀ G x − 2 cᵀ x``; lifting ``S = x xᵀ`` and relaxing the rank gives the
bound-constrained SDR (Ma, Su, Jaldén, Chang, Chi 2009, "The equivalence of
semidefinite relaxation MIMO detectors for higher-order QAM"; for 16-QAM
their BC-SDR):

.. math::
    \min_{S, s}\ \mathrm{tr}(G S) - 2 c^T s \quad \text{s.t.} \quad
    \begin{bmatrix} S & s \\ s^T & 1 \end{bmatrix} \succeq 0, \quad
    a_{\min}^2 \le S_{kk} \le a_{\max}^2,

with ``a_min``/``a_max`` the smallest/largest PAM magnitude. For 4-QAM the
bounds coincide, ``S_kk = 1/2``: the classical BPSK-lifting SDR.

**Rounding / randomisation.** Candidates are the componentwise PAM
quantisation of ``s`` and of ``randomizations`` Gaussian draws
``ξ ~ N(s, S − s sᵀ)`` (drawn in the eigenbasis of the covariance, so that
they are permutation equivariant); the one with the smallest ``‖y − Hx‖²``
is the decision. Soft output: max-log over this candidate list with clipping (as
for K-best, :func:`gnnmimo.tree_search.metrics_to_logits`). The draws use a
fixed seed per instance, so results do not depend on batch composition.

**Speed.** One cvxpy solve per instance (a Python loop over instances: this
is a reference implementation). One problem per ``(Nt, Nr)`` shape is built
with cvxpy parameters and re-solved, which avoids recompilation. It is far
slower than the vectorised sphere decoder (docs/baselines.md;
``benchmarks/vs_sionna.py`` prints the rate). A solve grows about as ``Nt⁴``:
on one CPU core (16-QAM, CLARABEL) about 0.5 s per instance at Nt = 16 and
10 s at Nt = 32, so :meth:`SDR.excessive_work` flags ``Nt > 16``.

Needs the optional dependency cvxpy: ``pip install gnnmimo[sdr]``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector
from gnnmimo.graph import MIMOGraph
from gnnmimo.tree_search import list_metrics, metrics_to_logits
from gnnmimo.registry import register


def _cvxpy():
    try:
        import cvxpy
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("the 'sdr' detector needs cvxpy: pip install gnnmimo[sdr]") from error
    return cvxpy


@register("sdr")
class SDR(Detector):
    """Bound-constrained semidefinite relaxation with Gaussian randomisation (see module doc).

    Args:
        qam: the constellation.
        randomizations: number of Gaussian draws besides the plain rounding.
        solver: a cvxpy solver name (default ``"CLARABEL"``; ``"SCS"`` also works).
        clip: logit floor for symbols absent from the candidate list.
        seed: seed of the per-instance random draws.
    """

    def __init__(self, qam: QAM | int, randomizations: int = 32, solver: str = "CLARABEL",
                 clip: float = 20.0, seed: int = 0):
        super().__init__(qam)
        cvxpy = _cvxpy()
        if solver not in cvxpy.installed_solvers():
            raise ValueError(f"cvxpy solver {solver!r} is not installed; installed: "
                             f"{cvxpy.installed_solvers()}")
        if randomizations < 0:
            raise ValueError(f"randomizations must be >= 0, got {randomizations}")
        self.randomizations, self.solver, self.clip, self.seed = int(randomizations), solver, float(clip), seed
        self._problems: dict[int, tuple] = {}

    #: the most users detected without a warning (module doc, **Speed**)
    MAX_USERS = 16
    #: measured seconds per instance at ``MAX_USERS`` users (module doc), the base of the estimate
    SECONDS_AT_MAX_USERS = 0.5

    def excessive_work(self, nr: int, nt: int) -> str | None:
        if nt <= self.MAX_USERS:
            return None
        seconds = self.SECONDS_AT_MAX_USERS * (nt / self.MAX_USERS) ** 4
        return (f"sdr at Nt={nt} solves a {2 * nt + 1}×{2 * nt + 1} semidefinite program per instance, one "
                f"instance after another: about {seconds:.2g} s each on one CPU core (0.5 s at Nt=16, growing "
                f"as Nt^4)")

    def _problem(self, n: int):
        """The parametrised SDP for ``n`` real unknowns (built once, re-solved)."""
        if n not in self._problems:
            cp = _cvxpy()
            G, c = cp.Parameter((n, n), symmetric=True), cp.Parameter(n)
            Z = cp.Variable((n + 1, n + 1), symmetric=True)
            pam = self.qam.pam.numpy()
            low, high = float(abs(pam).min()) ** 2, float(abs(pam).max()) ** 2
            diagonal = cp.diag(Z)[:n]
            bounds = [diagonal == low] if low == high else [diagonal >= low, diagonal <= high]
            problem = cp.Problem(cp.Minimize(cp.trace(G @ Z[:n, :n]) - 2 * c @ Z[:n, n]),
                                 [Z >> 0, Z[n, n] == 1, *bounds])
            self._problems[n] = (problem, G, c, Z)
        return self._problems[n]

    def _relax(self, G: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """Solve the SDR of one instance: ``G [n, n]``, ``c [n]`` → ``s [n]``, ``S [n, n]``."""
        n = c.numel()
        problem, G_par, c_par, Z = self._problem(n)
        G_par.value = ((G + G.T) / 2).double().cpu().numpy()
        c_par.value = c.double().cpu().numpy()
        problem.solve(solver=self.solver)
        if Z.value is None:
            raise RuntimeError(f"SDR: the {self.solver} solver failed ({problem.status})")
        solution = torch.as_tensor(Z.value, dtype=G.dtype, device=G.device)
        return solution[:n, n], solution[:n, :n]

    def _candidates(self, s: Tensor, S: Tensor) -> Tensor:
        """``[1 + randomizations, n]`` PAM indices: rounding of ``s`` and of Gaussian draws.

        Draws ``ξ = s + Σ_k √λ_k g_k v_k`` in the eigenbasis ``(λ_k, v_k)`` of
        ``S − s sᵀ`` (ascending ``λ``), each ``v_k`` signed so that
        ``v_kᵀ s ≥ 0``, with ``g ~ N(0, I)`` from a fixed seed: the law of
        ``N(s, S − s sᵀ)``, and relabelling the users relabels the draws, so
        the detector stays permutation equivariant.
        """
        eigval, eigvec = torch.linalg.eigh((S - torch.outer(s, s) + S.T - torch.outer(s, s)) / 2)
        sign = torch.where(s @ eigvec < 0, -1.0, 1.0).to(s.dtype)
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        gauss = torch.randn(self.randomizations, s.numel(), generator=generator, dtype=s.dtype).to(s.device)
        points = torch.cat([s[None], s + (gauss * eigval.clamp_min(0).sqrt() * sign) @ eigvec.T])
        pam = self.qam.pam_as(s)
        step = pam[1] - pam[0]
        return ((points - pam[0]) / step).round().clamp(0, pam.numel() - 1).long()

    def iterate(self, graph: MIMOGraph) -> Tensor:
        view = graph.dense()
        H_r, y_r = view.real()
        nt_max = view.H.shape[-1]
        pam = self.qam.pam_as(y_r)
        lists = torch.zeros(graph.num_instances, 1 + self.randomizations, nt_max, dtype=torch.long,
                            device=y_r.device)
        dists = y_r.new_empty(graph.num_instances, 1 + self.randomizations)
        for b in range(graph.num_instances):  # reference implementation: one SDP per instance
            nt, nr = int(graph.num_users[b]), int(graph.num_antennas[b])
            columns = torch.cat([torch.arange(nt), nt_max + torch.arange(nt)]).to(y_r.device)
            antenna_rows = torch.cat([torch.arange(nr), view.H.shape[1] + torch.arange(nr)]).to(y_r.device)
            H, y = H_r[b][antenna_rows][:, columns], y_r[b][antenna_rows]
            s, S = self._relax(H.T @ H, H.T @ y)
            index = self._candidates(s, S)                                      # [L, 2 nt]
            x = pam[index]
            dists[b] = (y - x @ H.T).square().sum(-1)
            lists[b, :, :nt] = self.qam.index_of_pam(index[:, :nt], index[:, nt:])
        logits = metrics_to_logits(list_metrics(lists, dists, self.qam.order), graph.noise_var, self.clip)
        return graph.users_from_dense(logits)[None]
