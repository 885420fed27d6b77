"""Every example runs in its quick form (``examples/*.py --quick``, and the RE-MIMO reproduction's
``examples/remimo_paper/fig*.py --quick``), as a user would run it: a fresh
process with one thread, in an empty folder (so it writes nothing into the repository), the library
imported from this checkout. pytest-style examples (``examples/test_*.py``) are collected by pytest
itself, not run here."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = (sorted(path for path in ROOT.joinpath("examples").glob("*.py") if not path.name.startswith("test_"))
            + sorted(ROOT.joinpath("examples", "remimo_paper").glob("fig*.py")))


def needs_sionna(path: Path) -> bool:
    return re.search(r"^\s*(from|import) sionna", path.read_text(), re.MULTILINE) is not None


def test_there_are_examples():
    assert {"compose_a_detector.py", "evaluate_own_data.py", "fig7_iid.py", "fig12_attention.py",
            "fig13_timing.py"} <= {path.name for path in EXAMPLES}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_the_example_runs_quickly(example, tmp_path):
    if needs_sionna(example):
        pytest.importorskip("sionna.phy")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(example), "--quick"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{example.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
