"""OAMPNet, OAMPNet2, MMNet, DetNet: symmetries untrained and after a few steps of the real
Trainer, OAMPNet = OAMP when untrained, MMNet's linear step = its equations, the shared MSE
loss, DetNet as the negative control of the equivariance checker and its size checks,
training lowers each loss, checkpoints, and the CLI."""
import functools
import math

import pytest
import torch
from hypothesis import given

import zoo
import zoo.detnet  # noqa: F401  (registers detnet)
import zoo.mmnet  # noqa: F401  (registers mmnet)
import zoo.oampnet  # noqa: F401  (registers oampnet, oampnet2)
from gnnmimo.blocks.mmnet import MMNetLinear
from gnnmimo.blocks.real import real_system, users_from_real, users_to_real
from gnnmimo.checkpoint import load_checkpoint, save_checkpoint
from gnnmimo.cli import main as cli_main
from gnnmimo.constellation import QAM
from gnnmimo.graph import USER
from gnnmimo.sampling import MIMOSampler
from gnnmimo.testing import (assert_batch_independent, assert_generalises_over_user_counts,
                             assert_permutation_equivariant, mimo_batches)
from gnnmimo.losses import symbol_mse_loss
from gnnmimo.train import TrainConfig
from helpers import quiet_trainer

EQUIVARIANT = ("oampnet", "oampnet2", "mmnet")
#: DetNet serves one size: Nr = 4, Nt = 3 here
DETNET = {"nr": 4, "nt": 3}


pytestmark = pytest.mark.usefixtures("one_thread")


@functools.cache
def trained(name: str):
    """``name`` after 20 Adam steps of the real Trainer on 4-QAM, Nr = 4 (cached per module run)."""
    options, nt = (DETNET, (3, 3)) if name == "detnet" else ({}, (2, 3))
    config = TrainConfig(detector=name, options=options, qam=4, nr=4, nt=nt, snr=(5.0, 15.0), steps=20,
                         batch_size=16, lr=3e-2, eval_every=20, val_size=16)
    trainer = quiet_trainer(config)
    trainer.run()
    return trainer.detector.eval()


def detector(name: str, is_trained: bool, qam: int = 4):
    if is_trained:
        return trained(name)
    torch.manual_seed(0)
    return zoo.create(name, qam, **(DETNET if name == "detnet" else {}))


# ---------------------------------------------------------------- symmetries
@pytest.mark.parametrize("is_trained", [False, True], ids=["untrained", "trained"])
@pytest.mark.parametrize("name", EQUIVARIANT)
@given(graph=mimo_batches(nr=(2, 8), qam=4, mixed_nr=True, batch_size=(1, 6), precision="double"))
def test_properties(name, is_trained, graph):
    model = detector(name, is_trained)
    assert_permutation_equivariant(model, graph, permute_antennas=True)
    assert_batch_independent(model, graph)


@pytest.mark.parametrize("is_trained", [False, True], ids=["untrained", "trained"])
@pytest.mark.parametrize("name", EQUIVARIANT)
def test_generalises_over_user_counts(name, is_trained):
    assert_generalises_over_user_counts(detector(name, is_trained), nr=(4, 8), nt_range=(1, 10))


@pytest.mark.parametrize("name", EQUIVARIANT + ("detnet",))
def test_training_moved_the_parameters(name):
    untrained = detector(name, False)
    unchanged = {key for (key, a), b in zip(untrained.named_parameters(), trained(name).parameters())
                 if torch.equal(a, b)}
    # DetNet (as in the paper): δ2 of layer 1 multiplies HᵀH x̂_0 = 0, and the last v_T feeds nothing
    last = untrained.iterations - 1
    dead = {"layers.0.delta2", f"layers.{last}.v.weight", f"layers.{last}.v.bias"}
    assert unchanged == (dead if name == "detnet" else set())


# ------------------------------------------------------- OAMPNet, MMNet, loss
@pytest.mark.parametrize("precision", ["single", "double"])
@pytest.mark.parametrize("name", ["oampnet", "oampnet2"])
def test_untrained_oampnet_is_oamp(name, precision):
    sampler = MIMOSampler(nr=(4, 8), nt=(1, 8), qam=16, snr_db=(5.0, 25.0), precision=precision)
    graph = sampler.sample(30, sampler.generator(1))
    assert torch.equal(zoo.create(name, 16).detect(graph).logits, zoo.create("oamp", 16).detect(graph).logits)


