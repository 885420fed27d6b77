"""The training loop: optimisation, validation, checkpoints and exact resume.

Generic over detectors: any :class:`~gnnmimo.detector.Detector` with
parameters trains here, on its own :meth:`~gnnmimo.detector.Detector.loss`
or on :func:`gnnmimo.losses.detection_loss` of its per-iteration logits, with
the data of :mod:`gnnmimo.train.data` and the configuration of
:mod:`gnnmimo.train.config`.

**Checkpoints** (:mod:`gnnmimo.checkpoint`) carry the full configuration,
the library version, the optimizer, scheduler, step, history and random
states, and the torch thread count and version the run used; they are
written atomically every ``checkpoint_every`` steps, at the end, and when
the run is interrupted (Ctrl-C or SIGTERM finishes the current
step, saves and exits; a second one aborts at once). ``resume=True`` continues
from the checkpoint exactly: on CPU with the same seed, an interrupted and
resumed run ends with the same weights as an uninterrupted one; resuming with
more ``steps`` stretches a cosine schedule to the new end. Results depend on the
thread count (the order of floating-point sums), so resuming with another count
or torch version warns that the continuation is not bit-identical. Whenever the
validation loss reaches a new low, the run is also saved beside ``out`` as
``OUT_STEM.best.pt`` (:attr:`Trainer.best_path`): the model to export when a
late phase of training over-fits or diverges. A new run refuses to replace
the checkpoint or best file of another run unless ``overwrite=True``.

**Data-parallel runs** (launched by ``torchrun``, :mod:`gnnmimo.distributed`): the detector
trains under ``DistributedDataParallel`` and each of the ``N`` ranks draws ``batch_size / N``
instances of every step's global batch, rank ``r`` at step ``s`` from the seed
``derived_seed(seed, s, r)``; DDP averages the ranks' gradients, and the loss is a mean over
instances, so a step equals a single-process step on the union of the ranks' draws (up to the
order of floating-point sums). Rank 0 validates (and broadcasts the result, so that every rank
takes the same plateau decision), logs and writes the checkpoints; every rank resumes from
them, with any world size: the weights, optimizer and schedule continue, and the data of step
``s`` onwards come from the new ranks' seeds. A stop request on any rank (a signal, the time
limit) stops every rank after the same step (:func:`gnnmimo.distributed.any_rank`).
"""
from __future__ import annotations

import contextlib
import errno
import math
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from gnnmimo import distributed
from gnnmimo.checkpoint import CheckpointError, differences, load_weights, read_checkpoint, save_checkpoint
from gnnmimo.detector import Detector
from gnnmimo.files import check_writable
from gnnmimo.graph import USER, MIMOGraph
from gnnmimo.losses import detection_loss, training_loss
from gnnmimo.progress import progress_bar
from gnnmimo.sampling import MIMOSampler
from gnnmimo.tr38901 import channel_from_fields
from gnnmimo.train.config import FIELDS_ADDED_LATER, RESUMABLE_FIELDS, TrainConfig
from gnnmimo.train.data import sample_minibatch, snr_table, validation_set
from gnnmimo.train.snr import auto_snr_ranges

#: the entries of a checkpoint's training state (:meth:`Trainer.training_state`) that resuming reads
STATE_ENTRIES = ("step", "optimizer", "scheduler", "rng", "history", "running_loss", "elapsed", "best_val_loss")


