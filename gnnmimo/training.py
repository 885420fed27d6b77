r"""Training learned detectors: loss, data, schedule, validation, checkpoints, resume.

Generic over the zoo: any registered :class:`~gnnmimo.detector.Detector`
with parameters trains here. Its per-iteration logits feed the loss of
RE-MIMO (eq. 13),

.. math::
    \mathcal L = \frac{1}{B}\sum_{m=1}^{B} \frac{1}{N_t^m}\sum_{t=1}^{T} w_t
                 \sum_{i=1}^{N_t^m} \operatorname{CE}(\hat x_i^{m,t}, x_i^m),
    \qquad \sum_t w_t = 1,

with ``w_t = 1/T`` (``loss_weights="uniform"``, the paper) or all weight on
the last iteration (``"last"``). ``loss="soft-ser"`` replaces the
cross-entropy by the soft symbol error ``1 − p(x_i^m | y)``: bounded, it
saturates on hopeless errors and, unlike a proper scoring rule, does not
reward hedging, which in an iterative detector feeds back into the
iteration. Nor does it penalise over-confidence, so a run can settle where
the loss is flat. ``ce_weight = λ > 0`` adds ``λ·CE`` to the
soft SER, a proper term that keeps a gradient on over-confident errors (the
runs behind this, and the λ of the shipped models: docs/training.md §2).
Keep ``OUT_STEM.best.pt`` (below) from such runs. A detector
with its own objective defines ``loss(graph) -> Tensor`` and is trained on
that instead.

**Data.** Every minibatch is drawn fresh: ``Nt`` from the triangular law on
``[Nt_low, Nt_high]`` with its mode at the upper end (``P(n) ∝ n − Nt_low + 1``),
one value per minibatch (``nt_mode="batch"``, the paper) or one per
instance (``"mixed"``); the SNR of each instance uniformly on its ``Nt``'s
range.

**SNR ranges** (``snr="auto"``): for each ``Nt`` the range runs from the
SNR where LMMSE detection has SER ``1e-1`` to the SNR where it has SER
``1e-3`` (``snr_targets``), on the training channel. The LMMSE SER curve is
computed at start-up on a 0.5 dB grid as the *expected* SER given each
user's post-equalisation SINR ``γ_i`` (the zoo's ``mmse`` detector),
``SER(γ) = 1 − (1 − 2(1 − 1/√M) Q(√(3γ/(M−1))))²`` averaged over channel
draws — a conditional expectation, so a few hundred channels per point give a
smooth curve down to 1e-4 — and the range is rounded outwards to 0.5 dB. A
near-ML detector is 1–4 dB better than LMMSE, so its own SER over that
range spans roughly 1e-1 … 1e-4: the region an error-correcting code
operates in, from where learning is easy to where it matters. The paper's
hand-set 16-QAM rule at ``Nr = 64``, ``[Nt/8 + 6, Nt/8 + 13]`` dB, sits at
about the same LMMSE SERs. A fixed range ``snr=(low, high)`` applies to every ``Nt``;
a dict ``{nt: (low, high)}`` sets one per ``Nt`` (e.g. GEPNet's 8–23.5 dB at
``Nt = 4`` and 10–30.5 dB at ``Nt = 8``).

**Optimisation.** Adam; ``schedule="plateau"`` (the paper: learning rate
× 0.91 whenever the validation loss stops improving, checked every
``eval_every`` steps), ``"cosine"`` (to 1 % of the initial rate at
``steps``) or ``"constant"``. The validation set is fixed (its own seed),
``val_size`` instances split evenly over the ``Nt`` values, each at SNRs
drawn from its range.

**Checkpoints** (:mod:`gnnmimo.checkpoint`) carry the full configuration,
the library version, the optimizer, scheduler, step, history and random
states; they are written atomically every ``checkpoint_every`` steps, at the
end, and when the run is interrupted (Ctrl-C finishes the current step, saves
and exits; a second Ctrl-C aborts at once). ``resume=True`` continues from
the checkpoint exactly: on CPU with the same seed, an interrupted and resumed
run ends with the same weights as an uninterrupted one. Whenever the
validation loss reaches a new low, the run is also saved beside ``out`` as
``OUT_STEM.best.pt`` (:attr:`Trainer.best_path`): the model to export when a late
phase of training over-fits or diverges.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from gnnmimo.channels import ChannelModel
from gnnmimo.checkpoint import differences, load_weights, read_checkpoint, save_checkpoint
from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector
from gnnmimo.graph import USER, MIMOGraph
from gnnmimo.sampling import MIMOSampler, sample_counts

NT_MODES = ("batch", "mixed")
SCHEDULES = ("plateau", "cosine", "constant")
LOSS_WEIGHTS = ("uniform", "last")
LOSSES = ("cross-entropy", "soft-ser")
#: configuration fields that may change when a run is resumed
RESUMABLE_FIELDS = ("steps", "checkpoint_every")
#: configuration fields newer than the first checkpoints, with the value older runs had
FIELDS_ADDED_LATER = {"loss": "cross-entropy", "ce_weight": 0.0}
#: instances per validation batch (fixed, so the validation set does not depend on batch_size)
VALIDATION_CHUNK = 500


# --------------------------------------------------------------------- loss
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
    label = graph[USER].label.repeat(num_iterations)
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

    with ``x_i`` the constellation point of ``graph[USER].label`` and
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
    target = torch.view_as_real(qam.points_as(means)[graph[USER].label])             # [N_u, 2]
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
    """The detector's own ``loss(graph)`` if it has one, else :func:`detection_loss`."""
    own = getattr(detector, "loss", None)
    return own(graph) if callable(own) else detection_loss(detector(graph).logits, graph, weights, loss, ce_weight)


