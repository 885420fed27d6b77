"""Evaluation on your own batches: an iterable of graphs, an instance set, a file written by
``gnnmimo sample`` (which must hold exactly the stream the sampled run draws), with its checks on
load and records that identify the data."""
import json
import re

import pytest
import torch

import zoo
from gnnmimo.channels import ChannelModel
from gnnmimo.cli import main as cli_main
from gnnmimo.evaluation import ResumeMismatch, evaluate
from gnnmimo.graph import MIMOGraph
from gnnmimo.instances import FORMAT, InstancesFileError, InstanceSet, load_instances
from gnnmimo.sampling import MIMOSampler

pytestmark = pytest.mark.usefixtures("one_thread")

#: one sampled system for the command-line tests: 2 Nt × 2 SNR points, 600 symbols each
STREAM = ["--nr", "4", "--nt", "2,3", "--qam", "4", "--snr", "0,6", "--max-symbols", "600", "--batch-size", "50",
          "--seed", "3"]
COUNTS = ("symbols", "symbol_errors", "bits", "bit_errors", "instances", "symbol_error_squares",
          "bit_error_squares", "paired")


def records(path) -> dict:
    return {(r["detector"], r["nt"], r["snr_db"]): r for r in json.loads(path.read_text())}


def mixed_graphs(seed: int = 0) -> list[MIMOGraph]:
    """Two batches, each mixing Nt 2…3 and SNR 0 / 6 dB per instance (four points in all)."""
    sampler = MIMOSampler(nr=4, nt=(2, 3), qam=4)
    generator = sampler.generator(seed)
    snrs = torch.tensor([0.0, 6.0])
    return [sampler.sample(120, generator, snr_db=snrs[torch.randint(2, (120,), generator=generator)])
            for _ in range(2)]


@pytest.mark.parametrize("target_errors", ["40", "1000000"])
def test_a_file_written_by_sample_gives_the_error_counts_of_the_sampled_run(tmp_path, target_errors):
    """Same seed, same --max-symbols and --batch-size: the same batches, so the same counts, also where
    --target-errors stops a point early (40: most points here; 10⁶: none)."""
    data = tmp_path / "instances.pt"
    assert cli_main(["sample", *STREAM, "--out", str(data), "--threads", "1"]) == 0
    common = ["--detector", "mmse", "--detector", "ep", "--paired-with", "ep", "--target-errors", target_errors,
              "--max-symbols", "600", "--batch-size", "50", "--no-progress", "--threads", "1"]
    assert cli_main(["evaluate", *STREAM, *common, "--json", str(tmp_path / "sampled.json")]) == 0
    assert cli_main(["evaluate", "--data", str(data), *common, "--json", str(tmp_path / "stored.json")]) == 0
    sampled, stored = records(tmp_path / "sampled.json"), records(tmp_path / "stored.json")
    assert sampled.keys() == stored.keys() and len(sampled) == 8
    for key in sampled:
        assert {f: stored[key][f] for f in COUNTS} == {f: sampled[key][f] for f in COUNTS}, key
    assert any(r["symbols"] < 600 for r in sampled.values()) == (target_errors == "40")
    per_snr = 6 * 50 + 4 * 50  # Nt 2: ceil(600 / (50·2)) batches of 50; Nt 3: ceil(600 / (50·3))
    assert stored[("ep", 2, 0.0)]["provenance"]["data"] == {"sha256": load_instances(data).digest,
                                                             "instances": 2 * per_snr}


