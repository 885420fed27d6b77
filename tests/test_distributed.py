"""Data-parallel training and sharded evaluation on 2 gloo ranks of one thread each.

Every rank is ``python -m gnnmimo …``, the entry point ``torchrun`` starts, given the environment
``torchrun`` gives it (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``
on a free port). A plugin module supplies detectors that, on one rank and at one moment chosen
by environment variables, kill themselves (``SIGKILL``: a crashed rank) or send themselves
``SIGINT`` (Ctrl-C on that rank only); without the variables they are the zoo's DetNet and LMMSE.
"""
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from gnnmimo import distributed, registry
from gnnmimo.checkpoint import read_checkpoint
from gnnmimo.cli import build_parser, main
from gnnmimo.cli.train import config_from_args
from gnnmimo.evaluation import evaluate, point_seed
from gnnmimo.registry import create
from gnnmimo.sampling import MIMOSampler
from gnnmimo.train import Trainer, concat_graphs
from gnnmimo.train.data import sample_minibatch

PLUGIN = textwrap.dedent('''
    """Detectors that end their own rank on cue (tests/test_distributed.py)."""
    import os
    import signal

    from gnnmimo.registry import register
    from zoo.detnet import DetNet
    from zoo.linear import LMMSE


    def cue(event):
        """Send ``$CUE_SIGNAL`` to this process on rank ``$CUE_RANK`` at ``event == $CUE_AT``."""
        if os.environ.get("CUE_RANK") == os.environ.get("RANK") and str(event) == os.environ.get("CUE_AT"):
            os.kill(os.getpid(), getattr(signal, os.environ["CUE_SIGNAL"]))


    @register("cued-detnet")
    class CuedDetNet(DetNet):
        """DetNet, cued at its ``$CUE_AT``-th loss: on a rank, the first is the trainer's probe for
        unused parameters, then one per step (step ``$CUE_AT − 1`` of this process)."""
        calls = 0

        def loss(self, graph):
            CuedDetNet.calls += 1
            cue(CuedDetNet.calls)
            return super().loss(graph)


    @register("cued-mmse")
    class CuedMMSE(LMMSE):
        """LMMSE, cued when it detects a batch at ``$CUE_AT`` dB."""

        def detect(self, graph):
            cue(f"{float(graph.snr_db[0]):g}")
            return super().detect(graph)
''')

TRAIN = ["--nr", "4", "--nt", "2", "--qam", "4", "--snr", "5:15", "--batch-size", "8", "--lr", "1e-2",
         "--val-size", "16", "--threads", "1", "--no-progress"]
EVALUATE = ["--nr", "4", "--nt", "2,3", "--qam", "4", "--snr", "0,6,12", "--target-errors", "40",
            "--max-symbols", "3000", "--batch-size", "32", "--threads", "1", "--no-progress"]


#: what the plugin registers
CUED = ("cued-detnet", "cued-mmse")


@pytest.fixture(scope="module", autouse=True)
def plugin_registered_for_this_module_only():
    """Other tests enumerate the registry: the plugin's detectors leave it, and its module leaves
    the imports and ``sys.path``, after this module."""
    path = list(sys.path)
    yield
    for name in CUED:
        registry._NAMES.pop(registry._REGISTRY.pop(name, None), None)
    sys.modules.pop("cued_detectors", None)
    sys.path[:] = path


def plugin_folder(path):
    """``path`` with the plugin module, importable here (registered once per module) and in the ranks."""
    (path / "cued_detectors.py").write_text(PLUGIN)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    importlib.import_module("cued_detectors")
    return path


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(plugin_folder(tmp_path))
    return tmp_path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(folder, **extra) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CUE_")}
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(paths), **extra}


def launch(folder, args, world=2, **cue) -> list[subprocess.CompletedProcess]:
    """Run ``python -m gnnmimo --plugin cued_detectors ARGS`` on ``world`` ranks (as torchrun would)."""
    port = free_port()
    command = [sys.executable, "-m", "gnnmimo", "--plugin", "cued_detectors", *args]
    processes = [subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=environment(folder, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world),
                                                  LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                                                  MASTER_PORT=str(port), **cue))
                 for r in range(world)]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=240)
        results.append(subprocess.CompletedProcess(command, process.returncode, stdout, stderr))
    return results


