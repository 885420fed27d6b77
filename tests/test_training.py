"""Training and checkpoints: eq. 13, learning, exact resume, config checks, atomic writes, loading."""
import dataclasses
import os
import signal

import pytest
import torch
import torch.nn.functional as F

import zoo
from gnnmimo.checkpoint import load_weights, read_checkpoint, save_checkpoint
from gnnmimo.cli import main as cli_main
from gnnmimo.graph import USER
from gnnmimo.sampling import MIMOSampler
from gnnmimo.losses import detection_loss
from gnnmimo.train import TrainConfig, auto_snr_ranges, concat_graphs
from helpers import quiet_trainer, sample_batch

TINY_MODEL = {"nr": 4, "d_model": 8, "heads": 2, "blocks": 2}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**changes) -> TrainConfig:
    base = dict(detector="remimo", options=TINY_MODEL, qam=4, nr=4, nt=(2, 3), snr=(5.0, 15.0), steps=6,
                batch_size=16, lr=3e-3, eval_every=3, val_size=32)
    return TrainConfig(**{**base, **changes})


def mixed_batch(seed=0):
    return sample_batch(4, (1, 4), 4, 9, seed, snr_db=(0.0, 20.0))


# ---------------------------------------------------------------------- loss
def test_loss_is_eq_13_on_a_mixed_batch():
    graph = mixed_batch()
    logits = torch.randn(3, graph[USER].num_nodes, 4, generator=torch.Generator().manual_seed(0))
    ce = F.cross_entropy(logits.transpose(1, 2), graph[USER].y.expand(3, -1), reduction="none")
    per_instance = graph.users_to_dense(ce.T).sum(1) / graph.num_users[:, None]        # [B, T]
    torch.testing.assert_close(detection_loss(logits, graph), per_instance.mean(1).mean())
    torch.testing.assert_close(detection_loss(logits, graph, "last"), per_instance[:, -1].mean())


def test_loss_is_the_mean_cross_entropy_when_nt_is_fixed():
    sampler = MIMOSampler(4, 3, 4)
    graph = sampler.sample(5, sampler.generator(0))
    logits = torch.randn(2, 15, 4)
    expected = F.cross_entropy(logits.reshape(-1, 4), graph[USER].y.repeat(2))
    torch.testing.assert_close(detection_loss(logits, graph), expected)


def test_soft_ser_loss_is_the_mean_probability_of_a_symbol_error():
    sampler = MIMOSampler(4, 3, 4)
    graph = sampler.sample(5, sampler.generator(0))
    logits = torch.randn(2, 15, 4)
    p_true = logits.softmax(-1).gather(-1, graph[USER].y.expand(2, -1)[..., None])[..., 0]
    torch.testing.assert_close(detection_loss(logits, graph, "uniform", "soft-ser"), (1 - p_true).mean())
    torch.testing.assert_close(detection_loss(logits, graph, "last", "soft-ser"), (1 - p_true[-1]).mean())
    with pytest.raises(ValueError, match="unknown loss"):
        detection_loss(logits, graph, "last", "hinge")


def test_ce_weight_adds_the_cross_entropy_to_the_soft_ser():
    sampler = MIMOSampler(4, 3, 4)
    graph = sampler.sample(5, sampler.generator(0))
    logits = torch.randn(2, 15, 4)
    soft_ser, cross_entropy = (detection_loss(logits, graph, "last", loss) for loss in ("soft-ser", "cross-entropy"))
    torch.testing.assert_close(detection_loss(logits, graph, "last", "soft-ser", 0.3), soft_ser + 0.3 * cross_entropy)
    with pytest.raises(ValueError, match="ce_weight"):
        detection_loss(logits, graph, "last", "cross-entropy", 0.3)
    with pytest.raises(ValueError, match="ce_weight must be >= 0"):
        tiny(loss="soft-ser", ce_weight=-1.0)


def test_checkpoints_from_before_a_configuration_field_existed_still_resume(tmp_path):
    path = tmp_path / "run.pt"
    quiet_trainer(tiny(loss="soft-ser"), path).run()
    checkpoint = read_checkpoint(path)
    del checkpoint["training"]["ce_weight"]
    torch.save(checkpoint, path)
    assert quiet_trainer(tiny(loss="soft-ser", steps=9), path, resume=True).step == 6
    with pytest.raises(ValueError, match=r"ce_weight: 0.0 vs 0.1"):
        quiet_trainer(tiny(loss="soft-ser", ce_weight=0.1, steps=9), path, resume=True)