def test_an_iterable_of_graphs_is_grouped_into_points_and_counted_per_instance():
    graphs = mixed_graphs()
    detector = zoo.create("mmse", 4)
    results = evaluate({"mmse": detector}, graphs, target_errors=10**9, max_symbols=10**9, batch_size=64,
                       progress=False)
    expected = {}  # independent count: detect each whole batch, group the instances' errors by point
    for graph in graphs:
        errors = (detector(graph).hard != graph["user"].y).long()
        per_instance = torch.zeros(graph.num_instances, dtype=torch.long).index_add_(0, graph.user_batch, errors)
        for nt, snr, e in zip(graph.num_users.tolist(), graph.snr_db.tolist(), per_instance.tolist()):
            count = expected.setdefault((nt, snr), [0, 0])
            count[0], count[1] = count[0] + e, count[1] + 1
    assert {(r.nt, r.snr_db): [r.symbol_errors, r.instances] for r in results} == expected
    assert len(expected) == 4 and {r.channel for r in results} == {"own-data"} and results[0].nr == 4


def test_sionna_layout_tensors_evaluate_with_a_paired_test():
    """from_sionna's layout ([..., Nr], [..., Nr, Nt], one noise variance for all) straight into evaluate."""
    sampler = MIMOSampler(nr=4, nt=2, qam=4, snr_db=8.0)
    view = (graph := sampler.sample(300, sampler.generator(1))).dense()
    sionna_like = MIMOGraph.from_sionna(view.y.reshape(3, 100, 4), view.H.reshape(3, 100, 4, 2),
                                        view.noise_var[0], label=graph.dense_labels(), snr_db=graph.snr_db, qam=4)
    detectors = {"mmse": zoo.create("mmse", 4), "ep": zoo.create("ep", 4)}
    from_graphs = evaluate(detectors, [sionna_like], reference="ep", progress=False)
    from_sampler = evaluate(detectors, [graph], reference="ep", progress=False)
    assert [(r.symbol_errors, r.paired) for r in from_graphs] == [(r.symbol_errors, r.paired) for r in from_sampler]
    assert from_graphs[0].paired.instances == 300


def test_the_digest_names_the_content_wherever_it_comes_from(tmp_path):
    instances = InstanceSet.from_graphs(mixed_graphs(), channel="bench-a")
    instances.save(tmp_path / "a.pt")
    loaded = load_instances(tmp_path / "a.pt")
    assert loaded.digest == instances.digest and loaded.channel_name == "bench-a"
    assert all(torch.equal(getattr(loaded, n), getattr(instances, n)) for n in ("y", "H", "label", "snr_db"))
    changed = InstanceSet.from_graphs(mixed_graphs(), channel="bench-a")
    changed.y[5, 0] += 1e-3
    assert changed.digest != instances.digest


def test_resume_refuses_records_of_other_data_and_reuses_those_of_the_same(tmp_path):
    detectors = {"mmse": zoo.create("mmse", 4)}
    def stored(seed):  # i.i.d. channels, so that records of a sampled run have the same keys
        return InstanceSet.from_graphs(mixed_graphs(seed), channel=ChannelModel())

    done = evaluate(detectors, stored(0), nts=[2], progress=False)
    assert evaluate(detectors, stored(0), nts=[2], previous=done, progress=False) == []
    with pytest.raises(ResumeMismatch, match="data.sha256"):
        evaluate(detectors, stored(1), nts=[2], previous=done, progress=False)
    with pytest.raises(ResumeMismatch, match="data: .* vs '<missing>'"):   # a sampled run's records differ
        evaluate(detectors, MIMOSampler(4, 3, 4), nts=[2], snrs_db=[0.0, 6.0], previous=done, progress=False)


