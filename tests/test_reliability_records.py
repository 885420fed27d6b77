"""Reliability of evaluation records: each record stores what determined it, ``--resume`` reuses a
record only when all of it matches (and refuses otherwise, listing the differences), and the JSON
file is strict JSON (no ``Infinity`` from a single-instance paired comparison)."""
import hashlib
import json
import shutil

import pytest
import torch

import gnnmimo
import zoo
from gnnmimo.checkpoint import save_checkpoint
from gnnmimo.cli import main as cli_main
from gnnmimo.evaluation import ResumeMismatch, evaluate, paired_comparison
from gnnmimo.report import load_json, paired_table, save_json
from gnnmimo.sampling import MIMOSampler
from helpers import TINY_EVALUATE as EVALUATE, with_option

pytestmark = pytest.mark.usefixtures("one_thread")



def tiny_checkpoint(path, seed: int) -> None:
    """An untrained RE-MIMO for 4 antennas, 4-QAM, initialised from ``seed``."""
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, zoo.create("remimo", 4, nr=4, d_model=8, heads=2, blocks=1))


def strict_json(text: str):
    """``json.loads`` that refuses ``NaN``/``Infinity``, as JSON parsers other than Python's do."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


# ---------------------------------------------------------------- 3. provenance of records
def test_every_record_stores_what_determined_it_and_round_trips_through_json(tmp_path):
    checkpoint, out = tmp_path / "run.pt", tmp_path / "out.json"
    tiny_checkpoint(checkpoint, seed=0)
    assert cli_main(EVALUATE + ["--detector", "ep:iterations=3", "--checkpoint", str(checkpoint),
                                "--paired-with", "mmse", "--seed", "7", "--json", str(out)]) == 0
    records = load_json(out)
    by_detector = {r.detector: r.provenance for r in records}
    assert set(by_detector) == {"mmse", "ep:iterations=3", "run"}
    for provenance in by_detector.values():
        assert provenance["library_version"] == gnnmimo.__version__
        assert {k: provenance[k] for k in ("seed", "target_errors", "max_symbols", "batch_size", "precision",
                                           "device", "nr", "reference")} == {
            "seed": 7, "target_errors": 20, "max_symbols": 400, "batch_size": 100, "precision": "single",
            "device": "cpu", "nr": [4, 4], "reference": "mmse"}
        assert provenance["channel"] == {"kind": "iid", "rho": 0.0, "csi_error": 0.0}
    assert by_detector["ep:iterations=3"]["detector"] == {
        "name": "ep", "qam": 4, "options": {"iterations": 3, "damping": 0.9, "eps": None, "double": True},
        "precision": "fp32"}
    assert by_detector["mmse"]["checkpoint"] is None
    assert by_detector["run"]["detector"]["name"] == "remimo"
    assert by_detector["run"]["checkpoint"] == {"source": str(checkpoint),
                                                "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest()}
    save_json(records, tmp_path / "again.json")
    assert load_json(tmp_path / "again.json") == records


def test_a_pretrained_checkpoint_is_named_by_the_name_given():
    name = zoo.list_pretrained()[0]
    detector = zoo.load(name)
    assert detector.checkpoint["source"] == name
    assert detector.checkpoint["sha256"] == hashlib.sha256(zoo.weights.resolve(name).read_bytes()).hexdigest()


def test_resume_refuses_another_checkpoint_behind_the_same_path_and_stem(tmp_path, capsys):
    """The reported case: a retrained checkpoint with the old one's name was reported with the old SER."""
    first, second, out = tmp_path / "a" / "run.pt", tmp_path / "b" / "run.pt", tmp_path / "out.json"
    tiny_checkpoint(first, seed=0)
    tiny_checkpoint(second, seed=1)
    argv = EVALUATE + ["--checkpoint", str(first), "--json", str(out)]
    assert cli_main(argv) == 0
    stored = out.read_text()
    shutil.copy(second, first)                       # same path, same stem, other weights
    with pytest.raises(SystemExit) as refused:
        cli_main(argv + ["--resume"])
    message = str(refused.value)
    assert message.startswith(f"error: cannot resume from {out}") and "(stored vs now)" in message
    assert "run (2 points: Nt=2 SNR=0, Nt=2 SNR=5): checkpoint.sha256: '" in message
    assert "Use another --json for this run, or --overwrite to replace the file." in message
    assert "mmse" not in message                      # its records match and would be kept
    assert out.read_text() == stored
    with pytest.raises(SystemExit, match=r"checkpoint.source: '.*a/run.pt' vs '.*b/run.pt'"):
        cli_main(with_option(argv, "--checkpoint", str(second)) + ["--resume"])
    assert cli_main(argv + ["--overwrite"]) == 0
    sha = hashlib.sha256(second.read_bytes()).hexdigest()
    assert {r.provenance["checkpoint"]["sha256"] for r in load_json(out) if r.detector == "run"} == {sha}