def test_a_soft_ser_run_trains_and_records_its_loss(tmp_path):
    quiet_trainer(tiny(loss="soft-ser"), tmp_path / "run.pt").run()
    assert read_checkpoint(tmp_path / "run.pt")["training"]["loss"] == "soft-ser"
    with pytest.raises(ValueError, match=r"loss: 'soft-ser' vs 'cross-entropy'"):
        quiet_trainer(tiny(steps=9), tmp_path / "run.pt", resume=True)


# ---------------------------------------------------------------------- data
def test_auto_snr_ranges_sit_on_the_published_lmmse_curve():
    # published LMMSE at Nr = 8, Nt = 4, 16-QAM: SER 1e-1 at ≈ 11.9 dB, 1e-3 at ≈ 19.6 dB
    ranges = auto_snr_ranges(MIMOSampler(8, 4, 16), [4])
    low, high = ranges[4]
    assert 11.0 <= low <= 12.5 and 19.0 <= high <= 21.0, ranges


def test_mixed_minibatches_mix_user_counts_with_their_own_snr_ranges():
    trainer = quiet_trainer(tiny(nt=(1, 4), nt_mode="mixed", batch_size=64, snr=(0.0, 1.0)))
    trainer.snr_ranges = {1: (0.0, 1.0), 2: (10.0, 11.0), 3: (20.0, 21.0), 4: (30.0, 31.0)}
    trainer._snr_table = torch.tensor([trainer.snr_ranges[n] for n in range(1, 5)])
    graph = trainer.sample_batch()
    assert graph.num_instances == 64 and len(graph.num_users.unique()) > 1
    low = 10.0 * (graph.num_users - 1)
    assert ((graph.snr_db >= low) & (graph.snr_db <= low + 1)).all()


def test_concat_graphs_keeps_every_instance():
    a, b = mixed_batch(0), MIMOSampler(6, 5, 4).sample(3, torch.Generator().manual_seed(1))
    joined = concat_graphs([a, b])
    assert joined.num_users.tolist() == a.num_users.tolist() + b.num_users.tolist()
    first, second = joined.select(torch.arange(9)), joined.select(torch.arange(9, 12))
    for part, original in ((first, a), (second, b)):
        torch.testing.assert_close(part.dense().H, original.dense().H)
        torch.testing.assert_close(part.dense().y, original.dense().y)
        assert torch.equal(part[USER].y, original[USER].y)


# ------------------------------------------------------------------ training
def test_a_tiny_training_run_decreases_the_loss():
    trainer = quiet_trainer(tiny(options={**TINY_MODEL, "d_model": 32}, steps=60, eval_every=60, batch_size=32,
                         val_size=64))
    before = trainer.validate()["loss"]
    after = trainer.run()["val_loss"]
    assert after < before - 0.3, (before, after)  # ≈ 1.40 → 0.77


@pytest.mark.parametrize("mode, schedule, warmup", [("batch", "plateau", 0), ("mixed", "cosine", 0),
                                                    ("batch", "cosine", 5), ("mixed", "plateau", 3)])
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, mode, schedule, warmup):
    config = tiny(nt_mode=mode, schedule=schedule, warmup=warmup, checkpoint_every=100)
    straight = quiet_trainer(config, tmp_path / "straight.pt")
    straight.run()

    def interrupt(trainer):
        if trainer.step == 4:
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C: finish the step, save, stop

    first = quiet_trainer(config, tmp_path / "resumed.pt")
    first.run(on_step=interrupt)
    assert read_checkpoint(tmp_path / "resumed.pt")["state"]["step"] == 4
    resumed = quiet_trainer(config, tmp_path / "resumed.pt", resume=True)
    assert resumed.step == 4
    resumed.run()

    a, b = read_checkpoint(tmp_path / "straight.pt"), read_checkpoint(tmp_path / "resumed.pt")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert str(a["state"]["optimizer"]) == str(b["state"]["optimizer"])
    assert a["state"]["scheduler"] == b["state"]["scheduler"]
    assert torch.equal(a["state"]["rng"]["data"], b["state"]["rng"]["data"])
    drop_time = lambda history: [{k: v for k, v in r.items() if k != "seconds"} for r in history]
    assert drop_time(a["state"]["history"]) == drop_time(b["state"]["history"])


@pytest.mark.parametrize("schedule", ["cosine", "plateau", "constant"])
def test_warmup_raises_the_learning_rate_linearly_then_hands_over_to_the_schedule(schedule):
    trainer = quiet_trainer(tiny(schedule=schedule, warmup=4, steps=12, eval_every=100, lr=1e-2))
    rates = []
    for _ in range(12):
        rates.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.train_step()
        trainer.step += 1
    assert rates[:5] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2])
    if schedule == "cosine":  # the cosine spans the 8 steps after the warm-up, down to lr/100
        assert all(a > b for a, b in zip(rates[4:], rates[5:])) and rates[-1] > 1e-4
    else:
        assert rates[4:] == pytest.approx([1e-2] * 8)