def run_here(args) -> int:
    """``gnnmimo --plugin cued_detectors ARGS`` in this process (a plain one: no process group)."""
    return main(["--plugin", "cued_detectors", *args])


TRAIN_RUN = ["train", "--detector", "cued-detnet:nt=2,iterations=2", *TRAIN, "--eval-every", "100",
             "--checkpoint-every", "2", "--out", "run.pt"]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A 2-rank run of up to 20 steps, which Ctrl-C stops on rank 1 alone during its step 3 (the ranks)."""
    folder = plugin_folder(tmp_path_factory.mktemp("interrupted"))
    return folder, launch(folder, [*TRAIN_RUN, "--steps", "20"], CUE_RANK="1", CUE_AT="4", CUE_SIGNAL="SIGINT")


def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_step_saved(interrupted):
    folder, ranks = interrupted
    assert [r.returncode for r in ranks] == [130, 130], ranks[0].stderr[-2000:] + ranks[1].stderr[-2000:]
    assert "interrupted at step 3; saved run.pt" in ranks[0].stdout and ranks[1].stdout == ""  # rank 0 logs
    assert read_checkpoint(folder / "run.pt")["state"]["step"] == 3


def test_ddp_steps_equal_single_process_steps_on_the_global_batch(interrupted):
    """The 3 steps on 2 ranks × 4 instances give the weights of 3 single-process steps on the 8
    instances the ranks drew (rank r at step s from derived_seed(seed, s, r)), to 1e-6 (float32:
    only the order of the gradient sums differs); the weights move by far more than that."""
    folder, _ = interrupted
    config = config_from_args(build_parser().parse_args([*TRAIN_RUN, "--steps", "20"]))

    class GlobalBatch(Trainer):
        """The single-process reference: each step on the union of the ranks' draws."""

        def sample_batch(self):
            return concat_graphs([sample_minibatch(
                self.config, self.sampler, self._snr_table,
                self.sampler.generator(distributed.derived_seed(self.config.seed, self.step, rank)), size=4)
                for rank in (0, 1)])

    torch.set_num_threads(1)
    reference = GlobalBatch(config, lambda: create(config.detector, config.qam, **config.options), progress=False,
                            log=lambda message: None)
    initial = {k: v.clone() for k, v in reference.detector.state_dict().items()}
    reference.run(on_step=lambda trainer: trainer.request_stop() if trainer.step == 3 else None)
    trained = read_checkpoint(folder / "run.pt")["model"]
    difference = max(float((trained[k] - v).abs().max()) for k, v in reference.detector.state_dict().items())
    moved = max(float((initial[k] - v).abs().max()) for k, v in reference.detector.state_dict().items())
    assert reference.step == 3 and difference <= 1e-6 and moved > 1e-3, (reference.step, difference, moved)


def test_a_dead_rank_leaves_a_checkpoint_that_resumes_with_another_world_size(interrupted, folder):
    shutil.copy(interrupted[0] / "run.pt", folder / "run.pt")
    # resumed at step 3, rank 1 dies (SIGKILL) in its 4th step, step 7: rank 0 ends too; step 6's checkpoint stays
    ranks = launch(folder, [*TRAIN_RUN, "--steps", "20", "--resume"], CUE_RANK="1", CUE_AT="5", CUE_SIGNAL="SIGKILL")
    assert ranks[1].returncode == -9 and ranks[0].returncode == 1, ranks[0].stderr[-2000:]
    assert "another rank is gone" in ranks[0].stderr and "checkpoint of step 6" in ranks[0].stderr
    assert read_checkpoint(folder / "run.pt")["state"]["step"] == 6

    # a plain process continues it to the end
    assert run_here([*TRAIN_RUN, "--steps", "8", "--resume"]) == 0
    assert read_checkpoint(folder / "run.pt")["state"]["step"] == 8


