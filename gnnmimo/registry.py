"""The detector registry: names, specs, identities for checkpoints, and plugins.

Detectors register under a short name with :func:`register` (the zoo's do,
and so can any module outside this repository)::

    @register("my-hybrid")
    class MyHybrid(UnrolledDetector): ...

:func:`create` builds a registered detector by name; a *spec* string names a
detector and its options, ``"kbest:k=32"`` or ``"ep:iterations=10,damping=0.9"``
(values parsed as Python literals: numbers, booleans, strings). Options are
checked against the constructor's defaults before it runs (:func:`check_option_types`):
``iterations=2.5`` is refused at once instead of failing at the first batch.

**Identity.** A checkpoint records which class rebuilds a detector
(:func:`identity`): the registered name when the detector's class is itself
registered, otherwise the importable path ``"module:QualName"``. A subclass
never inherits its parent's name (it would reload as the parent).

**Plugins.** Detectors defined outside the package reach the command line and
:func:`load_checkpoint <gnnmimo.checkpoint.load_checkpoint>` by importing the
module that registers them: :func:`import_plugins` imports the modules named
by ``gnnmimo --plugin MODULE``, by the environment variable
:data:`PLUGIN_ENV` (comma-separated) and by the ``gnnmimo.detectors``
entry-point group of installed packages (:data:`ENTRY_POINT_GROUP`), e.g. in
a plugin's ``pyproject.toml``::

    [project.entry-points."gnnmimo.detectors"]
    my-detectors = "my_package.detectors"

Registering a name again with a class of the same module and qualified name
(a re-run notebook cell, a reloaded module) replaces the registration with a
warning; another class under a taken name is an error.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import numbers
import os
import warnings
from importlib.metadata import entry_points
from typing import Callable, Iterable

from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector

#: environment variable naming plugin modules to import (comma-separated)
PLUGIN_ENV = "GNNMIMO_PLUGINS"
#: entry-point group of installed packages that register detectors
ENTRY_POINT_GROUP = "gnnmimo.detectors"

_REGISTRY: dict[str, type[Detector]] = {}
_NAMES: dict[type[Detector], str] = {}


def register(name: str) -> Callable[[type[Detector]], type[Detector]]:
    """Class decorator adding a detector class to the registry under ``name``.

    Raises:
        TypeError: if the class is not a :class:`~gnnmimo.detector.Detector`.
        ValueError: if ``name`` is taken by a different class (another module or qualified name).
    """
    def add(cls: type[Detector]) -> type[Detector]:
        if not (isinstance(cls, type) and issubclass(cls, Detector)):
            raise TypeError(f"register({name!r}) takes a Detector subclass, got {cls!r}")
        previous = _REGISTRY.get(name)
        if previous is not None and previous is not cls:
            if class_path(previous) != class_path(cls):
                raise ValueError(f"detector name {name!r} is already registered by {class_path(previous)}")
            warnings.warn(f"detector {name!r} ({class_path(cls)}) is defined again; the new definition "
                          "replaces the registered one", stacklevel=2)
            del _NAMES[previous]
        _REGISTRY[name] = cls
        _NAMES[cls] = name
        return cls
    return add


def list_detectors() -> list[str]:
    """Registered names, sorted."""
    return sorted(_REGISTRY)


def class_path(cls: type) -> str:
    """``"module:QualName"`` of a class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def registered_name(cls: type[Detector]) -> str | None:
    """The name ``cls`` itself is registered under (never a parent's), or ``None``."""
    return _NAMES.get(cls)


def detector_class(name: str) -> type[Detector]:
    """The class registered as ``name`` or at the path ``"module:QualName"``.

    Raises:
        ValueError: for an unknown name or a path that does not name a detector class.
        ModuleNotFoundError: when the module of a path cannot be imported.
    """
    if ":" in name:
        module_name, _, qualname = name.partition(":")
        module = importlib.import_module(module_name)
        found = module
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if not (isinstance(found, type) and issubclass(found, Detector)):
            raise ValueError(f"{name!r} does not name a Detector class")
        return found
    if name not in _REGISTRY:
        raise ValueError(f"unknown detector {name!r}; available: {', '.join(list_detectors())}. A detector "
                         f"defined outside gnnmimo is found once its module is imported (--plugin MODULE, "
                         f"${PLUGIN_ENV} or the {ENTRY_POINT_GROUP!r} entry points)")
    return _REGISTRY[name]