def test_oampnet2_has_a_correction_between_layers_only():
    model = zoo.create("oampnet2", 4, iterations=3)
    assert len(model.linears) == 3 and len(model.corrections) == 2
    assert model.hparams == {"iterations": 3, "double": False}


@pytest.mark.parametrize("theta1, theta2", [(1.0, 1.0), (0.6, 1.7)])
def test_mmnet_linear_step_equals_its_equations(theta1, theta2):
    sampler = MIMOSampler(nr=(3, 8), nt=(1, 6), qam=16, precision="double")
    graph = sampler.sample(6, sampler.generator(2), snr_db=15)
    x = 0.3 * torch.randn(graph[USER].num_nodes, 2, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(0))
    block = MMNetLinear(theta1, theta2)
    state = block(graph, {"mean": x})
    theta1, theta2 = block.theta1.double(), block.theta2.double()  # stored in the default dtype
    z_dense, var_dense = users_to_real(graph, state["obs_mean"]), users_to_real(graph, state["obs_var"])
    system, x_dense, nt_max = real_system(graph), users_to_real(graph, x), graph.user_mask().shape[1]
    nr_max = system.H.shape[1] // 2
    for b in range(graph.num_instances):  # unpadded, instance by instance, as written in the module doc
        nt, nr = int(graph.num_users[b]), int(graph.num_antennas[b])
        cols = torch.cat([torch.arange(nt), nt_max + torch.arange(nt)])
        rows = torch.cat([torch.arange(nr), nr_max + torch.arange(nr)])
        H, y, noise_var = system.H[b][rows][:, cols], system.y[b][rows], system.noise_var[b]
        m, n = H.shape
        residual = y - H @ x_dense[b, cols]
        v2 = torch.clamp((residual @ residual - m * noise_var) / torch.trace(H.T @ H), min=1e-10)
        W = theta1 * n / torch.trace(H.T @ H) * H.T
        B = torch.eye(n, dtype=H.dtype) - W @ H
        tau = torch.trace(B @ B.T) * v2 / n + torch.trace(W @ W.T) * noise_var / n
        torch.testing.assert_close(z_dense[b, cols], x_dense[b, cols] + W @ residual, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(var_dense[b, cols], (tau / theta2).expand(2 * nt), rtol=1e-6, atol=1e-12)


def test_symbol_mse_loss_normalises_per_instance():
    sampler = MIMOSampler(4, (1, 4), 16, snr_db=(0.0, 20.0))
    graph = sampler.sample(9, sampler.generator(0))
    generator = torch.Generator().manual_seed(0)
    means = torch.randn(3, graph[USER].num_nodes, 2, generator=generator)
    reference = torch.randn(graph[USER].num_nodes, 2, generator=generator)
    qam = QAM(16)
    x = torch.view_as_real(qam.symbols(graph[USER].y))
    weights = torch.tensor([0.0, 0.5, 2.0])
    per_instance = lambda error: graph.users_to_dense(error.T).sum(1)                        # [B, T]
    error, reference_error = (means - x).square().sum(-1), (reference - x).square().sum(-1)
    by_count = per_instance(error) / graph.num_users[:, None]
    by_reference = per_instance(error) / per_instance(reference_error[None])
    torch.testing.assert_close(symbol_mse_loss(means, graph, qam), by_count.sum(1).mean())
    torch.testing.assert_close(symbol_mse_loss(means[-1], graph, qam), by_count[:, -1].mean())
    torch.testing.assert_close(symbol_mse_loss(means, graph, qam, weights), (by_count @ weights).mean())
    torch.testing.assert_close(symbol_mse_loss(means, graph, qam, weights, reference=reference),
                               (by_reference @ weights).mean())


# --------------------------------------------------------------------- DetNet
@pytest.mark.parametrize("is_trained", [False, True], ids=["untrained", "trained"])
def test_the_equivariance_checker_catches_detnet(is_trained):
    """DetNet is fully connected across users: relabelling them changes its outputs."""
    sampler = MIMOSampler(4, 3, 4, snr_db=(5.0, 15.0))
    graph = sampler.sample(8, sampler.generator(0))
    with pytest.raises(AssertionError, match=r"detnet \[parameters as given\] is not permutation equivariant"):
        assert_permutation_equivariant(detector("detnet", is_trained), graph)


def test_detnet_rejects_other_sizes_with_a_clear_error():
    model = detector("detnet", False)
    for nr, nt, found in [(4, (2, 3), r"Nt=2, Nr=4"), (6, 3, r"Nt=3, Nr=6")]:
        graph = MIMOSampler(nr, nt, 4).sample(6, torch.Generator().manual_seed(1))
        with pytest.raises(ValueError, match=rf"built for Nt=3, Nr=4 .*never mixed.* has {found}"):
            model(graph)
        with pytest.raises(ValueError, match="built for Nt=3, Nr=4"):
            model.loss(graph)
    with pytest.raises(ValueError, match="needs nr and nt"):
        zoo.create("detnet", 4, nr=4)
    with pytest.raises(ValueError, match="nt <= nr"):
        zoo.create("detnet", 4, nr=2, nt=3)


def test_detnet_sizes_and_zf_normalised_log_weighted_loss():
    model = zoo.create("detnet", 16, nr=8, nt=4)
    assert model.hparams == {"nr": 8, "nt": 4, "iterations": 12, "hidden": 32, "v_size": 8}
    layer = model.layers[0]
    assert (layer.hidden.in_features, layer.onehot.out_features, layer.v.out_features) == (8 + 8, 8 * 4, 8)
    graph = MIMOSampler(8, 4, 16, snr_db=10.0).sample(4, torch.Generator().manual_seed(0))
    system = real_system(graph)
    zf = users_from_real(graph, torch.linalg.solve(system.gram, system.matched_filter))          # [N_u, 2]
    x = torch.view_as_real(model.qam.symbols(graph[USER].y))
    per_instance = lambda error: graph.users_to_dense(error.T).sum(1)
    errors = per_instance((model.estimates(graph) - x).square().sum(-1))                          # [B, T]
    zf_errors = per_instance((zf - x).square().sum(-1)[None])                                     # [B, 1]
    expected = (errors / zf_errors) @ torch.arange(1, 13.0).log()
    torch.testing.assert_close(model.loss(graph), expected.mean(), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ learning
@pytest.mark.parametrize("name, lr", [("oampnet", 3e-2), ("oampnet2", 1e-2), ("mmnet", 1e-2), ("detnet", 1e-3)])
def test_training_lowers_the_loss_on_a_fixed_problem(name, lr):
    sampler = MIMOSampler(4, 3, 4, snr_db=(5.0, 15.0))
    graph = sampler.sample(32, sampler.generator(0))
    model = detector(name, False)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(30):
        loss = model.loss(graph)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # measured: -34 % (oampnet), -34 % (oampnet2), -49 % (mmnet), -16 % (detnet)
    assert math.isfinite(losses[-1]) and losses[-1] < 0.95 * losses[0], losses


@pytest.mark.parametrize("name", ["oampnet2", "detnet"])
def test_checkpoints_rebuild_the_trained_detector(name, tmp_path):
    model = trained(name)
    save_checkpoint(tmp_path / "model.pt", model)
    loaded = load_checkpoint(tmp_path / "model.pt")
    assert loaded.hparams == model.hparams
    graph = MIMOSampler(4, 3, 4, snr_db=10.0).sample(8, torch.Generator().manual_seed(0))
    assert torch.equal(loaded.detect(graph).logits, model.detect(graph).logits)


def test_cli_trains_and_evaluates_oampnet(tmp_path, capsys):
    out = tmp_path / "oampnet.pt"
    assert cli_main(["train", "--detector", "oampnet:iterations=4", "--qam", "4", "--nr", "4", "--nt", "2:3",
                     "--snr", "5:15", "--steps", "2", "--eval-every", "2", "--batch-size", "8",
                     "--val-size", "8", "--out", str(out), "--no-progress"]) == 0
    assert load_checkpoint(out).hparams == {"iterations": 4, "double": False}
    common = ["evaluate", "--qam", "4", "--nr", "4", "--nt", "2", "--snr", "10", "--target-errors", "5",
              "--max-symbols", "400", "--batch-size", "100", "--no-progress"]
    assert cli_main(common + ["--detector", "oampnet", "--checkpoint", str(out)]) == 0
    assert "oampnet" in capsys.readouterr().out
