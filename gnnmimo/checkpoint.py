"""Checkpoints of learned detectors: one file that rebuilds the detector exactly.

A checkpoint is one ``torch.save`` file holding plain data (loadable with
``weights_only=True``)::

    {"format": "gnnmimo-checkpoint", "format_version": 2,
     "library_version": "0.1.0",
     "detector": {"name": "remimo", "qam": 4, "options": {"nr": 16, "d_model": 128, …}},
     "module": "zoo.remimo",
     "system": {"nr": 16, "nt": [4, 8], "qam": 4, "channel": {"kind": "iid", …}},
     "training": {…the training configuration…},
     "model": state_dict,
     "state": {"step": …, "optimizer": …, "scheduler": …, "rng": …} or None}

``detector`` is what rebuilds the architecture: ``name`` is the detector's
identity (:func:`gnnmimo.registry.identity`: its registered name, or
``"module:QualName"`` for an unregistered class), ``options`` its resolved constructor options
(:attr:`Detector.hparams <gnnmimo.detector.Detector.hparams>`); ``module``
is the module that defines the class (imported on load, so a plugin
detector needs no other set-up; ``None`` for a class registered in
``__main__``, which must be registered again before loading). A detector
whose identity or options cannot be recovered is refused at save time: a
checkpoint that could not be reloaded exactly is never written. Format 1
files (no ``module``) load once the package that registers their detector
is imported (``zoo.load`` does that for the zoo). ``state`` is what resumes
training (:mod:`gnnmimo.train`).

Files are written atomically (a temporary file in the same directory, then
``os.replace``): an interrupted or failed write never leaves a partial
checkpoint behind, and the previous checkpoint stays intact.

:func:`load_checkpoint` returns a ready detector (eval mode);
:func:`load_weights` loads a checkpoint into an existing detector and raises
``ValueError`` naming what differs (detector, constellation, options) when
the two do not match. Pretrained checkpoints shipped with the zoo are found
by name through ``zoo.load``.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import torch

from gnnmimo import registry
from gnnmimo.detector import Detector
from gnnmimo.files import atomic_write

FORMAT = "gnnmimo-checkpoint"
FORMAT_VERSION = 2
#: types a stored option may be made of (``weights_only`` loading and exact reconstruction)
PLAIN_TYPES = (type(None), bool, int, float, str)


def library_version() -> str:
    """The gnnmimo version that writes a checkpoint."""
    import gnnmimo

    return gnnmimo.__version__


def detector_spec(detector: Detector) -> dict:
    """``{"name", "qam", "options"}`` that rebuild ``detector`` (module doc).

    Raises:
        ValueError: if the detector's class cannot be found again from a fresh process, or an
            option is not plain data (numbers, strings, booleans, ``None``, and lists, tuples and
            string-keyed dicts of them).
    """
    name = registry.identity(detector)
    options = detector.hparams
    for key, value in options.items():
        if key.startswith("*"):
            raise ValueError(f"{type(detector).__name__} was built with extra positional arguments {value!r}, "
                             "which a checkpoint cannot pass again; pass options by keyword")
        if not _is_plain(value):
            raise ValueError(f"{type(detector).__name__}'s option {key}={value!r} is not plain data (numbers, "
                             "strings, booleans, None, lists and dicts of them), so a checkpoint cannot "
                             "rebuild it")
    return {"name": name, "qam": detector.qam.order, "options": options}


def defining_module(detector: Detector) -> str | None:
    """The module to import before rebuilding ``detector`` (``None`` for ``__main__``)."""
    module = type(detector).__module__
    return None if module == "__main__" else module


def _is_plain(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_plain(item) for key, item in value.items())
    return isinstance(value, PLAIN_TYPES)


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
                    training: dict | None = None, state: dict | None = None) -> None:
    """Write a checkpoint atomically (see module doc for the layout).

    Raises:
        ValueError: if the detector could not be rebuilt from it (:func:`detector_spec`).
    """
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": library_version(),
        "detector": detector_spec(detector),
        "module": defining_module(detector),
        "system": system or {},
        "training": training or {},
        "model": detector.state_dict(),
        "state": state,
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))


def without_training_state(checkpoint: dict) -> dict:
    """A checkpoint's payload for shipping: the optimizer, scheduler and RNG states (which
    only resuming needs) dropped, the validation history kept under ``training``."""
    history = (checkpoint.get("state") or {}).get("history", [])
    payload = {key: value for key, value in checkpoint.items() if key not in ("path", "state")}
    payload["state"] = None
    payload["training"] = {**payload["training"], "history": history}
    return payload


def read_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load and check a checkpoint's contents (a dict, see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {str(path)!r}")
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

    Options the checkpoint does not name (format 1 files recorded only the
    options their detector was created with) are not compared.

    Raises:
        ValueError: if the detector, the constellation or an option differs,
            or if the weights do not fit; the message lists the differences
            (checkpoint value vs detector value).
    """
    saved = dict(checkpoint["detector"])
    saved["options"] = {k: v for k, v in saved["options"].items() if k not in ignore}
    current = detector_spec(detector)
    current["options"] = {k: v for k, v in current["options"].items() if k in saved["options"]}
    where = checkpoint.get("path", "the checkpoint")
    found = differences(saved, current)
    if found:
        raise ValueError(f"{where} does not match this detector (checkpoint vs detector): " + "; ".join(found))
    try:
        detector.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise ValueError(f"the weights in {where} do not fit this detector: {error}") from None