# ---------------------------------------------------------------- SNR ranges
def qam_ser(sinr: Tensor, order: int) -> Tensor:
    """SER of unit-energy square ``order``-QAM in complex Gaussian noise at SINR ``γ`` (float64)."""
    pam = 2.0 * (1.0 - order ** -0.5) * 0.5 * torch.erfc(torch.sqrt(1.5 * sinr / (order - 1)))
    return 1.0 - (1.0 - pam) ** 2


@torch.no_grad()
def mmse_ser_curve(sampler: MIMOSampler, nt: int, snr_grid: Tensor, instances: int,
                   generator: torch.Generator) -> Tensor:
    """Expected LMMSE SER ``[len(snr_grid)]`` at ``nt`` users (see module doc)."""
    from zoo.linear import LMMSE

    snr = snr_grid.to(sampler.device).repeat_interleave(instances)
    graph = sampler.sample(snr.numel(), generator, snr_db=snr, nt=nt)
    _, nu = LMMSE(sampler.qam).equalize(graph)
    ser = qam_ser(1.0 / nu.double(), sampler.qam.order)
    return ser.view(len(snr_grid), instances * nt).mean(1).cpu()


def snr_at(curve: Tensor, snr_grid: Tensor, target: float) -> float:
    """Where a decreasing SER curve crosses ``target`` (log-linear interpolation)."""
    log_ser = curve.clamp_min(1e-300).log10().cummin(0).values
    log_target = math.log10(target)
    below = (log_ser <= log_target).nonzero()
    if below.numel() == 0:
        return float(snr_grid[-1])
    k = int(below[0])
    if k == 0:
        return float(snr_grid[0])
    a, b = float(log_ser[k - 1]), float(log_ser[k])
    fraction = (a - log_target) / (a - b) if a != b else 1.0
    return float(snr_grid[k - 1] + fraction * (snr_grid[k] - snr_grid[k - 1]))


def auto_snr_ranges(sampler: MIMOSampler, nts, targets: tuple[float, float] = (1e-1, 1e-3),
                    instances: int = 128, seed: int = 0,
                    grid: tuple[float, float, float] = (-10.0, 60.0, 0.5)) -> dict[int, tuple[float, float]]:
    """``{Nt: (low, high)}``: the SNRs where LMMSE reaches ``targets`` SER, rounded out to 0.5 dB."""
    start, stop, step = grid
    snr_grid = torch.arange(start, stop + step / 2, step, dtype=sampler.dtype.to_real())
    generator = sampler.generator(seed)
    ranges = {}
    for nt in nts:  # a handful of user counts; each is one vectorised batch
        curve = mmse_ser_curve(sampler, nt, snr_grid, instances, generator)
        low, high = (snr_at(curve, snr_grid, target) for target in targets)
        ranges[int(nt)] = (math.floor(low * 2) / 2, max(math.ceil(high * 2) / 2, math.floor(low * 2) / 2 + 0.5))
    return ranges