def identity(detector: Detector) -> str:
    """What rebuilds ``detector``'s class in a fresh process: its registered name, else
    ``"module:QualName"``.

    Raises:
        ValueError: for an unregistered class that cannot be imported by its path (defined
            in ``__main__``, inside a function, or shadowed by another object at that path).
    """
    cls = type(detector)
    name = registered_name(cls)
    if name is not None:
        return name
    path = class_path(cls)
    reason = ("it is defined in __main__" if cls.__module__ == "__main__" else
              "it is defined inside a function" if "<locals>" in cls.__qualname__ else None)
    if reason is None:
        try:
            if detector_class(path) is not cls:
                reason = f"{path} names another class"
        except (ImportError, ValueError) as error:
            reason = f"{path} cannot be imported ({error})"
    if reason is not None:
        raise ValueError(f"{cls.__name__} cannot be rebuilt from a checkpoint: it is not registered and {reason}. "
                         f"Register it with @gnnmimo.registry.register(name) or define it in an importable module")
    return path


def create(name: str, qam: QAM | int, **options) -> Detector:
    """Build the detector registered as ``name`` (or at ``"module:QualName"``) for ``qam``.

    Raises:
        ValueError: for an unknown name or an option the detector does not take.
        TypeError: for an option of the wrong type (:func:`check_option_types`).
    """
    cls = detector_class(name)
    accepted = cls.option_names()
    unknown = set(options) - set(accepted)
    if unknown and not cls.takes_any_option():
        raise ValueError(f"detector {name!r} has no option(s) {sorted(unknown)}; "
                         f"it takes {sorted(accepted) or 'none'}")
    check_option_types(name, cls, options)
    return cls(qam, **options)


#: what an option must be, by the type of its default: (check, description); ``bool`` before ``int``
_OPTION_TYPES = (
    (bool, lambda value: isinstance(value, bool), "True or False"),
    (int, lambda value: isinstance(value, numbers.Integral) and not isinstance(value, bool), "an int"),
    (float, lambda value: isinstance(value, numbers.Real) and not isinstance(value, bool), "a number"),
    (str, lambda value: isinstance(value, str), "a string"),
)


def check_option_types(name: str, cls: type[Detector], options: dict) -> None:
    """Raise ``TypeError`` for an option whose constructor default is a bool, int, float or str
    and whose value is not of that type (an int passes for a float; ``True`` passes for neither).

    Options without a scalar default (``None``, a tuple, none at all) are the constructor's to check.
    """
    parameters = inspect.signature(cls.__init__).parameters
    for key, value in options.items():
        default = parameters[key].default if key in parameters else None
        for kind, accepts, description in _OPTION_TYPES:
            if isinstance(default, kind):
                if not accepts(value):
                    raise TypeError(f"detector {name!r}: option {key} must be {description} (its default is "
                                    f"{default!r}), got {value!r} ({type(value).__name__})")
                break


def parse_spec(spec: str) -> tuple[str, dict]:
    """``"kbest:k=32,ordered=True"`` → ``("kbest", {"k": 32, "ordered": True})``."""
    name, _, rest = spec.partition(":")
    return name.strip(), parse_options(rest, spec)


def parse_options(text: str, spec: str) -> dict:
    """``"k=32,ordered=True"`` → ``{"k": 32, "ordered": True}``: values as Python literals, else strings.

    ``spec`` is the whole spec the options come from, named in the error for an item without ``=``.
    """
    options = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"bad detector option {item!r} in {spec!r}; expected key=value")
        try:
            options[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            options[key.strip()] = value.strip()
    return options


def create_from_spec(spec: str, qam: QAM | int) -> Detector:
    """``create`` from a spec string such as ``"kbest:k=32"``."""
    name, options = parse_spec(spec)
    return create(name, qam, **options)


def import_plugins(modules: Iterable[str] = (), environment: bool = True, installed: bool = True) -> list[str]:
    """Import plugin modules that register detectors; returns the module names imported.

    Args:
        modules: module names (``--plugin``).
        environment: also those in ``$GNNMIMO_PLUGINS``.
        installed: also the ``gnnmimo.detectors`` entry points of installed packages.

    Raises:
        ModuleNotFoundError: naming a plugin module that cannot be imported.
    """
    names = list(modules)
    if environment:
        names += [name.strip() for name in os.environ.get(PLUGIN_ENV, "").split(",") if name.strip()]
    if installed:
        names += [point.value.partition(":")[0] for point in entry_points(group=ENTRY_POINT_GROUP)]
    for name in dict.fromkeys(names):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            raise ModuleNotFoundError(f"plugin module {name!r} cannot be imported (is it on PYTHONPATH?)",
                                      name=name) from None
    return list(dict.fromkeys(names))
