"""The configuration of a training run (:class:`TrainConfig`), stored in every checkpoint.

**Data.** Every minibatch is drawn fresh: ``Nt`` from the triangular law on
``[Nt_low, Nt_high]`` with its mode at the upper end (``P(n) ∝ n − Nt_low + 1``),
one value per minibatch (``nt_mode="batch"``, the paper) or one per
instance (``"mixed"``); the SNR of each instance uniformly on its ``Nt``'s
range: calibrated on LMMSE (``snr="auto"``, :mod:`gnnmimo.train.snr`), a
fixed range ``(low, high)`` for every ``Nt``, or ``{nt: (low, high)}`` (e.g.
GEPNet's 8–23.5 dB at ``Nt = 4`` and 10–30.5 dB at ``Nt = 8``).

**Optimisation.** Adam; ``schedule="plateau"`` (the paper: learning rate
× 0.91 whenever the validation loss stops improving, checked every
``eval_every`` steps), ``"cosine"`` (to 1 % of the initial rate at
``steps``) or ``"constant"``, after an optional linear warm-up (``warmup`` steps from
``lr/warmup`` up to ``lr``; the plateau rule starts watching after it and the cosine spans
the remaining steps). A run may start from trained weights (``init``: fine-tuning) instead
of the detector's own initialisation. The validation set is fixed (its own seed),
``val_size`` instances split evenly over the ``Nt`` values, each at SNRs
drawn from its range. The loss is :mod:`gnnmimo.losses`'.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import MISSING, dataclass, field, fields

from gnnmimo.constellation import SUPPORTED_ORDERS
from gnnmimo.losses import LOSS_WEIGHTS, LOSSES
from gnnmimo.precision import PRECISIONS
from gnnmimo.sampling import usable_device

NT_MODES = ("batch", "mixed")
SCHEDULES = ("plateau", "cosine", "constant")
#: configuration fields that may change when a run is resumed
RESUMABLE_FIELDS = ("steps", "checkpoint_every", "compute_precision", "init")
#: configuration fields newer than the first checkpoints, with the value older runs had
FIELDS_ADDED_LATER = {"loss": "cross-entropy", "ce_weight": 0.0, "warmup": 0}


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in every checkpoint).

    Args:
        detector: the detector's registered name (or ``module:Class``); ``options`` its constructor
            options. The trainer is handed the detector itself; these record what it was.
        qam, nr, nt: constellation order, receive antennas, user range ``(low, high)``.
        channel: the fields of the channel law, a ``ChannelModel``'s (``kind``, ``rho``, ``csi_error``)
            or a 3GPP ``TR38901Channel``'s (:func:`gnnmimo.tr38901.channel_fields`).
        snr: ``"auto"``, a fixed range ``(low, high)`` in dB for every Nt, or
            ``{nt: (low, high)}`` for each trained Nt.
        snr_targets: LMMSE SERs at the low and high end of the auto range.
        nt_mode: ``"batch"`` (one Nt per minibatch, the paper) or ``"mixed"``.
        steps, batch_size, lr: optimisation length, minibatch size, Adam's rate.
        clip_grad_norm: clip the gradient's global norm to this before each step (off when ``None``).
        schedule: ``"plateau"``, ``"cosine"`` or ``"constant"``; ``plateau_factor``,
            ``plateau_patience``, ``min_lr`` tune the plateau rule.
        warmup: steps of linear learning-rate warm-up before the schedule (0: none).
        init: path of a checkpoint whose weights the run starts from (``None``: the detector's own
            initialisation); its detector and options must be this run's. Read at step 0 only, so
            it may change (or the file move) when the run is resumed.
        loss_weights: ``"uniform"`` (eq. 13 with ``w_t = 1/T``) or ``"last"``.
        loss: ``"cross-entropy"`` (eq. 13) or ``"soft-ser"`` (module doc).
        ce_weight: weight of a cross-entropy term added to the soft SER (module doc).
        eval_every: steps between validations (and plateau checks).
        checkpoint_every: steps between checkpoints (default ``eval_every``).
        val_size, val_seed: the fixed validation set.
        seed: initialisation and training-data seed.
        precision, device: of the sampled data and the model.
        compute_precision: of the learned blocks' matrix products (``"fp32"``, ``"bf16"``, ``"fp16"``:
            :mod:`gnnmimo.precision`); may change on resume.
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
    warmup: int = 0
    loss_weights: str = "uniform"
    loss: str = "cross-entropy"
    ce_weight: float = 0.0
    eval_every: int = 500
    checkpoint_every: int | None = None
    val_size: int = 2000
    val_seed: int = 12345
    seed: int = 0
    precision: str = "single"
    compute_precision: str = "fp32"
    device: str = "cpu"
    init: str | None = None

    def __post_init__(self):
        self._check_types()
        self.nt = tuple(self.nt)
        if isinstance(self.snr, dict):
            self.snr = {int(nt): tuple(float(v) for v in bounds) for nt, bounds in self.snr.items()}
        elif self.snr != "auto":
            self.snr = tuple(float(v) for v in self.snr)
        ranges = self.snr.values() if isinstance(self.snr, dict) else [] if self.snr == "auto" else [self.snr]
        self.snr_targets = tuple(self.snr_targets)
        finite = all(math.isfinite(v) for r in ranges for v in r)
        targets = self.snr_targets
        nts = self.nts if self.nt_step >= 1 else []
        checks = [(self.qam in SUPPORTED_ORDERS, f"qam must be one of {SUPPORTED_ORDERS}"),
                  (self.nr >= 1, "nr must be >= 1"),
                  (self.nt_mode in NT_MODES, f"nt_mode must be one of {NT_MODES}"),
                  (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
                  (self.loss_weights in LOSS_WEIGHTS, f"loss_weights must be one of {LOSS_WEIGHTS}"),
                  (self.loss in LOSSES, f"loss must be one of {LOSSES}"),
                  (self.compute_precision in PRECISIONS, f"compute_precision must be one of {list(PRECISIONS)}"),
                  (self.ce_weight >= 0 and (not self.ce_weight or self.loss == "soft-ser"),
                   "ce_weight must be >= 0 and adds to the soft-ser loss only"),
                  (finite and all(len(r) == 2 and r[0] <= r[1] for r in ranges),
                   "snr must be 'auto', (low, high) or {nt: (low, high)} with finite low <= high"),
                  (len(targets) == 2 and all(isinstance(v, numbers.Real) for v in targets)
                   and 1 > targets[0] > targets[1] > 0,
                   "snr_targets must be two SERs with 1 > low-SNR end > high-SNR end > 0"),
                  (not isinstance(self.snr, dict) or set(self.snr) == set(nts),
                   f"per-Nt snr ranges must name exactly the trained Nt {nts}"),
                  (1 <= self.nt[0] <= self.nt[1], "nt must be (low, high) with 1 <= low <= high"),
                  (self.nt_step >= 1 and (self.nt[1] - self.nt[0]) % self.nt_step == 0,
                   "nt_step must be >= 1 and divide high - low"),
                  (min(self.steps, self.batch_size, self.eval_every, self.val_size) >= 1,
                   "steps, batch_size, eval_every and val_size must be >= 1"),
                  (0 <= self.warmup < self.steps, "warmup must be >= 0 and less than steps"),
                  (self.checkpoint_every is None or self.checkpoint_every >= 1, "checkpoint_every must be >= 1"),
                  (0 < self.lr < math.inf, f"lr must be a finite number > 0, got {self.lr}"),
                  (0 <= self.min_lr < math.inf, f"min_lr must be a finite number >= 0, got {self.min_lr}"),
                  (self.clip_grad_norm is None or self.clip_grad_norm > 0, "clip_grad_norm must be > 0"),
                  (0 < self.plateau_factor < 1, "plateau_factor must lie strictly between 0 and 1"),
                  (self.plateau_patience >= 0, "plateau_patience must be >= 0"),
                  (self.precision in ("single", "double"), "precision must be 'single' or 'double'")]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError("invalid training configuration: " + "; ".join(problems))
        try:
            usable_device(self.device)
        except ValueError as error:
            raise ValueError(f"invalid training configuration: {error}") from None

    def _check_types(self) -> None:
        """Fields annotated ``int``, ``float`` or ``str`` (or ``… | None``) must hold one (an int for a
        float; never a bool for a number), so that ``steps=2.5`` is refused at once."""
        kinds = {"int": numbers.Integral, "float": numbers.Real, "str": str}
        pair = isinstance(self.nt, (tuple, list)) and len(self.nt) == 2
        problems = [] if pair and all(isinstance(n, numbers.Integral) for n in self.nt) else [
            f"nt must be two integers (low, high), got {self.nt!r}"]
        for f in fields(self):
            value, kind = getattr(self, f.name), kinds.get(f.type.removesuffix(" | None"))
            if kind is None or (value is None and f.type.endswith(" | None")):
                continue
            if not isinstance(value, kind) or (kind is not str and isinstance(value, bool)):
                problems.append(f"{f.name} must be of type {f.type}, got {value!r}")
        if problems:
            raise ValueError("invalid training configuration: " + "; ".join(problems))

    @classmethod
    def default(cls, name: str):
        """The default value of field ``name``."""
        found = {f.name: f for f in fields(cls)}[name]
        return found.default_factory() if found.default is MISSING else found.default

    @property
    def nts(self) -> list[int]:
        """The user counts trained on: ``low, low + nt_step, …, high``."""
        return list(range(self.nt[0], self.nt[1] + 1, self.nt_step))

    def to_dict(self) -> dict:
        return {f.name: plain_value(getattr(self, f.name)) for f in fields(self)}

    def system(self) -> dict:
        """The MIMO system the detector is trained for (stored in checkpoints)."""
        return {"nr": self.nr, "nt": list(self.nt), "nt_step": self.nt_step, "qam": self.qam,
                "channel": dict(self.channel)}


def plain_value(value):
    """Tuples as lists, as checkpoints store them."""
    return list(value) if isinstance(value, tuple) else value
