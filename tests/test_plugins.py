"""Detectors from outside the repository: a scratch module registers a detector that the command
line trains and evaluates and that ``zoo.load`` rebuilds in a fresh process, importing the module
the checkpoint names."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRATCH = textwrap.dedent('''
    """A small hybrid composed from gnnmimo blocks, outside the repository."""
    from gnnmimo.blocks.denoiser import PAMPosterior
    from gnnmimo.blocks.gnn import PairwiseMRFGNN
    from gnnmimo.detector import UnrolledDetector
    from gnnmimo.registry import register


    @register("scratch-gnn")
    class ScratchGNN(UnrolledDetector):
        def __init__(self, qam, iterations: int = 2, width: int = 8):
            super().__init__(qam, iterations)
            self.gnn = PairwiseMRFGNN(self.qam, rounds=1, message_channels=(width,), gru_channels=width,
                                      readout_channels=(width,))
            self.posterior = PAMPosterior(self.qam)

        def step(self, graph, state):
            return self.posterior(graph, self.gnn(graph, state))
''')


def run(*args, cwd, env_extra=None, check=True):
    """Run ``python ARGS`` in a fresh process that finds plugins only where ``env_extra`` says."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "GNNMIMO_PLUGINS")}
    env = {**env, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder with the scratch module and, after training through the CLI, its checkpoint."""
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "scratch_detectors.py").write_text(SCRATCH)
    run("-m", "gnnmimo", "--plugin", "scratch_detectors", "train", "--detector", "scratch-gnn:width=6",
        "--nr", "4", "--nt", "2:3", "--qam", "4", "--snr", "5:15", "--steps", "4", "--batch-size", "8",
        "--eval-every", "2", "--val-size", "16", "--threads", "1", "--out", "run.pt", "--no-progress",
        cwd=folder, env_extra={"PYTHONPATH": str(folder)})
    return folder


def test_the_cli_trains_and_evaluates_a_plugin_detector(scratch):
    common = ["--nr", "4", "--nt", "2", "--qam", "4", "--snr", "10", "--target-errors", "10",
              "--max-symbols", "400", "--no-progress"]
    run("-m", "gnnmimo", "evaluate", "--detector", "scratch-gnn", "--checkpoint", "run.pt", *common,
        "--json", "out.json", cwd=scratch,
        env_extra={"PYTHONPATH": str(scratch), "GNNMIMO_PLUGINS": "scratch_detectors"})
    labels = {record["detector"] for record in json.loads((scratch / "out.json").read_text())}
    assert labels == {"scratch-gnn", "run"}


def test_zoo_load_in_a_fresh_process_imports_the_plugin_module(scratch, tmp_path):
    code = (f"import zoo; d = zoo.load({str(scratch / 'run.pt')!r}); "
            "print(type(d).__module__, type(d).__name__, d.hparams['width'], d.checkpoint['training']['steps'])")
    result = run("-c", code, cwd=tmp_path, env_extra={"PYTHONPATH": str(scratch)})
    assert result.stdout.split() == ["scratch_detectors", "ScratchGNN", "6", "4"]


def test_a_missing_plugin_module_is_named(scratch, tmp_path):
    result = run("-c", f"import zoo; zoo.load({str(scratch / 'run.pt')!r})", cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "defined in module 'scratch_detectors', which cannot be imported" in result.stderr
    result = run("-m", "gnnmimo", "--plugin", "no_such_plugin", "list", cwd=tmp_path, check=False)
    assert result.returncode != 0 and "plugin module 'no_such_plugin' cannot be imported" in result.stderr