class Trainer:
    """Runs a :class:`TrainConfig` on a detector; see the module doc.

    Args:
        config: the run.
        detector: the detector to train, or a function of no arguments that builds it (called
            after seeding torch with ``config.seed``, so that its initialisation is reproducible);
            it is moved to ``config.device``.
        out: checkpoint path (``None``: no checkpoints).
        resume: continue from ``out`` if it exists (its configuration must match
            ``config`` except :data:`RESUMABLE_FIELDS`; otherwise ``ValueError``).
        overwrite: when not resuming, replace an existing ``out`` and remove an existing
            :attr:`best_path`; without it either raises ``FileExistsError``, since they hold
            another run (``OSError`` when ``out`` cannot be written, before any work).
        progress: show a tqdm bar.
        log: where validation lines go (default: ``tqdm.write``).
    """

    def __init__(self, config: TrainConfig, detector: Detector | Callable[[], Detector],
                 out: str | Path | None = None, resume: bool = False, progress: bool = True,
                 log: Callable[[str], None] | None = None, overwrite: bool = False):
        self.config, self.out = config, (Path(out) if out else None)
        self.progress = progress and distributed.is_main()
        self.log = (log or tqdm.write) if distributed.is_main() else _silent
        self.rank_batch = distributed.share(config.batch_size)  # this rank's part of each minibatch
        checkpoint = distributed.from_main(lambda: self._open_outputs(resume, overwrite))

        torch.manual_seed(config.seed)
        device = distributed.rank_device(config.device)
        self.detector = (detector if isinstance(detector, Detector) else detector()).to(device)
        if config.init and checkpoint is None:
            load_weights(self.detector, read_checkpoint(config.init))
        self.detector.set_precision(config.compute_precision)
        if not any(p.requires_grad for p in self.detector.parameters()):
            raise ValueError(f"detector {config.detector!r} has no trainable parameters")
        self.sampler = MIMOSampler(config.nr, config.nt, config.qam, channel=channel_from_fields(config.channel),
                                   nt_distribution="triangular", precision=config.precision, device=device)
        self.generator = self.sampler.generator(config.seed)
        if checkpoint is not None:
            self.snr_ranges = {int(k): tuple(v) for k, v in checkpoint["training"]["snr_ranges"].items()}
        elif config.snr == "auto":
            self.snr_ranges = distributed.from_main(
                lambda: auto_snr_ranges(self.sampler, config.nts, config.snr_targets, seed=config.val_seed))
        elif isinstance(config.snr, dict):
            self.snr_ranges = dict(config.snr)
        else:
            self.snr_ranges = {nt: config.snr for nt in config.nts}
        self._snr_table = snr_table(config, self.snr_ranges, self.sampler)

        self.optimizer = torch.optim.Adam(self.detector.parameters(), lr=config.lr)
        self.scheduler = self._make_scheduler()
        # step k < warmup runs at lr·(k + 1)/warmup
        self.warmup = (torch.optim.lr_scheduler.LinearLR(self.optimizer, 1 / config.warmup,
                                                         total_iters=max(config.warmup - 1, 1))
                       if config.warmup else None)
        self.step, self.history, self.best_val_loss = 0, [], math.inf
        self.saved_step: int | None = None  # the step of the checkpoint in ``out`` (written or resumed)
        self.running_loss = (0.0, 0)  # (sum, count) of training losses since the last validation
        self.elapsed = 0.0  # seconds spent in training steps, over all sessions
        self._stop_requested = False
        self.validation = validation_set(config, self.sampler, self.snr_ranges) if distributed.is_main() else []
        if checkpoint is not None:
            self._restore(checkpoint)
        self._loss = _TrainingLoss(self.detector, config)
        if distributed.active():
            self._loss = DistributedDataParallel(self._loss, device_ids=[device] if device.type == "cuda" else None,
                                                 find_unused_parameters=self._leaves_parameters_out())

    # ---------------------------------------------------------------- setup
    def _make_scheduler(self):
        c = self.config
        if c.schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, "min", factor=c.plateau_factor, patience=c.plateau_patience, min_lr=c.min_lr)
        if c.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=c.steps - c.warmup,
                                                              eta_min=c.lr / 100)
        return None

    def _open_outputs(self, resume: bool, overwrite: bool) -> dict | None:
        """The checkpoint to resume from (``None``: a new run), after the checks below (on rank 0)."""
        checkpoint = read_checkpoint(self.out) if resume and self.out and self.out.is_file() else None
        if self.out:
            self._claim_outputs(resumed=checkpoint is not None, overwrite=overwrite)
        if checkpoint is not None:
            self._check_resumable(checkpoint)
        return checkpoint

    def _claim_outputs(self, resumed: bool, overwrite: bool) -> None:
        """Before any work: make sure ``out`` can be written and, for a new run, holds no other run.

        The best file counts as another run's too: left in place, it would be exported as
        this run's best until this run's first validation replaced it.
        """
        check_writable(self.out)
        if resumed:
            return
        for path in (self.out, self.best_path):
            if not overwrite and path.exists():
                raise FileExistsError(errno.EEXIST, "it holds another run (resume=True continues it, "
                                      "overwrite=True replaces it)", str(path))
        if overwrite:
            self.best_path.unlink(missing_ok=True)

    def _check_resumable(self, checkpoint: dict) -> None:
        """Before any work: ``checkpoint`` holds a training state and the configuration of this run."""
        state = checkpoint["state"]
        if state is None:
            raise CheckpointError(f"cannot resume from {checkpoint['path']}: it holds weights only, no "
                                  "training state")
        missing = [f"state.{key}" for key in STATE_ENTRIES if key not in state]
        if "snr_ranges" not in checkpoint["training"]:
            missing.append("training.snr_ranges")
        if missing:
            raise CheckpointError(f"cannot resume from {checkpoint['path']}: missing key(s) "
                                  + ", ".join(map(repr, missing)))
        saved = {k: v for k, v in checkpoint["training"].items() if k not in RESUMABLE_FIELDS + ("snr_ranges",)}
        for key, value in FIELDS_ADDED_LATER.items():  # absent from older checkpoints
            saved.setdefault(key, value)
        wanted = {k: v for k, v in self.config.to_dict().items() if k not in RESUMABLE_FIELDS}
        found = differences(saved, wanted)
        if found:
            raise ValueError(f"cannot resume from {checkpoint['path']}: its configuration differs "
                             f"(checkpoint vs requested): " + "; ".join(found)
                             + ". Use another --out to start a new run.")

    def _leaves_parameters_out(self) -> bool:
        """Whether the loss of a probe instance leaves trainable parameters without a gradient (DetNet's
        last v-update feeds nothing): DDP must then look for them after every backward pass, a traversal
        of the graph that it is told to make only where needed. The probe draws from its own generator."""
        probe = sample_minibatch(self.config, self.sampler, self._snr_table, self.sampler.generator(self.config.seed),
                                 size=1)
        self._loss(probe).backward()
        unused = any(p.grad is None for p in self.detector.parameters() if p.requires_grad)
        self.optimizer.zero_grad(set_to_none=True)
        return unused

    # ----------------------------------------------------------------- data
    def sample_batch(self) -> MIMOGraph:
        """One training minibatch (:func:`gnnmimo.train.data.sample_minibatch`): the next of the run's
        stream, or in a data-parallel run this rank's part of this step's (module doc)."""
        if distributed.active():
            self.generator.manual_seed(distributed.derived_seed(self.config.seed, self.step, distributed.rank()))
        return sample_minibatch(self.config, self.sampler, self._snr_table, self.generator, self.rank_batch)

    # ------------------------------------------------------------- training
    def train_step(self) -> float:
        self.detector.train()
        loss = self._loss(self.sample_batch())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.detector.parameters(), self.config.clip_grad_norm)
        self.optimizer.step()
        if self.step < self.config.warmup:
            self.warmup.step()
        elif self.config.schedule == "cosine":
            self.scheduler.step()
        return distributed.mean_over_ranks(loss.item())

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
            errors[nt] = errors.get(nt, 0) + int((logits[-1].argmax(-1) != graph[USER].y).sum())
            symbols[nt] = symbols.get(nt, 0) + graph[USER].y.numel()
        return {"loss": total_loss / instances, "ser": {nt: errors[nt] / symbols[nt] for nt in errors}}

    def log_references(self, references: Mapping[str, Detector]) -> dict:
        """Log (and return) the validation SER per Nt of other detectors (e.g. classical ones), for comparison."""
        if not distributed.is_main():
            return {}
        found = {name: self.validate(detector.to(self.sampler.device)) for name, detector in references.items()}
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
        with _stop_on_signals(self), progress_bar(enabled=self.progress, total=c.steps, initial=self.step,
                                                 desc=f"train {c.detector}", dynamic_ncols=True) as bar:
            while self.step < c.steps and not self._stop_agreed():
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

    def _stop_agreed(self) -> bool:
        """Whether some rank was asked to stop: every rank then stops after the same step."""
        self._stop_requested = distributed.any_rank(self._stop_requested)
        return self._stop_requested

    @property
    def best_path(self) -> Path | None:
        """Where the run is saved at each new lowest validation loss: ``OUT_STEM.best.pt`` beside ``out``."""
        return self.out.with_name(f"{self.out.stem}.best{self.out.suffix}") if self.out else None

    def _evaluate(self, train_loss: float) -> None:
        result = distributed.from_main(self.validate)
        if self.config.schedule == "plateau" and self.step > self.config.warmup:
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
        """What resuming needs, and the torch thread count and version the run used: results
        depend on them (the order of floating-point reductions), so a resume warns when they
        differ (:meth:`_warn_if_not_reproducible`)."""
        return {"step": self.step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "warmup": self.warmup.state_dict() if self.warmup is not None else None,
                "rng": {"data": self.generator.get_state(), "torch": torch.get_rng_state()},
                "history": self.history,
                "running_loss": list(self.running_loss),
                "elapsed": self.elapsed,
                "best_val_loss": self.best_val_loss,
                "threads": torch.get_num_threads(),
                "torch_version": str(torch.__version__)}

    def save(self, path: str | Path | None = None) -> None:
        """Write a checkpoint (atomically) to ``path`` or ``out`` (rank 0 of a data-parallel run)."""
        path = Path(path or self.out)
        if distributed.is_main():
            training = {**self.config.to_dict(),
                        "snr_ranges": {str(k): list(v) for k, v in self.snr_ranges.items()}}
            save_checkpoint(path, self.detector, system=self.config.system(), training=training,
                            state=self.training_state())
        if path == self.out:
            self.saved_step = self.step

    def _restore(self, checkpoint: dict) -> None:
        load_weights(self.detector, checkpoint)
        state = checkpoint["state"]
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            if self.warmup is not None:
                self.warmup.load_state_dict(state["warmup"])
            self.generator.set_state(state["rng"]["data"])
            torch.set_rng_state(state["rng"]["torch"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"cannot resume from {checkpoint['path']}: its training state does not load "
                                  f"({type(error).__name__}: {error})") from None
        if self.config.schedule == "cosine":
            # steps may have grown (a resumable field): end the cosine at the new last step.
            # CosineAnnealingLR updates the lr by the ratio of consecutive cosine factors, so
            # from here the lr decays monotonically to eta_min at ``steps``; unchanged steps
            # leave the schedule exactly as in an uninterrupted run.
            self.scheduler.T_max = self.config.steps - self.config.warmup
        self.step, self.history, self.best_val_loss = state["step"], state["history"], state["best_val_loss"]
        self.running_loss, self.elapsed = tuple(state["running_loss"]), state["elapsed"]
        self.saved_step = self.step
        self._warn_if_not_reproducible(checkpoint)

    @staticmethod
    def _warn_if_not_reproducible(checkpoint: dict) -> None:
        """Warn when this process runs another torch thread count or version than the checkpoint's
        run: the continuation is then not bit-identical to an uninterrupted run (checkpoints
        written before the count was recorded give no warning)."""
        state, threads = checkpoint["state"], torch.get_num_threads()
        other_threads = state.get("threads") not in (None, threads)
        changed = [f"torch threads {threads} where the run so far had {state['threads']}"] if other_threads else []
        if state.get("torch_version") not in (None, str(torch.__version__)):
            changed.append(f"torch {torch.__version__} where the run so far had {state['torch_version']}")
        if changed:
            hint = (f"; torch.set_num_threads({state['threads']}) (gnnmimo train --threads {state['threads']}) "
                    "matches the thread count" if other_threads else "")
            warnings.warn(f"resuming {checkpoint['path']} with {' and '.join(changed)}: the continuation is not "
                          f"bit-identical to an uninterrupted run{hint}", stacklevel=4)


class _TrainingLoss(nn.Module):
    """The detector's training loss on a minibatch, as a module: what DDP wraps, so that its
    forward (which prepares the gradient all-reduce) computes the loss, whichever way the
    detector defines it (:func:`gnnmimo.losses.training_loss`)."""

    def __init__(self, detector: Detector, config: TrainConfig):
        super().__init__()
        self.detector, self.config = detector, config

    def forward(self, graph: MIMOGraph) -> torch.Tensor:
        c = self.config
        return training_loss(self.detector, graph, c.loss_weights, c.loss, c.ce_weight)


def _silent(message: str) -> None:
    """The log of the ranks other than 0."""


#: the signals that stop a run cleanly: Ctrl-C, and what job schedulers and ``kill`` send
STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer):
    """First Ctrl-C or SIGTERM: ask the trainer to stop after the current step and save. The previous
    handlers come back at once, so a second signal aborts (Ctrl-C: ``KeyboardInterrupt``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        restore()
        trainer.log(f"\n{STOP_SIGNALS[signum]}: stopping after this step and saving (send again to abort)")
        trainer.request_stop()

    def restore():
        for number, old in previous.items():
            signal.signal(number, old)

    previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        restore()


def deadline(minutes: float | None) -> Callable[[Trainer], None] | None:
    """An ``on_step`` hook for :meth:`Trainer.run` that asks the trainer to stop after ``minutes``
    of wall time (``None`` when ``minutes`` is unset)."""
    if not minutes:
        return None
    end = time.monotonic() + 60 * minutes

    def stop_when_due(trainer: Trainer) -> None:
        if time.monotonic() > end:
            trainer.request_stop()
    return stop_when_due