# ------------------------------------------------------------- configuration
@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in every checkpoint).

    Args:
        detector: a registered detector name; ``options`` its constructor options.
        qam, nr, nt: constellation order, receive antennas, user range ``(low, high)``.
        channel: ``ChannelModel`` fields (``kind``, ``rho``, ``csi_error``).
        snr: ``"auto"``, a fixed range ``(low, high)`` in dB for every Nt, or
            ``{nt: (low, high)}`` for each trained Nt.
        snr_targets: LMMSE SERs at the low and high end of the auto range.
        nt_mode: ``"batch"`` (one Nt per minibatch, the paper) or ``"mixed"``.
        steps, batch_size, lr: optimisation length, minibatch size, Adam's rate.
        clip_grad_norm: clip the gradient's global norm to this before each step (off when ``None``).
        schedule: ``"plateau"``, ``"cosine"`` or ``"constant"``; ``plateau_factor``,
            ``plateau_patience``, ``min_lr`` tune the plateau rule.
        loss_weights: ``"uniform"`` (eq. 13 with ``w_t = 1/T``) or ``"last"``.
        loss: ``"cross-entropy"`` (eq. 13) or ``"soft-ser"`` (module doc).
        ce_weight: weight of a cross-entropy term added to the soft SER (module doc).
        eval_every: steps between validations (and plateau checks).
        checkpoint_every: steps between checkpoints (default ``eval_every``).
        val_size, val_seed: the fixed validation set.
        seed: initialisation and training-data seed.
        precision, device: of the sampled data and the model.
    """

    detector: str = "remimo"
    options: dict = field(default_factory=dict)
    qam: int = 16
    nr: int = 16
    nt: tuple[int, int] = (4, 8)
    nt_step: int = 1
    channel: dict = field(default_factory=lambda: {"kind": "iid", "rho": 0.0, "csi_error": 0.0})
    snr: str | tuple[float, float] | dict[int, tuple[float, float]] = "auto"
    snr_targets: tuple[float, float] = (1e-1, 1e-3)
    nt_mode: str = "batch"
    steps: int = 10_000
    batch_size: int = 256
    lr: float = 1e-4
    clip_grad_norm: float | None = None
    schedule: str = "plateau"
    plateau_factor: float = 0.91
    plateau_patience: int = 0
    min_lr: float = 1e-6
    loss_weights: str = "uniform"
    loss: str = "cross-entropy"
    ce_weight: float = 0.0
    eval_every: int = 500
    checkpoint_every: int | None = None
    val_size: int = 2000
    val_seed: int = 12345
    seed: int = 0
    precision: str = "single"
    device: str = "cpu"

    def __post_init__(self):
        self.nt = tuple(self.nt)
        if isinstance(self.snr, dict):
            self.snr = {int(nt): tuple(float(v) for v in bounds) for nt, bounds in self.snr.items()}
        elif self.snr != "auto":
            self.snr = tuple(float(v) for v in self.snr)
        ranges = self.snr.values() if isinstance(self.snr, dict) else [] if self.snr == "auto" else [self.snr]
        self.snr_targets = tuple(self.snr_targets)
        checks = [(self.nt_mode in NT_MODES, f"nt_mode must be one of {NT_MODES}"),
                  (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
                  (self.loss_weights in LOSS_WEIGHTS, f"loss_weights must be one of {LOSS_WEIGHTS}"),
                  (self.loss in LOSSES, f"loss must be one of {LOSSES}"),
                  (self.ce_weight >= 0 and (not self.ce_weight or self.loss == "soft-ser"),
                   "ce_weight must be >= 0 and adds to the soft-ser loss only"),
                  (all(len(r) == 2 and r[0] <= r[1] for r in ranges),
                   "snr must be 'auto', (low, high) or {nt: (low, high)} with low <= high"),
                  (not isinstance(self.snr, dict) or set(self.snr) == set(self.nts),
                   f"per-Nt snr ranges must name exactly the trained Nt {self.nts}"),
                  (1 <= self.nt[0] <= self.nt[1], "nt must be (low, high) with 1 <= low <= high"),
                  (self.nt_step >= 1 and (self.nt[1] - self.nt[0]) % self.nt_step == 0,
                   "nt_step must be >= 1 and divide high - low"),
                  (min(self.steps, self.batch_size, self.eval_every, self.val_size) >= 1,
                   "steps, batch_size, eval_every and val_size must be >= 1")]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError("invalid training configuration: " + "; ".join(problems))

    @property
    def nts(self) -> list[int]:
        """The user counts trained on: ``low, low + nt_step, …, high``."""
        return list(range(self.nt[0], self.nt[1] + 1, self.nt_step))

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def system(self) -> dict:
        """The MIMO system the detector is trained for (stored in checkpoints)."""
        return {"nr": self.nr, "nt": list(self.nt), "nt_step": self.nt_step, "qam": self.qam,
                "channel": dict(self.channel)}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


# ------------------------------------------------------------------- trainer
class Trainer:
    """Runs a :class:`TrainConfig`; see the module doc.

    Args:
        config: the run.
        out: checkpoint path (``None``: no checkpoints).
        resume: continue from ``out`` if it exists (its configuration must match
            ``config`` except :data:`RESUMABLE_FIELDS`; otherwise ``ValueError``).
        progress: show a tqdm bar.
        log: where validation lines go (default: ``tqdm.write``).
    """

    def __init__(self, config: TrainConfig, out: str | Path | None = None, resume: bool = False,
                 progress: bool = True, log: Callable[[str], None] | None = None):
        import zoo

        self.config, self.out, self.progress = config, (Path(out) if out else None), progress
        self.log = log or tqdm.write
        checkpoint = read_checkpoint(self.out) if resume and self.out and self.out.is_file() else None
        if checkpoint is not None:
            self._check_resumable(checkpoint)

        torch.manual_seed(config.seed)
        device = torch.device(config.device)
        self.detector = zoo.create(config.detector, config.qam, **config.options).to(device)
        if not any(p.requires_grad for p in self.detector.parameters()):
            raise ValueError(f"detector {config.detector!r} has no trainable parameters")
        self.sampler = MIMOSampler(config.nr, config.nt, config.qam, channel=ChannelModel(**config.channel),
                                   nt_distribution="triangular", precision=config.precision, device=device)
        self.generator = self.sampler.generator(config.seed)
        if checkpoint is not None:
            self.snr_ranges = {int(k): tuple(v) for k, v in checkpoint["training"]["snr_ranges"].items()}
        elif config.snr == "auto":
            self.snr_ranges = auto_snr_ranges(self.sampler, config.nts, config.snr_targets, seed=config.val_seed)
        elif isinstance(config.snr, dict):
            self.snr_ranges = dict(config.snr)
        else:
            self.snr_ranges = {nt: config.snr for nt in config.nts}
        self._snr_table = torch.tensor([self.snr_ranges[nt] for nt in config.nts],
                                       dtype=self.sampler.dtype.to_real(), device=device)

        self.optimizer = torch.optim.Adam(self.detector.parameters(), lr=config.lr)
        self.scheduler = self._make_scheduler()
        self.step, self.history, self.best_val_loss = 0, [], math.inf
        self.running_loss = (0.0, 0)  # (sum, count) of training losses since the last validation
        self.elapsed = 0.0  # seconds spent in training steps, over all sessions
        self._stop_requested = False
        self.validation = self._validation_set()
        if checkpoint is not None:
            self._restore(checkpoint)

    # ---------------------------------------------------------------- setup
    def _make_scheduler(self):
        c = self.config
        if c.schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, "min", factor=c.plateau_factor, patience=c.plateau_patience, min_lr=c.min_lr)
        if c.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=c.steps, eta_min=c.lr / 100)
        return None

    def _check_resumable(self, checkpoint: dict) -> None:
        saved = {k: v for k, v in checkpoint["training"].items() if k not in RESUMABLE_FIELDS + ("snr_ranges",)}
        for key, value in FIELDS_ADDED_LATER.items():  # absent from older checkpoints
            saved.setdefault(key, value)
        wanted = {k: v for k, v in self.config.to_dict().items() if k not in RESUMABLE_FIELDS}
        found = differences(saved, wanted)
        if found:
            raise ValueError(f"cannot resume from {checkpoint['path']}: its configuration differs "
                             f"(checkpoint vs requested): " + "; ".join(found)
                             + ". Use another --out to start a new run.")

    def _snr_for(self, num_users: Tensor) -> Tensor:
        """Per-instance SNR uniform on each instance's range."""
        low, high = self._snr_table[(num_users - self.config.nt[0]) // self.config.nt_step].unbind(-1)
        u = torch.rand(num_users.shape, generator=self.generator, device=low.device, dtype=low.dtype)
        return low + (high - low) * u

    def _validation_set(self) -> list[MIMOGraph]:
        """Fixed chunks (≤ :data:`VALIDATION_CHUNK` instances, one Nt each), from ``val_seed``."""
        c = self.config
        generator = self.sampler.generator(c.val_seed)
        per_nt = max(1, c.val_size // len(c.nts))
        chunks = []
        for nt in c.nts:  # a handful of user counts
            for start in range(0, per_nt, VALIDATION_CHUNK):
                size = min(VALIDATION_CHUNK, per_nt - start)
                low, high = self.snr_ranges[nt]
                snr = low + (high - low) * torch.rand(size, generator=generator, device=self.sampler.device,
                                                      dtype=self.sampler.dtype.to_real())
                chunks.append(self.sampler.sample(size, generator, snr_db=snr, nt=nt))
        return chunks

    # ----------------------------------------------------------------- data
    def sample_batch(self) -> MIMOGraph:
        """One training minibatch (see the module doc)."""
        c = self.config
        # triangular over the positions in c.nts: P(k) ∝ k + 1, mode at the largest Nt
        positions = sample_counts(0, len(c.nts) - 1, 1 if c.nt_mode == "batch" else c.batch_size,
                                  "triangular", self.generator, self.sampler.device)
        counts = c.nt[0] + c.nt_step * positions
        if c.nt_mode == "batch":
            nt = int(counts)
            return self.sampler.sample(c.batch_size, self.generator, snr_db=self._snr_for(counts.expand(c.batch_size)),
                                       nt=nt)
        sizes = torch.bincount(positions, minlength=len(c.nts)).tolist()
        parts = [self.sampler.sample(size, self.generator, nt=nt,
                                     snr_db=self._snr_for(torch.full((size,), nt, device=counts.device)))
                 for nt, size in zip(c.nts, sizes) if size]  # one part per user count
        return concat_graphs(parts)

    # ------------------------------------------------------------- training
    def train_step(self) -> float:
        self.detector.train()
        graph = self.sample_batch()
        loss = training_loss(self.detector, graph, self.config.loss_weights, self.config.loss,
                             self.config.ce_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.detector.parameters(), self.config.clip_grad_norm)
        self.optimizer.step()
        if self.config.schedule == "cosine":
            self.scheduler.step()
        return loss.item()

    @torch.no_grad()
    def validate(self, detector: Detector | None = None) -> dict:
        """Loss (eq. 13) and SER per Nt on the fixed validation set (of the trained or another detector)."""
        detector = detector or self.detector
        detector.eval()
        total_loss, instances, errors, symbols = 0.0, 0, {}, {}
        for graph in self.validation:
            logits = detector(graph).logits
            total_loss += detection_loss(logits, graph, self.config.loss_weights, self.config.loss,
                                         self.config.ce_weight).item() * graph.num_instances
            instances += graph.num_instances
            nt = int(graph.num_users[0])
            errors[nt] = errors.get(nt, 0) + int((logits[-1].argmax(-1) != graph[USER].label).sum())
            symbols[nt] = symbols.get(nt, 0) + graph[USER].label.numel()
        return {"loss": total_loss / instances, "ser": {nt: errors[nt] / symbols[nt] for nt in errors}}

    def log_references(self, names: tuple[str, ...] = ("mmse", "ep")) -> dict:
        """Log (and return) the validation loss and SER per Nt of classical detectors, for comparison."""
        import zoo

        found = {name: self.validate(zoo.create(name, self.config.qam).to(self.sampler.device))
                 for name in names if name in zoo.list()}
        for name, result in found.items():
            self.log(f"reference {name}: val {result['loss']:.4f} | SER by Nt "
                     + " ".join(f"{nt}:{s:.2e}" for nt, s in result["ser"].items()))
        return {name: result["ser"] for name, result in found.items()}

    def request_stop(self) -> None:
        """Finish the current step, save a checkpoint and return from :meth:`run`."""
        self._stop_requested = True

    def run(self, on_step: Callable[["Trainer"], None] | None = None) -> dict:
        """Train up to ``config.steps``; returns the last validation record (or ``{}``)."""
        c = self.config
        checkpoint_every = c.checkpoint_every or c.eval_every
        self._stop_requested = False
        with _stop_on_sigint(self), tqdm(total=c.steps, initial=self.step, disable=not self.progress,
                                         desc=f"train {c.detector}", dynamic_ncols=True) as bar:
            while self.step < c.steps and not self._stop_requested:
                tick = time.perf_counter()
                loss = self.train_step()
                self.elapsed += time.perf_counter() - tick
                self.step += 1
                total, count = self.running_loss
                self.running_loss = (total + loss, count + 1)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
                if self.step % c.eval_every == 0 or self.step == c.steps:
                    self._evaluate(self.running_loss[0] / self.running_loss[1])
                    self.running_loss = (0.0, 0)
                if self.out and (self.step % checkpoint_every == 0 or self.step == c.steps):
                    self.save()
                if on_step is not None:
                    on_step(self)
        if self._stop_requested and self.step < c.steps:
            if self.out:
                self.save()
                self.log(f"interrupted at step {self.step}; saved {self.out} (continue with --resume)")
            else:
                self.log(f"interrupted at step {self.step}")
        return self.history[-1] if self.history else {}

    @property
    def best_path(self) -> Path | None:
        """Where the run is saved at each new lowest validation loss: ``OUT_STEM.best.pt`` beside ``out``."""
        return self.out.with_name(f"{self.out.stem}.best{self.out.suffix}") if self.out else None

    def _evaluate(self, train_loss: float) -> None:
        result = self.validate()
        if self.scheduler is not None and self.config.schedule == "plateau":
            self.scheduler.step(result["loss"])
        improved = result["loss"] < self.best_val_loss
        if improved:
            self.best_val_loss = result["loss"]
        record = {"step": self.step, "train_loss": train_loss, "val_loss": result["loss"],
                  "val_ser": result["ser"], "lr": self.optimizer.param_groups[0]["lr"], "seconds": self.elapsed}
        self.history.append(record)
        ser = " ".join(f"{nt}:{s:.2e}" for nt, s in result["ser"].items())
        self.log(f"step {self.step}: train {train_loss:.4f} val {result['loss']:.4f} "
                 f"lr {record['lr']:.2e} | SER by Nt {ser}" + (" | best" if improved else ""))
        if improved and self.out:
            self.save(self.best_path)

    # ---------------------------------------------------------- checkpoints
    def training_state(self) -> dict:
        return {"step": self.step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "rng": {"data": self.generator.get_state(), "torch": torch.get_rng_state()},
                "history": self.history,
                "running_loss": list(self.running_loss),
                "elapsed": self.elapsed,
                "best_val_loss": self.best_val_loss}

    def save(self, path: str | Path | None = None) -> None:
        """Write a checkpoint (atomically) to ``path`` or ``out``."""
        training = {**self.config.to_dict(), "snr_ranges": {str(k): list(v) for k, v in self.snr_ranges.items()}}
        save_checkpoint(path or self.out, self.detector, system=self.config.system(), training=training,
                        state=self.training_state())

    def _restore(self, checkpoint: dict) -> None:
        load_weights(self.detector, checkpoint)
        state = checkpoint["state"]
        if state is None:
            raise ValueError(f"{checkpoint['path']} holds weights only, no training state to resume")
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["rng"]["data"])
        torch.set_rng_state(state["rng"]["torch"])
        self.step, self.history, self.best_val_loss = state["step"], state["history"], state["best_val_loss"]
        self.running_loss, self.elapsed = tuple(state["running_loss"]), state["elapsed"]


@contextlib.contextmanager
def _stop_on_sigint(trainer: Trainer):
    """First Ctrl-C: ask the trainer to stop after the current step. Second: abort."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGINT, previous)
        trainer.log("\nCtrl-C: stopping after this step and saving (press again to abort)")
        trainer.request_stop()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def concat_graphs(graphs: list[MIMOGraph]) -> MIMOGraph:
    """One batch holding the instances of several batches, in order (labels and SNRs kept)."""
    if len(graphs) == 1:
        return graphs[0]
    views = [g.dense() for g in graphs]
    labels = [g.dense_labels(0) for g in graphs]
    nr_max = max(v.H.shape[1] for v in views)
    nt_max = max(v.H.shape[2] for v in views)
    cat = lambda name: torch.cat([getattr(g, name) for g in graphs])
    return MIMOGraph.from_dense(
        torch.cat([F.pad(v.y, (0, nr_max - v.y.shape[1])) for v in views]),
        torch.cat([F.pad(v.H, (0, nt_max - v.H.shape[2], 0, nr_max - v.H.shape[1])) for v in views]),
        cat("noise_var"), cat("num_users"), cat("num_antennas"),
        label=torch.cat([F.pad(label, (0, nt_max - label.shape[1])) for label in labels]),
        snr_db=cat("snr_db"), qam=graphs[0].qam)


# ------------------------------------------------------------- command line
def parse_snr_option(text: str) -> tuple[str | tuple | dict, tuple[float, float] | None]:
    """``"auto"``, ``"auto:1e-1:1e-3"`` (LMMSE SER targets), ``"LOW:HIGH"`` dB, or per Nt
    ``"4=8:23.5,8=10:30.5"`` → ``(snr, targets)``."""
    def bounds(item: str) -> tuple[float, float]:
        low, high = (float(v) for v in item.split(":"))
        if low > high:
            raise ValueError(item)
        return low, high

    parts = text.split(":")
    try:
        if parts[0] == "auto" and len(parts) in (1, 3):
            return "auto", (tuple(float(v) for v in parts[1:]) or None)
        if "=" in text:
            return {int(nt): bounds(item) for nt, item in (part.split("=") for part in text.split(","))}, None
        return bounds(text), None
    except ValueError:
        pass
    raise argparse.ArgumentTypeError("expected auto, auto:SER_LOW_END:SER_HIGH_END, LOW:HIGH dB or "
                                     f"NT=LOW:HIGH,NT=LOW:HIGH; got {text!r}")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``gnnmimo train`` (see :func:`train_main`)."""
    from gnnmimo.cli import add_channel_arguments, parse_int_range

    parser.add_argument("--detector", default="remimo", metavar="NAME[:opt=val,…]",
                        help="a registered learned detector with options, e.g. remimo:config=paper")
    parser.add_argument("--nr", type=int, required=True, help="receive antennas")
    parser.add_argument("--nt", type=parse_int_range, required=True, help="users, N or LOW:HIGH")
    parser.add_argument("--nt-step", type=int, default=1,
                        help="train on LOW, LOW+STEP, …, HIGH users only (e.g. 2 for even Nt)")
    parser.add_argument("--snr", type=parse_snr_option, default=("auto", None),
                        help="training SNR per Nt: auto (LMMSE SER 1e-1…1e-3), auto:1e-1:1e-3, LOW:HIGH dB, "
                             "or per Nt, e.g. 4=8:23.5,8=10:30.5")
    add_channel_arguments(parser)
    model = parser.add_argument_group("model size (detector options)")
    model.add_argument("--d-model", type=int, help="state width d_s")
    model.add_argument("--heads", type=int, help="attention heads")
    model.add_argument("--blocks", type=int, help="iterations / EP blocks T (the detector's `blocks` "
                       "or `iterations` option)")
    run = parser.add_argument_group("optimisation")
    run.add_argument("--steps", type=int, default=TrainConfig.steps)
    run.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    run.add_argument("--lr", type=float, default=TrainConfig.lr)
    run.add_argument("--clip-grad-norm", type=float, metavar="NORM", help="clip the gradient norm (default: off)")
    run.add_argument("--schedule", choices=SCHEDULES, default=TrainConfig.schedule)
    run.add_argument("--plateau-factor", type=float, default=TrainConfig.plateau_factor)
    run.add_argument("--plateau-patience", type=int, default=TrainConfig.plateau_patience)
    run.add_argument("--nt-mode", choices=NT_MODES, default=TrainConfig.nt_mode,
                     help="one Nt per minibatch (batch, the paper) or per instance (mixed)")
    run.add_argument("--loss-weights", choices=LOSS_WEIGHTS, default=TrainConfig.loss_weights)
    run.add_argument("--loss", choices=LOSSES, default=TrainConfig.loss,
                     help="per-symbol loss: cross-entropy (eq. 13) or soft-ser (1 - p(true symbol))")
    run.add_argument("--ce-weight", type=float, default=TrainConfig.ce_weight,
                     help="add this times the cross-entropy to the soft-ser loss")
    run.add_argument("--eval-every", type=int, default=TrainConfig.eval_every)
    run.add_argument("--checkpoint-every", type=int, help="default: --eval-every")
    run.add_argument("--val-size", type=int, default=TrainConfig.val_size)
    run.add_argument("--val-seed", type=int, default=TrainConfig.val_seed)
    parser.add_argument("--out", required=True,
                        help="checkpoint file (written atomically); OUT_STEM.best.pt keeps the lowest validation loss")
    parser.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--time-limit", type=float, metavar="MINUTES",
                        help="stop cleanly (checkpoint saved, resumable) after this much wall time")
    parser.add_argument("--no-progress", action="store_true")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A :class:`TrainConfig` from parsed ``gnnmimo train`` arguments."""
    import inspect

    import zoo
    from gnnmimo.cli import channel_from_args

    name, options = zoo.parse_spec(args.detector)
    accepted = inspect.signature(zoo.registry.detector_class(name).__init__).parameters
    for key in ("d_model", "heads", "blocks"):
        if getattr(args, key) is not None:   # --blocks sets `iterations` of unrolled detectors
            options[key if key in accepted or key != "blocks" else "iterations"] = getattr(args, key)
    if "nr" in accepted:
        options.setdefault("nr", args.nr)
    channel = channel_from_args(args)
    snr, targets = args.snr
    return TrainConfig(
        detector=name, options=options, qam=args.qam, nr=args.nr, nt=args.nt, nt_step=args.nt_step,
        channel={"kind": channel.kind, "rho": _plain(channel.rho), "csi_error": channel.csi_error},
        snr=snr, snr_targets=targets or TrainConfig.snr_targets, nt_mode=args.nt_mode, steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, clip_grad_norm=args.clip_grad_norm, schedule=args.schedule,
        plateau_factor=args.plateau_factor,
        plateau_patience=args.plateau_patience, loss_weights=args.loss_weights, loss=args.loss,
        ce_weight=args.ce_weight, eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every, val_size=args.val_size, val_seed=args.val_seed,
        seed=args.seed, precision=args.precision, device=args.device)


def _deadline(minutes: float | None) -> Callable[[Trainer], None] | None:
    """An ``on_step`` hook that asks the trainer to stop after ``minutes`` of wall time."""
    if not minutes:
        return None
    end = time.monotonic() + 60 * minutes

    def stop_when_due(trainer: Trainer) -> None:
        if time.monotonic() > end:
            trainer.request_stop()
    return stop_when_due


def train_main(args: argparse.Namespace) -> int:
    """``gnnmimo train``: train a detector and write checkpoints to ``--out``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = config_from_args(args)
        trainer = Trainer(config, args.out, resume=args.resume, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    if trainer.step:
        print(f"resuming {args.out} at step {trainer.step}", file=sys.stderr)
    ranges = ", ".join(f"{nt}: {low:g}..{high:g}" for nt, (low, high) in trainer.snr_ranges.items())
    print(f"SNR ranges (dB) by Nt: {ranges}", file=sys.stderr)
    try:
        trainer.log_references()
        trainer.run(on_step=_deadline(args.time_limit))
    except KeyboardInterrupt:  # the second Ctrl-C: abort mid-step, keep the last checkpoint
        print(f"\naborted at step {trainer.step}; {args.out} holds the last checkpoint", file=sys.stderr)
        return 130
    return 130 if trainer.step < config.steps else 0