@pytest.mark.parametrize("option, value, difference", [
    ("--seed", "1", "seed: 0 vs 1"),
    ("--target-errors", "30", "target_errors: 20 vs 30"),
    ("--max-symbols", "600", "max_symbols: 400 vs 600"),
    ("--batch-size", "50", "batch_size: 100 vs 50"),
    ("--precision", "double", "precision: 'single' vs 'double'"),
])
def test_resume_with_other_settings_refuses_instead_of_keeping_the_old_points(tmp_path, monkeypatch, option,
                                                                              value, difference):
    out = tmp_path / "out.json"
    assert cli_main(EVALUATE + ["--json", str(out)]) == 0
    stored = out.read_text()
    monkeypatch.setattr("gnnmimo.evaluation._tally", lambda *a: pytest.fail("computed"))
    with pytest.raises(SystemExit, match=f"mmse \\(2 points: Nt=2 SNR=0, Nt=2 SNR=5\\): {difference}\n"):
        cli_main(with_option(EVALUATE, option, value) + ["--json", str(out), "--resume"])
    assert out.read_text() == stored
    assert cli_main(EVALUATE + ["--json", str(out), "--resume"]) == 0   # the same settings: nothing to run
    assert out.read_text() == stored


def test_resume_runs_only_the_missing_points_of_matching_records(tmp_path):
    out = tmp_path / "out.json"
    assert cli_main(with_option(EVALUATE, "--snr", "0") + ["--json", str(out)]) == 0
    first = load_json(out)
    assert cli_main(EVALUATE + ["--json", str(out), "--resume"]) == 0
    records = load_json(out)
    assert [r.snr_db for r in records] == [0.0, 5.0] and records[0] == first[0]


def test_records_written_before_provenance_was_stored_are_refused_on_resume(tmp_path):
    out = tmp_path / "out.json"
    assert cli_main(EVALUATE + ["--json", str(out)]) == 0
    old = [{k: v for k, v in record.items() if k != "provenance"} for record in json.loads(out.read_text())]
    out.write_text(json.dumps(old))
    with pytest.raises(SystemExit, match=r"mmse \(2 points: .*\): written before records kept their provenance, "
                                         r"so it cannot be verified"):
        cli_main(EVALUATE + ["--json", str(out), "--resume"])
    assert json.loads(out.read_text()) == old


def test_resume_refuses_a_file_that_holds_no_records(tmp_path):
    out = tmp_path / "out.json"
    out.write_text("{not json")
    with pytest.raises(SystemExit, match=r"error: cannot resume from .*out.json: it holds no evaluation records"):
        cli_main(EVALUATE + ["--json", str(out), "--resume"])


def test_the_api_refuses_previous_records_made_otherwise_before_any_work(monkeypatch):
    sampler = MIMOSampler(4, 2, 4)
    detectors = {"mmse": zoo.create("mmse", 4)}
    records = evaluate(detectors, sampler, [2], [0.0], 20, 400, 100, seed=0, progress=False)
    monkeypatch.setattr("gnnmimo.evaluation._tally", lambda *a: pytest.fail("computed"))
    assert evaluate(detectors, sampler, [2], [0.0], 20, 400, 100, seed=0, previous=records, progress=False) == []
    with pytest.raises(ResumeMismatch, match=r"mmse \(1 point: Nt=2 SNR=0\): seed: 0 vs 3"):
        evaluate(detectors, sampler, [2], [0.0], 20, 400, 100, seed=3, previous=records, progress=False)
    with pytest.raises(ResumeMismatch, match=r"detector.options.double: True vs False"):
        evaluate({"mmse": zoo.create("mmse", 4, double=False)}, sampler, [2], [0.0], 20, 400, 100,
                 previous=records, progress=False)


# ------------------------------------------------------- 12. strict JSON of paired comparisons
def test_a_single_instance_paired_comparison_has_no_interval_and_writes_strict_json(tmp_path, capsys):
    out = tmp_path / "out.json"
    argv = ["evaluate", "--detector", "mmse", "--detector", "zf", "--paired-with", "mmse", "--nr", "4", "--nt", "2",
            "--qam", "4", "--snr", "0", "--max-symbols", "2", "--batch-size", "1", "--json", str(out),
            "--no-progress"]
    assert cli_main(argv) == 0
    records = strict_json(out.read_text())
    paired = [r["paired"] for r in records if r["paired"]]
    assert len(paired) == 1 and paired[0]["instances"] == 1
    assert paired[0]["ci_low"] is None and paired[0]["ci_high"] is None
    assert "[undefined: 1 instance]" in capsys.readouterr().out
    assert "[undefined: 1 instance]" in paired_table(load_json(out))
    two = paired_comparison(torch.tensor([1, 0]), torch.tensor([0, 0]), 2, "mmse")
    assert two.ci_low < two.ser_difference < two.ci_high      # from two instances on, an interval


def test_save_json_refuses_to_write_non_finite_numbers(tmp_path):
    sampler = MIMOSampler(4, 2, 4)
    [record] = evaluate({"mmse": zoo.create("mmse", 4)}, sampler, [2], [0.0], 20, 400, 100, progress=False)
    record.seconds = float("inf")
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        save_json([record], tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()
