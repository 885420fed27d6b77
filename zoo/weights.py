"""The zoo's pretrained checkpoints (``zoo/pretrained/<name>.pt``, each with a card ``<name>.md``).

>>> zoo.list_pretrained()
>>> detector = zoo.load("remimo-nr16-nt4-8-qam4")   # a pretrained name
>>> detector = zoo.load("runs/my.pt")               # or any checkpoint file

The file format is :mod:`gnnmimo.checkpoint`'s.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from gnnmimo.checkpoint import detector_from_checkpoint, read_checkpoint, without_training_state
from gnnmimo.detector import Detector
from gnnmimo.files import atomic_write

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def list_pretrained() -> list[str]:
    """Names of the checkpoints in ``zoo/pretrained``."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt")) if PRETRAINED_DIR.is_dir() else []


def resolve(path_or_name: str | os.PathLike) -> Path:
    """A file path as is, or a pretrained name → ``zoo/pretrained/<name>.pt``.

    Raises:
        FileNotFoundError: naming the pretrained checkpoints available.
    """
    path = Path(path_or_name)
    if path.is_file():
        return path
    pretrained = PRETRAINED_DIR / f"{path_or_name}.pt"
    if pretrained.is_file():
        return pretrained
    raise FileNotFoundError(f"no checkpoint file {str(path_or_name)!r} and no pretrained checkpoint of that "
                            f"name; pretrained: {', '.join(list_pretrained()) or 'none yet'}")


def load(path_or_name: str | os.PathLike, device: str | torch.device = "cpu", **options) -> Detector:
    """A ready detector (eval mode) from a checkpoint file or a pretrained name; ``options``
    override stored options that do not change the weights
    (:func:`gnnmimo.checkpoint.detector_from_checkpoint`). ``detector.checkpoint["source"]`` keeps
    ``path_or_name`` as given (evaluation records name the checkpoint by it: a pretrained name
    stays the same in every checkout, its resolved path does not)."""
    detector = detector_from_checkpoint(read_checkpoint(resolve(path_or_name)), device, **options)
    detector.checkpoint["source"] = str(path_or_name)
    return detector


def export_pretrained(source: str | os.PathLike, name: str) -> Path:
    """Copy a trained checkpoint to ``zoo/pretrained/<name>.pt`` without its training state
    (optimizer, scheduler, RNG), which only resuming needs. Returns the written path."""
    payload = without_training_state(read_checkpoint(source))
    target = PRETRAINED_DIR / f"{name}.pt"
    atomic_write(target, lambda handle: torch.save(payload, handle))
    return target