def test_a_run_can_start_from_trained_weights(trained, tmp_path):
    path, detector = trained
    config = tiny(init=str(path), steps=3)
    fine_tuned = quiet_trainer(config, tmp_path / "fine.pt")
    for key, value in detector.state_dict().items():
        assert torch.equal(fine_tuned.detector.state_dict()[key], value), key
    fine_tuned.run()
    assert read_checkpoint(tmp_path / "fine.pt")["training"]["init"] == str(path)
    with pytest.raises(ValueError, match=r"options.d_model: 8 vs 16"):
        quiet_trainer(tiny(init=str(path), options={**TINY_MODEL, "d_model": 16}))


def test_checkpoints_carry_the_full_configuration(tmp_path):
    trainer = quiet_trainer(tiny(), tmp_path / "run.pt")
    trainer.run()
    saved = read_checkpoint(tmp_path / "run.pt")
    assert saved["detector"] == {"name": "remimo", "qam": 4, "options": {**TINY_MODEL, "te_dim": None,
                                                                         "attention": "dense",
                                                                         "gradient": False, "start": "zero"}}
    assert saved["system"] == {"nr": 4, "nt": [2, 3], "nt_step": 1, "qam": 4,
                               "channel": {"kind": "iid", "rho": 0.0, "csi_error": 0.0}}
    assert saved["training"]["lr"] == 3e-3 and saved["training"]["snr_ranges"] == {"2": [5.0, 15.0],
                                                                                  "3": [5.0, 15.0]}
    assert saved["library_version"] and saved["state"]["step"] == 6
    assert set(saved["state"]) >= {"optimizer", "scheduler", "rng", "history"}


def test_the_lowest_validation_loss_is_kept_beside_the_checkpoint(tmp_path):
    trainer = quiet_trainer(tiny(eval_every=1, lr=3e-2), tmp_path / "run.pt")
    trainer.run()
    best = read_checkpoint(tmp_path / "run.best.pt")
    lowest = min(trainer.history, key=lambda record: record["val_loss"])
    assert trainer.best_path == tmp_path / "run.best.pt"
    assert best["state"]["step"] == lowest["step"] and best["state"]["best_val_loss"] == lowest["val_loss"]
    detector = zoo.create("remimo", 4, **TINY_MODEL)
    load_weights(detector, best)
    assert trainer.validate(detector)["loss"] == pytest.approx(lowest["val_loss"])


# ---------------------------------------------------------- mismatches, loading
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    trainer = quiet_trainer(tiny(), path)
    trainer.run()
    return path, trainer.detector


def test_resuming_into_a_different_configuration_raises(trained, tmp_path):
    path, _ = trained
    with pytest.raises(ValueError, match=r"qam: 4 vs 16"):
        quiet_trainer(tiny(qam=16), path, resume=True)
    with pytest.raises(ValueError, match=r"options.d_model: 8 vs 16"):
        quiet_trainer(tiny(options={**TINY_MODEL, "d_model": 16}), path, resume=True)
    assert quiet_trainer(tiny(steps=9), path, resume=True).step == 6  # more steps is fine


def test_a_run_resumes_with_the_options_it_was_started_with(tmp_path):
    """Detectors that do not record their options themselves (the unrolled ones) resume too."""
    config = tiny(detector="epgnn", options={"iterations": 2, "damping": 0.8}, steps=2, eval_every=2,
                  batch_size=8, val_size=8)
    quiet_trainer(config, tmp_path / "run.pt").run()
    assert quiet_trainer(dataclasses.replace(config, steps=3), tmp_path / "run.pt", resume=True).step == 2


@pytest.mark.parametrize("name, qam, options, message", [
    ("remimo", 16, TINY_MODEL, r"qam: 4 vs 16"),
    ("remimo", 4, {**TINY_MODEL, "nr": 6}, r"options.nr: 4 vs 6"),
    ("remimo", 4, {**TINY_MODEL, "d_model": 12}, r"options.d_model: 8 vs 12"),
    ("mmse", 4, {}, r"name: 'remimo' vs 'mmse'"),
])
def test_loading_into_a_mismatched_detector_says_what_differs(trained, name, qam, options, message):
    path, _ = trained
    with pytest.raises(ValueError, match=message):
        load_weights(zoo.create(name, qam, **options), read_checkpoint(path))