def test_points_are_selected_among_those_the_instances_hold():
    instances = InstanceSet.from_graphs(mixed_graphs())
    assert instances.points() == [(2, 0.0), (2, 6.0), (3, 0.0), (3, 6.0)]
    results = evaluate({"mmse": zoo.create("mmse", 4)}, instances, snrs_db=[6.0], progress=False)
    assert [(r.nt, r.snr_db) for r in results] == [(2, 6.0), (3, 6.0)]
    with pytest.raises(ValueError, match=r"no point at Nt 5, SNR 9 dB.*\(2, 0\)"):
        evaluate({"mmse": zoo.create("mmse", 4)}, instances, nts=[5], snrs_db=[9.0])
    with pytest.raises(ValueError, match="nts and snrs_db are needed"):
        evaluate({"mmse": zoo.create("mmse", 4)}, MIMOSampler(4, 2, 4))
    with pytest.raises(ValueError, match="snr_db"):
        InstanceSet.from_graphs([MIMOGraph.from_dense(torch.ones(1, 2, dtype=torch.cfloat),
                                                      torch.ones(1, 2, 1, dtype=torch.cfloat), 1.0,
                                                      label=torch.zeros(1, 1, dtype=torch.long), qam=4)])


def valid_payload() -> dict:
    instances = InstanceSet.from_graphs(mixed_graphs()[:1], channel=ChannelModel())
    return {"format": FORMAT, "version": 1, "qam": 4, "channel": {"kind": "iid", "rho": 0.0, "csi_error": 0.0},
            **{name: getattr(instances, name) for name in ("y", "H", "noise_var", "label", "num_users",
                                                           "num_antennas", "snr_db")}}


def broken(**changes):
    def change(payload):
        for key, value in changes.items():
            if value is None:
                del payload[key]
            else:
                payload[key] = value(payload[key]) if callable(value) else value
        return payload
    return change


@pytest.mark.parametrize("damage, message", [
    (broken(format="gnnmimo-checkpoint"), "not a gnnmimo instances file"),
    (broken(version=2), "version 2 is not one this gnnmimo reads"),
    (broken(label=None), r"missing entries \['label'\]"),
    (broken(H=lambda H: H.real), "y and H must be complex"),
    (broken(label=lambda label: label + 4), r"label must lie in \[0, 3\]"),
    (broken(num_users=lambda n: n + 5), "num_users must lie in"),
    (broken(snr_db=lambda s: s.index_fill(0, torch.tensor([3]), float("nan"))), "snr_db must be finite"),
    (broken(noise_var=lambda v: v.index_fill(0, torch.tensor([7]), 0.0)), r"noise_var must be > 0 \(instances \[7\]"),
    (broken(y=lambda y: y[:, :3]), r"y \(120, 3\) \(expected \(120, 4\)\)"),
    (broken(qam=4.0), "qam must be an integer"),
])
def test_a_bad_instances_file_is_refused_on_load_naming_file_and_problem(tmp_path, damage, message):
    path = tmp_path / "bad.pt"
    torch.save(damage(valid_payload()), path)
    with pytest.raises(InstancesFileError, match=message) as caught:
        load_instances(path)
    assert str(path) in str(caught.value)


def test_files_that_are_not_torch_files_and_cli_misuse_are_errors(tmp_path, capsys):
    (tmp_path / "text.pt").write_text("y, H\n1, 2\n")
    with pytest.raises(InstancesFileError, match="not a readable torch file"):
        load_instances(tmp_path / "text.pt")
    torch.save(valid_payload(), tmp_path / "good.pt")
    for argv, message in [(["--data", str(tmp_path / "text.pt")], "not a readable torch file"),
                          (["--data", str(tmp_path / "good.pt"), "--nr", "4"], "--nr describe sampled data"),
                          (["--data", str(tmp_path / "good.pt"), "--qam", "16"], "are 4-QAM"),
                          (["--nt", "2", "--snr", "0"], "--nr required (or --data FILE"),
                          (["--data", str(tmp_path / "good.pt"), "--nt", "7"], "no point at Nt 7")]:
        with pytest.raises(SystemExit, match=re.escape(message)):
            cli_main(["evaluate", "--detector", "mmse", "--no-progress", *argv])
    (tmp_path / "taken.pt").write_bytes(b"")
    with pytest.raises(SystemExit, match="exists: use --overwrite"):
        cli_main(["sample", *STREAM, "--out", str(tmp_path / "taken.pt")])