def weight_differences(saved: dict, current: dict) -> list[str]:
    """How two state dicts differ in names and shapes: ``["gnn.w: [12, 32] vs [6, 32]", "x: missing"]``
    (the saved one first)."""
    lines = [f"{key}: {list(saved[key].shape)} vs {list(current[key].shape)}"
             for key in saved.keys() & current.keys() if saved[key].shape != current[key].shape]
    lines += [f"{key}: not in the detector" for key in saved.keys() - current.keys()]
    lines += [f"{key}: not in the checkpoint" for key in current.keys() - saved.keys()]
    return sorted(lines)


def detector_from_checkpoint(checkpoint: dict, device: str | torch.device = "cpu", **options) -> Detector:
    """A ready detector (eval mode) from a checkpoint read by :func:`read_checkpoint`.

    Imports the module that defines the detector when the checkpoint names one.

    Args:
        device: where to put the detector.
        **options: override stored options that do not change the weights
            (e.g. ``attention="graph"`` for RE-MIMO, ``double=True`` for EP-GNN); an override
            that changes the architecture (the weights' names or shapes) raises ``ValueError``.

    The detector gets ``checkpoint_label`` (the file stem) and ``checkpoint``
    (the stored configuration: ``system``, ``training``, ``library_version``, ``path``).

    Raises:
        ModuleNotFoundError: naming the module the checkpoint needs when it cannot be imported.
    """
    spec, module = checkpoint["detector"], checkpoint.get("module")
    if module:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module and not module.startswith(f"{error.name}."):
                raise
            raise ModuleNotFoundError(f"{checkpoint.get('path', 'the checkpoint')} holds a {spec['name']!r} "
                                      f"detector defined in module {module!r}, which cannot be imported; put "
                                      "it on PYTHONPATH (or install its package)", name=module) from None
    detector = registry.create(spec["name"], spec["qam"], **{**spec["options"], **options})
    changed = weight_differences(checkpoint["model"], detector.state_dict())
    if options and changed:
        given = ", ".join(f"{key}={value!r}" for key, value in options.items())
        raise ValueError(f"{given} would change the architecture of the detector in "
                         f"{checkpoint.get('path', 'the checkpoint')} (the weights do not fit: "
                         f"{'; '.join(changed[:3])}{'; …' if len(changed) > 3 else ''}); with a checkpoint, "
                         "give only options that keep the weights, such as a precision or an iteration count")
    load_weights(detector, checkpoint, ignore=tuple(options))
    detector.checkpoint_label = Path(checkpoint["path"]).stem
    detector.checkpoint = {key: checkpoint[key] for key in ("system", "training", "library_version", "path")}
    return detector.to(device).eval()


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", **options) -> Detector:
    """:func:`detector_from_checkpoint` of the file at ``path``."""
    return detector_from_checkpoint(read_checkpoint(path), device, **options)
