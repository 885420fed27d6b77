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
     "state": {"step": …, "optimizer": …, "scheduler": …, "rng": …, "threads": …} or None}

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

:func:`read_checkpoint` refuses a file it cannot use (empty, not a torch
file, a truncated archive, another kind of torch file such as a bare
state_dict, a newer format, a missing or mistyped entry) with one
:class:`CheckpointError` naming the file and what is wrong, as do the loaders
below when the stored detector cannot be rebuilt or its weights do not fit.
:func:`load_checkpoint` returns a ready detector (eval mode);
:func:`load_weights` loads a checkpoint into an existing detector and raises
``ValueError`` naming what differs (detector, constellation, options) when
the two do not match. Pretrained checkpoints shipped with the zoo are found
by name through ``zoo.load``.
"""
from __future__ import annotations

import importlib
import os
import pickle
import re
from pathlib import Path

import torch

from gnnmimo import registry
from gnnmimo.detector import Detector
from gnnmimo.files import atomic_write, sha256_of

FORMAT = "gnnmimo-checkpoint"
FORMAT_VERSION = 2
#: types a stored option may be made of (``weights_only`` loading and exact reconstruction)
PLAIN_TYPES = (type(None), bool, int, float, str)
#: the first bytes of every file ``torch.save`` writes (a zip archive)
ZIP_MAGIC = b"PK\x03\x04"
#: the entries of every checkpoint (format 1 and 2) and their types
ENTRIES = {"format_version": (int,), "library_version": (str,), "detector": (dict,), "system": (dict,),
           "training": (dict,), "model": (dict,), "state": (dict, type(None))}
#: the entries of ``detector`` and their types
DETECTOR_ENTRIES = {"name": str, "qam": int, "options": dict}


class CheckpointError(ValueError):
    """A file that is not a checkpoint this gnnmimo can read, or whose contents cannot rebuild
    its detector; the message names the file and what is wrong."""


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
    payload = {key: value for key, value in checkpoint.items() if key not in ("path", "sha256", "state")}
    payload["state"] = None
    payload["training"] = {**payload["training"], "history": history}
    return payload


def read_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load and check a checkpoint's contents (a dict, see module doc), with the file's ``path`` and the
    ``sha256`` of its content added.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        CheckpointError: if the file is not a checkpoint this gnnmimo can read (:func:`_load`,
            :func:`_check_contents`); the message names the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {str(path)!r}")
    checkpoint = _load(path, map_location)
    problem = _check_contents(checkpoint)
    if problem:
        raise CheckpointError(f"cannot read checkpoint {path}: {problem}")
    checkpoint["path"] = str(path)
    checkpoint["sha256"] = sha256_of(path)  # what evaluation records name the weights by
    return checkpoint


def _load(path: Path, map_location) -> object:
    """``torch.load(path, weights_only=True)``, its failures told apart by what the file is.

    A damaged or foreign file makes ``torch.load`` raise almost anything (``EOFError``,
    ``KeyError: 101`` for text, ``RuntimeError`` from the zip reader, ``UnpicklingError``), so
    every failure is caught and named by the file's first bytes: ``torch.save`` writes a zip
    archive, which ``weights_only`` unpickles only when it holds plain data.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(ZIP_MAGIC))
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror or error}") from None
    if not head:
        raise CheckpointError(f"cannot read checkpoint {path}: empty file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        if head != ZIP_MAGIC:
            what = f"not a torch.save file (it begins with {head!r})"
        elif isinstance(error, pickle.UnpicklingError):
            found = re.search(r"GLOBAL (\S+)", str(error))
            what = ("it holds objects other than tensors and plain data"
                    + (f" ({found.group(1)})" if found else "") + ", which are not unpickled (weights_only)")
        else:
            found = re.search(r"zip archive: ([^.]+)", str(error))
            what = "truncated or corrupt zip archive" + (f" ({found.group(1)})" if found else "")
        raise CheckpointError(f"cannot read checkpoint {path}: {what}") from error


def _check_contents(checkpoint: object) -> str | None:
    """What is wrong with a loaded checkpoint's layout (module doc), or ``None``."""
    if not isinstance(checkpoint, dict):
        return f"not a gnnmimo checkpoint: it holds a {type(checkpoint).__name__}, not a dict"
    if checkpoint.get("format") != FORMAT:
        if checkpoint and all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
            return (f"not a gnnmimo checkpoint: a bare state_dict of {len(checkpoint)} tensors "
                    "(gnnmimo.checkpoint.save_checkpoint writes checkpoints)")
        return (f"not a gnnmimo checkpoint: no 'format': {FORMAT!r} entry (its keys: "
                f"{', '.join(map(repr, list(checkpoint)[:8])) or 'none'})")
    for key, kind in ENTRIES.items():
        if key not in checkpoint:
            return f"missing key {key!r}"
        if not isinstance(checkpoint[key], kind) or isinstance(checkpoint[key], bool):
            return f"{key!r} is a {type(checkpoint[key]).__name__}, not {' or '.join(t.__name__ for t in kind)}"
    version = checkpoint["format_version"]
    if not 1 <= version <= FORMAT_VERSION:
        return (f"format_version {version} is newer than this gnnmimo ({library_version()}) reads "
                f"({FORMAT_VERSION}); upgrade gnnmimo" if version > FORMAT_VERSION
                else f"format_version {version} is not a checkpoint format (1 to {FORMAT_VERSION})")
    if not isinstance(checkpoint.get("module"), (str, type(None))):
        return f"'module' is a {type(checkpoint['module']).__name__}, not str or None"
    for key, kind in DETECTOR_ENTRIES.items():
        if not isinstance(checkpoint["detector"].get(key), kind):
            return f"'detector' has no {key!r} entry of type {kind.__name__}"
    if not all(isinstance(value, torch.Tensor) for value in checkpoint["model"].values()):
        return "'model' is not a state_dict (its values are not all tensors)"
    return None


def load_weights(detector: Detector, checkpoint: dict, ignore: tuple[str, ...] = ()) -> None:
    """Load ``checkpoint``'s weights into ``detector`` (in place).

    Args:
        ignore: options allowed to differ (e.g. implementation choices such as
            RE-MIMO's ``attention``, which share parameters).

    Options the checkpoint does not name (format 1 files recorded only the
    options their detector was created with) are not compared.

    Raises:
        ValueError: if the detector, the constellation or an option differs; the message lists the
            differences (checkpoint value vs detector value).
        CheckpointError: if the weights do not fit (missing, extra or differently shaped tensors).
    """
    saved = dict(checkpoint["detector"])
    saved["options"] = {k: v for k, v in saved["options"].items() if k not in ignore}
    current = detector_spec(detector)
    current["options"] = {k: v for k, v in current["options"].items() if k in saved["options"]}
    where = checkpoint.get("path", "the checkpoint")
    found = differences(saved, current)
    if found:
        raise ValueError(f"{where} does not match this detector (checkpoint vs detector): " + "; ".join(found))
    misfits = _weight_misfits(detector.state_dict(), checkpoint["model"])
    if misfits:
        more = f"; … ({len(misfits) - 4} more)" if len(misfits) > 4 else ""
        raise CheckpointError(f"the weights in {where} do not fit this detector (checkpoint vs detector): "
                              + "; ".join(misfits[:4]) + more)
    detector.load_state_dict(checkpoint["model"])


def _weight_misfits(expected: dict, found: dict) -> list[str]:
    """What keeps state_dict ``found`` from loading into a module whose state_dict is ``expected``."""
    misfits = [f"{key}: missing" for key in expected if key not in found]
    misfits += [f"{key}: not in this detector" for key in found if key not in expected]
    return misfits + [f"{key}: shape {list(found[key].shape)} vs {list(value.shape)}"
                      for key, value in expected.items() if key in found and found[key].shape != value.shape]


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
    (the stored configuration: ``system``, ``training``, ``library_version``, ``path``, and the
    ``sha256`` of the file when :func:`read_checkpoint` read it).

    Raises:
        ModuleNotFoundError: naming the module the checkpoint needs when it cannot be imported.
        CheckpointError: if its detector cannot be built from the stored name and options, or the
            weights do not fit it.
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
    try:
        detector = registry.create(spec["name"], spec["qam"], **{**spec["options"], **options})
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"cannot rebuild the detector of {checkpoint.get('path', 'the checkpoint')} "
                              f"({spec['name']!r}, qam {spec['qam']}, options {spec['options']}): {error}") from None
    changed = weight_differences(checkpoint["model"], detector.state_dict())
    if options and changed:
        given = ", ".join(f"{key}={value!r}" for key, value in options.items())
        raise ValueError(f"{given} would change the architecture of the detector in "
                         f"{checkpoint.get('path', 'the checkpoint')} (the weights do not fit: "
                         f"{'; '.join(changed[:3])}{'; …' if len(changed) > 3 else ''}); with a checkpoint, "
                         "give only options that keep the weights, such as a precision or an iteration count")
    load_weights(detector, checkpoint, ignore=tuple(options))
    detector.checkpoint_label = Path(checkpoint["path"]).stem
    detector.checkpoint = {**{key: checkpoint[key] for key in ("system", "training", "library_version", "path")},
                           "sha256": checkpoint.get("sha256")}
    return detector.to(device).eval()


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", **options) -> Detector:
    """:func:`detector_from_checkpoint` of the file at ``path``."""
    return detector_from_checkpoint(read_checkpoint(path), device, **options)
