r"""Training objectives of the detectors, normalised per instance.

:func:`detection_loss` is RE-MIMO's eq. 13 over per-iteration logits,

.. math::
    \mathcal L = \frac{1}{B}\sum_{m=1}^{B} \frac{1}{N_t^m}\sum_{t=1}^{T} w_t
                 \sum_{i=1}^{N_t^m} \ell(\hat x_i^{m,t}, x_i^m),
    \qquad \sum_t w_t = 1,

with ``w_t = 1/T`` (``weights="uniform"``, the paper) or all weight on the
last iteration (``"last"``), and ``ℓ`` the cross-entropy (``"cross-entropy"``)
or the soft symbol error ``1 − p(x_i^m | y)`` (``"soft-ser"``), optionally
plus ``λ·CE`` (``ce_weight``). The soft SER is bounded: it saturates on
hopeless errors and does not reward hedging, which in an iterative detector
feeds back into the iteration; it does not penalise over-confidence either,
which the cross-entropy term restores (docs/training.md §2 has the runs that
motivated both). :func:`symbol_mse_loss` is the squared-error objective of
the unfolded detectors; :func:`training_loss` picks a detector's own
objective (:meth:`Detector.loss <gnnmimo.detector.Detector.loss>`) when it
has one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector
from gnnmimo.graph import USER, MIMOGraph

LOSS_WEIGHTS = ("uniform", "last")
LOSSES = ("cross-entropy", "soft-ser")


def iteration_weights(num_iterations: int, kind: str = "uniform", device=None) -> Tensor:
    """``[T]`` weights ``w_t`` summing to one: ``"uniform"`` (1/T) or ``"last"``."""
    if kind not in LOSS_WEIGHTS:
        raise ValueError(f"unknown loss weights {kind!r}; use one of {LOSS_WEIGHTS}")
    if kind == "uniform":
        return torch.full((num_iterations,), 1.0 / num_iterations, device=device)
    return torch.nn.functional.one_hot(torch.tensor(num_iterations - 1, device=device), num_iterations).float()


def detection_loss(logits: Tensor, graph: MIMOGraph, weights: str = "uniform",
                   loss: str = "cross-entropy", ce_weight: float = 0.0) -> Tensor:
    """RE-MIMO's eq. 13 for per-iteration logits ``[T, N_u, M]`` and the batch's labels, with the
    cross-entropy or the soft symbol error ``1 − p(label)`` per user (``loss``, module doc), the
    latter plus ``ce_weight`` times the cross-entropy."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; use one of {LOSSES}")
    if ce_weight < 0 or (ce_weight and loss != "soft-ser"):
        raise ValueError(f"ce_weight adds to the soft-ser loss and must be >= 0, got {ce_weight} with {loss!r}")
    num_iterations, num_users, order = logits.shape
    label = graph[USER].y.repeat(num_iterations)
    log_p_true = -F.cross_entropy(logits.reshape(-1, order), label, reduction="none")
    per_symbol = -log_p_true if loss == "cross-entropy" else 1 - log_p_true.exp() - ce_weight * log_p_true
    per_user = per_symbol.view(num_iterations, num_users) / graph.num_users[graph.user_batch]
    w = iteration_weights(num_iterations, weights, logits.device).to(logits.dtype)
    return (w @ per_user).sum() / graph.num_instances


def symbol_mse_loss(means: Tensor, graph: MIMOGraph, qam: QAM, weights: Tensor | None = None,
                    reference: Tensor | None = None) -> Tensor:
    r"""Squared error of soft symbol estimates, normalised per instance like :func:`detection_loss`:

    .. math::
        \mathcal L = \frac{1}{B}\sum_{m=1}^{B} \frac{1}{c_m}\sum_{t=1}^{T} w_t
                     \sum_{i=1}^{N_t^m} |\hat x_i^{m,t} - x_i^m|^2,

    with ``x_i`` the constellation point of ``graph[USER].y`` and
    ``c_m = N_t^m`` (each instance counts by its mean squared error per
    user), or, given a ``reference`` estimate ``x̃``, its squared error
    ``c_m = Σ_i |x̃_i^m − x_i^m|²`` (DetNet normalises by the ZF error). The
    objective of the unfolded detectors of the zoo (OAMPNet, MMNet, DetNet).

    Args:
        means: ``[T, N_u, 2]`` estimates ``(Re, Im)`` after each iteration, or ``[N_u, 2]`` (``T = 1``).
        graph: the batch, with labels.
        qam: the constellation of the labels.
        weights: ``[T]`` iteration weights ``w_t`` (default 1 each: the sum over iterations).
        reference: ``[N_u, 2]`` an estimate whose error normalises each instance (no gradient
            flows through it); its error must be positive.
    """
    means = means.reshape(-1, *means.shape[-2:])                                    # [T, N_u, 2]
    target = torch.view_as_real(qam.points_as(means)[graph[USER].y])             # [N_u, 2]
    if reference is None:
        scale = graph.num_users.to(means.dtype)
    else:
        reference_error = (reference.detach().to(means.dtype) - target).square().sum(-1)
        scale = means.new_zeros(graph.num_instances).index_add_(0, graph.user_batch, reference_error)
    per_user = (means - target).square().sum(-1) / scale[graph.user_batch]          # [T, N_u]
    w = means.new_ones(means.shape[0]) if weights is None else weights.to(means)
    return (w @ per_user).sum() / graph.num_instances


def training_loss(detector: Detector, graph: MIMOGraph, weights: str = "uniform",
                  loss: str = "cross-entropy", ce_weight: float = 0.0) -> Tensor:
    """The detector's own :meth:`~gnnmimo.detector.Detector.loss` if it has one (under the detector's
    precision, like its forward), else :func:`detection_loss`."""
    with detector.precision_context(graph):
        own = detector.loss(graph)
    return own if own is not None else detection_loss(detector(graph).logits, graph, weights, loss, ce_weight)
