"""``examples/coded_link.py --quick`` runs: every detector gets a coded record at every point, and the
table and the BLER plot are written."""
import importlib.util
from pathlib import Path

import pytest

from helpers import sionna_module

pytestmark = pytest.mark.usefixtures("one_thread")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "coded_link.py"


def test_the_coded_link_example_runs_quick(tmp_path):
    sionna_module("fec.ldpc")
    spec = importlib.util.spec_from_file_location("coded_link", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.main(["--quick", "--out", str(tmp_path)])
    assert {(r.detector, r.ebno_db) for r in results} == {(name, ebno) for name in
                                                          ("mmse", "ep", "kbest", "langevin", "ampgnn")
                                                          for ebno in (-8.0, -6.0)}
    assert all(r.coded.blocks >= 1 and r.channel == "umi(3.5GHz,3m/s)+lmmse" for r in results)
    assert {path.name for path in tmp_path.iterdir()} == {"coded_link.json", "coded_link.md", "coded_link.png"}
