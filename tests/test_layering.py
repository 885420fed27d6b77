"""The package's layers point one way (every import, lazy ones included, read from the source).

core → blocks, detector base, registry, losses, checkpoints → zoo → training, evaluation,
testing helpers → command line. A module may import its own layer and the layers below; and no
module of ``gnnmimo`` but the command line imports ``zoo`` (the zoo plugs into the library, the
library never reaches up into it).
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: layers from the bottom up; a module belongs to the first prefix that matches it
LAYERS = [
    ("core", ["gnnmimo.constellation", "gnnmimo.channels", "gnnmimo.graph", "gnnmimo.sampling", "gnnmimo.ops",
              "gnnmimo.linalg", "gnnmimo.equalization", "gnnmimo.tree_search", "gnnmimo.files",
              "gnnmimo.precision", "gnnmimo.allocator", "gnnmimo.instances", "gnnmimo.progress",
              "gnnmimo.link", "gnnmimo.tr38901", "gnnmimo.distributed"]),
    ("blocks and detectors", ["gnnmimo.blocks", "gnnmimo.detector", "gnnmimo.registry", "gnnmimo.losses",
                              "gnnmimo.checkpoint"]),
    ("zoo", ["zoo"]),
    ("training and evaluation", ["gnnmimo.train", "gnnmimo.batch_sources", "gnnmimo.evaluation", "gnnmimo.report",
                                 "gnnmimo.testing", "gnnmimo.timing", "gnnmimo.leaderboard"]),
    ("command line", ["gnnmimo.cli", "gnnmimo.__main__"]),
]
#: the package root re-exports core and detector names only
PACKAGE_ROOT = ("gnnmimo", 1)


def layer_of(module: str) -> int | None:
    if module == PACKAGE_ROOT[0]:
        return PACKAGE_ROOT[1]
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in the file, at any depth (lazy imports included)."""
    found = []
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from package import module` imports the module; `from module import name`, the module
            found += [(node.lineno, f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
                      for alias in node.names]
    return found


SOURCES = sorted([*ROOT.joinpath("gnnmimo").rglob("*.py"), *ROOT.joinpath("zoo").rglob("*.py")])
MODULES = {module_name(path) for path in SOURCES}


def test_every_module_has_a_layer():
    assert [module_name(p) for p in SOURCES if layer_of(module_name(p)) is None] == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    source = module_name(path)
    rank = layer_of(source)
    offending = []
    for line, target in imports(path):
        target_rank = layer_of(target)
        if target_rank is None:
            continue  # a third-party module
        reaches_zoo = target_rank == 2 and source.startswith("gnnmimo") and rank != 4
        if target_rank > rank or reaches_zoo:
            offending.append(f"{path.relative_to(ROOT)}:{line}: {source} ({LAYERS[rank][0]}) imports "
                             f"{target} ({LAYERS[target_rank][0]})")
    assert not offending, "imports against the layering:\n" + "\n".join(offending)


def test_the_check_names_an_offending_edge(tmp_path, monkeypatch):
    """A library module that imports the zoo lazily, inside a function, is caught."""
    fake = ROOT / "gnnmimo" / "graph.py"
    text = "def f():\n    import zoo\n    from gnnmimo.cli import main\n"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: text)
    with pytest.raises(AssertionError, match=r"gnnmimo/graph.py:2: gnnmimo.graph \(core\) imports zoo \(zoo\)"):
        test_imports_point_down(fake)
