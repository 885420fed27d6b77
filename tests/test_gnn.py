"""The pairwise-MRF GNN block and the detectors built on it (gnn, epgnn, ampgnn and the
two hybrids ep-transformer and oamp-gnn): the MRF matches the real-valued system,
the readout posterior matches the denoiser's maths, and every detector is
permutation equivariant, batch independent and runs on every user count,
untrained and after training steps."""
import math

import pytest
import torch
from hypothesis import given

import zoo
from gnnmimo.blocks.denoiser import PAMPosterior, gaussian_denoise
from gnnmimo.blocks.gnn import real_component_graph
from gnnmimo.blocks.real import real_system, users_to_real
from gnnmimo.constellation import QAM
from gnnmimo.sampling import MIMOSampler
from gnnmimo.testing import (assert_batch_independent, assert_generalises_over_user_counts,
                             assert_permutation_equivariant, mimo_batches)
from gnnmimo.train import TrainConfig
from helpers import quiet_trainer

GNN_FAMILY = ("gnn", "epgnn", "ampgnn", "ep-transformer", "oamp-gnn")


def test_real_component_graph_is_the_real_systems_mrf():
    """Node inputs yᵀh_k, h_kᵀh_k and edge weights h_kᵀh_l equal the padded real system's
    matched filter, Gram diagonal and Gram entries, on a batch mixing Nt and Nr."""
    sampler = MIMOSampler(nr=(3, 6), nt=(1, 4), qam=16, precision="double")
    graph = sampler.sample(7, sampler.generator(0), snr_db=10.0)
    mrf = real_component_graph(graph, torch.float64)
    system = real_system(graph, torch.float64)
    num_users = graph.user_batch.numel()
    node = mrf.node_input.view(num_users, 2, 3)
    assert torch.allclose(users_to_real(graph, node[..., 0]), system.matched_filter)
    assert torch.allclose(users_to_real(graph, -node[..., 1]), system.gram.diagonal(dim1=-2, dim2=-1))
    assert torch.allclose(node[..., 2], (graph.user_noise_var / 2)[:, None].expand(-1, 2))

    # every ordered pair of distinct real components of an instance, once, with −h_kᵀh_l
    instance = graph.user_batch.repeat_interleave(2)
    position = graph.user_index.repeat_interleave(2) + torch.arange(2).repeat(num_users) * (system.H.shape[-1] // 2)
    source, target = mrf.edge_index
    assert (instance[source] == instance[target]).all() and (source != target).all()
    expected_edges = int((2 * graph.num_users * (2 * graph.num_users - 1)).sum())
    assert source.numel() == expected_edges == torch.unique(source * 2 * num_users + target).numel()
    gram = system.gram[instance[target], position[target], position[source]]
    assert torch.allclose(-mrf.edge_input[:, 0], gram)


def test_pam_posterior_of_gaussian_logits_is_the_denoiser():
    qam = QAM(16)
    r, tau = torch.randn(5, 2, dtype=torch.float64), torch.rand(5, 2, dtype=torch.float64) + 0.01
    log_probs, mean, var = gaussian_denoise(r, tau, qam.pam.double())
    out = PAMPosterior(qam)(None, {"pam_logits": log_probs + 3.0})        # unnormalised is fine
    assert torch.allclose(out["mean"], mean) and torch.allclose(out["var"], var)
    flat = PAMPosterior(qam)(None, {"pam_logits": log_probs.flatten(1)})  # [N_u, 2P] layout
    assert torch.allclose(flat["logits"], out["logits"])


@pytest.mark.parametrize("hybrid, classical", [("epgnn", "ep:double=False"),
                                               ("epgnn:refine=True,report=True", "ep:double=False"),
                                               ("ampgnn", "amp:iterations=10"),
                                               ("ampgnn:refine=True,report=True,divergence=True",
                                                "amp:iterations=10"), ("oamp-gnn", "oamp"),
                                               ("oamp-gnn:refine=True,report=True", "oamp"),
                                               ("ep-transformer:skip=True,refine=True,report=True,damping=0.9",
                                                "ep:double=False")])
def test_untrained_refinement_is_its_classical_parent(hybrid, classical):
    """With the observation skip and a zero-initialised readout, the untrained GNN passes the
    Gaussian posterior through: EP-GNN and the correcting EP-transformer are EP, AMP-GNN is AMP,
    OAMP-GNN is OAMP."""
    sampler = MIMOSampler(nr=(6, 10), nt=(2, 6), qam=16, snr_db=(5.0, 25.0), precision="double")
    graph = sampler.sample(40, sampler.generator(0))
    ours = zoo.create_from_spec(hybrid, 16).double().detect(graph).probs
    parent = zoo.create_from_spec(classical, 16).detect(graph).probs
    assert torch.allclose(ours, parent, atol=1e-12)


@pytest.mark.parametrize("name", GNN_FAMILY + ("epgnn:skip=False", "ampgnn:refine=True,report=True,divergence=True",
                                              "oamp-gnn:refine=True,report=True",
                                              "ep-transformer:skip=True,refine=True,report=True"))
@given(graph=mimo_batches(nr=(2, 8), qam=[4, 16], mixed_nr=True, batch_size=(1, 5), precision="double"))
def test_untrained_properties(name, graph):
    torch.manual_seed(0)
    detector = zoo.create_from_spec(name, graph.qam).double()
    assert_permutation_equivariant(detector, graph, permute_antennas=True)
    assert_batch_independent(detector, graph)


def test_ampgnn_feeds_amp_the_divergence_of_its_refined_denoiser():
    """With the observation scaled by e^ν, AMP gets Σ ∂x̂/∂r = v e^{−ν}, not the posterior variance v."""
    sampler = MIMOSampler(nr=8, nt=(2, 5), qam=16, snr_db=(5.0, 20.0), precision="double")
    graph = sampler.sample(6, sampler.generator(0))
    plain, corrected = (zoo.create("ampgnn", 16, iterations=1, refine=True, divergence=divergence).double()
                        for divergence in (False, True))
    corrected.load_state_dict(plain.state_dict())
    pam_size = len(plain.qam.pam)
    with torch.no_grad():
        for detector in (plain, corrected):
            detector.gnn.readout[-1].bias[pam_size + 1] = 0.7             # ν of the iterated head
    (plain_state,), (corrected_state,) = plain.states(graph), corrected.states(graph)
    torch.testing.assert_close(corrected_state["mean"], plain_state["mean"])
    torch.testing.assert_close(corrected_state["var"], plain_state["var"] * math.exp(-0.7))
    with pytest.raises(ValueError, match="needs refine=True"):
        zoo.create("ampgnn", 16, divergence=True)


def briefly_trained(name: str):
    """The detector after 8 Adam steps of the real trainer on a small mixed-Nt problem."""
    name, options = zoo.parse_spec(name)
    config = TrainConfig(detector=name, options=options, qam=16, nr=6, nt=(2, 4), snr=(5.0, 20.0), nt_mode="mixed",
                         steps=8, batch_size=16, lr=1e-2, eval_every=8, val_size=16)
    trainer = quiet_trainer(config)
    before = [p.detach().clone() for p in trainer.detector.parameters()]
    trainer.run()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.detector.parameters()))
    return trainer.detector


