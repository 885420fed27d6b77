"""Checkpoints of learned detectors, for every detector of the zoo.

A checkpoint is one ``torch.save`` file holding plain data (loadable with
``weights_only=True``)::

    {"format": "gnnmimo-checkpoint", "format_version": 1,
     "library_version": "0.1.0",
     "detector": {"name": "remimo", "qam": 4, "options": {"nr": 16, "d_model": 128, …}},
     "system": {"nr": 16, "nt": [4, 8], "qam": 4, "channel": {"kind": "iid", …}},
     "training": {…the training configuration…},
     "model": state_dict,
     "state": {"step": …, "optimizer": …, "scheduler": …, "rng": …} or None}

``detector`` is what rebuilds the architecture:
``zoo.create(name, qam, **options)``. A detector names its options in an
``hparams`` dict attribute (the resolved constructor options, see
:class:`zoo.remimo.REMIMO`); :func:`zoo.create` gives the others the
options they were created with. ``state`` is what resumes
training (:mod:`gnnmimo.training`).

Files are written atomically (a temporary file in the same directory, then
``os.replace``): an interrupted or failed write never leaves a partial
checkpoint behind, and the previous checkpoint stays intact.

:func:`load_checkpoint` takes a path or the name of a pretrained checkpoint,
``zoo/pretrained/<name>.pt``, and returns a ready detector (eval mode).
:func:`load_weights` loads a checkpoint into an existing detector and raises
``ValueError`` naming what differs (detector, constellation, options) when
the two do not match.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from gnnmimo.detector import Detector
from gnnmimo.report import atomic_write

FORMAT = "gnnmimo-checkpoint"
FORMAT_VERSION = 1
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "zoo" / "pretrained"


def library_version() -> str:
    """The gnnmimo version that writes a checkpoint."""
    import gnnmimo

    return gnnmimo.__version__


def detector_spec(detector: Detector, options: dict | None = None) -> dict:
    """``{"name", "qam", "options"}`` that rebuild ``detector`` through the zoo."""
    name = getattr(detector, "registry_name", None)
    if name is None:
        raise ValueError(f"{type(detector).__name__} is not a registered detector; register it with "
                         "@zoo.register(name) so that its checkpoints can be loaded by name")
    return {"name": name, "qam": detector.qam.order,
            "options": dict(getattr(detector, "hparams", None) or options or {})}


def differences(expected: dict, found: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two nested dicts: ``["qam: 4 vs 16", …]``."""
    lines = []
    for key in sorted(set(expected) | set(found), key=str):
        a, b = expected.get(key, "<missing>"), found.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            lines += differences(a, b, f"{prefix}{key}.")
        elif _normalise(a) != _normalise(b):
            lines.append(f"{prefix}{key}: {a!r} vs {b!r}")
    return lines


def _normalise(value):
    """Tuples and lists compare equal (checkpoints store lists)."""
    return list(value) if isinstance(value, tuple) else value


def save_checkpoint(path: str | os.PathLike, detector: Detector, *, system: dict | None = None,
                    training: dict | None = None, state: dict | None = None,
                    options: dict | None = None) -> None:
    """Write a checkpoint atomically (see module doc for the layout)."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": library_version(),
        "detector": detector_spec(detector, options),
        "system": system or {},
        "training": training or {},
        "model": detector.state_dict(),
        "state": state,
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))


def export_pretrained(source: str | os.PathLike, name: str) -> Path:
    """Copy a trained checkpoint to ``zoo/pretrained/<name>.pt`` without its
    training state (optimizer, scheduler, RNG), which only resuming needs.

    Returns the written path. The configuration and training record stay.
    """
    checkpoint = read_checkpoint(source)
    history = (checkpoint.get("state") or {}).get("history", [])
    payload = {key: value for key, value in checkpoint.items() if key not in ("path", "state")}
    payload["state"] = None
    payload["training"] = {**payload["training"], "history": history}
    target = PRETRAINED_DIR / f"{name}.pt"
    atomic_write(target, lambda handle: torch.save(payload, handle))
    return target


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


def read_checkpoint(path_or_name: str | os.PathLike, map_location="cpu") -> dict:
    """Load and check a checkpoint's contents (a dict, see module doc)."""
    path = resolve(path_or_name)
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path} is not a gnnmimo checkpoint")
    if checkpoint["format_version"] > FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format {checkpoint['format_version']}, newer than this "
                         f"gnnmimo ({library_version()}) reads ({FORMAT_VERSION}); upgrade gnnmimo")
    checkpoint["path"] = str(path)
    return checkpoint


def load_weights(detector: Detector, checkpoint: dict, ignore: tuple[str, ...] = ()) -> None:
    """Load ``checkpoint``'s weights into ``detector`` (in place).

    Args:
        ignore: options allowed to differ (e.g. implementation choices such as
            RE-MIMO's ``attention``, which share parameters).

    Raises:
        ValueError: if the detector name, the constellation or an option
            differs, or if the weights do not fit; the message lists the
            differences (checkpoint value vs detector value).
    """
    saved = dict(checkpoint["detector"])
    current = detector_spec(detector)
    saved["options"] = {k: v for k, v in saved["options"].items() if k not in ignore}
    current["options"] = {k: v for k, v in current["options"].items() if k not in ignore}
    where = checkpoint.get("path", "the checkpoint")
    found = differences(saved, current)
    if found:
        raise ValueError(f"{where} does not match this detector (checkpoint vs detector): " + "; ".join(found))
    try:
        detector.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise ValueError(f"the weights in {where} do not fit this detector: {error}") from None


def load_checkpoint(path_or_name: str | os.PathLike, device: str | torch.device = "cpu",
                    **options) -> Detector:
    """A ready detector (eval mode) from a checkpoint path or a pretrained name.

    Args:
        device: where to put the detector.
        **options: override stored options that do not change the weights
            (e.g. ``attention="graph"`` for RE-MIMO); an override that changes
            the architecture raises ``ValueError``.

    The detector gets ``checkpoint_label`` (the file stem) and ``checkpoint``
    (the stored configuration: ``system``, ``training``, ``library_version``).
    """
    import zoo

    checkpoint = read_checkpoint(path_or_name)
    spec = checkpoint["detector"]
    detector = zoo.create(spec["name"], spec["qam"], **{**spec["options"], **options})
    load_weights(detector, checkpoint, ignore=tuple(options))
    detector.checkpoint_label = Path(checkpoint["path"]).stem
    detector.checkpoint = {key: checkpoint[key] for key in ("system", "training", "library_version", "path")}
    return detector.to(device).eval()
