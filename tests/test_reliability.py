"""Reliability: outputs are never silently replaced, unwritable outputs fail before any work,
resumed cosine schedules keep decaying, SIGTERM saves like Ctrl-C, writes reach the disk."""
import os
import signal

import pytest

import gnnmimo.files
from gnnmimo.checkpoint import read_checkpoint
from gnnmimo.cli import main as cli_main
from gnnmimo.files import atomic_write
from gnnmimo.train import TrainConfig
from helpers import quiet_trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**changes) -> TrainConfig:
    base = dict(detector="remimo", options={"nr": 4, "d_model": 8, "heads": 2, "blocks": 2}, qam=4, nr=4,
                nt=(2, 3), snr=(5.0, 15.0), steps=2, batch_size=8, lr=3e-3, eval_every=2, val_size=8)
    return TrainConfig(**{**base, **changes})


TRAIN = ["train", "--detector", "remimo", "--nr", "4", "--nt", "2:3", "--qam", "4", "--snr", "5:15",
         "--steps", "2", "--eval-every", "2", "--batch-size", "8", "--val-size", "8", "--d-model", "8",
         "--heads", "2", "--blocks", "2", "--no-progress"]
EVALUATE = ["evaluate", "--detector", "mmse", "--nr", "4", "--nt", "2", "--qam", "4", "--snr", "0,5",
            "--target-errors", "20", "--max-symbols", "400", "--batch-size", "100", "--no-progress"]


# ------------------------------------------------------- 1. existing train outputs
def test_a_new_trainer_refuses_an_existing_out_or_best_file_unless_told_to_overwrite(tmp_path):
    out = tmp_path / "run.pt"
    quiet_trainer(tiny(), out).run()
    original = out.read_bytes()
    with pytest.raises(FileExistsError, match="run.pt"):
        quiet_trainer(tiny(seed=1), out)
    assert out.read_bytes() == original
    out.unlink()   # the best file alone belongs to that run too, even under resume=True
    with pytest.raises(FileExistsError, match="run.best.pt"):
        quiet_trainer(tiny(seed=1), out, resume=True)
    trainer = quiet_trainer(tiny(seed=1), out, overwrite=True)
    assert not trainer.best_path.exists()   # a stale best file of the other run is not kept
    trainer.run()
    assert [read_checkpoint(path)["training"]["seed"] for path in (out, trainer.best_path)] == [1, 1]


def test_cli_train_refuses_an_existing_out_without_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "run.pt"
    assert cli_main(TRAIN + ["--out", str(out)]) == 0
    original = out.read_bytes()
    with pytest.raises(SystemExit, match=r"error: .*run.pt exists.*--resume.*--overwrite"):
        cli_main(TRAIN + ["--out", str(out), "--seed", "1"])
    assert out.read_bytes() == original
    assert cli_main(TRAIN + ["--out", str(out), "--steps", "3", "--resume"]) == 0
    assert read_checkpoint(out)["state"]["step"] == 3
    assert cli_main(TRAIN + ["--out", str(out), "--seed", "1", "--overwrite"]) == 0
    assert read_checkpoint(out)["state"]["step"] == 2 and read_checkpoint(out)["training"]["seed"] == 1


# -------------------------------------------------------- 2. existing evaluate JSON
def test_cli_evaluate_refuses_an_existing_json_before_any_computation(tmp_path, monkeypatch):
    out = tmp_path / "out.json"
    out.write_text("[]")
    monkeypatch.setattr("gnnmimo.cli.evaluate.evaluate", lambda *a, **k: pytest.fail("computed"))
    with pytest.raises(SystemExit, match=r"error: .*out.json exists.*--resume.*--overwrite"):
        cli_main(EVALUATE + ["--json", str(out)])
    assert out.read_text() == "[]"
    monkeypatch.undo()
    out.write_text("not JSON: --overwrite must not read it")
    assert cli_main(EVALUATE + ["--json", str(out), "--overwrite"]) == 0
    assert out.read_text().startswith("[")