@pytest.mark.parametrize("name", GNN_FAMILY + ("ampgnn:refine=True,report=True,divergence=True",))
def test_trained_properties(name):
    detector = briefly_trained(name).double()
    sampler = MIMOSampler(nr=(4, 8), nt=(1, 6), qam=16, snr_db=(0.0, 30.0), precision="double")
    graph = sampler.sample(8, sampler.generator(1))
    assert_permutation_equivariant(detector, graph, permute_antennas=True)
    assert_batch_independent(detector, graph)
    assert_generalises_over_user_counts(detector.float(), nr=(4, 8), nt_range=(1, 9))


def test_observation_correction_shifts_and_rescales_the_gaussian_and_checks_its_width():
    """A head of (a, δ, ν) moves the observation to r + √τ·δ with variance τ·e^ν, plus the logits a."""
    from gnnmimo.blocks.denoiser import ObservationCorrection, gaussian_log_probs
    qam = zoo.create("ep", 16).qam
    block = ObservationCorrection(qam, refine=True, report=True)
    mean, var = torch.tensor([[0.3, -0.5]]), torch.tensor([[0.2, 0.05]])
    head = torch.tensor([0.1, -0.2, 0.0, 0.4, 0.5, -1.0])            # a (P = 4), δ, ν
    correction = torch.cat([head, torch.zeros(6), head, head])        # Re: iterated, report; Im: both
    out = block(None, {"correction": correction[None], "obs_mean": mean, "obs_var": var})
    pam = qam.pam_as(mean)
    expected_re = head[:4] + gaussian_log_probs(mean[:, 0] + var[:, 0].sqrt() * 0.5, var[:, 0] * torch.e ** -1.0, pam)
    assert torch.allclose(out["pam_logits"][0, 0], expected_re[0])
    assert torch.allclose(out["report_pam_logits"][0, 0], gaussian_log_probs(mean[:, 0], var[:, 0], pam)[0])
    assert torch.allclose(out["obs_log_scale"], torch.tensor([[-1.0, -1.0]]))
    with pytest.raises(ValueError, match="expects 24 correction channels, got 12"):
        block(None, {"correction": correction[None, :12], "obs_mean": mean, "obs_var": var})