def test_load_checkpoint_by_path_and_by_pretrained_name(trained, tmp_path, monkeypatch):
    path, detector = trained
    monkeypatch.setattr(zoo.weights, "PRETRAINED_DIR", tmp_path)
    (tmp_path / "tiny-remimo.pt").write_bytes(path.read_bytes())
    graph = MIMOSampler(4, (2, 3), 4, snr_db=10.0).sample(8, torch.Generator().manual_seed(0))
    expected = detector.detect(graph).logits
    for loaded in (zoo.load(path), zoo.load("tiny-remimo"),
                   zoo.load("tiny-remimo", attention="graph")):
        assert not loaded.training
        torch.testing.assert_close(loaded.detect(graph).logits, expected, rtol=1e-4, atol=1e-5)
    assert zoo.load("tiny-remimo").checkpoint_label == "tiny-remimo"
    with pytest.raises(FileNotFoundError, match="pretrained: tiny-remimo"):
        zoo.load("no-such-model")
    with pytest.raises(ValueError, match="do not fit"):
        zoo.load(path, d_model=16)


def test_checkpoint_writes_are_atomic(trained, tmp_path, monkeypatch):
    _, detector = trained
    target = tmp_path / "model.pt"
    save_checkpoint(target, detector)
    good = target.read_bytes()

    def broken_save(payload, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, detector)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "new.pt", detector)
    assert target.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]


# ----------------------------------------------------------------------- CLI
def test_cli_train_writes_a_checkpoint_and_refuses_a_mismatched_resume(tmp_path):
    out = tmp_path / "cli.pt"
    common = ["train", "--detector", "remimo", "--nr", "4", "--nt", "2:3", "--snr", "5:15", "--steps", "2",
              "--eval-every", "2", "--batch-size", "8", "--val-size", "8", "--d-model", "8", "--heads", "2",
              "--blocks", "2", "--out", str(out), "--no-progress"]
    assert cli_main(common + ["--qam", "4"]) == 0
    assert read_checkpoint(out)["detector"]["options"]["blocks"] == 2
    with pytest.raises(SystemExit, match="qam: 4 vs 16"):
        cli_main(common + ["--qam", "16", "--resume"])
    fine = ["--qam", "4", "--warmup", "1", "--out", str(tmp_path / "fine.pt")]
    assert cli_main(common + fine + ["--init", str(out)]) == 0
    assert read_checkpoint(tmp_path / "fine.pt")["training"]["init"] == str(out)
    with pytest.raises(SystemExit, match="no checkpoint file 'no-such-model'"):
        cli_main(common + fine + ["--init", "no-such-model", "--overwrite"])


def test_nt_step_trains_only_on_the_chosen_user_counts(tmp_path):
    trainer = quiet_trainer(tiny(nt=(2, 4), nt_step=2, nt_mode="mixed"), tmp_path / "even.pt")
    counts = torch.cat([trainer.sample_batch().num_users for _ in range(5)])
    assert set(counts.unique().tolist()) == {2, 4}
    assert sorted(trainer.snr_ranges) == [2, 4]


def test_the_family_recipe_sets_the_defaults_and_options_override_it():
    from gnnmimo.cli import build_parser
    from gnnmimo.cli.train import config_from_args
    from gnnmimo.train.recipes import RECIPE_FIELDS, RECIPES

    def parsed(*extra):
        return build_parser().parse_args(["train", "--nr", "8", "--nt", "4:8", "--qam", "16", "--out", "x.pt",
                                          *extra])
    assert all(set(fields) <= set(RECIPE_FIELDS) for fields in RECIPES.values())
    hybrid = config_from_args(parsed("--detector", "epgnn:refine=True,report=True"))
    assert (hybrid.loss, hybrid.ce_weight, hybrid.loss_weights, hybrid.lr, hybrid.batch_size) == (
        "soft-ser", 0.1, "last", 1e-3, 128)
    remimo = config_from_args(parsed("--detector", "remimo"))
    assert (remimo.loss, remimo.lr, remimo.batch_size) == ("cross-entropy", 1e-4, 256)  # the paper's
    chosen = config_from_args(parsed("--detector", "epgnn", "--lr", "5e-4", "--recipe", "paper"))
    assert (chosen.lr, chosen.loss, chosen.batch_size) == (5e-4, "cross-entropy", 256)


def test_a_resumed_run_takes_the_options_not_given_from_its_checkpoint_not_the_recipe(tmp_path):
    """A run started before recipes (or under another recipe) resumes with the same command."""
    out = tmp_path / "old.pt"
    common = ["train", "--detector", "epgnn", "--nr", "4", "--nt", "2:3", "--qam", "4", "--snr", "5:15",
              "--eval-every", "2", "--val-size", "8", "--out", str(out), "--no-progress"]
    assert cli_main(common + ["--steps", "2", "--recipe", "paper", "--batch-size", "8"]) == 0
    assert cli_main(common + ["--steps", "4", "--resume"]) == 0
    training = read_checkpoint(out)["training"]
    assert (training["loss"], training["lr"], training["batch_size"]) == ("cross-entropy", 1e-4, 8)