# -------------------------------------------------------------- 3. unwritable outputs
def test_check_writable_rejects_directories_and_paths_under_files(tmp_path):
    check_writable = gnnmimo.files.check_writable
    check_writable(tmp_path / "new" / "deeper" / "out.json")   # missing parents are created
    assert (tmp_path / "new" / "deeper").is_dir() and os.listdir(tmp_path / "new" / "deeper") == []
    with pytest.raises(OSError, match="is a directory"):
        check_writable(tmp_path / "new")
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match=r"cannot write .*file/out.json"):
        check_writable(tmp_path / "file" / "out.json")


@pytest.mark.parametrize("option", ["--json", "--markdown", "--plot"])
def test_cli_evaluate_fails_up_front_on_an_unwritable_output(tmp_path, monkeypatch, option):
    (tmp_path / "file").write_text("")
    monkeypatch.setattr("gnnmimo.cli.evaluate.evaluate", lambda *a, **k: pytest.fail("computed"))
    with pytest.raises(SystemExit, match=r"error: cannot write"):
        cli_main(EVALUATE + [option, str(tmp_path / "file" / "out")])
    with pytest.raises(SystemExit, match=r"error: .*is a directory"):
        cli_main(EVALUATE + [option, str(tmp_path)])


def test_cli_train_fails_up_front_on_an_unwritable_out(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setattr("gnnmimo.train.trainer.auto_snr_ranges", lambda *a, **k: pytest.fail("computed"))
    with pytest.raises(SystemExit, match=r"error: cannot write"):
        cli_main(TRAIN + ["--snr", "auto", "--out", str(tmp_path / "file" / "run.pt")])
    with pytest.raises(SystemExit, match=r"error: .*is a directory"):
        cli_main(TRAIN + ["--snr", "auto", "--out", str(tmp_path)])


# --------------------------------------------------------- 4. resumed cosine schedule
@pytest.mark.parametrize("first_steps", [4, 6])
def test_a_cosine_run_resumed_with_more_steps_keeps_decaying_to_its_new_end(tmp_path, first_steps):
    """A finished 4-step run (at lr/100) or a 6-step run stopped at step 4, continued to 8 steps."""
    out, lrs = tmp_path / "run.pt", {}
    record = lambda trainer: lrs.__setitem__(trainer.step, trainer.optimizer.param_groups[0]["lr"])
    first = quiet_trainer(tiny(schedule="cosine", steps=first_steps, eval_every=2), out)
    first.run(on_step=lambda trainer: (record(trainer), trainer.step == 4 and trainer.request_stop()))
    resumed = quiet_trainer(tiny(schedule="cosine", steps=8, eval_every=2), out, resume=True)
    assert resumed.step == 4
    resumed.run(on_step=record)
    after = [lrs[step] for step in range(4, 9)]
    assert all(later <= earlier for earlier, later in zip(after, after[1:])), after
    assert after[-1] == pytest.approx(3e-3 / 100, rel=1e-9)


# ------------------------------------------------------------------------ 5. SIGTERM
def test_sigterm_saves_and_stops_like_ctrl_c_and_restores_the_handler(tmp_path):
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        def terminate(trainer):
            if trainer.step == 1:
                signal.raise_signal(signal.SIGTERM)

        trainer = quiet_trainer(tiny(steps=4), tmp_path / "run.pt")
        trainer.run(on_step=terminate)
        assert received == [] and trainer.step == 1
        assert read_checkpoint(tmp_path / "run.pt")["state"]["step"] == 1
        signal.raise_signal(signal.SIGTERM)   # the test's handler is back after the run
        assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------ 6. durable writes
def test_atomic_write_fsyncs_the_data_before_renaming(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(gnnmimo.files.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(gnnmimo.files.os, "replace",
                        lambda source, target: (calls.append("replace"), real_replace(source, target)))
    atomic_write(tmp_path / "f", lambda handle: handle.write(b"data"))
    assert (tmp_path / "f").read_bytes() == b"data"
    assert calls.index("fsync") < calls.index("replace")


@pytest.mark.parametrize("argv, message", [
    (TRAIN + ["--out", "run.pt", "--time-limit", "-1"], "--time-limit: expected a number > 0, got '-1'"),
    (["0,5,0" if arg == "0,5" else arg for arg in EVALUATE], "SNR 0 dB given more than once"),
])
def test_arguments_that_would_waste_a_run_are_refused(argv, message, tmp_path, monkeypatch, capsys):
    """``--time-limit -1`` stopped training after one step; a repeated SNR gave duplicate records."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        cli_main(argv)
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