def records(path) -> list[dict]:
    """The records of a JSON file, without the detector time (which differs from run to run)."""
    found = [{k: v for k, v in record.items() if k != "seconds"} for record in json.loads(path.read_text())]
    return sorted(found, key=lambda r: (r["detector"], r["nt"], r["snr_db"]))


def test_sharded_evaluation_gives_the_single_process_records_also_resumed_after_rank_0_died(folder):
    """The cued LMMSE kills rank 0 at the first 6 dB batch (the 0 dB records are written by then);
    the resumed 2-rank run completes the file with the records of one process, paired ones included."""
    args = ["evaluate", "--detector", "cued-mmse", "--detector", "zf", "--paired-with", "cued-mmse", *EVALUATE]
    assert run_here([*args, "--json", "single.json"]) == 0

    ranks = launch(folder, [*args, "--json", "sharded.json"], CUE_RANK="0", CUE_AT="6", CUE_SIGNAL="SIGKILL")
    assert ranks[0].returncode == -9 and ranks[1].returncode == 1, ranks[1].stderr[-2000:]
    assert "another rank is gone" in ranks[1].stderr
    assert {r["snr_db"] for r in records(folder / "sharded.json")} == {0.0}

    ranks = launch(folder, [*args, "--json", "sharded.json", "--resume"])
    assert [r.returncode for r in ranks] == [0, 0], ranks[0].stderr[-2000:] + ranks[1].stderr[-2000:]
    expected = records(folder / "single.json")
    assert len(expected) == 12 and all(r["paired"] for r in expected if r["detector"] == "zf")
    # the stopping rule ends points within a round, so the equality is not that of whole rounds
    assert any(r["instances"] // 32 % 2 for r in expected)
    assert records(folder / "sharded.json") == expected


def test_sharded_coded_evaluation_of_stored_instances_with_a_short_last_batch_equals_one_process(folder):
    """96 stored instances per point in batches of 40 (40, 40, 16): rank 1 pads the short batch's tally
    and sends an empty one past the end; the 2-rank records, coded counts included, are one process's."""
    assert run_here(["sample", "--nr", "4", "--nt", "2", "--qam", "4", "--snr", "0,6", "--max-symbols", "192",
                     "--batch-size", "32", "--out", "data.pt"]) == 0
    args = ["evaluate", "--detector", "mmse", "--detector", "zf", "--paired-with", "mmse", "--data", "data.pt",
            "--target-errors", "100000", "--max-symbols", "100000", "--batch-size", "40",
            "--code", "ldpc5g:k=16,n=32", "--threads", "1", "--no-progress"]
    assert run_here([*args, "--json", "single.json"]) == 0
    ranks = launch(folder, [*args, "--json", "sharded.json"])
    assert [r.returncode for r in ranks] == [0, 0], ranks[0].stderr[-2000:] + ranks[1].stderr[-2000:]
    expected = records(folder / "single.json")
    assert len(expected) == 4 and all(r["instances"] == 96 and r["coded"]["blocks"] > 0 for r in expected)
    assert records(folder / "sharded.json") == expected


def test_the_evaluation_stream_is_one_seed_per_batch(one_thread):
    """Batch k of a point comes from derived_seed(point_seed(seed, Nt, SNR), k): the stream a rank
    can draw from without the batches before it (counted here by hand on 3 batches)."""
    sampler, detector = MIMOSampler(4, 2, 4), create("mmse", 4)
    [record] = evaluate({"mmse": detector}, sampler, [2], [3.0], target_errors=10**6, max_symbols=3 * 16 * 2,
                        batch_size=16, seed=7, progress=False)
    errors = 0
    for k in range(3):
        graph = sampler.sample(16, sampler.generator(distributed.derived_seed(point_seed(7, 2, 3.0), k)),
                               snr_db=3.0, nt=2)
        errors += int((detector.detect(graph).hard != graph["user"].y).sum())
    assert (record.instances, record.symbol_errors) == (48, errors) and errors > 0
