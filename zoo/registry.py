"""The detector registry: ``zoo.create("mmse", qam=16)``, ``zoo.list()``.

Detectors register under a short name with :func:`register`. A *spec*
string names a detector and its options, ``"kbest:k=32"`` or
``"ep:iterations=10,damping=0.9"``; option values are parsed as Python
literals (numbers, booleans, strings).
"""
from __future__ import annotations

import ast
import inspect
from typing import Callable

from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector

_REGISTRY: dict[str, type[Detector]] = {}


def register(name: str) -> Callable[[type[Detector]], type[Detector]]:
    """Class decorator adding a detector to the registry under ``name``."""
    def add(cls: type[Detector]) -> type[Detector]:
        if name in _REGISTRY:
            raise ValueError(f"detector name {name!r} is already registered by {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        cls.registry_name = name
        return cls
    return add


def list_detectors() -> list[str]:
    """Registered names, sorted."""
    return sorted(_REGISTRY)


def detector_class(name: str) -> type[Detector]:
    """The class registered as ``name`` (``ValueError`` for an unknown name)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown detector {name!r}; available: {', '.join(list_detectors())}")
    return _REGISTRY[name]


def create(name: str, qam: QAM | int, **options) -> Detector:
    """Build the detector registered as ``name`` for ``qam`` with ``options``.

    A detector that does not name its resolved options in ``hparams`` gets
    ``options`` there, so that checkpoints record how to rebuild it.

    Raises:
        ValueError: for an unknown name or an option the detector does not take.
    """
    cls = detector_class(name)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "qam"}
    unknown = set(options) - accepted
    if unknown:
        raise ValueError(f"detector {name!r} has no option(s) {sorted(unknown)}; "
                         f"it takes {sorted(accepted) or 'none'}")
    detector = cls(qam, **options)
    if getattr(detector, "hparams", None) is None:
        detector.hparams = dict(options)
    return detector


def parse_spec(spec: str) -> tuple[str, dict]:
    """``"kbest:k=32,ordered=True"`` → ``("kbest", {"k": 32, "ordered": True})``."""
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"bad detector option {item!r} in {spec!r}; expected key=value")
        try:
            options[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            options[key.strip()] = value.strip()
    return name.strip(), options


def create_from_spec(spec: str, qam: QAM | int) -> Detector:
    """``create`` from a spec string such as ``"kbest:k=32"``."""
    name, options = parse_spec(spec)
    return create(name, qam, **options)
